import NIOCore

/// Stops reading from a connection while a command runs and more than `limit` octets of pipelined input wait,
/// and reads again once the session is idle: a client cannot make a session buffer without bound.
public struct ReadBackpressure: Sendable {
    public let limit: Int
    private var paused = false

    public init(limit: Int) { self.limit = limit }

    public mutating func update(busy: Bool, buffered: Int, channel: Channel) {
        if busy, buffered > limit, !paused {
            paused = true
            channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        } else if !busy, paused {
            paused = false
            channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        }
    }
}
