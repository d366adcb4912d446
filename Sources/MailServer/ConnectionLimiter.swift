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
