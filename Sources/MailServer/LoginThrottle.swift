import Foundation
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
    static let maxTracked = 100_000

    public init(maxFailures: Int, window: TimeInterval = 15 * 60) {
        self.maxFailures = maxFailures
        self.window = window
    }

    /// Whether the address is blocked now.
    public func isBlocked(_ address: String, now: Date = Date()) -> Bool {
        entries.withLock { e in
            guard let entry = e[address] else { return false }
            if now.timeIntervalSince(entry.windowStart) > window { e[address] = nil; return false }
            return entry.failures >= maxFailures
        }
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
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
