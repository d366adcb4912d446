import Foundation
import Glibc
import Logging
import MailCore
import MailServer
import MailStore
import MailStorePostgres
import MailStoreSQLite
import NIOCore
import NIOPosix
import ServerCore
import TernConfig

/// The real server, in-process on loopback ports, on a SQLite store in a temporary folder with a manual clock:
/// `example.test` with alice@example.test (password "pw"); SMTP on port 25's rules; other services as `tweak` lists
/// them. `play` runs a protocol transcript against it: `C: line` is sent, `S: prefix` must match the next reply line.
public final class InProcessServer {
    public let store: any MailStore
    public let server: TernServer
    public let group: MultiThreadedEventLoopGroup
    public let pool: NIOThreadPool
    public let port: Int
    public let dir: URL
    public private(set) var listeners: [TernServer.Listener] = []

    /// The port a service listens on (0 when it does not).
    /// The server's open connections, for draining.
    public var connections: ConnectionRegistry { server.listeners.registry }

    public func port(of service: TernConfiguration.Service) -> Int {
        listeners.first { $0.service == service }?.address.port ?? 0
    }

    /// Where the in-process server keeps its store: the embedded SQLite store in its temporary folder, or a new
    /// database on the PostgreSQL test server (`TestDatabase`).
    public enum Backend: Sendable { case sqlite, postgres }

    public static func start(on backend: Backend = .sqlite, _ tweak: (inout TernConfiguration) -> Void = { _ in }) async throws -> InProcessServer {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-srv-\(UUID().uuidString)")
        var config = TernConfiguration.embeddedDefault(dataDirectory: dir)
        config.hostname = "mx.test"
        config.listen[.smtp] = [ListenAddress(host: "127.0.0.1", port: 0)]
        config.listen[.imap] = []
        config.listen[.imaps] = []
        config.listen[.pop3] = []
        config.listen[.pop3s] = []
        config.listen[.submission] = []
        config.listen[.submissions] = []
        config.listen[.managesieve] = []
        tweak(&config)
        let clock = ManualClock()
        let store: any MailStore = switch backend {
        case .sqlite: try SQLiteMailStore(dataDirectory: dir, clock: clock)
        case .postgres: try await PostgresMailStore.open(url: try await TestDatabase.create(), spool: dir.appendingPathComponent("spool"), clock: clock)
        }
        try await store.addDomain("example.test")
        _ = try await store.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let tls = try TLSMaterial.serverContext(certificate: nil, key: nil, dataDirectory: dir, hostname: "mx.test", now: clock.now)
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TERN_TEST_LOG"] != nil ? .debug : .critical
        let context = ServerContext(config: config, store: store, tls: tls, logger: logger, clock: clock, threadPool: pool)
        let server = TernServer(context: context, group: group)
        let listeners = try await server.start()
        let started = InProcessServer(store: store, server: server, group: group, pool: pool, port: listeners[0].address.port!, dir: dir)
        started.listeners = listeners
        return started
    }

    init(store: any MailStore, server: TernServer, group: MultiThreadedEventLoopGroup, pool: NIOThreadPool, port: Int, dir: URL) {
        self.store = store; self.server = server; self.group = group; self.pool = pool; self.port = port; self.dir = dir
    }

    public func stop(grace: Duration = .zero) async throws {
        await server.stop(grace: grace)
        try await pool.shutdownGracefully()
        try await group.shutdownGracefully()
        (store as? PostgresMailStore)?.close()
        try? FileManager.default.removeItem(at: dir)
    }

    public func inbox(_ address: String) async throws -> [[UInt8]] {
        guard let account = try await store.account(try EmailAddress.parse(address)) else { return [] }
        let inbox = try await store.mailboxes(account: account)[0]
        var out: [[UInt8]] = []
        for m in try await store.messages(mailbox: inbox.id) { out.append(try await store.content(of: m.messageID)) }
        return out
    }

    /// Plays a transcript; returns a description of the first mismatch, or nil. The client's blocking reads run on a
    /// thread of their own, not on the cooperative threads the server may need to answer.
    public func play(_ transcript: String) async -> String? {
        let port = self.port
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: Self.play(transcript, port: port)) }
        }
    }

    static func play(_ transcript: String, port: Int) -> String? {
        guard let client = LoopbackLines(port: port) else { return "connect failed" }
        for raw in transcript.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("C: ") {
                client.send(String(line.dropFirst(3)).replacingOccurrences(of: "\\r\\n", with: "\r\n"))
            } else if line.hasPrefix("S: ") {
                let expected = String(line.dropFirst(3))
                guard let got = client.readLine() else { return "expected \(expected), connection closed" }
                if !got.hasPrefix(expected) { return "expected \(expected), got \(got)" }
            } else if line == "CLOSED" {
                if let got = client.readLine() { return "expected close, got \(got)" }
            }
        }
        return nil
    }
}
