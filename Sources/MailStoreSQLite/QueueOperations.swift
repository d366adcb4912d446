import Foundation
import GRDB
import MailStore
import SQLiteDatabase
import Synchronization

enum QueueSQL {
    /// Inline contents up to this size come with the queue listing (one read fewer per delivery).
    static let prefetchLimit = 32 * 1024

    /// Queue rows for a delivery's remote recipients (inside the delivery's transaction).
    static func insert(_ db: Database, messageID: MessageID, delivery: Delivery, now date: Date) throws {
        let now = date.timeIntervalSince1970
        let queueID = delivery.queueID.isEmpty ? BlobStore.newKey() : delivery.queueID
        try db.cachedStatement(sql: "INSERT INTO queue(id, queue_id, message_id, created) VALUES (\(SQLiteSchema.nextIDSQL("queue")), ?, ?, ?)")
            .execute(arguments: [queueID, messageID, now])
        let row = db.lastInsertedRowID
        let statement = try db.cachedStatement(sql: """
            INSERT INTO queue_recipient(queue_id, address, domain, notify, orcpt, next_attempt) VALUES (?, ?, ?, ?, ?, ?)
            """)
        for r in delivery.remoteRecipients {
            let domain = r.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
            try statement.execute(arguments: [row, r.address, domain, r.notify?.joined(separator: ","), r.originalRecipient, now])
        }
        let delivered = try db.cachedStatement(sql: """
            INSERT INTO queue_recipient(queue_id, address, domain, notify, orcpt, next_attempt, status, attempts, last_attempt, last_reply)
            VALUES (?, ?, ?, ?, ?, ?, 1, 1, ?, '250 2.0.0 Delivered to the mailbox')
            """)
        for r in delivery.deliveredNotices {
            let domain = r.address.split(separator: "@").last.map { $0.lowercased() } ?? ""
            try delivered.execute(arguments: [row, r.address, domain, r.notify?.joined(separator: ","), r.originalRecipient, now, now])
        }
    }

    /// Removes a queued message and, when nothing else references its content, the content too; returns the blob key
    /// to delete after the commit (nil when none) and whether a row was removed.
    static func remove(_ db: Database, column: String, value: DatabaseValueConvertible) throws -> (removed: Bool, blob: String?) {
        guard let messageID = try Int64.fetchOne(db.cachedStatement(sql: "SELECT message_id FROM queue WHERE \(column) = ?"),
                                                 arguments: [value]) else {
            return (false, nil)
        }
        try db.cachedStatement(sql: "DELETE FROM queue WHERE \(column) = ?").execute(arguments: [value])
        let blob = try String.fetchOne(db.cachedStatement(sql: "SELECT blob_key FROM message WHERE id = ? AND refcount <= 0"),
                                       arguments: [messageID])
        try db.cachedStatement(sql: "DELETE FROM message WHERE id = ? AND refcount <= 0").execute(arguments: [messageID])
        return (true, blob)
    }

    static func recipient(_ row: Row) -> QueuedRecipient {
        QueuedRecipient(id: row["id"], address: row["address"], domain: row["domain"],
                        notify: (row["notify"] as String?).map { $0.split(separator: ",").map(String.init) },
                        originalRecipient: row["orcpt"], status: QueuedRecipient.Status(rawValue: row["status"]) ?? .pending,
                        attempts: row["attempts"], nextAttempt: Date(timeIntervalSince1970: row["next_attempt"]),
                        lastAttempt: (row["last_attempt"] as Double?).map { Date(timeIntervalSince1970: $0) },
                        lastReply: row["last_reply"], remoteHost: row["remote_host"])
    }

    /// Queued messages with their recipients; `withContent`: small inline contents too (for delivery, not listings).
    static func messages(_ db: Database, where condition: String, arguments: StatementArguments, limit: Int = 1,
                         withContent: Bool = false) throws -> [QueuedMessage] {
        let content = withContent ? "CASE WHEN m.blob_key IS NULL AND m.size <= \(QueueSQL.prefetchLimit) THEN (SELECT content FROM message_content WHERE id = m.id) END" : "NULL"
        let rows = try Row.fetchAll(db, sql: """
            SELECT q.id, q.queue_id, q.message_id, q.created, q.delay_notified, m.size, m.envelope, \(content) AS content
            FROM queue q JOIN message m ON m.id = q.message_id WHERE \(condition) ORDER BY q.id LIMIT \(limit)
            """, arguments: arguments)
        guard !rows.isEmpty else { return [] }
        let ids = rows.map { $0["id"] as Int64 }
        var byQueue: [Int64: [QueuedRecipient]] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT * FROM queue_recipient WHERE queue_id IN (\(ids.map { _ in "?" }.joined(separator: ","))) ORDER BY id",
                                  arguments: StatementArguments(ids)) {
            byQueue[r["queue_id"], default: []].append(recipient(r))
        }
        return rows.map { row in
            let envelope = (try? JSONDecoder().decode(StoredEnvelope.self, from: Data((row["envelope"] as String).utf8)))
                ?? StoredEnvelope(mailFrom: "", recipients: [])
            return QueuedMessage(id: row["id"], queueID: row["queue_id"], messageID: row["message_id"], size: row["size"], envelope: envelope,
                                 created: Date(timeIntervalSince1970: row["created"]), delayNotified: row["delay_notified"],
                                 recipients: byQueue[row["id"]] ?? [], content: (row["content"] as Data?).map { Array($0) })
        }
    }
}

