import Crypto
import Foundation
import Synchronization

/// Passwords verified recently, so that a client that logs in again and again (mail clients open a connection per
/// folder, phones reconnect every few minutes) does not pay the slow hash (PBKDF2, `PasswordHash.defaultIterations`)
/// each time. Dovecot's `auth_cache` serves the same purpose.
///
/// What is kept is never the password: an HMAC-SHA-256 of it under a random key made at start and held only in
/// memory, for at most `lifetime`. Any change to the directory (a new password, a removed account, by this process
/// or an admin command) empties it, through the same generation as the recipient cache (`Generation`: SQLite's
/// generation file, PostgreSQL's count of directory notices). A wrong password is
/// never cached: it always costs the full hash.
public final class VerifiedLogins<Generation: Equatable & Sendable>: Sendable {
    private struct Entry {
        var tag: [UInt8]
        var account: AccountID
        var expires: ContinuousClock.Instant
    }

    private struct State {
        var generation: Generation?
        var entries: [String: Entry] = [:]
    }

    public static var maxEntries: Int { 50_000 }
    public let lifetime: Duration
    private let key = SymmetricKey(size: .bits256)
    private let state = Mutex(State())

    /// Elapsed time, not the time of day (a date change moves nothing): the continuous clock, or a test's own.
    private let now: @Sendable () -> ContinuousClock.Instant

    public init(lifetime: Duration = .seconds(600), now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.lifetime = lifetime
        self.now = now
    }

    private func tag(_ user: String, _ password: String) -> [UInt8] {
        var input = Array(user.utf8)
        input.append(0)
        input += Array(password.utf8)
        return Array(HMAC<SHA256>.authenticationCode(for: input, using: key))
    }

    /// The account, when this user logged in with this password within `lifetime` and nothing changed since.
    public func check(_ user: String, _ password: String, generation: Generation?) -> AccountID? {
        guard let generation, lifetime > .zero else { return nil }
        let candidate = tag(user, password)
        return state.withLock { s in
            guard s.generation == generation else {
                s.entries.removeAll(keepingCapacity: true)
                s.generation = generation
                return nil
            }
            guard let e = s.entries[user], e.expires > now(), e.tag.count == candidate.count else { return nil }
            var diff: UInt8 = 0
            for (a, b) in zip(e.tag, candidate) { diff |= a ^ b }
            return diff == 0 ? e.account : nil
        }
    }

    /// Remembers a successful check made while `generation` was current.
    public func remember(_ user: String, _ password: String, account: AccountID, generation: Generation?) {
        guard let generation, lifetime > .zero else { return }
        let entry = Entry(tag: tag(user, password), account: account, expires: now() + lifetime)
        state.withLock { s in
            guard s.generation == generation || s.generation == nil else { return }
            s.generation = generation
            if s.entries.count >= Self.maxEntries { s.entries.removeAll(keepingCapacity: true) }
            s.entries[user] = entry
        }
    }

    public func clear() {
        state.withLock { $0.entries.removeAll() }
    }
}
