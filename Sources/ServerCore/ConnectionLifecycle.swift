import Foundation
import Logging
import MailCore
import NIOCore
import NIOSSL
import Synchronization

/// What a protocol says when the connection's lifecycle ends the connection for it: whole lines, without CRLF.
public struct Farewells: Sendable {
    public var tooManyFromAddress: String
    public var tooManyTotal: String
    /// The client said nothing for the idle timeout.
    public var timeout: String
    /// The server is stopping (SIGTERM): said between commands.
    public var shuttingDown: String

    public init(tooManyFromAddress: String, tooManyTotal: String, timeout: String, shuttingDown: String) {
        self.tooManyFromAddress = tooManyFromAddress
        self.tooManyTotal = tooManyTotal
        self.timeout = timeout
        self.shuttingDown = shuttingDown
    }
}

/// One connection as its lifecycle (`ConnectionLifecycleHandler`) and its protocol handler share it. Lives on the
/// connection's event loop; only handlers of that channel touch it.
public final class Connection {
    public let id = SessionID.make()
    /// The client's address: from the socket, or from the PROXY header when a trusted balancer relayed it.
    public internal(set) var remoteAddress = "unknown"
    /// The balancer that relayed the connection (PROXY protocol), if any.
    public internal(set) var proxy: String?
    public var isLoopback: Bool { remoteAddress.hasPrefix("127.") || remoteAddress == "::1" }
    /// The connection's logger, with its id, protocol and client address.
    public internal(set) var logger: Logger
    /// The protocol handler sets it while a command is being answered: the idle timeout waits for it, and a
    /// shutdown closes the connection only between commands.
    public var busy = false {
        didSet { if oldValue && !busy { lifecycle?.becameIdle() } }
    }
    /// How long the client may stay silent now (before login, after it, inside DATA); a change restarts the timer.
    public var idleTimeout: TimeAmount {
        didSet { if idleTimeout != oldValue { lifecycle?.rearm() } }
    }
    /// How long one record (a command line, a line of message content, 64 KiB of a literal) may take to arrive from its
    /// first octet, as Postfix's `smtpd_per_record_deadline`: a client trickling a byte every few seconds keeps the
    /// idle timer from firing but not this one. The protocol counts records (its framer's `records`).
    public var recordDeadline: TimeAmount
    /// Records the protocol has received whole; a change ends the current record's deadline.
    public var records = 0 {
        didSet { if records != oldValue { lifecycle?.recordCompleted() } }
    }
    /// The client has shown it is a real one (logged in; on port 25, a transaction under way). When a listener is full,
    /// the connection that has waited longest without this goes to make room (as Dovecot's login processes and
    /// postscreen drop pre-login connections first), never a trusted one.
    public var trusted = false {
        didSet { if trusted != oldValue { lifecycle?.trustChanged(trusted) } }
    }
    weak var lifecycle: ConnectionLifecycleHandler?

    public init(logger: Logger, protocolName: String, idleTimeout: TimeAmount, recordDeadline: TimeAmount? = nil) {
        var logger = logger
        logger[metadataKey: "conn"] = .string(id)
        logger[metadataKey: "proto"] = .string(protocolName)
        self.logger = logger
        self.idleTimeout = idleTimeout
        self.recordDeadline = recordDeadline ?? idleTimeout
    }

    /// Puts transport handlers (TLS after STARTTLS, DEFLATE after COMPRESS) under the protocol and its lifecycle,
    /// above those added before: what the lifecycle writes (a timeout's farewell) goes through them too.
    public func addTransport(_ handlers: [ChannelHandler]) throws {
        guard let lifecycle, let context = lifecycle.context else { throw ChannelError.ioOnClosedChannel }
        try context.pipeline.syncOperations.addHandlers(handlers, position: .before(lifecycle))
    }

