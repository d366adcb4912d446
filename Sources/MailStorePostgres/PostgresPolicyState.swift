import Foundation
import MailStore
import PostgresNIO

/// Rate counters, greylisting and job claims in the database, so that every node counts, greylists and schedules
/// as one installation. Each change locks its row (one node at a time per key) and applies the same rule as the
/// in-memory state (MailStore/PolicyState.swift). These commits do not wait for the disk (synchronous_commit off):
/// a counter lost in a crash lets one message more through, which no client was promised anything about.
extension PostgresMailStore: PolicyStateStore {
    public var memoryPolicyState: MemoryPolicyState? { nil }

    public func takeRate(_ key: String, limit: Int, now: Date) async throws -> Bool {
        let fresh = RateWindow.window(at: now)
        return try await transaction { [self] db in
            try await execute("SET LOCAL synchronous_commit = off", on: db)
            try await execute("""
                INSERT INTO rate_counter(key, window_hour, current, previous) VALUES (\(key), \(fresh), 0, 0)
                ON CONFLICT (key) DO NOTHING
                """, on: db)
            let row = try await all("SELECT window_hour, current, previous FROM rate_counter WHERE key = \(key) FOR UPDATE",
                                    on: db, as: (Int64, Int64, Int64).self).first
            let counter = row.map { RateWindow(window: Int($0.0), current: Int($0.1), previous: Int($0.2)) }
            let (allowed, next) = RateWindow.take(counter, limit: limit, now: now)
            try await execute("""
                UPDATE rate_counter SET window_hour = \(next.window), current = \(next.current), previous = \(next.previous)
                WHERE key = \(key)
                """, on: db)
            return allowed
        }
    }

    public func greylist(_ key: String, rule: GreylistRule, now: Date) async throws -> GreylistVerdict {
        let seconds = now.timeIntervalSince1970
        return try await transaction { [self] db in
            try await execute("SET LOCAL synchronous_commit = off", on: db)
            // A triplet never seen is inserted as first seen now; then the row is locked whichever node inserted it.
            let inserted = try await execute("""
                INSERT INTO greylist(key, first_seen) VALUES (\(key), \(seconds)) ON CONFLICT (key) DO NOTHING RETURNING 1
                """, on: db)
            if inserted > 0 { return rule.check(nil, now: now).verdict }
            let row = try await all("SELECT first_seen, passed_until FROM greylist WHERE key = \(key) FOR UPDATE",
                                    on: db, as: (Double, Double?).self).first
            let entry = row.map { GreylistEntry(first: Date(timeIntervalSince1970: $0.0), passedUntil: $0.1.map(Date.init(timeIntervalSince1970:))) }
            let (verdict, next) = rule.check(entry, now: now)
            if next != entry {
                let first = next.first.timeIntervalSince1970, until = next.passedUntil?.timeIntervalSince1970
                try await execute("UPDATE greylist SET first_seen = \(first), passed_until = \(until) WHERE key = \(key)", on: db)
            }
            return verdict
        }
    }

    public func claimJob(_ name: String, holder: String, until: Date, now: Date) async throws -> Bool {
        let (end, at) = (until.timeIntervalSince1970, now.timeIntervalSince1970)
        return try await transaction { [self] db in
            try await execute("""
                INSERT INTO job_claim(name, holder, until) VALUES (\(name), \(holder), \(end))
                ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
                  WHERE job_claim.holder = EXCLUDED.holder OR job_claim.until <= \(at)
                RETURNING 1
                """, on: db) > 0
        }
    }

    public func prunePolicyState(rule: GreylistRule, now: Date) async throws -> Int {
        let (window, at, oldest) = (RateWindow.window(at: now) - 1, now.timeIntervalSince1970, now.timeIntervalSince1970 - rule.window)
        return try await transaction { [self] db in
            let rates = try await execute("DELETE FROM rate_counter WHERE window_hour < \(window) RETURNING 1", on: db)
            let triplets = try await execute("""
                DELETE FROM greylist WHERE (passed_until IS NOT NULL AND passed_until <= \(at))
                  OR (passed_until IS NULL AND first_seen < \(oldest)) RETURNING 1
                """, on: db)
            // What Sieve scripts remember (schema 11) ends with its period too.
            let seen = try await execute("DELETE FROM sieve_seen WHERE until <= \(at) RETURNING 1", on: db)
            return rates + triplets + seen
        }
    }
}
