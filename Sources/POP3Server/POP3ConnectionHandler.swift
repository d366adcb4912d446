import MailCore
import ServerCore
import Foundation
import Logging
import MailStore
import NIOCore
import NIOSSL
import POP3Codec

/// One POP3 connection: splits lines, runs commands on `POP3Session` one at a time (pipelined commands wait, RFC 2449
/// PIPELINING), writes the responses.
public final class POP3ConnectionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let server: ServerContext
    private let connection: Connection
    private var session: POP3Session!
    private var framer = POP3LineFramer()
    private var input = CommandInput()
    /// A command is being answered (kept on the connection, where its lifecycle reads it).
    private var busy: Bool {
        get { connection.busy }
        set { connection.busy = newValue }
    }
    private var closed = false
    private var saslPending = false
    private var logger: Logger
    private let isTLS: Bool

    /// RFC 1939 §3: an inactivity autologout timer of at least 10 minutes.
    static let idleTimeout: TimeAmount = .minutes(10)
    public static let preAuthTimeout: TimeAmount = .minutes(1)

    public init(server: ServerContext, connection: Connection, isTLS: Bool) {
        self.server = server
        self.connection = connection
        self.isTLS = isTLS
        logger = connection.logger
    }

    public func channelActive(context: ChannelHandlerContext) {
        logger = connection.logger
        session = POP3Session(server: server, isTLS: isTLS, isLoopback: connection.isLoopback, remoteAddress: connection.remoteAddress)
        session.stream = ResponseStream(channel: context.channel)
        context.send(Array((session.greeting + "\r\n").utf8))
    }

    /// What the connection's lifecycle says for POP3 (RFC 2449 §8.1.2: [SYS/TEMP] for a passing condition).
    public static let farewells = Farewells(
        tooManyFromAddress: "-ERR [SYS/TEMP] Too many connections from your address, try again later",
        tooManyTotal: "-ERR [SYS/TEMP] Too many connections, try again later",
        timeout: "-ERR Autologout; idle for too long",
        shuttingDown: "-ERR [SYS/TEMP] Server shutting down, try again later")

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        // A dropped connection deletes nothing (RFC 1939 §6): the lock goes, the deletion marks with it. While a
        // command runs (a login about to take the lock, say) its end releases it: the session is the command's then.
        if !busy { releaseLock() }
        context.fireChannelInactive()
    }

    private var lockReleased = false
    /// Gives the maildrop lock back once, if the session holds it.
    private func releaseLock() {
        guard !lockReleased, let account = session?.lockedAccount else { return }
        lockReleased = true
        server.pop3Locks.release(account)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        logConnectionError(error, logger)
        closed = true
        context.close(promise: nil)
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
                context.sayAndClose("-ERR Line too long")
            case .line(let line):
                handleLine(line, context: context)
            }
        }
        input.settle(busy: busy, channel: context.channel)
    }

    private func handleLine(_ line: [UInt8], context: ChannelHandlerContext) {
        if saslPending {
            saslPending = false
            let response = String(decoding: line, as: UTF8.self)
            run(context: context) { session in
                var out = POP3Output()
                do { try await session.saslPlain(response, &out) } catch let e as POP3Session.POP3Failure {
                    out.err(e.text)
                } catch {
                    out.err("[SYS/TEMP] Authentication failed, try again later")
                }
                return out
            }
            return
        }
        let command: POP3Command
        do {
            command = try POP3CommandParser.parse(line)
        } catch {
            context.send(Array("-ERR \(error.message)\r\n".utf8))
            return
        }
        var out = POP3Output()
        do {
            if try session.answerAtOnce(command, &out) {
                context.send(out.bytes)
                return
            }
        } catch let e as POP3Session.POP3Failure {
            context.send(Array("-ERR \(e.text)\r\n".utf8))
            return
        } catch {
            context.send(Array("-ERR [SYS/TEMP] Internal error, try again later\r\n".utf8))
            return
        }
        run(context: context) { session in await session.handle(command) }
    }

    /// Runs a command off the event loop; reads no further command until it is answered.
    private func run(context: ChannelHandlerContext, _ work: @escaping @Sendable (POP3Session) async -> POP3Output) {
        busy = true
        let session = self.session!
        context.runOffLoop({ await work(session) }) { self.finished($0, context: context) }
    }

    private func finished(_ out: POP3Output, context: ChannelHandlerContext) {
        busy = false
        // The connection went while the command ran: what it left locked (a login that succeeded) goes now.
        guard !closed else { return releaseLock() }
        context.answer(out.bytes, last: out.close)
        if out.close { return closed = true }
        if out.startTLS, let tls = server.tls {
            input.discard()
            session.isTLS = true
            guard connection.startTLS(tls) else { return }
        }
        if out.saslContinuation { saslPending = true }
        connection.afterCommand(loggedIn: session.lockedAccount != nil, idleTimeout: Self.idleTimeout,
                                preAuthTimeout: Self.preAuthTimeout, recordDeadline: Self.preAuthTimeout)
        process(context: context)
    }
}
