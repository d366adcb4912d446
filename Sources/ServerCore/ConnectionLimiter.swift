import Glibc
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

    /// `force`: count the connection even over the total (another was just told to go to make room for it).
    public func acquire(_ address: String, force: Bool = false) -> Verdict {
        let key = Self.key(address)
        return state.withLock { s in
            if s.perAddress[key, default: 0] >= maxPerAddress { return .tooManyFromAddress }
            if s.total >= maxTotal && !force { return .tooManyTotal }
            s.total += 1
            s.perAddress[key, default: 0] += 1
            return .accepted
        }
    }

    public func release(_ address: String) {
        let key = Self.key(address)
        state.withLock { s in
            s.total -= 1
            let n = s.perAddress[key, default: 1] - 1
            s.perAddress[key] = n > 0 ? n : nil
        }
    }

    /// What one client is counted as: its IPv4 address, or its IPv6 /64 (one customer's network, which can hand out
    /// more addresses than any limit).
    public static func key(_ address: String) -> String {
        guard address.utf8.contains(UInt8(ascii: ":")) else { return address }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return bytes[12...].map(String.init).joined(separator: ".")   // an IPv4-mapped address: its IPv4 address
        }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

}
