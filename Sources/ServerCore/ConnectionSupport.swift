import Foundation
import Logging
import NIOCore
import NIOSSL

extension ChannelHandlerContext {
    /// Writes a last line (`* BYE …`, `-ERR …`), then closes the connection.
    public func sayAndClose(_ line: String) {
        let context = self
        writeAndFlush(NIOAny(ByteBuffer(string: line + "\r\n"))).whenComplete { _ in context.close(promise: nil) }
    }

    /// Writes response bytes now (nothing when there are none).
    public func send(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        writeAndFlush(NIOAny(channel.allocator.buffer(bytes: bytes)), promise: nil)
    }

    /// Runs `work` off the event loop (a command that waits for the store) and hands its result to `done` back on
    /// the loop, where the handler's state may be touched.
    public func runOffLoop<Output: Sendable>(_ work: @escaping @Sendable () async -> Output, then done: @escaping (Output) -> Void) {
        let bound = NIOLoopBound(done, eventLoop: eventLoop)
        eventLoop.makeFutureWithTask(work).whenSuccess { bound.value($0) }
    }
}

/// Logs an error that ends a connection. A TLS peer that went away without close_notify is common and harmless
/// (every reply was sent): debug level only.
public func logConnectionError(_ error: Error, _ logger: Logger) {
    if let e = error as? NIOSSLError, case .uncleanShutdown = e {
        logger.debug("TLS closed without close_notify")
        return
    }
    logger.info("connection error", metadata: ["error": "\(error)"])
}

extension Duration {
    /// In seconds, for dates and intervals.
    public var seconds: TimeInterval { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    /// As NIO's time amount, for timers.
    public var timeAmount: TimeAmount { .nanoseconds(components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000) }
}
