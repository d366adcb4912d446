import GRDB
import MailStore

extension SQLiteMailStore {
    public func trainBayes(owner: AccountID?, key: String, tokens: [Int64], spam: Bool) async throws -> Bool {
        let id = owner ?? 0
        return try await write { db in
            let previous = try Bool.fetchOne(db, sql: "SELECT spam FROM bayes_trained WHERE owner = ? AND message_key = ?", arguments: [id, key])
            if previous == spam { return false }
            let unique = Array(Set(tokens))
            try db.execute(sql: "INSERT OR IGNORE INTO bayes_total(owner) VALUES (?)", arguments: [id])
            let add = spam ? "spam" : "ham", undo = spam ? "ham" : "spam"
            if previous != nil {
                // Trained the other way before: take those counts back first.
                try db.execute(sql: "UPDATE bayes_total SET \(undo) = max(0, \(undo) - 1) WHERE owner = ?", arguments: [id])
                let statement = try db.cachedStatement(sql: "UPDATE bayes_token SET \(undo) = max(0, \(undo) - 1) WHERE owner = ? AND token = ?")
                for t in unique { try statement.execute(arguments: [id, t]) }
            }
            try db.execute(sql: "UPDATE bayes_total SET \(add) = \(add) + 1 WHERE owner = ?", arguments: [id])
            let statement = try db.cachedStatement(sql: """
                INSERT INTO bayes_token(owner, token, \(add)) VALUES (?, ?, 1)
                ON CONFLICT(owner, token) DO UPDATE SET \(add) = \(add) + 1
                """)
            for t in unique { try statement.execute(arguments: [id, t]) }
            try db.execute(sql: "INSERT OR REPLACE INTO bayes_trained(owner, message_key, spam) VALUES (?, ?, ?)", arguments: [id, key, spam])
            return true
        }
    }

    public func bayesTraining(owner: AccountID?, key: String) async throws -> Bool? {
        try await read { db in
            try Bool.fetchOne(db, sql: "SELECT spam FROM bayes_trained WHERE owner = ? AND message_key = ?", arguments: [owner ?? 0, key])
        }
    }

    public func bayesCounts(owner: AccountID?, tokens: [Int64]) async throws -> BayesCounts {
        let owners: [Int64] = owner.map { [0, $0] } ?? [0]
        let unique = Array(Set(tokens))
        return try await read { db in
            var out = BayesCounts()
            for o in owners {
                if let row = try Row.fetchOne(db, sql: "SELECT spam, ham FROM bayes_total WHERE owner = ?", arguments: [o]) {
                    out.spamMessages += row["spam"] as Int
                    out.hamMessages += row["ham"] as Int
                }
            }
            guard out.spamMessages + out.hamMessages > 0 else { return out }
            // In slices, to stay under SQLite's limit on bound parameters.
            var start = 0
            while start < unique.count {
                let slice = Array(unique[start..<min(unique.count, start + 400)])
                start += slice.count
                let marks = Array(repeating: "?", count: slice.count).joined(separator: ",")
                let ownerMarks = Array(repeating: "?", count: owners.count).joined(separator: ",")
                let rows = try Row.fetchAll(db, sql: "SELECT token, spam, ham FROM bayes_token WHERE owner IN (\(ownerMarks)) AND token IN (\(marks))",
                                            arguments: StatementArguments(owners + slice))
                for r in rows {
                    let t: Int64 = r["token"]
                    let old = out.tokens[t] ?? (0, 0)
                    out.tokens[t] = (old.spam + (r["spam"] as Int), old.ham + (r["ham"] as Int))
                }
            }
            return out
        }
    }
}
