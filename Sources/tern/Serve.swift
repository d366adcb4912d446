import TernAdmin
import MailDelivery
import ServerCore
import ArgumentParser
import DNSResolverLive
import Dispatch
import Foundation
import Logging
import MailAuth
import Intake
import MailCore
import MailServer
import MailStore
import StoreFactory
import NIOCore
import NIOPosix
import TernConfig

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the mail server.",
        discussion: "Without --config: the embedded default (data in ./tern-data, SMTP on 127.0.0.1:2525), with a domain and a user made on first run.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Move every listener to BASE + its standard port (SMTP BASE+25, submission BASE+587, IMAP BASE+143, ...), beside another mail server.")
    var ports: Int?

    func validate() throws {
        if let ports, ports < 1 || ports + 995 > 65535 { throw ValidationError("--ports BASE: BASE + 995 (IMAPS) must be a port, 1 to 64540") }
    }

    /// What `tern serve` does first, possibly as root: the config, logging, the lock, the ports bound, the data folder
    /// given to the service user and root dropped. `main` runs it on the main thread before the async runtime parks
    /// that thread (a thread that has ended keeps its credentials, and `ps` and /proc show the first thread's).
    struct Prepared: @unchecked Sendable {
        var config: TernConfiguration
        var logger: Logger
        var sockets: [Listeners.BoundSocket]
    }
    nonisolated(unsafe) static var prepared: Prepared?

    func prepare() throws -> Prepared {
        var config = try options.load()
        if let ports { config.movePorts(to: ports) }
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "tern")
        umask(0o077)
        // The ports first, while the process may still be root (below 1024); then root is dropped for good, before
        // the store is opened or a connection read.
        let account = try ServiceAccount.forConfig(config) { logger.warning("\($0)") }
        try DataFolderError.check(config.dataDirectory)
        // One server per data folder: two would both deliver the outbound queue (and clean each other's temp files).
        // The kernel drops the lock when the process ends, however it ends.
        let lock = open(config.dataDirectory.appendingPathComponent("serve.lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            throw CommandFailure("another `tern serve` is running on \(config.dataDirectory.path)")
        }
        // The lock file names this process, so `tern queue retry` can wake its queue (SIGUSR1).
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(lock, 0)
        _ = pid.withUnsafeBytes { pwrite(lock, $0.baseAddress, $0.count, 0) }
        let sockets: [Listeners.BoundSocket]
        do { sockets = try TernServer.openSockets(config) } catch { throw listenFailure(error) }
        if let account {
            try account.own(config.dataDirectory)
            try account.become()
            do { try DataFolderError.check(config.dataDirectory) } catch {
                throw CommandFailure("\(error)\nas user \(account.name): every folder above the data folder must let that user in")
            }
            logger.info("dropped root", metadata: ["user": "\(account.name)", "uid": "\(account.uid)", "gid": "\(account.gid)"])
        }
        return Prepared(config: config, logger: logger, sockets: sockets)
    }

    func run() async throws {
        let prepared = try Self.prepared ?? prepare()
        let (config, logger, sockets) = (prepared.config, prepared.logger, prepared.sockets)
        let isEmbedded = options.config == nil

        // The one clock of the whole server: the store, the sessions, the checks and the queue read the time from it.
        let clock = SystemClock()
        let store = try await StoreFactory.open(config, clock: clock, server: true)
        // Nothing in tmp/ was ever acknowledged; a blob no row names was never acknowledged either.
        try store.cleanTemporaryFiles()
        let orphans = try await store.removeOrphanBlobs()
        if orphans > 0 { logger.notice("removed unacknowledged message files left by an earlier crash", metadata: ["count": "\(orphans)"]) }

        var firstLogin: FirstRun.Login?
        if isEmbedded { firstLogin = try await FirstRun.prepare(store: store, dataDirectory: config.dataDirectory) }

        let tls = try TLSMaterial.serverContext(certificate: config.tlsCertificate, key: config.tlsKey,
                                                dataDirectory: config.dataDirectory, hostname: config.hostname, now: clock.now)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let threadPool = NIOThreadPool(numberOfThreads: max(2, System.coreCount))
        threadPool.start()
        let resolver = LiveResolver(config: config)
        let context = ServerContext(config: config, store: store, tls: tls, logger: logger, clock: clock, threadPool: threadPool)
        let suffixes = SuffixListFile.load(dataDirectory: config.dataDirectory, logger: logger)
        let inbound = InboundChecks(config: config, resolver: resolver, suffixes: suffixes, clock: clock, state: store)
        let server = TernServer(context: context, group: group, inbound: inbound)
        // The administrator's Sieve scripts (read by the intake pipeline) must be usable before anything is served.
        if let problem = server.intake.adminScriptsProblem { throw CommandFailure("\(problem)") }
        let listeners: [TernServer.Listener]
        do { listeners = try await server.start(sockets: sockets) } catch { throw listenFailure(error) }
        // The outbound queue: delivers what submission accepted for other domains, and the bounces.
        let courier = try SMTPCourier(group: group, heloName: config.hostname)
        let queue = OutboundQueue(store: store, resolver: resolver, courier: courier, config: config, clock: clock, logger: logger)
        signal(SIGUSR1, SIG_IGN)
        let retrySignal = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: DispatchQueue(label: "tern.queue-signal"))
        retrySignal.setEventHandler { queue.rescan() }
        retrySignal.resume()
        SignalSources.keep([retrySignal])

        printSummary(config: config, listeners: listeners, login: firstLogin, embedded: isEmbedded, domains: try await store.domains())
        logger.info("started", metadata: ["listeners": "\(listeners.map(\.description))"])
        // Until SIGTERM or SIGINT; then the listeners drain (limits.shutdown_grace) and the queue stops.
        // This process's name where nodes of one installation take turns (background jobs).
        let node = "\(ProcessInfo.processInfo.hostName) pid \(ProcessInfo.processInfo.processIdentifier) \(UUID().uuidString.prefix(8))"
        try await server.run(queue: queue, store: store, config: config, clock: clock, logger: logger, node: node)
        logger.info("stopped")
        try? await threadPool.shutdownGracefully()
        try? await group.shutdownGracefully()
    }

    /// A listener that cannot be opened, with how to choose other ports.
    func listenFailure(_ error: any Error) -> CommandFailure {
        let how = options.config.map { "the [listen] table of \($0)" } ?? "the [listen] table of a config file (tern config example)"
        return CommandFailure("\(error)\nChoose other ports: tern serve --ports 3000 (SMTP on 3025, submission 3587, IMAP 3143, ...), or \(how).")
    }

    func printSummary(config: TernConfiguration, listeners: [TernServer.Listener], login: FirstRun.Login?, embedded: Bool,
                      domains: [DomainInfo]) {
        var out = "Tern is running" + (embedded ? " (embedded default)" : "") + "\n"
        out += "  data        \(config.dataDirectory.path)\n"
        out += "  hostname    \(config.hostname)\n"
        for l in listeners {
            out += "  \(l.service.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(l.description)"
            let selfSigned = config.tlsCertificate == nil ? " with a self-signed certificate" : ""
            switch l.service {
            case .smtp: out += "  (receiving SMTP, STARTTLS\(selfSigned))\n"
            case .submission: out += "  (submission: SMTP with STARTTLS and AUTH\(selfSigned))\n"
            case .submissions: out += "  (submission over TLS, with AUTH\(selfSigned))\n"
            case .imap: out += "  (IMAP, STARTTLS\(selfSigned))\n"
            case .imaps: out += "  (IMAP over TLS\(selfSigned))\n"
            case .pop3: out += "  (POP3, STLS\(selfSigned))\n"
            case .pop3s: out += "  (POP3 over TLS\(selfSigned))\n"
            case .managesieve: out += "  (ManageSieve: mail filters, STARTTLS\(selfSigned))\n"
            default: out += "\n"
            }
        }
        out += "  domains     \(domains.isEmpty ? "none yet: tern domain add DOMAIN" : domains.map(\.name).joined(separator: ", "))\n"
        if let login {
            out += "  login       \(login.address)  password \(login.password)\n"
            if let smtp = listeners.first(where: { $0.service == .smtp }) {
                out += "Try it:\n  swaks --server \(smtp.description) --to \(login.address)\n"
                if let sub = listeners.first(where: { $0.service == .submission }) {
                    out += "  swaks --server \(sub.description) --auth-user \(login.address) --auth-password \(login.password) --from \(login.address) --to \(login.address)\n"
                }
                out += "  tern export \(login.address) --format mbox\n"
            }
        }
        out += "Stop with Ctrl-C.\n"
        print(out, terminator: "")
        fflush(nil)
    }
}

/// Keeps the signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) static var kept: [DispatchSourceSignal] = []
    static func keep(_ s: [DispatchSourceSignal]) { kept += s }
}
