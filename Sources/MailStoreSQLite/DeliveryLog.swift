import Foundation
import GRDB
import MailStore

enum DeliveryLogSQL {
    /// Writes events inside the caller's transaction.
    static func insert(_ db: Database, _ events: [DeliveryEvent]) throws {
        guard !events.isEmpty else { return }
        let statement = try db.cachedStatement(sql: "INSERT INTO delivery_log(at, queue_id, message_id, kind, detail, related) VALUES (?, ?, ?, ?, ?, ?)")
        for e in events {
            try statement.execute(arguments: [e.at.timeIntervalSince1970, e.queueID, e.messageID, e.kind.rawValue, String(e.detail.prefix(2000)), e.related])
        }
    }
}

extension SQLiteMailStore {
    public func log(_ events: [DeliveryEvent]) async throws {
        guard !events.isEmpty else { return }
        try await batcher.write { db in try DeliveryLogSQL.insert(db, events) }
    }

    public func deliveryLog(id: String) async throws -> [DeliveryEvent] {
        let bare = id.hasPrefix("<") && id.hasSuffix(">") ? String(id.dropFirst().dropLast()) : id
        return try await read { db in
            // The queue ids that match, directly or through the Message-ID of their `received` event, then those of
            // the messages made about them (bounces, delay notices, tester reports).
            var queueIDs = try String.fetchAll(db, sql: """
                SELECT DISTINCT queue_id FROM delivery_log WHERE queue_id = ? OR message_id = ? LIMIT 100
                """, arguments: [bare, bare])
            guard !queueIDs.isEmpty else { return [] }
            queueIDs += try String.fetchAll(db, sql: """
                SELECT DISTINCT queue_id FROM delivery_log WHERE related IN (\(queueIDs.map { _ in "?" }.joined(separator: ","))) LIMIT 100
                """, arguments: StatementArguments(queueIDs)).filter { !queueIDs.contains($0) }
            guard !queueIDs.isEmpty else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT at, queue_id, message_id, kind, detail, related FROM delivery_log
                WHERE queue_id IN (\(queueIDs.map { _ in "?" }.joined(separator: ","))) ORDER BY at, id LIMIT 10000
                """, arguments: StatementArguments(queueIDs)).map { row in
                DeliveryEvent(at: Date(timeIntervalSince1970: row["at"]), queueID: row["queue_id"], messageID: row["message_id"],
                              kind: DeliveryEvent.Kind(rawValue: row["kind"]) ?? .received, detail: row["detail"], related: row["related"])
            }
        }
    }

    public func pruneDeliveryLog(before date: Date) async throws -> Int {
        try await batcher.write { db in
            try db.execute(sql: "DELETE FROM delivery_log WHERE at < ?", arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }
}
