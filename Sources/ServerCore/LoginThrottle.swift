import Foundation
import Logging
import MailCore
import MailStore
import Synchronization

/// Login attempts per client (IPv4 address or IPv6 /64) and per account name: after `maxFailures` failures within
/// `window` from one client, or `maxAccountFailures` for one account from anywhere, no login is checked until the
/// window has passed, so password guessing stalls. Attempts count while they are being checked: once failures and
/// checks under way reach the limit, a new attempt waits for one to finish (fifty guesses at once are not all checked,
/// while sixteen good logins at once all succeed). A success forgives its own account's failures, never the client's
/// failures at other accounts (logging in to one's own account does not reset a guessing run at another's).
public final class LoginThrottle: Sendable {
    private struct Entry {
        var failures = 0
        var inFlight = 0
        var windowStart: Date
    }
    public enum Admission: Sendable, Equatable {
        /// Check the password (then call `finished`).
        case proceed
        /// Too many failures: refuse unchecked.
        case blocked
        /// Enough checks under way to reach the limit if they fail: ask again shortly.
        case wait
    }
    private let entries = Mutex<[String: Entry]>([:])
    public let maxFailures: Int
    /// Higher than the per-client limit: a stranger guessing at an account could otherwise lock its owner out.
    public let maxAccountFailures: Int
    public let window: TimeInterval
    public static let maxTracked = 100_000

    public init(maxFailures: Int, window: TimeInterval = 15 * 60) {
        self.maxFailures = maxFailures
        maxAccountFailures = max(3 * maxFailures, 30)
        self.window = window
    }

    private func keys(_ address: String, _ user: String?) -> [(String, Int)] {
        var keys = [("ip:" + ConnectionLimiter.key(address), maxFailures)]
        if let user, !user.isEmpty { keys.append(("user:" + user.lowercased(), maxAccountFailures)) }
        return keys
    }

    /// The key's entry as of `now`: a new one once its window has passed (kept a second window while checks are under
    /// way, and no longer: an attempt a session began and never finished must not hold the count for ever).
    private func current(_ e: [String: Entry], _ key: String, _ now: Date) -> Entry {
        if let entry = e[key] {
            let age = now.timeIntervalSince(entry.windowStart)
            if age <= window || entry.inFlight > 0 && age <= 2 * window { return entry }
        }
        return Entry(windowStart: now)
    }

    /// Whether a login from `address` (for `user`, when known) would be refused now.
    public func isBlocked(_ address: String, user: String? = nil, now: Date) -> Bool {
        entries.withLock { e in keys(address, user).contains { key, limit in current(e, key, now).failures >= limit } }
    }

    /// Asks to check a password now; after `.proceed`, `finished` must follow.
    public func begin(_ address: String, user: String?, now: Date) -> Admission {
        entries.withLock { e in
            if e.count >= Self.maxTracked { e = e.filter { now.timeIntervalSince($0.value.windowStart) <= ($0.value.inFlight > 0 ? 2 * window : window) } }
            let keys = keys(address, user)
            for (key, limit) in keys where current(e, key, now).failures >= limit { return .blocked }
            for (key, limit) in keys {
                let entry = current(e, key, now)
                if entry.failures + entry.inFlight >= limit { return .wait }
            }
            for (key, _) in keys {
                var entry = current(e, key, now)
                entry.inFlight += 1
                e[key] = entry
            }
            return .proceed
        }
    }

    /// The attempt `begin` admitted is over: a failure counts for the client and the account; a success forgives the
    /// account's failures (never the client's).
    public func finished(_ address: String, user: String?, success: Bool, now: Date) {
        entries.withLock { e in
            for (key, _) in keys(address, user) {
                var entry = current(e, key, now)
                entry.inFlight = max(0, entry.inFlight - 1)
                if !success { entry.failures += 1 } else if key.hasPrefix("user:") { entry.failures = 0 }
                e[key] = entry.failures == 0 && entry.inFlight == 0 ? nil : entry
            }
        }
    }
}

/// The password check every service shares (IMAP, POP3; submission next): the per-address block, the store's check,
/// the failure record, and the second of delay after a failure that slows guessing down.
public enum PasswordCheck: Sendable {
    public enum Outcome: Sendable {
        case success(AccountID, EmailAddress)
        /// Too many failures from this address lately: refused without looking at the password.
        case blocked
        case failed
    }

    public static func check(_ server: ServerContext, service: String, remoteAddress: String, user: String, password: String) async throws -> Outcome {
        let throttle = server.loginThrottle
        let metadata: Logger.Metadata = ["remote": "\(remoteAddress)", "user": "\(loggable(user))"]
        let account = (try? EmailAddress.parse(user))?.canonical ?? user
        // Wait while enough checks from this client or for this account are under way to reach the limit.
        var admission = throttle.begin(remoteAddress, user: account, now: server.clock.now)
        let waitUntil = ContinuousClock.now + .seconds(30)
        while admission == .wait, ContinuousClock.now < waitUntil {
            try? await Task.sleep(for: .milliseconds(50))
            admission = throttle.begin(remoteAddress, user: account, now: server.clock.now)
        }
        guard admission == .proceed else {
            server.logger.notice("\(service) login refused: too many failures", metadata: metadata)
            return .blocked
        }
        // The store does the same work for a name it does not know as for a wrong password (no timing tells them apart).
        let address = try? EmailAddress.parse(user)
        var found: AccountID?
        do {
            if let address { found = try await server.store.verifyPassword(address, password: password) }
        } catch {
            throttle.finished(remoteAddress, user: account, success: true, now: server.clock.now)   // not the client's fault
            throw error
        }
        if let address, let id = found {
            throttle.finished(remoteAddress, user: account, success: true, now: server.clock.now)
            return .success(id, address)
        }
        if address == nil { _ = PasswordHash.unknownUser.verify(password) }
        throttle.finished(remoteAddress, user: account, success: false, now: server.clock.now)
        server.logger.notice("\(service) login failed", metadata: metadata)
        try? await Task.sleep(for: .seconds(1))
        return .failed
    }

    /// A login answered from the store's verified-login cache alone, with no wait; nil: use `check`.
    public static func cached(_ server: ServerContext, remoteAddress: String, user: String, password: String) -> (AccountID, EmailAddress)? {
        guard let address = try? EmailAddress.parse(user),
              !server.loginThrottle.isBlocked(remoteAddress, user: address.canonical, now: server.clock.now),
              let account = server.store.cachedLogin(address, password: password) else { return nil }
        return (account, address)
    }
}
