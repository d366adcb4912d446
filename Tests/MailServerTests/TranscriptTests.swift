import ServerCore
import Foundation
import Glibc
import Logging
import MailCore
import MailServer
import MailStore
import MailStoreSQLite
import NIOCore
import NIOPosix
import TernConfig
import TernTestSupport
import Testing

/// Runs the real server in-process on a loopback port and plays protocol transcripts against it:
/// `C: line` is sent, `S: prefix` must match the next reply line.
final class InProcessServer {
    let store: SQLiteMailStore
    let server: TernServer
    let group: MultiThreadedEventLoopGroup
    let pool: NIOThreadPool
    let port: Int
    let dir: URL
    var listeners: [TernServer.Listener] = []

    /// The port a service listens on (0 when it does not).
    func port(of service: TernConfiguration.Service) -> Int {
        listeners.first { $0.service == service }?.address.port ?? 0
    }

    static func start(_ tweak: (inout TernConfiguration) -> Void = { _ in }) async throws -> InProcessServer {
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
        tweak(&config)
        let clock = ManualClock()
        let store = try SQLiteMailStore(dataDirectory: dir, clock: clock)
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

    init(store: SQLiteMailStore, server: TernServer, group: MultiThreadedEventLoopGroup, pool: NIOThreadPool, port: Int, dir: URL) {
        self.store = store; self.server = server; self.group = group; self.pool = pool; self.port = port; self.dir = dir
    }

    func stop() async throws {
        await server.stop()
        try await pool.shutdownGracefully()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(at: dir)
    }

    func inbox(_ address: String) async throws -> [[UInt8]] {
        guard let account = try await store.account(try EmailAddress.parse(address)) else { return [] }
        let inbox = try await store.mailboxes(account: account)[0]
        var out: [[UInt8]] = []
        for m in try await store.messages(mailbox: inbox.id) { out.append(try await store.content(of: m.messageID)) }
        return out
    }

    /// Plays a transcript; returns a description of the first mismatch, or nil.
    func play(_ transcript: String) throws -> String? {
        guard let fd = Loopback.connect(port: port) else { return "connect failed" }
        defer { close(fd) }
        var pending: [UInt8] = []
        func readLine() -> String? {
            while true {
                if let i = pending.firstIndex(of: 10) {
                    let line = pending[..<i]
                    pending.removeFirst(i + 1)
                    return String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
                }
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buf, buf.count, 0)
                if n <= 0 { return nil }
                pending += buf[0..<n]
            }
        }
        for raw in transcript.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("C: ") {
                let text = String(line.dropFirst(3)).replacingOccurrences(of: "\\r\\n", with: "\r\n")
                let bytes = Array((text.hasSuffix("\r\n") ? text : text + "\r\n").utf8)
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            } else if line.hasPrefix("S: ") {
                let expected = String(line.dropFirst(3))
                guard let got = readLine() else { return "expected \(expected), connection closed" }
                if !got.hasPrefix(expected) { return "expected \(expected), got \(got)" }
            } else if line == "CLOSED" {
                if let got = readLine() { return "expected close, got \(got)" }
            }
        }
        return nil
    }
}

/// The EHLO keywords after the greeting line, as transcript lines (SIZE is the default 50 MiB).
let ehloKeywords = """
    S: 250-PIPELINING
    S: 250-SIZE 52428800
    S: 250-8BITMIME
    S: 250-SMTPUTF8
    S: 250-ENHANCEDSTATUSCODES
    S: 250-CHUNKING
    S: 250-DSN
    S: 250-STARTTLS
    S: 250 HELP
    """

@Suite(.serialized) struct TranscriptTests {
    @Test func deliveryAndRejections() async throws {
        let s = try await InProcessServer.start()
        let mismatch = try s.play("""
            S: 220 mx.test ESMTP Tern
            C: EHLO client.test
            S: 250-mx.test greets client.test
            \(ehloKeywords)
            C: MAIL FROM:<sender@remote.test>
            S: 250 2.1.0
            C: RCPT TO:<nobody@example.test>
            S: 550 5.1.1 <nobody@example.test>: Recipient address rejected
            C: RCPT TO:<someone@elsewhere.test>
            S: 550 5.7.1 <someone@elsewhere.test>: Relay access denied
            C: RCPT TO:<Alice+tag@EXAMPLE.test>
            S: 250 2.1.5
            C: DATA
            S: 354
            C: Subject: transcript\\r\\n\\r\\n..dot\\r\\n.
            S: 250 2.0.0 Ok: stored as
            C: QUIT
            S: 221 2.0.0
            CLOSED
            """)
        #expect(mismatch == nil)
        let inbox = try await s.inbox("alice@example.test")
        #expect(inbox.count == 1)
        let text = String(decoding: inbox.first ?? [], as: UTF8.self)
        #expect(text.hasPrefix("Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mx.test (Tern) with ESMTP id "))
        #expect(text.hasSuffix("\r\nSubject: transcript\r\n\r\n.dot\r\n"))
        try await s.stop()
    }

    @Test func pipelinedTransactionKeepsReplyOrder() async throws {
        let s = try await InProcessServer.start()
        let mismatch = try s.play("""
            S: 220
            C: EHLO c\\r\\nMAIL FROM:<a@remote.test>\\r\\nRCPT TO:<nobody@example.test>\\r\\nRCPT TO:<alice@example.test>\\r\\nDATA
            S: 250-mx.test
            \(ehloKeywords)
            S: 250 2.1.0
            S: 550 5.1.1
            S: 250 2.1.5
            S: 354
            C: x\\r\\n.\\r\\nMAIL FROM:<b@remote.test>\\r\\nRCPT TO:<alice@example.test>\\r\\nBDAT 5 LAST\\r\\nhello
            S: 250 2.0.0
            S: 250 2.1.0
            S: 250 2.1.5
            S: 250 2.0.0
            """)
        #expect(mismatch == nil)
        #expect(try await s.inbox("alice@example.test").count == 2)
        try await s.stop()
    }

    @Test func lineLimitAndErrors() async throws {
        let s = try await InProcessServer.start { $0.limits.maxErrors = 3 }
        let long = String(repeating: "x", count: 3000)
        let mismatch = try s.play("""
            S: 220
            C: NOOP \(long)
            S: 500 5.5.2 Line too long
            C: RCPT TO:<a@b.c>
            S: 503 5.5.1
            C: FOO
            S: 421 4.7.0
            CLOSED
            """)
        #expect(mismatch == nil)
        try await s.stop()
    }
}
