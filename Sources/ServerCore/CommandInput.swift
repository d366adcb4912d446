import NIOCore

/// The input side every one-command-at-a-time text protocol shares (POP3, ManageSieve): the octets read and not yet
/// framed, the framer's place in them, and reads paused while a command runs with too much waiting behind it.
public struct CommandInput {
    /// What was read; the framer reads from `consumed` on.
    public private(set) var bytes: [UInt8] = []
    /// Where the next command starts (the framer moves it past each one it takes).
    public var consumed = 0
    private var backpressure = ReadBackpressure(limit: 64 << 10)

    public init() {}

    public mutating func append(_ buffer: ByteBuffer) {
        bytes.append(contentsOf: buffer.readableBytesView)
    }

    /// After framing: drops what the framer took (all of it, or once 16 KiB have been taken) and pauses reads while a
    /// command runs and more than 64 KiB wait, or resumes them.
    public mutating func settle(busy: Bool, channel: Channel) {
        if consumed > 0 && (consumed == bytes.count || consumed > 16384) {
            bytes.removeFirst(consumed)
            consumed = 0
        }
        backpressure.update(busy: busy, buffered: bytes.count - consumed, channel: channel)
    }

    /// Plaintext pipelined after STARTTLS/STLS, thrown away: never read as if it had come over TLS (RFC 3207 §4.2).
    public mutating func discard() {
        bytes.removeAll()
        consumed = 0
    }
}

extension Connection {
    /// After each answer: the idle limit and the trust that go with being logged in or not, and the deadline of the
    /// next command line (within `recordDeadline` of its first octet, however slowly its octets come).
    public func afterCommand(loggedIn: Bool, idleTimeout: TimeAmount, preAuthTimeout: TimeAmount, recordDeadline: TimeAmount) {
        self.idleTimeout = loggedIn ? idleTimeout : preAuthTimeout
        trusted = loggedIn
        self.recordDeadline = recordDeadline
    }
}

extension ChannelHandlerContext {
    /// A command's answer: written now, and when it is the session's last, the connection closes once it is out.
    public func answer(_ bytes: [UInt8], last: Bool) {
        guard last else { return send(bytes) }
        let context = self
        writeAndFlush(NIOAny(channel.allocator.buffer(bytes: bytes))).whenComplete { _ in context.close(promise: nil) }
    }
}