extension SQLiteMailStore {
    public func observeQueue(_ observer: @escaping @Sendable () -> Void) {
        queueChanges.add(observer)
    }

    public func queuedMessages(dueBy: Date?, after: Int64, limit: Int) async throws -> [QueuedMessage] {
        guard let dueBy else { return try await read { db in try QueueSQL.messages(db, where: "q.id > ?", arguments: [after], limit: limit) } }
        let due = dueBy.timeIntervalSince1970, token = BlobStore.newKey(), lease = queueLease
        return try await write { db in
            // The messages with a due recipient nobody holds, or with no pending recipient left; then their due
            // recipients leased to this call.
            let ids = try Int64.fetchAll(db, sql: """
                SELECT q.id FROM queue q WHERE q.id > ?1 AND (
                  EXISTS (SELECT 1 FROM queue_recipient r WHERE r.queue_id = q.id AND r.status = 0 AND r.next_attempt <= ?2
                          AND coalesce(r.leased_until, 0) <= ?2)
                  OR NOT EXISTS (SELECT 1 FROM queue_recipient r WHERE r.queue_id = q.id AND r.status = 0))
                ORDER BY q.id LIMIT ?3
                """, arguments: [after, due, limit])
            guard !ids.isEmpty else { return [] }
            let marks = ids.map { _ in "?" }.joined(separator: ",")
            let mine = Set(try Int64.fetchAll(db, sql: """
                UPDATE queue_recipient SET leased_until = ?, leased_by = ?
                WHERE queue_id IN (\(marks)) AND status = 0 AND next_attempt <= ? AND coalesce(leased_until, 0) <= ?
                RETURNING id
                """, arguments: StatementArguments([due + lease, token] as [DatabaseValueConvertible]) + StatementArguments(ids)
                    + StatementArguments([due, due])))
            let held = try Row.fetchAll(db, sql: """
                SELECT id, leased_until FROM queue_recipient WHERE queue_id IN (\(marks)) AND status = 0 AND leased_until > ?
                """, arguments: StatementArguments(ids) + StatementArguments([due]))
            let elsewhere = Dictionary(uniqueKeysWithValues: held.map { ($0["id"] as Int64, $0["leased_until"] as Double) })
            return try QueueSQL.messages(db, where: "q.id IN (\(marks))", arguments: StatementArguments(ids), limit: ids.count,
                                         withContent: true).map { QueueLease.showing($0, dueBy: dueBy, mine: mine, elsewhere: elsewhere, duration: lease) }
        }
    }

    public func queuedMessage(queueID: String) async throws -> QueuedMessage? {
        try await read { db in try QueueSQL.messages(db, where: "q.queue_id = ?", arguments: [queueID]).first }
    }

