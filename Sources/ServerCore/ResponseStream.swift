import NIOCore
import Synchronization

/// The connection's channel, for responses sent in parts before their command completes.
public final class ResponseStream: Sendable {
    public static let chunk = 64 * 1024
    public let channel: any Channel
    private let pending = Mutex<EventLoopFuture<Void>?>(nil)

    public init(channel: any Channel) {
        self.channel = channel
    }

    /// Sends `bytes` and empties it once it holds a chunk or more; waits while the previous chunk is still unsent
    /// (a slow reader slows the command down instead of growing the buffer).
    public func sendIfLarge(_ bytes: inout [UInt8]) async throws {
        guard bytes.count >= Self.chunk else { return }
        let chunk = bytes
        bytes.removeAll(keepingCapacity: true)
        try await send(chunk)
    }

    public func send(_ bytes: [UInt8]) async throws {
        let previous = pending.withLock { $0 }
        try await previous?.get()
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: promise)
        pending.withLock { $0 = promise.futureResult }
    }
}
