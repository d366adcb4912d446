import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Reads the PROXY protocol header a trusted load balancer sends first (`ProxyProtocol`), notes the real client on
/// the `Connection`, and only then lets the connection start (channelActive goes on with the client's address).
/// Connections from anywhere but the trusted balancers, and headers that do not parse, are closed without a word.
final class ProxyProtocolDecoder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// A balancer sends the header at once; a connection that does not is dropped after this long.
    static let headerTimeout: TimeAmount = .seconds(10)

    let connection: Connection
    let trusted: @Sendable (String) -> Bool
    private var buffer: [UInt8] = []
    private var timer: Scheduled<Void>?
    private var done = false
    /// channelActive went on: the handlers after this one must hear of the end too.
    private var started = false

    init(connection: Connection, trusted: @escaping @Sendable (String) -> Bool) {
        self.connection = connection
        self.trusted = trusted
    }

    func channelActive(context: ChannelHandlerContext) {
        let peer = context.remoteAddress?.ipAddress ?? "unknown"
        guard trusted(peer) else {
            connection.logger.notice("refused: not a trusted PROXY protocol sender", metadata: ["peer": "\(peer)"])
            done = true
            return context.close(promise: nil)
        }
        connection.proxy = peer
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: Self.headerTimeout) {
            let (decoder, context) = bound.value
            guard !decoder.done else { return }
            decoder.connection.logger.notice("no PROXY protocol header in time", metadata: ["peer": "\(peer)"])
            decoder.done = true
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        buffer.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        switch ProxyProtocol.parse(buffer) {
        case .needMore:
            return
        case .invalid(let why):
            connection.logger.notice("refused: bad PROXY protocol header", metadata: ["why": "\(why)"])
            done = true
            timer?.cancel()
            context.close(promise: nil)
        case .header(let header, let length):
            done = true
            timer?.cancel()
            switch header {
            case .proxied(let source, _, _, _): connection.remoteAddress = source
            case .local: connection.remoteAddress = connection.proxy ?? "unknown"
            }
            let rest = buffer.count > length ? Array(buffer[length...]) : []
            buffer = []
            started = true
            context.fireChannelActive()
            if !rest.isEmpty { context.fireChannelRead(wrapInboundOut(context.channel.allocator.buffer(bytes: rest))) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        // The connection never started for the handlers after this one: they hear nothing of its end either.
        if started { context.fireChannelInactive() }
    }
}

/// The listening sockets of a server: each connection gets its pipeline (PROXY header, implicit TLS, lifecycle,
/// protocol), and all of them are registered for draining at shutdown.
public final class Listeners: Sendable {
    public struct Options: Sendable {
        /// Implicit TLS (465, 993, 995).
        public var tls: NIOSSLContext?
        /// Addresses of the load balancers allowed to send a PROXY protocol header; nil: no header expected.
        public var proxyTrusted: (@Sendable (String) -> Bool)?
        public var farewells: Farewells
        public var protocolName: String
        /// Until the protocol sets its own (after login, in DATA).
        public var idleTimeout: TimeAmount

        public init(tls: NIOSSLContext?, proxyTrusted: (@Sendable (String) -> Bool)?, farewells: Farewells, protocolName: String,
                    idleTimeout: TimeAmount) {
            self.tls = tls
            self.proxyTrusted = proxyTrusted
            self.farewells = farewells
            self.protocolName = protocolName
            self.idleTimeout = idleTimeout
        }
    }

    let group: EventLoopGroup
    let logger: Logger
    public let registry = ConnectionRegistry()
    private let channels = Mutex<[Channel]>([])

    public init(group: EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
    }

    /// A socket bound to a listener's address but not yet listening: opened while the process may still be root
    /// (ports below 1024), served after it has dropped root. Nothing can connect before `bind(socket:)` listens.
    public struct BoundSocket: Sendable {
        public let service: String
        public let host: String
        /// The port asked for (0: any free one).
        public let port: Int
        let descriptor: CInt

        /// Gives the socket back when it will not be served.
        public func close() { _ = Glibc.close(descriptor) }
    }

    /// Binds a socket for `service` to host:port, as root may have to.
    public static func openSocket(service: String, host: String, port: Int) throws -> BoundSocket {
        do {
            let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
            let fd = socket(CInt(address.protocol.rawValue), CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
            var on: CInt = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<CInt>.size))
            if address.protocol == .inet6 { _ = setsockopt(fd, CInt(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<CInt>.size)) }
            let bound = address.withSockAddr { Glibc.bind(fd, $0, socklen_t($1)) }
            guard bound == 0 else {
                let code = errno
                _ = Glibc.close(fd)
                throw IOError(errnoCode: code, reason: "bind")
            }
            return BoundSocket(service: service, host: host, port: port, descriptor: fd)
        } catch {
            throw BindFailure(service: service, host: host, port: port, error: error)
        }
    }

    /// Binds one listening socket; `handler` makes each connection's protocol handler. Connection limits are per
    /// listener. Returns the address bound (with the real port when 0 was asked).
    public func bind(host: String, port: Int, maxConnections: Int, maxPerAddress: Int, options: Options,
                     handler: @escaping @Sendable (Connection) -> ChannelHandler) async throws -> SocketAddress {
        let socket = try Self.openSocket(service: options.protocolName, host: host, port: port)
        return try await bind(socket: socket, maxConnections: maxConnections, maxPerAddress: maxPerAddress, options: options, handler: handler)
    }

    /// Listens on a socket `openSocket` bound and serves it.
    public func bind(socket: BoundSocket, maxConnections: Int, maxPerAddress: Int, options: Options,
                     handler: @escaping @Sendable (Connection) -> ChannelHandler) async throws -> SocketAddress {
        let limiter = ConnectionLimiter(maxTotal: maxConnections, maxPerAddress: maxPerAddress)
        let registry = self.registry, logger = self.logger
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let connection = Connection(logger: logger, protocolName: options.protocolName, idleTimeout: options.idleTimeout)
                        var handlers: [ChannelHandler] = []
                        if let trusted = options.proxyTrusted { handlers.append(ProxyProtocolDecoder(connection: connection, trusted: trusted)) }
                        if let tls = options.tls { handlers.append(NIOSSLServerHandler(context: tls)) }
                        handlers.append(ConnectionLifecycleHandler(connection: connection, limiter: limiter, registry: registry,
                                                                   farewells: options.farewells))
                        handlers.append(handler(connection))
                        try channel.pipeline.syncOperations.addHandlers(handlers)
                    }
                }
                .withBoundSocket(socket.descriptor).get()
        } catch {
            socket.close()
            throw BindFailure(service: socket.service, host: socket.host, port: socket.port, error: error)
        }
        // NIO listens with a backlog of 128; a burst of connections (a flood, a benchmark) wants more.
        _ = listen(socket.descriptor, 512)
        channels.withLock { $0.append(channel) }
        return channel.localAddress!
    }

    /// A listener that could not be opened, said as an admin reads it: "SMTP listener 127.0.0.1:2525: address already
    /// in use".
    public struct BindFailure: Error, CustomStringConvertible {
        public var service: String
        public var host: String
        public var port: Int
        public var errno: Int32?
        public var detail: String

        init(service: String, host: String, port: Int, error: any Error) {
            self.service = service
            self.host = host
            self.port = port
            self.errno = (error as? IOError)?.errnoCode
            detail = "\(error)"
        }

        public var description: String {
            let name = ["smtp": "SMTP", "imap": "IMAP", "imaps": "IMAPS", "pop3": "POP3", "pop3s": "POP3S"][service] ?? service
            let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            let why = switch errno {
            case EADDRINUSE: "address already in use (another program listens there)"
            case EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            case EADDRNOTAVAIL: "no such address on this machine"
            default: detail
            }
            return "\(name) listener \(address): \(why)"
        }
    }

    /// Closes the listening sockets: no new connection is taken; those open go on.
    public func stopAccepting() async {
        let all = channels.withLock { c in defer { c = [] }; return c }
        for channel in all { try? await channel.close() }
    }

    /// Stops accepting, then ends every open connection between commands, waiting up to `grace`.
    public func shutdown(grace: Duration) async {
        await stopAccepting()
        let open = registry.count
        guard open > 0 else { return }
        logger.info("draining connections", metadata: ["open": "\(open)", "grace": "\(grace)"])
        let forced = await registry.drain(grace: grace)
        if forced > 0 { logger.notice("closed connections still busy at the end of the grace period", metadata: ["count": "\(forced)"]) }
    }
}
