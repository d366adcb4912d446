import Foundation
import Logging
import MailCore
import MailStore
import Synchronization

/// Login attempts per client (IPv4 address or IPv6 /64) and per account name, counted when they start: after
/// `maxFailures` within `window` from one client (attempts still being checked included, so fifty in parallel are not
/// all checked), or `maxAccountFailures` for one account from anywhere, no login is checked until the window has
/// passed, so password guessing stalls. A successful login forgives its own attempt and its account's failures, never
/// the client's other failures (logging in to one's own account does not reset a guessing run at another's).
public final class LoginThrottle: Sendable {
    private struct Entry {
        /// Failed attempts and attempts still being checked.
        var attempts: Int
        var windowStart: Date
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

    /// Whether a login from `address` (for `user`, when known) would be refused now.
    public func isBlocked(_ address: String, user: String? = nil, now: Date) -> Bool {
        entries.withLock { e in
            keys(address, user).contains { key, limit in
                guard let entry = e[key], now.timeIntervalSince(entry.windowStart) <= window else { return false }
                return entry.attempts >= limit
            }
        }
    }

    /// Starts an attempt: false (refuse it unchecked) when the client or the account is over its limit; otherwise the
    /// attempt counts until `succeeded` forgives it.
    public func begin(_ address: String, user: String?, now: Date) -> Bool {
        entries.withLock { e in
            if e.count >= Self.maxTracked { e = e.filter { now.timeIntervalSince($0.value.windowStart) <= window } }
            let keys = keys(address, user)
            for (key, limit) in keys {
                if let entry = e[key], now.timeIntervalSince(entry.windowStart) <= window, entry.attempts >= limit { return false }
            }
            for (key, _) in keys {
                if var entry = e[key], now.timeIntervalSince(entry.windowStart) <= window {
                    entry.attempts += 1
                    e[key] = entry
                } else {
                    e[key] = Entry(attempts: 1, windowStart: now)
                }
            }
            return true
        }
    }

    /// The attempt `begin` counted succeeded: it no longer counts, and `user`'s failures are forgiven.
    public func succeeded(_ address: String, user: String?) {
        entries.withLock { e in
            let ip = "ip:" + ConnectionLimiter.key(address)
            if var entry = e[ip] {
                entry.attempts -= 1
                e[ip] = entry.attempts > 0 ? entry : nil
            }
            if let user, !user.isEmpty { e["user:" + user.lowercased()] = nil }
        }
    }
}

/// Text from a client made safe for a log line: control characters (a CR or LF would start a forged line, an ESC
/// rewrite the admin's terminal) are written as `\xNN`, and the length is bounded.
public func loggable(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars.prefix(256) {
        if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) {
            out += "\\x" + String(scalar.value, radix: 16, uppercase: true).leftPadded(2)
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
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
        guard throttle.begin(remoteAddress, user: account, now: server.clock.now) else {
            server.logger.notice("\(service) login refused: too many failures", metadata: metadata)
            return .blocked
        }
        // The store does the same work for a name it does not know as for a wrong password (no timing tells them apart).
        let address = try? EmailAddress.parse(user)
        if let address, let id = try await server.store.verifyPassword(address, password: password) {
            throttle.succeeded(remoteAddress, user: account)
            return .success(id, address)
        }
        if address == nil { _ = PasswordHash.unknownUser.verify(password) }
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
