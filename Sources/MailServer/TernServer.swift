import Intake
import SMTPServer
import IMAPMailboxView
import Foundation
import Logging
import NIOSSL
import Synchronization
import NIOCore
import NIOPosix
import MailCore
import MailAuth
import ServerCore
import IMAPServer
import POP3Server
import ManageSieveServer
import TernConfig

/// Binds the configured listeners and serves them until `stop()`.
public final class TernServer: Sendable {
    public struct Listener: Sendable {
        public var service: TernConfiguration.Service
        public var address: SocketAddress
        /// `host:port` (`[v6]:port`) as bound, with the real port when 0 was configured.
        public var description: String {
            let ip = address.ipAddress ?? "?"
            return ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
        }
    }

    let context: ServerContext
    let group: MultiThreadedEventLoopGroup
    let smtp: SMTPShared
    /// Where every message received over SMTP goes.
    public let intake: Intake
    let imap = IMAPCaches()
    public let listeners: Listeners

    /// `inbound`: the port-25 checks (nil: none, for tests of the bare protocol).
    public init(context: ServerContext, group: MultiThreadedEventLoopGroup, inbound: InboundChecks? = nil) {
        self.context = context
        self.group = group
        listeners = Listeners(group: group, logger: context.logger)
        intake = Intake(store: context.store, config: context.config, checks: inbound, work: context.threadPool, logger: context.logger)
        smtp = SMTPShared(context: context, intake: intake)
    }

    /// Binds every listener of the services Tern serves so far. Fails (and binds nothing) if one cannot be bound.
    /// A socket for every configured listener, bound but not yet listening: `tern serve` opens them while it may
    /// still be root, then drops root and passes them to `start`.
    public static func openSockets(_ config: TernConfiguration) throws -> [Listeners.BoundSocket] {
        var sockets: [Listeners.BoundSocket] = []
        do {
            for service in TernConfiguration.Service.allCases {
                for address in config.listen[service] ?? [] {
                    sockets.append(try Listeners.openSocket(service: service.rawValue, host: address.host, port: address.port))
                }
            }
        } catch {
            sockets.forEach { $0.close() }
            throw error
        }
        return sockets
    }

    /// Serves every configured listener, on `sockets` from `openSockets` where given (else it binds them itself).
    public func start(sockets: [Listeners.BoundSocket] = []) async throws -> [Listener] {
        var unused = sockets
        defer { unused.forEach { $0.close() } }
        var listeners: [Listener] = []
        let server = context, smtp = self.smtp, imap = self.imap
        let wakeups = IMAPWakeups()
        let index = context.mailboxes
        // The shared view learns of the change before any session is woken to look at it.
        context.store.observeChanges { index.markChanged($0); wakeups.changed($0) }
        context.store.observeMailboxTree { wakeups.treeChanged($0) }
        let smtpFarewells = SMTPSessionHandler.farewells(hostname: context.config.hostname)
        let commandTimeout = context.config.limits.commandTimeout.timeAmount
        // Each service: its farewells, whether TLS is implicit, its first idle timeout, its protocol handler.
        let services: [(TernConfiguration.Service, Farewells, Bool, TimeAmount, @Sendable (Connection, Bool) -> ChannelHandler)] = [
            (.smtp, smtpFarewells, false, commandTimeout, { SMTPSessionHandler(server: server, smtp: smtp, connection: $0, isTLS: $1) }),
            (.submission, smtpFarewells, false, commandTimeout,
             { SMTPSessionHandler(server: server, smtp: smtp, connection: $0, isTLS: $1, service: .submission) }),
            (.submissions, smtpFarewells, true, commandTimeout,
             { SMTPSessionHandler(server: server, smtp: smtp, connection: $0, isTLS: $1, service: .submission) }),
            (.imap, IMAPConnectionHandler.farewells, false, IMAPConnectionHandler.preAuthTimeout,
             { IMAPConnectionHandler(server: server, caches: imap, connection: $0, wakeups: wakeups, isTLS: $1) }),
            (.imaps, IMAPConnectionHandler.farewells, true, IMAPConnectionHandler.preAuthTimeout,
             { IMAPConnectionHandler(server: server, caches: imap, connection: $0, wakeups: wakeups, isTLS: $1) }),
            (.pop3, POP3ConnectionHandler.farewells, false, POP3ConnectionHandler.preAuthTimeout,
             { POP3ConnectionHandler(server: server, connection: $0, isTLS: $1) }),
            (.pop3s, POP3ConnectionHandler.farewells, true, POP3ConnectionHandler.preAuthTimeout,
             { POP3ConnectionHandler(server: server, connection: $0, isTLS: $1) }),
            (.managesieve, ManageSieveConnectionHandler.farewells, false, ManageSieveConnectionHandler.preAuthTimeout,
             { ManageSieveConnectionHandler(server: server, connection: $0, isTLS: $1) }),
        ]
        let limits = context.config.limits
        let proxyNetworks = context.config.proxy.trustedNetworks.compactMap(IPNetwork.init)
        do {
            for (service, farewells, implicitTLS, idle, makeHandler) in services {
                guard !implicitTLS || server.tls != nil else { continue }
                var trusted: (@Sendable (String) -> Bool)?
                if context.config.proxy.services.contains(service) {
                    trusted = { address in proxyNetworks.contains { $0.contains(address) } }
                }
                let options = Listeners.Options(tls: implicitTLS ? server.tls : nil, proxyTrusted: trusted, farewells: farewells,
                                                protocolName: service.rawValue, idleTimeout: idle)
                for address in context.config.listen[service] ?? [] {
                    let given = unused.firstIndex { $0.service == service.rawValue && $0.host == address.host && $0.port == address.port }
                    let socket = try given.map { unused.remove(at: $0) }
                        ?? Listeners.openSocket(service: service.rawValue, host: address.host, port: address.port)
                    let bound = try await self.listeners.bind(socket: socket, maxConnections: limits.maxConnections,
                                                              maxPerAddress: limits.maxConnectionsPerAddress, options: options) {
                        makeHandler($0, implicitTLS)
                    }
                    listeners.append(Listener(service: service, address: bound))
                }
            }
        } catch {
            await self.listeners.stopAccepting()
            throw error
        }
        return listeners
    }

    /// Stops taking connections, then ends those open between commands (each protocol says it is shutting down),
    /// waiting up to `grace` for commands in progress (a message being stored gets its reply first).
    public func stop(grace: Duration = .zero) async {
        await listeners.shutdown(grace: grace)
    }
}
