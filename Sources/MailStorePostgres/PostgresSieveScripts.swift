import Foundation
import MailStore
import PostgresNIO

/// Sieve scripts in `sieve_script` (schema 9): one row per script, the unique partial index keeps one active. A change
/// is announced like a directory change (schema 10's trigger), so every node's cache of active scripts forgets.
extension PostgresMailStore: SieveScriptStore {
    public func putScript(account: AccountID, name: String, content: String, maxScripts: Int?) async throws {
        _ = try await changingDirectory { [self] db in
            if let maxScripts {
                // The account's row locked: two sessions storing new scripts at once count one after the other.
                _ = try await one("SELECT 1 FROM account WHERE id = \(account) FOR UPDATE", on: db, as: Int32.self)
                let others = try await one("SELECT count(*) FROM sieve_script WHERE account_id = \(account) AND name <> \(name)",
                                           on: db, as: Int64.self) ?? 0
                let exists = try await one("SELECT 1 FROM sieve_script WHERE account_id = \(account) AND name = \(name)",
                                           on: db, as: Int32.self) != nil
                if !exists && others >= maxScripts { throw ScriptLimitReached() }
            }
            try await execute("""
                INSERT INTO sieve_script(account_id, name, content) VALUES (\(account), \(name), \(content))
                ON CONFLICT (account_id, name) DO UPDATE SET content = excluded.content
                """, on: db)
        }
    }

    public func scripts(account: AccountID) async throws -> [SieveScriptInfo] {
        try await all("SELECT name, active, octet_length(content)::bigint FROM sieve_script WHERE account_id = \(account) ORDER BY name",
                      as: (String, Bool, Int64).self).map { SieveScriptInfo(name: $0.0, active: $0.1, size: Int($0.2)) }
    }

    public func script(account: AccountID, name: String) async throws -> String? {
        try await one("SELECT content FROM sieve_script WHERE account_id = \(account) AND name = \(name)", as: String.self)
    }

    public func activateScript(account: AccountID, name: String?) async throws {
        try await changingDirectory { [self] db in
            // One activation per account at a time: two at once each cleared the flag the other had not yet set, and
            // the second's `active = true` met the first's in the unique index (its client got an unexplained NO).
            _ = try await one("SELECT 1 FROM account WHERE id = \(account) FOR UPDATE", on: db, as: Int32.self)
            if let name {
                guard try await one("SELECT 1 FROM sieve_script WHERE account_id = \(account) AND name = \(name) FOR UPDATE", on: db, as: Int32.self) != nil else {
                    throw StoreError.notFound("script \(name)")
                }
            }
            try await execute("UPDATE sieve_script SET active = false WHERE account_id = \(account) AND active", on: db)
            if let name {
                try await execute("UPDATE sieve_script SET active = true WHERE account_id = \(account) AND name = \(name)", on: db)
            }
        }
    }

    public func deleteScript(account: AccountID, name: String) async throws {
        try await changingDirectory { [self] db in
            guard let active = try await one("SELECT active FROM sieve_script WHERE account_id = \(account) AND name = \(name) FOR UPDATE",
                                             on: db, as: Bool.self) else { throw StoreError.notFound("script \(name)") }
            guard !active else { throw StoreError.invalid("script \(name) is active") }
            try await execute("DELETE FROM sieve_script WHERE account_id = \(account) AND name = \(name)", on: db)
        }
    }

    public func renameScript(account: AccountID, from: String, to: String) async throws {
        try await changingDirectory { [self] db in
            guard try await one("SELECT 1 FROM sieve_script WHERE account_id = \(account) AND name = \(from) FOR UPDATE", on: db, as: Int32.self) != nil else {
                throw StoreError.notFound("script \(from)")
            }
            let taken = try await one("SELECT 1 FROM sieve_script WHERE account_id = \(account) AND name = \(to)", on: db, as: Int32.self) != nil
            guard from == to || !taken else {
                throw StoreError.alreadyExists("script \(to)")
            }
            try await execute("UPDATE sieve_script SET name = \(to) WHERE account_id = \(account) AND name = \(from)", on: db)
        }
    }

    public func activeScripts(accounts: [AccountID]) async throws -> [AccountID: String] {
        if let cached = cachedActiveScripts(accounts: accounts) { return cached }
        let generation = directoryGeneration
        let wanted = Array(Set(accounts))
        var found: [AccountID: String] = [:]
        for (account, content) in try await all("""
            SELECT account_id, content FROM sieve_script WHERE account_id = ANY(\(wanted)) AND active
            """, as: (Int64, String).self) { found[account] = content }
        if let generation { for account in wanted { resolutions.storeScript(account, found[account], computedAt: generation) } }
        return found
    }

    public func cachedActiveScripts(accounts: [AccountID]) -> [AccountID: String]? {
        directoryGeneration == nil ? nil : ActiveScripts.collect(accounts) { resolutions.script($0) }
    }

    // What scripts remember between messages (schema 11), shared by the nodes.
    public func markSieveSeen(_ key: String, until: Date, now: Date) async throws -> Bool {
        let (u, n) = (until.timeIntervalSince1970, now.timeIntervalSince1970)
        // A row whose period has passed is taken over; a current one stays and says no (one statement: no race).
        return try await column("""
            INSERT INTO sieve_seen(key, until) VALUES (\(key), \(u))
            ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE sieve_seen.until <= \(n) RETURNING 1
            """, as: Int32.self).count > 0
    }

    public func forgetSieveSeen(_ key: String) async throws {
        _ = try await column("DELETE FROM sieve_seen WHERE key = \(key) RETURNING 1", as: Int32.self)
    }

    public func sieveSeen(_ keys: [String], now: Date) async throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        let (wanted, n) = (Array(Set(keys)), now.timeIntervalSince1970)
        return Set(try await column("SELECT key FROM sieve_seen WHERE key = ANY(\(wanted)) AND until > \(n)", as: String.self))
    }
}
