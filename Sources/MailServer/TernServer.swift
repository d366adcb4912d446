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
import TernConfig

/// Binds the configured listeners and serves them until `stop()`.
public final class TernServer: Sendable {
    public struct Listener: Sendable {
        public var service: TernConfiguration.Service
        public var address: SocketAddress
        /// `host:port` as bound (with the real port when 0 was configured).
        public var description: String {
            "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
    }

    let context: ServerContext
    let group: MultiThreadedEventLoopGroup
    let smtp: SMTPShared
    /// Where every message received over SMTP goes.
    public let intake: Intake
    let imap = IMAPCaches()
    private let channels = Mutex<[Channel]>([])

    /// `inbound`: the port-25 checks (nil: none, for tests of the bare protocol).
    public init(context: ServerContext, group: MultiThreadedEventLoopGroup, inbound: InboundChecks? = nil) {
        self.context = context
        self.group = group
        intake = Intake(store: context.store, config: context.config, checks: inbound, work: context.threadPool, logger: context.logger)
        smtp = SMTPShared(context: context, intake: intake)
    }

    /// Binds every listener of the services Tern serves so far. Fails (and binds nothing) if one cannot be bound.
    public func start() async throws -> [Listener] {
        var listeners: [Listener] = []
        let server = context, smtp = self.smtp, imap = self.imap
        do {
            for address in context.config.listen[.smtp] ?? [] {
                listeners.append(try await bind(.smtp, address) { limiter in
                    [SMTPSessionHandler(server: server, smtp: smtp, limiter: limiter, isTLS: false)]
                })
            }
            for address in context.config.listen[.submission] ?? [] {
                listeners.append(try await bind(.submission, address) { limiter in
                    [SMTPSessionHandler(server: server, smtp: smtp, limiter: limiter, isTLS: false, service: .submission)]
                })
            }
            if let tls = server.tls {
                for address in context.config.listen[.submissions] ?? [] {
                    listeners.append(try await bind(.submissions, address) { limiter in
                        [NIOSSLServerHandler(context: tls), SMTPSessionHandler(server: server, smtp: smtp, limiter: limiter, isTLS: true, service: .submission)]
                    })
                }
            }
            let wakeups = IMAPWakeups()
            let index = context.mailboxes
            // The shared view learns of the change before any session is woken to look at it.
            context.store.observeChanges { index.markChanged($0); wakeups.changed($0) }
            context.store.observeMailboxTree { wakeups.treeChanged($0) }
            // Plain (STARTTLS/STLS) and implicit-TLS listeners of the mail access protocols.
            let access: [(TernConfiguration.Service, Bool, @Sendable (ConnectionLimiter, Bool) -> ChannelHandler)] = [
                (.imap, false, { IMAPConnectionHandler(server: server, caches: imap, limiter: $0, wakeups: wakeups, isTLS: $1) }),
                (.imaps, true, { IMAPConnectionHandler(server: server, caches: imap, limiter: $0, wakeups: wakeups, isTLS: $1) }),
                (.pop3, false, { POP3ConnectionHandler(server: server, limiter: $0, isTLS: $1) }),
                (.pop3s, true, { POP3ConnectionHandler(server: server, limiter: $0, isTLS: $1) }),
            ]
            for (service, implicitTLS, makeHandler) in access {
                guard !implicitTLS || server.tls != nil else { continue }
                for address in context.config.listen[service] ?? [] {
                    listeners.append(try await bind(service, address) { limiter in
                        var handlers: [ChannelHandler] = []
                        if implicitTLS, let tls = server.tls { handlers.append(NIOSSLServerHandler(context: tls)) }
                        handlers.append(makeHandler(limiter, implicitTLS))
                        return handlers
                    })
                }
            }
        } catch {
            await stop()
            throw error
        }
        return listeners
    }

    /// One listening socket; `handlers` makes each connection's pipeline. Connection limits are per listener.
    private func bind(_ service: TernConfiguration.Service, _ address: ListenAddress,
                      handlers: @escaping @Sendable (ConnectionLimiter) -> [ChannelHandler]) async throws -> Listener {
        let limits = context.config.limits
        let limiter = ConnectionLimiter(maxTotal: limits.maxConnections, maxPerAddress: limits.maxConnectionsPerAddress)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 512)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(handlers(limiter))
                }
            }
            .bind(host: address.host, port: address.port).get()
        channels.withLock { $0.append(channel) }
        return Listener(service: service, address: channel.localAddress!)
    }

    public func stop() async {
        let all = channels.withLock { c in defer { c = [] }; return c }
        for channel in all { try? await channel.close() }
    }
}
