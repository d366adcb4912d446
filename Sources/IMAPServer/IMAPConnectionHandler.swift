import MailCore
import IMAPMailboxView
import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import Intake
import Logging
import MailStore
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// One IMAP connection: frames commands, runs them on `IMAPSession` one at a time, writes the responses.
public final class IMAPConnectionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let server: ServerContext
    private let connection: Connection
    private let wakeups: IMAPWakeups
    private let caches: IMAPCaches
    /// A change came while a command ran (or the client was not reading): report it when the connection is free.
    private var wakePending = false
    /// What the connection is registered to be woken for.
    private var interest: IMAPWakeups.Interest?
    private var session: IMAPSession!
    private var framer: IMAPFramer
    /// The spool files of the command being read: its APPEND literals above ContentPieces.streamAbove, written as
    /// they arrive and never held in memory.
    private var spools: [MessageSink] = []
    private var inbound = ByteBuffer()
    /// A command is being answered (kept on the connection, where its lifecycle reads it).
    private var busy: Bool {
        get { connection.busy }
        set { connection.busy = newValue }
    }
    private var backpressure = ReadBackpressure(limit: 4 << 20)
    private var closed = false
    private var idleTag: String?
    private var saslTag: String?
    private var logger: Logger
    private let isTLS: Bool

    /// RFC 9051 §5.4: an autologout timer of at least 30 minutes; clients in IDLE re-issue it within 29.
    static let idleTimeout: TimeAmount = .minutes(30)
    /// After login, a command line or 64 KiB of a literal within this long of its first octet.
    static let recordDeadline: TimeAmount = .minutes(5)

    /// Limits and timers follow the login: short and small before it.
    private func loggedInChanged() {
        let loggedIn = session.account != nil
        framer.authenticated = loggedIn
        connection.afterCommand(loggedIn: loggedIn, idleTimeout: Self.idleTimeout, preAuthTimeout: Self.preAuthTimeout,
                                recordDeadline: loggedIn ? Self.recordDeadline : Self.preAuthTimeout)
    }
    public static let preAuthTimeout: TimeAmount = .minutes(1)

    public init(server: ServerContext, caches: IMAPCaches, connection: Connection, wakeups: IMAPWakeups, isTLS: Bool) {
        self.caches = caches
        self.server = server
        self.connection = connection
        self.wakeups = wakeups
        self.isTLS = isTLS
        framer = IMAPFramer(maxAppendLiteral: server.config.limits.maxMessageSize)
        framer.spoolAbove = ContentPieces.streamAbove
        framer.spoolToken = Array("\u{1}spool-\(BlobStore.newKey())".utf8)
        logger = connection.logger
    }

    public func channelActive(context: ChannelHandlerContext) {
        logger = connection.logger
        session = IMAPSession(server: server, caches: caches, isTLS: isTLS, isLoopback: connection.isLoopback,
                              remoteAddress: connection.remoteAddress)
        session.stream = ResponseStream(channel: context.channel)
        context.send(IMAPResponseEncoder.encode(session.greeting))
    }

    /// What the connection's lifecycle says for IMAP (RFC 9051 §7.1.5: BYE, then the server closes).
    public static let farewells = Farewells(
        tooManyFromAddress: "* BYE [UNAVAILABLE] Too many connections from your address, try again later",
        tooManyTotal: "* BYE [UNAVAILABLE] Too many connections, try again later",
        timeout: "* BYE Autologout; idle for too long",
        shuttingDown: "* BYE [UNAVAILABLE] Server shutting down, try again later")

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        for sink in spools { sink.discard() }
        spools = []
        session.ended()
        wakeups.unregister(ObjectIdentifier(self))
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        logConnectionError(error, logger)
        closed = true
        context.close(promise: nil)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        inbound.writeBuffer(&bytes)
        process(context: context)
    }

    private func process(context: ChannelHandlerContext) {
        while !busy && !closed, let event = framer.next(&inbound) {
            switch event {
            case .continuationNeeded:
                context.send(IMAPResponseEncoder.encode(.continuation("Ready for literal data")))
            case .spoolStart(let size, let continuation):
                spools.append(MessageSink(blobs: server.blobs, inlineLimit: 0, maxSize: size, prefix: ""))
                if continuation { context.send(IMAPResponseEncoder.encode(.continuation("Ready for literal data"))) }
            case .spoolData(let piece):
                piece.withUnsafeReadableBytes { spools.last?.append($0) }
            case .literalTooLarge(let tag, let size):
                for sink in spools { sink.discard() }
                spools = []
                let status = IMAPStatus(.no, .tooBig, "Literal of \(size) octets is too large")
                context.send(IMAPResponseEncoder.encode(tag.map { .tagged($0, status) } ?? .untagged(status)))
            case .fatal(let reason):
                closed = true
                Self.byeAndClose(context, nil, reason)
            case .command(let bytes):
                // The session takes this command's spool files (and removes what it leaves of them when the
                // command ends); any left by a command it never ran go now.
                for sink in session.spools { sink.discard() }
                session.spools = spools
                session.spoolToken = framer.spoolToken
                spools = []
                handleCommand(bytes, context: context)
            }
        }
        if inbound.readerIndex > 65536 { inbound.discardReadBytes() }
        connection.records = framer.records
        backpressure.update(busy: busy, buffered: inbound.readableBytes, channel: context.channel)
    }

    private func handleCommand(_ bytes: [UInt8], context: ChannelHandlerContext) {
        if let tag = idleTag {
            // In IDLE only DONE is expected (RFC 2177).
            idleTag = nil
            if String(decoding: bytes, as: UTF8.self).uppercased() == "DONE" {
                run(context: context) { session in
                    var out = IMAPOutput()
                    try? await session.poll(&out, expunges: true)
                    if !out.close { out.ok(tag, "IDLE terminated") }
                    return out
                }
            } else {
                context.send(IMAPResponseEncoder.encode(.tagged(tag, IMAPStatus(.bad, nil, "Expected DONE"))))
            }
            return
        }
        if let tag = saslTag {
            saslTag = nil
            let line = String(decoding: bytes, as: UTF8.self)
            run(context: context) { session in
                var out = IMAPOutput()
                do { try await session.saslPlain(line, tag: tag, &out) } catch let failure as IMAPSession.IMAPFailure {
                    out.send(.tagged(tag, failure.status))
                } catch {
                    out.send(.tagged(tag, IMAPStatus(.no, .authenticationFailed, "Authentication failed")))
                }
                return out
            }
            return
        }
        let parsed: TaggedCommand
        do {
            parsed = try IMAPCommandParser.parse(bytes, utf8Mailboxes: session.utf8)
        } catch {
            // A command that is not well-formed gets BAD; one the parser can read but not serve (an unknown
            // charset) gets NO with its code.
            let status = error.code != nil ? IMAPStatus(error.condition, error.code, error.message)
                : IMAPStatus(error.condition, nil, "Syntax error: \(error.message)")
            if error.clearsSavedResult { session.setSaved([]) }   // RFC 5182 §2.1
            context.send(IMAPResponseEncoder.encode(error.tag.map { .tagged($0, status) } ?? .untagged(status)))
            return
        }
        logger.trace("command", metadata: ["cmd": "\(parsed.command.name)"])
        if case .idle = parsed.command { pendingIdleTag = parsed.tag }
        if let out = session.answerAtOnce(parsed) {
            context.send(out.bytes)
            loggedInChanged()
            if out.close {
                closed = true
                context.close(promise: nil)
            }
            return
        }
        run(context: context) { session in await session.handle(parsed) }
    }

    /// Runs work off the event loop; reads no further command until it is done.
    private func run(context: ChannelHandlerContext, _ work: @escaping @Sendable (IMAPSession) async -> IMAPOutput) {
        busy = true
        let session = self.session!
        context.runOffLoop({ await work(session) }) { self.finished($0, context: context) }
    }

    private func finished(_ out: IMAPOutput, context: ChannelHandlerContext) {
        busy = false
        guard !closed else { return }
        context.send(out.bytes)
        if out.close {
            closed = true
            context.close(promise: nil)
            return
        }
        if out.startTLS, let tls = server.tls {
            // Plaintext pipelined after STARTTLS is discarded (RFC 9051 §6.2.1).
            inbound.clear()
            session.isTLS = true
            guard connection.startTLS(tls) else { return }
        }
        if out.compress {
            // The OK went out uncompressed; everything after it is deflated both ways.
            do {
                let decoder = try DeflateDecoder()
                try connection.addTransport([decoder, try DeflateEncoder()])
                var pending = inbound
                inbound.clear()
                for chunk in try decoder.inflate(&pending, allocator: context.channel.allocator) {
                    var c = chunk
                    inbound.writeBuffer(&c)
                }
            } catch {
                context.close(promise: nil)
                return
            }
        }
        if let tag = out.saslContinuation { saslTag = tag }
        if out.idle { idleTag = pendingIdleTag }
        loggedInChanged()
        registerWakeups(context: context)
        process(context: context)
        if wakePending && !busy { wake(context: context) }
    }

    /// Registers for the changes the session waits for now (IDLE, NOTIFY), or for none.
    private func registerWakeups(context: ChannelHandlerContext) {
        let wanted = closed ? nil : session.wakeInterest(idle: idleTag != nil)
        guard wanted != interest else { return }
        let previous = interest
        interest = wanted
        guard let wanted else {
            wakeups.unregister(ObjectIdentifier(self))
            return
        }
        // What was not watched until now may have changed before this registration: look at it once.
        let added = wanted.mailboxes.subtracting(previous?.mailboxes ?? [])
        let treeAdded = wanted.tree && !(previous?.tree ?? false)
        defer {
            for id in added { session.wakeInbox.record(.mailbox(id)) }
            if treeAdded { session.wakeInbox.record(.tree) }
            if !added.isEmpty || treeAdded { wakePending = true }
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let inbox = session.wakeInbox
        wakeups.register(ObjectIdentifier(self), wanted) { event in
            inbox.record(event)
            loop.execute {
                let (handler, context) = bound.value
                handler.wake(context: context)
            }
        }
    }

    /// The tag of the IDLE command being run, answered when the client sends DONE.
    private var pendingIdleTag: String?

    /// A change arrived that the client waits for (in IDLE, or with NOTIFY at any time): report it now, or as soon as
    /// the connection is free and the client reads what was sent before.
    private func wake(context: ChannelHandlerContext) {
        guard !closed else { return }
        // While a command runs the session is the command's: look again when it is done.
        guard !busy, saslTag == nil, context.channel.isWritable else {
            wakePending = true
            return
        }
        wakePending = false
        guard idleTag != nil || session.notifying else { return }
        busy = true
        let session = self.session!
        let inIdle = idleTag != nil
        context.runOffLoop({ () async -> IMAPOutput in
            await session.push(inIdle: inIdle)
        }) { out in
            self.busy = false
            guard !self.closed else { return }
            context.send(out.bytes)
            if out.close {
                self.closed = true
                return context.close(promise: nil)
            }
            self.registerWakeups(context: context)
            self.process(context: context)
            if self.wakePending && !self.busy { self.wake(context: context) }
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && wakePending && !busy { wake(context: context) }
        context.fireChannelWritabilityChanged()
    }

    static func byeAndClose(_ context: ChannelHandlerContext, _ code: IMAPResponseCode?, _ text: String) {
        let bytes = IMAPResponseEncoder.encode(.untagged(IMAPStatus(.bye, code, text)))
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(bytes: bytes))).whenComplete { _ in context.close(promise: nil) }
    }
}

extension ResponseStream: IMAPResponseSink {}
