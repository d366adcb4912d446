import Foundation
import GRDB
import MailStore

/// Sieve scripts in `sieve_script` (schema 12): one row per script, the unique partial index keeps one active. Every
/// change replaces the directory's generation file, so the active scripts cached for delivery (here and in a server
/// running beside an admin command) are read again.
extension SQLiteMailStore {
    public func putScript(account: AccountID, name: String, content: String, maxScripts: Int?) async throws {
        try await write { db in
            if let maxScripts, try Int.fetchOne(db, sql: "SELECT count(*) FROM sieve_script WHERE account_id = ? AND name != ?",
                                                 arguments: [account, name]) ?? 0 >= maxScripts,
               try Int.fetchOne(db, sql: "SELECT 1 FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, name]) == nil {
                throw ScriptLimitReached()
            }
            try db.execute(sql: """
                INSERT INTO sieve_script(account_id, name, content) VALUES (?, ?, ?)
                ON CONFLICT(account_id, name) DO UPDATE SET content = excluded.content
                """, arguments: [account, name, content])
        }
        // Delivery's cache of active scripts (in this process and in the server) starts again.
        try directoryCache.bump()
    }

    public func scripts(account: AccountID) async throws -> [SieveScriptInfo] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT name, active, length(CAST(content AS BLOB)) AS size FROM sieve_script WHERE account_id = ? ORDER BY name",
                             arguments: [account]).map { SieveScriptInfo(name: $0["name"], active: $0["active"], size: $0["size"]) }
        }
    }

    public func script(account: AccountID, name: String) async throws -> String? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT content FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, name])
        }
    }

    public func activateScript(account: AccountID, name: String?) async throws {
        try await write { db in
            if let name {
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, name]) != nil else {
                    throw StoreError.notFound("script \(name)")
                }
            }
            try db.execute(sql: "UPDATE sieve_script SET active = 0 WHERE account_id = ? AND active", arguments: [account])
            if let name {
                try db.execute(sql: "UPDATE sieve_script SET active = 1 WHERE account_id = ? AND name = ?", arguments: [account, name])
            }
        }
        // Delivery's cache of active scripts (in this process and in the server) starts again.
        try directoryCache.bump()
    }

    public func deleteScript(account: AccountID, name: String) async throws {
        try await write { db in
            guard let active = try Bool.fetchOne(db, sql: "SELECT active FROM sieve_script WHERE account_id = ? AND name = ?",
                                                 arguments: [account, name]) else { throw StoreError.notFound("script \(name)") }
            guard !active else { throw StoreError.invalid("script \(name) is active") }
            try db.execute(sql: "DELETE FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, name])
        }
        // Delivery's cache of active scripts (in this process and in the server) starts again.
        try directoryCache.bump()
    }

    public func renameScript(account: AccountID, from: String, to: String) async throws {
        try await write { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, from]) != nil else {
                throw StoreError.notFound("script \(from)")
            }
            let taken = try Bool.fetchOne(db, sql: "SELECT 1 FROM sieve_script WHERE account_id = ? AND name = ?", arguments: [account, to]) != nil
            guard from == to || !taken else {
                throw StoreError.alreadyExists("script \(to)")
            }
            try db.execute(sql: "UPDATE sieve_script SET name = ? WHERE account_id = ? AND name = ?", arguments: [to, account, from])
        }
        // Delivery's cache of active scripts (in this process and in the server) starts again.
        try directoryCache.bump()
    }

    public func activeScripts(accounts: [AccountID]) async throws -> [AccountID: String] {
        if let cached = cachedActiveScripts(accounts: accounts) { return cached }
        let generation = directoryCache.currentGeneration()
        let wanted = Set(accounts)
        let found = try await read { db in
            var found: [AccountID: String] = [:]
            for account in wanted {
                found[account] = try String.fetchOne(db.cachedStatement(sql: "SELECT content FROM sieve_script WHERE account_id = ? AND active"),
                                                     arguments: [account])
            }
            return found
        }
        for account in wanted { directoryCache.storeScript(account, found[account], computedAt: generation) }
        return found
    }

    public func cachedActiveScripts(accounts: [AccountID]) -> [AccountID: String]? {
        ActiveScripts.collect(accounts) { directoryCache.script($0) }
    }
}

/// What scripts remember between messages (schema 13).
extension SQLiteMailStore {
    public func markSieveSeen(_ key: String, until: Date, now: Date) async throws -> Bool {
        try await write { db in
            // A row whose period has passed is taken over; a current one stays and says no.
            try db.execute(sql: """
                INSERT INTO sieve_seen(key, until) VALUES (?, ?)
                ON CONFLICT(key) DO UPDATE SET until = excluded.until WHERE sieve_seen.until <= ?
                """, arguments: [key, until.timeIntervalSince1970, now.timeIntervalSince1970])
            return db.changesCount > 0
        }
    }

    public func forgetSieveSeen(_ key: String) async throws {
        try await write { db in try db.execute(sql: "DELETE FROM sieve_seen WHERE key = ?", arguments: [key]) }
    }

    public func sieveSeen(_ keys: [String], now: Date) async throws -> Set<String> {
        guard !keys.isEmpty else { return [] }
        return try await read { db in
            var seen: Set<String> = []
            for key in Set(keys) where try Bool.fetchOne(db, sql: "SELECT 1 FROM sieve_seen WHERE key = ? AND until > ?",
                                                          arguments: [key, now.timeIntervalSince1970]) != nil {
                seen.insert(key)
            }
            return seen
        }
    }
}
