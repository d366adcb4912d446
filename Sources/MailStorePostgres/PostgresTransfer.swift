import Foundation
import MailStore
import PostgresNIO

/// `tern migrate` on the PostgreSQL side: rows read and written as they are, ids included (identity columns take the
/// copied ids with OVERRIDING SYSTEM VALUE, and their sequences are moved past them at the end). Contents above the
/// inline limit are stored in chunks, as on delivery; the reference and message counts are counted again as rows
/// arrive (placements here, queue entries by their trigger).
extension PostgresMailStore: StoreTransfer {
    public func transferRows(_ table: TransferTable, after: [TransferValue]?, limit: Int) async throws -> [[TransferValue]] {
        var binds = PostgresBindings()
        var conditions: [String] = []
        // Text compared octet by octet, as SQLite does, whatever the database's collation.
        let key = table.keyIndexes.map { table.columns[$0].kind == .text ? "\(table.columns[$0].name) COLLATE \"C\"" : table.columns[$0].name }
            .joined(separator: ", ")
        if let after {
            conditions.append("(\(key)) > (\(after.indices.map { "$\($0 + 1)" }.joined(separator: ", ")))")
            for (value, index) in zip(after, table.keyIndexes) { try Self.bind(value, kind: table.columns[index].kind, into: &binds) }
        }
        if let filter = table.filter { conditions.append(filter) }
        let sql = "SELECT \(table.columns.map(\.name).joined(separator: ", ")) FROM \(table.name)"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY \(key) LIMIT \(limit)"
        return try await rows(PostgresQuery(unsafeSQL: sql, binds: binds), on: nil).map { row in
            try zip(row, table.columns).map { cell, column in try Self.transferValue(cell, column.kind) }
        }
    }

    public func insertTransferRows(_ table: TransferTable, _ rows: [[TransferValue]]) async throws {
        let isMessage = table.name == "message"
        let names = table.columns.map(\.name) + (isMessage ? ["content_hash"] : [])
        let sql = "INSERT INTO \(table.name)(\(names.joined(separator: ", ")))"
            + (table.hasGeneratedID ? " OVERRIDING SYSTEM VALUE" : "")
            + " VALUES (\(names.indices.map { "$\($0 + 1)" }.joined(separator: ", ")))"
        let kinds = table.columns.map(\.kind)
        try await transaction { [self] db in
            for row in rows {
                var binds = PostgresBindings()
                for (value, kind) in zip(row, kinds) { try Self.bind(value, kind: kind, into: &binds) }
                if isMessage {
                    // The content (the last value), stored once per hash as on delivery.
                    guard case .blob(let content) = row.last else { throw StoreError.invalid("message row without its content") }
                    try binds.append(try await storeContent(db, bytes: content, size: content.count))
                }
                try await execute(PostgresQuery(unsafeSQL: sql, binds: binds), on: db)
            }
            if table.name == "mailbox_message" { try await countPlacements(db, table, rows) }
        }
    }

    /// What copied placements hold: their mailboxes' message counts and their messages' references.
    private func countPlacements(_ db: PostgresConnection, _ table: TransferTable, _ rows: [[TransferValue]]) async throws {
        func ids(_ column: String) -> [Int64] {
            guard let i = table.columns.firstIndex(where: { $0.name == column }) else { return [] }
            return rows.compactMap { if case .integer(let v) = $0[i] { v } else { nil } }
        }
        let mailboxes = ids("mailbox_id")
        try await execute("""
            UPDATE mailbox b SET message_count = b.message_count + c.n
            FROM (SELECT id, count(*) AS n FROM unnest(\(mailboxes)::bigint[]) AS id GROUP BY id) c WHERE b.id = c.id
            """, on: db)
        try await addReferences(db, messages: ids("message_id"))
    }

    public func idHighWater() async throws -> [String: Int64] {
        var marks: [String: Int64] = [:]
        for table in TransferTable.neverReused {
            guard let sequence = try await one("SELECT pg_get_serial_sequence(\(table), 'id')", as: String.self) else { continue }
            // The sequence's last value (one below it when nextval has not been called since setval(..., false)), or
            // the highest id present if that is higher.
            marks[table] = try await one(PostgresQuery(unsafeSQL: """
                SELECT greatest(CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END, (SELECT coalesce(max(id), 0) FROM \(table)))
                FROM \(sequence) s
                """), as: Int64.self) ?? 0
        }
        return marks
    }

    public func finishTransfer(idHighWater: [String: Int64]) async throws {
        resolutions.bump()
        try await transaction { [self] db in
            for table in TransferTable.all where table.hasGeneratedID {
                let mark = TransferTable.neverReused.contains(table.name) ? idHighWater[table.name] ?? 0 : 0
                try await execute(PostgresQuery(unsafeSQL: """
                    SELECT setval(pg_get_serial_sequence('\(table.name)', 'id'), greatest(coalesce(max(id), 0), \(mark)) + 1, false)
                    FROM \(table.name)
                    """), on: db)
            }
        }
    }

    static func bind(_ value: TransferValue, kind: TransferTable.Kind, into binds: inout PostgresBindings) throws {
        switch (value, kind) {
        case (.null, _): binds.appendNull()
        case (.integer(let v), .boolean): try binds.append(v != 0)
        case (.integer(let v), .real): try binds.append(Double(v))
        case (.integer(let v), _): try binds.append(v)
        case (.real(let v), .integer): try binds.append(Int64(v))
        case (.real(let v), _): try binds.append(v)
        case (.text(let v), _): try binds.append(v)
        case (.blob(let v), _): try binds.append(ByteBuffer(bytes: v))
        }
    }

    static func transferValue(_ cell: PostgresCell, _ kind: TransferTable.Kind) throws -> TransferValue {
        guard cell.bytes != nil else { return .null }
        switch kind {
        case .integer: return .integer(try cell.decode(Int64.self))
        case .boolean: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .real: return .real(try cell.decode(Double.self))
        case .text: return .text(try cell.decode(String.self))
        case .blob: return .blob(Array(buffer: try cell.decode(ByteBuffer.self)))
        }
    }
}