    /// STARTTLS/STLS, after the protocol's go-ahead went out in the clear: TLS under the protocol from the next octet
    /// on. The caller has thrown away whatever the client pipelined in plaintext (RFC 3207 §4.2, CVE-2011-0411). False
    /// (the connection closing) when TLS could not be started.
    public func startTLS(_ tls: NIOSSLContext) -> Bool {
        do {
            try addTransport([NIOSSLServerHandler(context: tls)])
            return true
        } catch {
            logger.error("cannot start TLS", metadata: ["error": "\(error)"])
            lifecycle?.context?.close(promise: nil)
            return false
        }
    }
}

/// The connections of every listener of a server, for draining them at shutdown.
public final class ConnectionRegistry: Sendable {
    struct Entry: Sendable {
        var drain: @Sendable () -> Void
        /// Ends the connection to make room for a new one (from any thread).
        var evict: @Sendable () -> Void
        var channel: Channel
        /// The listener's limiter: room is made on the listener that is full.
        var listener: ObjectIdentifier
        /// Set by the registry: the order connections came in.
        var opened: UInt64 = 0
        var trusted = false
        var evicted = false
    }
    private let entries = Mutex<(table: [ObjectIdentifier: Entry], opened: UInt64)>(([:], 0))

    public init() {}

    public var count: Int { entries.withLock { $0.table.count } }

    func add(_ id: ObjectIdentifier, _ entry: Entry) {
        entries.withLock { e in
            var entry = entry
            e.opened += 1
            entry.opened = e.opened
            e.table[id] = entry
        }
    }

    func remove(_ id: ObjectIdentifier) { _ = entries.withLock { $0.table.removeValue(forKey: id) } }

    func setTrusted(_ id: ObjectIdentifier, _ trusted: Bool) { entries.withLock { $0.table[id]?.trusted = trusted } }

    /// Tells the connection of `listener` that has waited longest without being trusted to go; false when every
    /// connection there is trusted (then the new one is refused).
    func evictOldestUntrusted(listener: ObjectIdentifier) -> Bool {
        let chosen: Entry? = entries.withLock { e in
            guard let (id, entry) = e.table.filter({ $0.value.listener == listener && !$0.value.trusted && !$0.value.evicted })
                .min(by: { $0.value.opened < $1.value.opened }) else { return nil }
            e.table[id]?.evicted = true
            return entry
        }
        chosen?.evict()
        return chosen != nil
    }

    /// Asks every connection to end between commands (each protocol says its farewell), waits up to `grace` for them
    /// to go, then closes what is left. Returns how many had to be closed at the deadline.
    public func drain(grace: Duration) async -> Int {
        for e in entries.withLock({ Array($0.table.values) }) { e.drain() }
        let deadline = ContinuousClock.now + grace
        while count > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        let left = entries.withLock { Array($0.table.values) }
        for e in left { e.channel.close(promise: nil) }
        let closing = ContinuousClock.now + .seconds(2)
        while count > 0, ContinuousClock.now < closing { try? await Task.sleep(for: .milliseconds(10)) }
        return left.count
    }
}

