import Foundation
import Synchronization

/// What the port-25 checks remember between messages (rate counters, greylisting triplets) and which node runs the
/// installation's background jobs. One process holds it in memory (the SQLite backend); on PostgreSQL it is in the
/// database, so that every node of an installation counts and greylists the same (issue 21).
public protocol PolicyStateStore: Sendable {
    /// Counts one message against `key` (a client address, a sender) and answers whether that stays within `limit`
    /// messages in the last hour; a refused message is not counted.
    func takeRate(_ key: String, limit: Int, now: Date) async throws -> Bool
    /// Greylisting's verdict for a triplet `key`, remembering that it was seen.
    func greylist(_ key: String, rule: GreylistRule, now: Date) async throws -> GreylistVerdict
    /// Takes the job `name` for `holder` until `until`, when no other holder has it now: true when `holder` is to run
    /// it. The holder that has it may take it again (to extend it).
    func claimJob(_ name: String, holder: String, until: Date, now: Date) async throws -> Bool
    /// Forgets rate windows and greylisting triplets that no longer count at `now`; returns how many.
    func prunePolicyState(rule: GreylistRule, now: Date) async throws -> Int
    /// The state, when it is in this process's memory and can answer without waiting (nil: ask the methods above).
    var memoryPolicyState: MemoryPolicyState? { get }
}

/// Messages per hour in fixed one-hour windows; the previous window's count weighs in for the part of it that is
/// still within the last hour, so that a limit holds across a window boundary.
public struct RateWindow: Sendable, Equatable {
    public var window: Int
    public var current: Int
    public var previous: Int

    public init(window: Int, current: Int, previous: Int) {
        self.window = window
        self.current = current
        self.previous = previous
    }

    public static func window(at now: Date) -> Int { Int((now.timeIntervalSince1970 / 3600).rounded(.down)) }

    /// Counts one more message at `now` when that stays within `limit`; the counter to keep either way.
    public static func take(_ counter: RateWindow?, limit: Int, now: Date) -> (allowed: Bool, next: RateWindow) {
        let hours = now.timeIntervalSince1970 / 3600
        let window = Self.window(at: now)
        var c = counter ?? RateWindow(window: window, current: 0, previous: 0)
        if c.window != window {
            c.previous = c.window == window - 1 ? c.current : 0
            c.current = 0
            c.window = window
        }
        let estimate = Double(c.previous) * (1 - (hours - Double(window))) + Double(c.current)
        guard estimate + 1 <= Double(limit) else { return (false, c) }
        c.current += 1
        return (true, c)
    }
}

/// Greylisting's timing: a triplet first seen must come back after `delay` and within `window`; once passed, it
/// passes for `remember` after each message.
public struct GreylistRule: Sendable, Equatable {
    public var delay: TimeInterval
    public var window: TimeInterval
    public var remember: TimeInterval

    public init(delay: TimeInterval, window: TimeInterval, remember: TimeInterval) {
        self.delay = delay
        self.window = window
        self.remember = remember
    }

    /// The verdict for a triplet with `entry` (nil: never seen) at `now`, and the entry to keep.
    public func check(_ entry: GreylistEntry?, now: Date) -> (verdict: GreylistVerdict, next: GreylistEntry) {
        if var e = entry {
            if let until = e.passedUntil, now < until {
                e.passedUntil = now.addingTimeInterval(remember)
                return (.pass, e)
            }
            let age = now.timeIntervalSince(e.first)
            if e.passedUntil == nil, age >= delay, age <= window {
                e.passedUntil = now.addingTimeInterval(remember)
                return (.pass, e)
            }
            if e.passedUntil == nil, age >= 0, age < delay { return (.wait(seconds: Int((delay - age).rounded(.up))), e) }
        }
        return (.wait(seconds: Int(delay.rounded(.up))), GreylistEntry(first: now, passedUntil: nil))
    }

    /// Whether `entry` still matters at `now` (waiting within its window, or passed and remembered).
    public func isLive(_ entry: GreylistEntry, now: Date) -> Bool {
        if let until = entry.passedUntil { return until > now }
        return now.timeIntervalSince(entry.first) <= window
    }
}

public struct GreylistEntry: Sendable, Equatable {
    public var first: Date
    public var passedUntil: Date?

    public init(first: Date, passedUntil: Date?) {
        self.first = first
        self.passedUntil = passedUntil
    }
}

public enum GreylistVerdict: Sendable, Equatable {
    case pass
    case wait(seconds: Int)
}

/// The policy state of one process, bounded in count: when a table is full of live entries, a new key is not tracked
/// (its message passes: a full table never blocks mail).
public final class MemoryPolicyState: PolicyStateStore, Sendable {
    private struct Tables {
        var rates: [String: RateWindow] = [:]
        var greylist: [String: GreylistEntry] = [:]
        var jobs: [String: (holder: String, until: Date)] = [:]
    }
    private let tables = Mutex(Tables())
    public let rateCapacity: Int
    public let greylistCapacity: Int

    public init(rateCapacity: Int = 100_000, greylistCapacity: Int = 200_000) {
        self.rateCapacity = rateCapacity
        self.greylistCapacity = greylistCapacity
    }

    public var memoryPolicyState: MemoryPolicyState? { self }

    public func takeRateNow(_ key: String, limit: Int, now: Date) -> Bool {
        tables.withLock { t in
            let (allowed, next) = RateWindow.take(t.rates[key], limit: limit, now: now)
            if t.rates[key] == nil, t.rates.count >= rateCapacity {
                let window = RateWindow.window(at: now)
                t.rates = t.rates.filter { $0.value.window >= window - 1 }
                if t.rates.count >= rateCapacity { return allowed }
            }
            t.rates[key] = next
            return allowed
        }
    }

    public func greylistNow(_ key: String, rule: GreylistRule, now: Date) -> GreylistVerdict {
        tables.withLock { t in
            let (verdict, next) = rule.check(t.greylist[key], now: now)
            if t.greylist[key] == nil, t.greylist.count >= greylistCapacity {
                t.greylist = t.greylist.filter { rule.isLive($0.value, now: now) }
                if t.greylist.count >= greylistCapacity { return .pass }
            }
            t.greylist[key] = next
            return verdict
        }
    }

    public func takeRate(_ key: String, limit: Int, now: Date) async throws -> Bool { takeRateNow(key, limit: limit, now: now) }

    public func greylist(_ key: String, rule: GreylistRule, now: Date) async throws -> GreylistVerdict {
        greylistNow(key, rule: rule, now: now)
    }

    public func claimJob(_ name: String, holder: String, until: Date, now: Date) async throws -> Bool {
        tables.withLock { t in
            if let current = t.jobs[name], current.holder != holder, current.until > now { return false }
            t.jobs[name] = (holder, until)
            return true
        }
    }

    public func prunePolicyState(rule: GreylistRule, now: Date) async throws -> Int {
        tables.withLock { t in
            let before = t.rates.count + t.greylist.count
            let window = RateWindow.window(at: now)
            t.rates = t.rates.filter { $0.value.window >= window - 1 }
            t.greylist = t.greylist.filter { rule.isLive($0.value, now: now) }
            return before - t.rates.count - t.greylist.count
        }
    }
}
