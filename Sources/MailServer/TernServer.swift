import Foundation
import Logging
import NIOSSL
import Synchronization
import NIOCore
import NIOPosix
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
    private let channels = Mutex<[Channel]>([])

    public init(context: ServerContext, group: MultiThreadedEventLoopGroup) {
        self.context = context
        self.group = group
    }

    /// Binds every listener of the services Tern serves so far. Fails (and binds nothing) if one cannot be bound.
    public func start() async throws -> [Listener] {
        var listeners: [Listener] = []
        let limits = context.config.limits
        do {
            for address in context.config.listen[.smtp] ?? [] {
                let limiter = ConnectionLimiter(maxTotal: limits.maxConnections, maxPerAddress: limits.maxConnectionsPerAddress)
                let server = context
                let channel = try await ServerBootstrap(group: group)
                    .serverChannelOption(ChannelOptions.backlog, value: 512)
                    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(SMTPSessionHandler(server: server, limiter: limiter, isTLS: false))
                        }
                    }
                    .bind(host: address.host, port: address.port).get()
                channels.withLock { $0.append(channel) }
                listeners.append(Listener(service: .smtp, address: channel.localAddress!))
            }
            let idle = IdleRegistry()
            context.store.observeChanges { idle.changed($0) }
            for (service, implicitTLS) in [(TernConfiguration.Service.imap, false), (.imaps, true)] {
                for address in context.config.listen[service] ?? [] {
                    let limiter = ConnectionLimiter(maxTotal: limits.maxConnections, maxPerAddress: limits.maxConnectionsPerAddress)
                    let server = context
                    guard !implicitTLS || server.tls != nil else { continue }
                    let channel = try await ServerBootstrap(group: group)
                        .serverChannelOption(ChannelOptions.backlog, value: 512)
                        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                        .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                        .childChannelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                if implicitTLS, let tls = server.tls {
                                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                                }
                                try channel.pipeline.syncOperations.addHandler(
                                    IMAPConnectionHandler(server: server, limiter: limiter, idle: idle, isTLS: implicitTLS))
                            }
                        }
                        .bind(host: address.host, port: address.port).get()
                    channels.withLock { $0.append(channel) }
                    listeners.append(Listener(service: service, address: channel.localAddress!))
                }
            }
        } catch {
            await stop()
            throw error
        }
        return listeners
    }

    public func stop() async {
        let all = channels.withLock { c in defer { c = [] }; return c }
        for channel in all { try? await channel.close() }
    }
}
