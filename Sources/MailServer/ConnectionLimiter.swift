import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Counts open connections per client address and in total, so that one client cannot take every slot.
public final class ConnectionLimiter: Sendable {
    private struct State {
        var total = 0
        var perAddress: [String: Int] = [:]
    }
    private let state = Mutex(State())
    public let maxTotal: Int
    public let maxPerAddress: Int

    public init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    public enum Verdict: Sendable { case accepted, tooManyTotal, tooManyFromAddress }

    public func acquire(_ address: String) -> Verdict {
        state.withLock { s in
            if s.total >= maxTotal { return .tooManyTotal }
            if s.perAddress[address, default: 0] >= maxPerAddress { return .tooManyFromAddress }
            s.total += 1
            s.perAddress[address, default: 0] += 1
            return .accepted
        }
    }

    public func release(_ address: String) {
        state.withLock { s in
            s.total -= 1
            let n = s.perAddress[address, default: 1] - 1
            s.perAddress[address] = n > 0 ? n : nil
        }
    }

}

/// One connection's place under its listener's limits: the client's address, and whether it holds a slot. Shared by
/// the IMAP and POP3 connection handlers.
struct ConnectionSlot {
    let limiter: ConnectionLimiter
    private(set) var remoteAddress = "unknown"
    private(set) var acquired = false

    init(limiter: ConnectionLimiter) {
        self.limiter = limiter
    }

    var isLoopback: Bool { remoteAddress.hasPrefix("127.") || remoteAddress == "::1" }

    /// Notes the client's address and takes a slot; when the limits refuse, writes `refusal` and closes.
    mutating func open(_ context: ChannelHandlerContext, refusal: String) -> Bool {
        remoteAddress = context.remoteAddress?.ipAddress ?? "unknown"
        guard case .accepted = limiter.acquire(remoteAddress) else {
            context.sayAndClose(refusal)
            return false
        }
        acquired = true
        return true
    }

    mutating func release() {
        if acquired { limiter.release(remoteAddress); acquired = false }
    }
}

extension ChannelHandlerContext {
    /// Writes a last line (`* BYE …`, `-ERR …`), then closes the connection.
    func sayAndClose(_ line: String) {
        let context = self
        writeAndFlush(NIOAny(ByteBuffer(string: line + "\r\n"))).whenComplete { _ in context.close(promise: nil) }
    }
}

/// Logs an error that ends a connection (a TLS peer that went away without close_notify is not worth a line).
func logConnectionError(_ error: Error, _ logger: Logger) {
    if let e = error as? NIOSSLError, case .uncleanShutdown = e { return }
    logger.info("connection error", metadata: ["error": "\(error)"])
}