/// The part of every connection that is not the protocol: its place under the listener's limits (refused with the
/// protocol's own words), the idle timeout, draining at shutdown, and the transport handlers' place. Sits right
/// before the protocol handler, after implicit TLS, so that what it says is encrypted like everything else.
public final class ConnectionLifecycleHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    let connection: Connection
    let limiter: ConnectionLimiter
    let registry: ConnectionRegistry
    let farewells: Farewells
    private(set) var context: ChannelHandlerContext?
    private var acquired = false
    /// The protocol handler saw channelActive (and so must see channelInactive).
    private var activated = false
    private var closing = false
    private var draining = false
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var lastActivity = NIODeadline.now()
    /// When the first octet of the record being received came; nil between records.
    private var recordStart: NIODeadline?

    public init(connection: Connection, limiter: ConnectionLimiter, registry: ConnectionRegistry, farewells: Farewells) {
        self.connection = connection
        self.limiter = limiter
        self.registry = registry
        self.farewells = farewells
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection.lifecycle = self
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        if connection.proxy == nil { connection.remoteAddress = context.remoteAddress?.ipAddress ?? "unknown" }
        connection.logger[metadataKey: "remote"] = .string(connection.remoteAddress)
        switch limiter.acquire(connection.remoteAddress) {
        case .accepted:
            acquired = true
        case .tooManyFromAddress:
            connection.logger.notice("refused: too many connections from this address")
            return say(farewells.tooManyFromAddress, context: context)
        case .tooManyTotal:
            // Full: the connection that waited longest without logging in goes, and this one comes in.
            guard registry.evictOldestUntrusted(listener: ObjectIdentifier(limiter)),
                  case .accepted = limiter.acquire(connection.remoteAddress, force: true) else {
                connection.logger.notice("refused: too many connections")
                return say(farewells.tooManyTotal, context: context)
            }
            acquired = true
        }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop), loop = context.eventLoop
        registry.add(ObjectIdentifier(self), .init(drain: { loop.execute { bound.value.drain() } },
                                                   evict: { loop.execute { bound.value.evict() } },
                                                   channel: context.channel, listener: ObjectIdentifier(limiter)))
        activated = true
        rearm()
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard activated, !closing else { return }
        // A read only notes the time; the timer, when it fires, looks whether the client was silent long enough.
        lastActivity = .now()
        if recordStart == nil {
            // The first octet of a record: its deadline may come before the idle timer.
            recordStart = lastActivity
            if let timerDeadline, lastActivity + connection.recordDeadline < timerDeadline {
                schedule(at: lastActivity + connection.recordDeadline)
            }
        }
        context.fireChannelRead(data)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        closing = true
        if acquired { limiter.release(connection.remoteAddress); acquired = false }
        registry.remove(ObjectIdentifier(self))
        if activated { context.fireChannelInactive() }
    }

    /// Restarts the idle timer from now (at the start, and when the protocol changes the limit).
    func rearm() {
        lastActivity = .now()
        schedule(at: lastActivity + connection.idleTimeout)
    }

    private func schedule(at deadline: NIODeadline) {
        timer?.cancel()
        guard let context, activated, !closing else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timerDeadline = deadline
        timer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.timedOut() }
    }

    /// A whole record arrived: the next one's deadline starts with its first octet. (Octets of it that came with the
    /// end of this one start it at the next read: a little lenient, never unbounded.)
    func recordCompleted() {
        recordStart = nil
    }

    private func timedOut() {
        guard let context, !closing else { return }
        timerDeadline = nil
        // The client spoke since the timer was set, and no record is overdue: wait for the rest of its time.
        var due = lastActivity + connection.idleTimeout
        if let recordStart, !connection.busy { due = min(due, recordStart + connection.recordDeadline) }
        if due > .now() { return schedule(at: due) }
        // A command still being answered is not the client's silence.
        if connection.busy { return rearm() }
        connection.logger.info("timeout")
        say(farewells.timeout, context: context)
    }

    func trustChanged(_ trusted: Bool) {
        registry.setTrusted(ObjectIdentifier(self), trusted)
    }

    /// Room is needed on this listener and this connection has waited longest without logging in.
    private func evict() {
        guard let context, !closing else { return }
        connection.logger.notice("closed to make room: too many connections")
        say(farewells.tooManyTotal, context: context)
    }

    /// The server is stopping: end the connection now if no command runs, or once the running one is answered.
    func drain() {
        draining = true
        becameIdle()
    }

    func becameIdle() {
        // A record the client pipelined while the command ran gets its full time from now.
        if recordStart != nil { recordStart = .now() }
        guard draining, let context else { return }
        // After the protocol has written the answer it is finishing (it clears `busy` first).
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = bound.value
            guard let context = handler.context, !handler.closing, !handler.connection.busy else { return }
            handler.connection.logger.info("closed for shutdown")
            handler.say(handler.farewells.shuttingDown, context: context)
        }
    }

    private func say(_ line: String, context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        context.sayAndClose(line)
    }
}
