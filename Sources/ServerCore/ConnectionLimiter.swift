import MailStore
import Synchronization

/// Counts open connections per client address and in total, so that one client cannot take every slot.
/// Sessions logged in to each account, bounded per account.
public final class UserSessions: Sendable {
    private let counts = Mutex<[AccountID: Int]>([:])

    /// Counts a session for `account`; false when it already has `limit`.
    public func acquire(_ account: AccountID, limit: Int) -> Bool {
        counts.withLock { c in
            guard c[account, default: 0] < limit else { return false }
            c[account, default: 0] += 1
            return true
        }
    }

    public func release(_ account: AccountID) {
        counts.withLock { c in
            let n = c[account, default: 1] - 1
            c[account] = n > 0 ? n : nil
        }
    }

    public func count(_ account: AccountID) -> Int { counts.withLock { $0[account, default: 0] } }
}

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
