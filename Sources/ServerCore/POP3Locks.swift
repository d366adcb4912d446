import MailStore
import Synchronization

/// Accounts with a POP3 session in the transaction state: a second session gets `[IN-USE]` (RFC 2449 §8.1.2),
/// because POP3 message numbers and deletions assume one client at a time.
public final class POP3Locks: Sendable {
    private let held = Mutex<Set<AccountID>>([])

    public init() {}

    public func acquire(_ account: AccountID) -> Bool {
        held.withLock { $0.insert(account).inserted }
    }

    public func release(_ account: AccountID) {
        _ = held.withLock { $0.remove(account) }
    }
}
