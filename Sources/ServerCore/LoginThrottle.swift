import Foundation
import MailCore
import MailStore
import Synchronization

/// Failed logins per client address (IMAP now, POP3 and submission later): after `maxFailures` within `window`,
/// that address may not log in at all until the window has passed, so password guessing stalls.
public final class LoginThrottle: Sendable {
    private struct Entry {
        var failures: Int
        var windowStart: Date
    }
    private let entries = Mutex<[String: Entry]>([:])
    public let maxFailures: Int
    public let window: TimeInterval
    public static let maxTracked = 100_000

    public init(maxFailures: Int, window: TimeInterval = 15 * 60) {
        self.maxFailures = maxFailures
        self.window = window
    }

    /// Whether the address is blocked now.
    public func isBlocked(_ address: String, now: Date) -> Bool {
        entries.withLock { e in
            guard let entry = e[address] else { return false }
            if now.timeIntervalSince(entry.windowStart) > window { e[address] = nil; return false }
            return entry.failures >= maxFailures
        }
    }

    public func recordFailure(_ address: String, now: Date) {
        entries.withLock { e in
            if e.count >= Self.maxTracked { e = e.filter { now.timeIntervalSince($0.value.windowStart) <= window } }
            if var entry = e[address], now.timeIntervalSince(entry.windowStart) <= window {
                entry.failures += 1
                e[address] = entry
            } else {
                e[address] = Entry(failures: 1, windowStart: now)
            }
        }
    }

    public func recordSuccess(_ address: String) {
        _ = entries.withLock { $0.removeValue(forKey: address) }
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
        guard !throttle.isBlocked(remoteAddress, now: server.clock.now) else {
            server.logger.notice("\(service) login refused: too many failures from this address")
            return .blocked
        }
        if let address = try? EmailAddress.parse(user), let account = try await server.store.verifyPassword(address, password: password) {
            throttle.recordSuccess(remoteAddress)
            return .success(account, address)
        }
        throttle.recordFailure(remoteAddress, now: server.clock.now)
        server.logger.notice("\(service) login failed", metadata: ["user": "\(user)"])
        try? await Task.sleep(for: .seconds(1))
        return .failed
    }

    /// A login answered from the store's verified-login cache alone, with no wait; nil: use `check`.
    public static func cached(_ server: ServerContext, remoteAddress: String, user: String, password: String) -> (AccountID, EmailAddress)? {
        guard !server.loginThrottle.isBlocked(remoteAddress, now: server.clock.now), let address = try? EmailAddress.parse(user),
              let account = server.store.cachedLogin(address, password: password) else { return nil }
        server.loginThrottle.recordSuccess(remoteAddress)
        return (account, address)
    }
}
