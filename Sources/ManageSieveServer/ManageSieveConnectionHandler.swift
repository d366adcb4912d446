import Foundation
import Logging
import NIOCore
import NIOSSL
import ServerCore

/// One ManageSieve connection (RFC 5804, port 4190): splits commands with their literals, runs them on
/// `ManageSieveSession` one at a time (what a client sends meanwhile waits), writes the responses. The capability
/// response greets the client, and again after STARTTLS (RFC 5804 §2.2).
public final class ManageSieveConnectionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let server: ServerContext
    private let connection: Connection
    private var session: ManageSieveSession!
    /// Literals: a script's size after login, a SASL response's before (a client that has not logged in holds little).
    private var framer = ManageSieveFramer(maxLiteral: ManageSieveConnectionHandler.preAuthLiteral)
    static let preAuthLiteral = 16 << 10
    private var input = CommandInput()
    private var busy: Bool {
        get { connection.busy }
        set { connection.busy = newValue }
    }
    private var closed = false
    private var logger: Logger
    private let isTLS: Bool

    /// Idle limits: short before login, long after (a client may keep its editor open).
    static let idleTimeout: TimeAmount = .minutes(30)
    public static let preAuthTimeout: TimeAmount = .minutes(1)

    public init(server: ServerContext, connection: Connection, isTLS: Bool) {
        self.server = server
        self.connection = connection
        self.isTLS = isTLS
        logger = connection.logger
    }

    /// What the connection's lifecycle says (RFC 5804 §1.3: BYE with TRYLATER for a passing condition).
    public static let farewells = Farewells(
        tooManyFromAddress: "BYE (TRYLATER) \"Too many connections from your address, try again later\"",
        tooManyTotal: "BYE (TRYLATER) \"Too many connections, try again later\"",
        timeout: "BYE \"Idle for too long\"",
        shuttingDown: "BYE (TRYLATER) \"Server shutting down, try again later\"")

    public func channelActive(context: ChannelHandlerContext) {
        logger = connection.logger
        session = ManageSieveSession(server: server, isTLS: isTLS, isLoopback: connection.isLoopback, remoteAddress: connection.remoteAddress)
        context.send(Array(session.capabilities.utf8))
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        logConnectionError(error, logger)
        closed = true
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        // An exchange under way is over; if a command is running, once it has answered (see finished).
        if !busy { session?.abandon() }
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        input.append(unwrapInboundIn(data))
        process(context: context)
    }

    private func process(context: ChannelHandlerContext) {
        while !busy && !closed, let event = framer.next(input.bytes, from: &input.consumed) {
            connection.records += 1
            switch event {
            case .tooLong:
                closed = true
                context.sayAndClose("BYE \"Command too long\"")
            case .bad(let why):
                context.send(Array(ManageSieveWire.response("NO", why).utf8))
            case .command(let tokens) where tokens.isEmpty:
                continue
            case .command(let tokens):
                busy = true
                let session = self.session!
                context.runOffLoop({ await session.handle(tokens) }) { self.finished($0, context: context) }
            }
        }
        input.settle(busy: busy, channel: context.channel)
    }

    private func finished(_ out: ManageSieveOutput, context: ChannelHandlerContext) {
        busy = false
        guard !closed else { return session.abandon() }
        context.answer(Array(out.text.utf8), last: out.close)
        if out.close { return closed = true }
        if out.startTLS, let tls = server.tls {
            input.discard()
            session.isTLS = true
            guard connection.startTLS(tls) else { return }
            // Written through TLS once the handshake is done.
            context.send(Array(session.capabilities.utf8))
        }
        framer.maxLiteral = session.user != nil ? ManageSieveSession.maxScriptSize + 4096 : Self.preAuthLiteral
        connection.afterCommand(loggedIn: session.user != nil, idleTimeout: Self.idleTimeout, preAuthTimeout: Self.preAuthTimeout,
                                recordDeadline: Self.preAuthTimeout)
        process(context: context)
    }
}