    public func recordAttempts(_ attempts: [DeliveryAttempt], completing message: Int64) async throws -> QueuedMessage? {
        let now = clock.now.timeIntervalSince1970
        let (result, keys) = try await batcher.write { db -> (QueuedMessage?, [String]) in
            let statement = try db.cachedStatement(sql: """
                UPDATE queue_recipient SET status = ?, attempts = attempts + 1, next_attempt = ?, last_attempt = ?, last_reply = ?,
                  remote_host = coalesce(?, remote_host), notify = CASE WHEN ? THEN NULL ELSE notify END, leased_until = NULL, leased_by = NULL
                WHERE id = ? AND status = 0
                """)
            for a in attempts {
                let (status, next) = a.outcome.recorded(now: now)
                try statement.execute(arguments: [status.rawValue, next, now, a.reply, a.remoteHost, a.notifyPassedOn, a.recipientID])
            }
            try DeliveryLogSQL.insert(db, attempts.compactMap(\.event))
            let counts = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT sum(status = 0) AS pending, sum(status = 2) AS failed,
                  sum(status = 1 AND notify IS NOT NULL AND instr(notify, 'SUCCESS') > 0) AS success_wanted
                FROM queue_recipient WHERE queue_id = ?
                """), arguments: [message])
            guard let counts, (counts["pending"] as Int?) == 0 else { return (nil, []) }
            if (counts["failed"] as Int?) == 0 && (counts["success_wanted"] as Int?) == 0 {
                let removed = try QueueSQL.remove(db, column: "id", value: message)
                return (nil, removed.blob.map { [$0] } ?? [])
            }
            return (try QueueSQL.messages(db, where: "q.id = ?", arguments: [message]).first, [])
        }
        for key in keys { blobs.remove(key) }
        return result
    }

    public func completeQueued(id: Int64, notification: Delivery?) async throws {
        try await committedWrite(notification) { db in
            let removed = try QueueSQL.remove(db, column: "id", value: id)
            return (removed.removed, removed.blob.map { [$0] } ?? [])
        }
    }

    public func noteDelay(id: Int64, notification: Delivery) async throws {
        try await committedWrite(notification) { db in
            try db.execute(sql: "UPDATE queue SET delay_notified = 1 WHERE id = ? AND delay_notified = 0", arguments: [id])
            return (db.changesCount > 0, [])
        }
    }

    /// Runs `change` and stores `notification` in one transaction, then removes the files of contents no longer
    /// referenced and tells the observers. `change` returns whether it changed anything (the notification is stored
    /// only then) and the blob keys it freed.
    private func committedWrite(_ notification: Delivery?, _ change: @escaping @Sendable (Database) throws -> (Bool, [String])) async throws {
        let now = clock.now
        let (freed, queued, touched) = try await batcher.write { db -> ([String], Bool, [MailboxID]) in
            let (changed, freed) = try change(db)
            guard changed, let notification else { return (freed, false, []) }
            let placements = try GroupCommitter.insert(db, notification, now: now).placements.map(\.mailbox)
            return (freed, notification.isQueued, placements)
        }
        for key in freed { blobs.remove(key) }
        if !touched.isEmpty { changes.notify(touched) }
        if queued { queueChanges.notify() }
    }

    public func retryQueued(queueID: String?) async throws -> Int {
        let now = clock.now.timeIntervalSince1970
        return try await write { db in
            // The messages made due: those with a pending recipient (one message, or all).
            let filter = queueID == nil ? "" : " AND queue_id = (SELECT id FROM queue WHERE queue_id = ?)"
            let arguments: StatementArguments = queueID.map { [$0] } ?? []
            let count = try Int.fetchOne(db, sql: "SELECT count(DISTINCT queue_id) FROM queue_recipient WHERE status = 0" + filter,
                                         arguments: arguments) ?? 0
            try db.execute(sql: "UPDATE queue_recipient SET next_attempt = ? WHERE status = 0" + filter, arguments: [now] + arguments)
            return count
        }
    }

    public func deleteQueued(queueID: String) async throws -> Bool {
        let removed = try await write { db in try QueueSQL.remove(db, column: "queue_id", value: queueID) }
        if let key = removed.blob { blobs.remove(key) }
        return removed.removed
    }

    public func releaseLeases(_ recipientIDs: [Int64]) async throws {
        guard !recipientIDs.isEmpty else { return }
        try await write { db in
            try db.execute(sql: "UPDATE queue_recipient SET leased_until = NULL, leased_by = NULL WHERE id IN (\(recipientIDs.map { _ in "?" }.joined(separator: ",")))",
                           arguments: StatementArguments(recipientIDs))
        }
    }

    /// One process serves a SQLite store: every recipient still leased is this runner's.
    public func renewLeases(_ recipientIDs: [Int64], until: Date) async throws -> [Int64] {
        guard !recipientIDs.isEmpty else { return [] }
        let end = until.timeIntervalSince1970
        return try await write { db in
            try Int64.fetchAll(db, sql: """
                UPDATE queue_recipient SET leased_until = ? WHERE status = 0 AND leased_until IS NOT NULL
                  AND id IN (\(recipientIDs.map { _ in "?" }.joined(separator: ","))) RETURNING id
                """, arguments: StatementArguments([end]) + StatementArguments(recipientIDs))
        }
    }

    public func nextQueueAttempt() async throws -> Date? {
        try await read { db in
            try Double.fetchOne(db, sql: "SELECT min(max(next_attempt, coalesce(leased_until, 0))) FROM queue_recipient WHERE status = 0")
                .map { Date(timeIntervalSince1970: $0) }
        }
    }

    // MARK: DKIM keys

    public func addDKIMKey(_ key: DKIMKeyRecord) async throws {
        try await write { db in
            if try Int.fetchOne(db, sql: "SELECT 1 FROM dkim_key WHERE domain = ? AND selector = ?", arguments: [key.domain, key.selector]) != nil {
                throw StoreError.alreadyExists("DKIM selector \(key.selector) of \(key.domain)")
            }
            try db.execute(sql: "INSERT INTO dkim_key(domain, selector, algorithm, private_key, created) VALUES (?, ?, ?, ?, ?)",
                           arguments: [key.domain, key.selector, key.algorithm, key.privateKey, key.created.timeIntervalSince1970])
        }
        try directoryCache.bump()
    }

    public func dkimKeys(domain: String?) async throws -> [DKIMKeyRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM dkim_key WHERE ?1 IS NULL OR domain = ?1 ORDER BY domain, created DESC, selector",
                             arguments: [domain]).map {
                DKIMKeyRecord(domain: $0["domain"], selector: $0["selector"], algorithm: $0["algorithm"], privateKey: $0["private_key"],
                              created: Date(timeIntervalSince1970: $0["created"]))
            }
        }
    }

    public func removeDKIMKey(domain: String, selector: String) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM dkim_key WHERE domain = ? AND selector = ?", arguments: [domain, selector])
            guard db.changesCount > 0 else { throw StoreError.notFound("DKIM selector \(selector) of \(domain)") }
        }
        try directoryCache.bump()
    }
}
