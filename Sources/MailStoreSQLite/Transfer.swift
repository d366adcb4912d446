import Foundation
import GRDB
import MailStore
import SQLiteDatabase

/// `tern migrate` on the SQLite side: rows read and written as they are, ids included. Contents above the inline
/// limit go to message files as they do on delivery; the next ids follow the copied ones (`SQLiteSchema.nextIDSQL`), and the
/// reference and message counts are counted again by their triggers as rows arrive.
extension SQLiteMailStore: StoreTransfer {
    public func transferRows(_ table: TransferTable, after: [TransferValue]?, limit: Int) async throws -> [[TransferValue]] {
        var conditions: [String] = []
        var arguments: [DatabaseValue] = []
        if let after {
            conditions.append("(\(table.key.joined(separator: ", "))) > (\(after.map { _ in "?" }.joined(separator: ", ")))")
            arguments += after.map(Self.databaseValue)
        }
        if let filter = table.filter { conditions.append(filter) }
        let sql = "SELECT \(table.columns.map(\.name).joined(separator: ", ")) FROM \(table.name)"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY \(table.key.joined(separator: ", ")) LIMIT \(limit)"
        let bound = arguments
        return try await read { db in
            try Row.fetchAll(db, sql: sql, arguments: StatementArguments(bound)).map { row in
                table.columns.indices.map { Self.transferValue(row[$0] as DatabaseValue, table.columns[$0].kind) }
            }
        }
    }

    public func insertTransferRows(_ table: TransferTable, _ rows: [[TransferValue]]) async throws {
        var names = table.columns.map(\.name)
        var rows = rows
        var inline: [(id: TransferValue, content: TransferValue)] = []
        if table.name == "message" {
            // The content (the last value): inline (in `message_content`), or in a message file written (and fsync'd)
            // before the commit.
            names += ["blob_key"]
            var written: [String] = []
            for i in rows.indices {
                guard case .blob(let content) = rows[i].removeLast() else { throw StoreError.invalid("message row without its content") }
                if content.count > inlineLimit {
                    let key = BlobStore.newKey()
                    try blobs.write(content, key: key)
                    written.append(key)
                    rows[i] += [.text(key)]
                } else {
                    rows[i] += [.null]
                    inline.append((rows[i][0], .blob(content)))
                }
            }
            try blobs.syncDirectories(for: written)
        }
        let sql = "INSERT INTO \(table.name)(\(names.joined(separator: ", "))) VALUES (\(names.map { _ in "?" }.joined(separator: ", ")))"
        let copied = rows, contents = inline
        try await write { db in
            let statement = try db.makeStatement(sql: sql)
            for row in copied { try statement.execute(arguments: StatementArguments(row.map(Self.databaseValue))) }
            let content = try db.makeStatement(sql: "INSERT INTO message_content(id, content) VALUES (?, ?)")
            for (id, bytes) in contents { try content.execute(arguments: [Self.databaseValue(id), Self.databaseValue(bytes)]) }
        }
    }

    public func idHighWater() async throws -> [String: Int64] {
        try await read { db in
            var marks: [String: Int64] = [:]
            for table in TransferTable.neverReused {
                marks[table] = try Int64.fetchOne(db, sql: "SELECT \(SQLiteSchema.nextIDSQL(table)) - 1") ?? 0
            }
            return marks
        }
    }

    public func finishTransfer(idHighWater: [String: Int64]) async throws {
        try await write { db in
            for (table, mark) in idHighWater where TransferTable.neverReused.contains(table) {
                try db.execute(sql: "UPDATE id_sequence SET last = max(last, ?) WHERE name = ?", arguments: [mark, table])
            }
        }
        // The directory changed under every process's cache.
        try directoryCache.bump()
        verifiedLogins.clear()
    }

    static func databaseValue(_ value: TransferValue) -> DatabaseValue {
        switch value {
        case .null: return .null
        case .integer(let v): return v.databaseValue
        case .real(let v): return v.databaseValue
        case .text(let v): return v.databaseValue
        case .blob(let v): return Data(v).databaseValue
        }
    }

    static func transferValue(_ value: DatabaseValue, _ kind: TransferTable.Kind) -> TransferValue {
        switch value.storage {
        case .null: return .null
        case .int64(let v): return kind == .real ? .real(Double(v)) : .integer(v)
        case .double(let v): return kind == .real ? .real(v) : .integer(Int64(v))
        case .string(let v): return .text(v)
        case .blob(let v): return .blob(Array(v))
        }
    }
}
