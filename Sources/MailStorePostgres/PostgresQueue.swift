import Foundation
import MailCore
import MailStore
import PostgresNIO

/// The outbound queue on PostgreSQL, with the same rules as the SQLite backend's.
extension PostgresMailStore: QueueStore {
    /// Queue rows for a delivery's remote recipients (inside the delivery's transaction).
    func insertQueued(_ db: PostgresConnection, messageID: Int64, delivery: Delivery, now: Double) async throws {
        let queueID = delivery.queueID.isEmpty ? BlobStore.newKey() : delivery.queueID
        guard let row = try await one("""
            INSERT INTO queue(queue_id, message_id, created) VALUES (\(queueID), \(messageID), \(now)) RETURNING id
            """, on: db, as: Int64.self) else { throw StoreError.invalid("queue row not written") }
        func domain(_ r: StoredEnvelope.Recipient) -> String { r.address.split(separator: "@").last.map { $0.lowercased() } ?? "" }
        for r in delivery.remoteRecipients {
            let notify = r.notify?.joined(separator: ",")
            try await execute("""
                INSERT INTO queue_recipient(queue_id, address, domain, notify, orcpt, next_attempt)
                VALUES (\(row), \(r.address), \(domain(r)), \(notify), \(r.originalRecipient), \(now))
                """, on: db)
        }
        // Local recipients that asked for a success notice: already delivered, waiting for their notice.
        for r in delivery.deliveredNotices {
            let notify = r.notify?.joined(separator: ",")
            try await execute("""
                INSERT INTO queue_recipient(queue_id, address, domain, notify, orcpt, next_attempt, status, attempts, last_attempt, last_reply)
                VALUES (\(row), \(r.address), \(domain(r)), \(notify), \(r.originalRecipient), \(now), 1, 1, \(now),
                        '250 2.0.0 Delivered to the mailbox')
                """, on: db)
        }
    }

    /// Removes a queued message, and its content when nothing else refers to it; false when there was none.
    func removeQueued(_ db: PostgresConnection, id: Int64? = nil, queueID: String? = nil) async throws -> Bool {
        guard let messageID = try await one("""
            DELETE FROM queue WHERE id = \(id) OR queue_id = \(queueID) RETURNING message_id
            """, on: db, as: Int64.self) else { return false }
        try await execute("DELETE FROM message WHERE id = \(messageID) AND refcount <= 0", on: db)
        return true
    }

    /// Inline contents up to this size come with the queue listing (one read fewer per delivery).
    static let prefetchLimit: Int64 = 32 * 1024

    /// Queued messages with their recipients; `withContent`: small inline contents too.
    func queued(_ db: PostgresConnection?, ids: [Int64], withContent: Bool) async throws -> [QueuedMessage] {
        guard !ids.isEmpty else { return [] }
        let limit = withContent ? Self.prefetchLimit : -1
        let rows = try await all("""
            SELECT q.id, q.queue_id, q.message_id, q.created, q.delay_notified, m.size, m.envelope,
              CASE WHEN m.size <= \(limit) THEN c.data END
            FROM queue q JOIN message m ON m.id = q.message_id JOIN content c ON c.hash = m.content_hash
            WHERE q.id = ANY(\(ids)) ORDER BY q.id
            """, on: db, as: (Int64, String, Int64, Double, Bool, Int64, String, Data?).self)
        var byQueue: [Int64: [QueuedRecipient]] = [:]
        for r in try await all("""
            SELECT id, queue_id, address, domain, notify, orcpt, status, attempts, next_attempt, last_attempt, last_reply, remote_host
            FROM queue_recipient WHERE queue_id = ANY(\(ids)) ORDER BY id
            """, on: db, as: (Int64, Int64, String, String, String?, String?, Int32, Int32, Double, Double?, String?, String?).self) {
            byQueue[r.1, default: []].append(QueuedRecipient(
                id: r.0, address: r.2, domain: r.3, notify: r.4.map { $0.split(separator: ",").map(String.init) }, originalRecipient: r.5,
                status: QueuedRecipient.Status(rawValue: Int(r.6)) ?? .pending, attempts: Int(r.7), nextAttempt: Date(timeIntervalSince1970: r.8),
                lastAttempt: r.9.map { Date(timeIntervalSince1970: $0) }, lastReply: r.10, remoteHost: r.11))
        }
        return rows.map { row in
            let envelope = (try? JSONDecoder().decode(StoredEnvelope.self, from: Data(row.6.utf8))) ?? StoredEnvelope(mailFrom: "", recipients: [])
            return QueuedMessage(id: row.0, queueID: row.1, messageID: row.2, size: Int(row.5), envelope: envelope,
                                 created: Date(timeIntervalSince1970: row.3), delayNotified: row.4, recipients: byQueue[row.0] ?? [],
                                 content: row.7.map(Array.init))
        }
    }

    /// With `dueBy`: the due recipients nobody holds are leased in one statement, skipping rows another node's scan
    /// has locked at that moment (FOR UPDATE SKIP LOCKED), so that two nodes scanning together split the work.
    public func queuedMessages(dueBy: Date?, after: Int64, limit: Int) async throws -> [QueuedMessage] {
        guard let dueBy else {
            let ids = try await column("SELECT id FROM queue WHERE id > \(after) ORDER BY id LIMIT \(Int64(limit))", as: Int64.self)
            return try await queued(nil, ids: ids, withContent: false)
        }
        let due = dueBy.timeIntervalSince1970, until = due + queueLease, token = node
        return try await transaction { [self] db in
            let ids = try await column("""
                SELECT q.id FROM queue q WHERE q.id > \(after) AND (
                  EXISTS (SELECT 1 FROM queue_recipient r WHERE r.queue_id = q.id AND r.status = 0 AND r.next_attempt <= \(due)
                          AND coalesce(r.leased_until, 0) <= \(due))
                  OR NOT EXISTS (SELECT 1 FROM queue_recipient r WHERE r.queue_id = q.id AND r.status = 0))
                ORDER BY q.id LIMIT \(Int64(limit))
                """, on: db, as: Int64.self)
            guard !ids.isEmpty else { return [] }
            let mine = Set(try await column("""
                UPDATE queue_recipient SET leased_until = \(until), leased_by = \(token)
                WHERE id IN (SELECT id FROM queue_recipient WHERE queue_id = ANY(\(ids)) AND status = 0 AND next_attempt <= \(due)
                             AND coalesce(leased_until, 0) <= \(due) FOR UPDATE SKIP LOCKED)
                RETURNING id
                """, on: db, as: Int64.self))
            var elsewhere: [Int64: Double] = [:]
            for (id, leased) in try await all("""
                SELECT id, leased_until FROM queue_recipient WHERE queue_id = ANY(\(ids)) AND status = 0 AND leased_until > \(due)
                """, on: db, as: (Int64, Double).self) {
                elsewhere[id] = leased
            }
            // Due for this caller: exactly what it leased. A recipient another scan holds (or is taking at this moment,
            // not yet committed) shows that lease's end.
            return try await queued(db, ids: ids, withContent: true).map { QueueLease.showing($0, dueBy: dueBy, mine: mine, elsewhere: elsewhere, duration: queueLease) }
        }
    }

    public func queuedMessage(queueID: String) async throws -> QueuedMessage? {
        guard let id = try await one("SELECT id FROM queue WHERE queue_id = \(queueID)", as: Int64.self) else { return nil }
        return try await queued(nil, ids: [id], withContent: false).first
    }

    /// A recipient whose lease another node has taken meanwhile (this node's ran out) is that node's to record: this
    /// node's failure or deferral for it is dropped, so that a late node cannot fail (and bounce) what the other is
    /// delivering. A delivery is recorded all the same: it happened, and the other node's next lease renewal then finds
    /// the recipient done and does not send it again if it has not yet.
    public func recordAttempts(_ attempts: [DeliveryAttempt], completing message: Int64) async throws -> QueuedMessage? {
        let now = clock.now.timeIntervalSince1970, holder = node
        return try await transaction { [self] db -> QueuedMessage? in
            for a in attempts {
                let (status, next) = a.outcome.recorded(now: now)
                try await execute("""
                    UPDATE queue_recipient SET status = \(Int32(status.rawValue)), attempts = attempts + 1, next_attempt = \(next),
                      last_attempt = \(now), last_reply = \(a.reply), remote_host = coalesce(\(a.remoteHost), remote_host),
                      notify = CASE WHEN \(a.notifyPassedOn) THEN NULL ELSE notify END, leased_until = NULL, leased_by = NULL
                    WHERE id = \(a.recipientID) AND status = 0 AND (leased_by IS NULL OR leased_by = \(holder) OR \(status == .delivered))
                    """, on: db)
            }
            try await insertLog(db, attempts.compactMap(\.event))
            guard let (pending, failed, successWanted) = try await all("""
                SELECT count(*) FILTER (WHERE status = 0), count(*) FILTER (WHERE status = 2),
                  count(*) FILTER (WHERE status = 1 AND notify LIKE '%SUCCESS%')
                FROM queue_recipient WHERE queue_id = \(message)
                """, on: db, as: (Int64, Int64, Int64).self).first, pending == 0 else { return nil }
            if failed == 0 && successWanted == 0 {
                _ = try await removeQueued(db, id: message)
                return nil
            }
            return try await queued(db, ids: [message], withContent: false).first
        }
    }

    public func completeQueued(id: Int64, notification: Delivery?) async throws {
        try await committedChange(notification) { [self] db in try await removeQueued(db, id: id) }
    }

    public func noteDelay(id: Int64, notification: Delivery) async throws {
        try await committedChange(notification) { [self] db in
            try await execute("UPDATE queue SET delay_notified = true WHERE id = \(id) AND NOT delay_notified RETURNING 1", on: db) > 0
        }
    }

    /// Runs `change` and, when it changed something, stores `notification` in the same transaction.
    private func committedChange(_ notification: Delivery?, _ change: @escaping @Sendable (PostgresConnection) async throws -> Bool) async throws {
        let now = clock.now.timeIntervalSince1970
        let touched = try await transaction { [self] db -> [MailboxID]? in
            guard try await change(db), let notification else { return nil }
            return try await insert(db, notification, now: now).placements.map(\.mailbox)
        }
        if let touched {
            changes.notify(touched)
            if notification?.isQueued == true { queueChanges.notify() }
        }
    }

    public func retryQueued(queueID: String?) async throws -> Int {
        let now = clock.now.timeIntervalSince1970
        return Int(try await transaction { [self] db in
            try await one("""
                WITH made_due AS (
                  UPDATE queue_recipient SET next_attempt = \(now)
                  WHERE status = 0 AND (\(queueID)::text IS NULL OR queue_id = (SELECT id FROM queue WHERE queue_id = \(queueID)))
                  RETURNING queue_id)
                SELECT count(DISTINCT queue_id) FROM made_due
                """, on: db, as: Int64.self) ?? 0
        })
    }

    public func deleteQueued(queueID: String) async throws -> Bool {
        try await transaction { [self] db in try await removeQueued(db, queueID: queueID) }
    }

    public func releaseLeases(_ recipientIDs: [Int64]) async throws {
        guard !recipientIDs.isEmpty else { return }
        try await transaction { [self] db in
            // Only this node's own: a lease that ran out and was taken by another node stays theirs.
            try await execute("UPDATE queue_recipient SET leased_until = NULL, leased_by = NULL WHERE id = ANY(\(recipientIDs)) AND leased_by = \(node)",
                              on: db)
        }
    }

    /// Only leases this node holds (`leased_by`): one that ran out and was taken by another node stays theirs.
    public func renewLeases(_ recipientIDs: [Int64], until: Date) async throws -> [Int64] {
        guard !recipientIDs.isEmpty else { return [] }
        let (end, holder) = (until.timeIntervalSince1970, node)
        return try await transaction { [self] db in
            try await column("""
                UPDATE queue_recipient SET leased_until = \(end)
                WHERE id = ANY(\(recipientIDs)) AND status = 0 AND leased_by = \(holder) RETURNING id
                """, on: db, as: Int64.self)
        }
    }

    public func nextQueueAttempt() async throws -> Date? {
        try await one("SELECT min(greatest(next_attempt, coalesce(leased_until, 0))) FROM queue_recipient WHERE status = 0", as: Double?.self)?.map { Date(timeIntervalSince1970: $0) }
    }

    public func observeQueue(_ observer: @escaping @Sendable () -> Void) {
        queueChanges.add(observer)
    }
}

extension PostgresMailStore: DKIMKeyStore {
    public func addDKIMKey(_ key: DKIMKeyRecord) async throws {
        try await transaction { [self] db in
            guard try await execute("""
                INSERT INTO dkim_key(domain, selector, algorithm, private_key, created)
                VALUES (\(key.domain), \(key.selector), \(key.algorithm), \(key.privateKey), \(key.created.timeIntervalSince1970))
                ON CONFLICT DO NOTHING RETURNING 1
                """, on: db) > 0 else { throw StoreError.alreadyExists("DKIM selector \(key.selector) of \(key.domain)") }
        }
    }

    public func dkimKeys(domain: String?) async throws -> [DKIMKeyRecord] {
        try await all("""
            SELECT domain, selector, algorithm, private_key, created FROM dkim_key
            WHERE \(domain)::text IS NULL OR domain = \(domain) ORDER BY domain, created DESC, selector
            """, as: (String, String, String, String, Double).self).map {
            DKIMKeyRecord(domain: $0.0, selector: $0.1, algorithm: $0.2, privateKey: $0.3, created: Date(timeIntervalSince1970: $0.4))
        }
    }

    public func removeDKIMKey(domain: String, selector: String) async throws {
        try await transaction { [self] db in
            guard try await execute("DELETE FROM dkim_key WHERE domain = \(domain) AND selector = \(selector) RETURNING 1", on: db) > 0 else {
                throw StoreError.notFound("DKIM selector \(selector) of \(domain)")
            }
        }
    }
}

extension PostgresMailStore: BayesStore {
    public func trainBayes(owner: AccountID?, key: String, tokens: [Int64], spam: Bool) async throws -> Bool {
        let id = owner ?? 0
        let unique = Array(Set(tokens))
        return try await transaction { [self] db in
            // The owner's totals row, made if need be and locked: one training of an owner at a time.
            try await execute("INSERT INTO bayes_total(owner) VALUES (\(id)) ON CONFLICT DO NOTHING", on: db)
            _ = try await one("SELECT owner FROM bayes_total WHERE owner = \(id) FOR UPDATE", on: db, as: Int64.self)
            let previous = try await one("SELECT spam FROM bayes_trained WHERE owner = \(id) AND message_key = \(key)", on: db, as: Bool.self)
            if previous == spam { return false }
            let (addSpam, addHam): (Int64, Int64) = spam ? (1, 0) : (0, 1)
            // Trained the other way before: those counts are taken back.
            let (undoSpam, undoHam): (Int64, Int64) = previous == nil ? (0, 0) : (addHam, addSpam)
            try await execute("""
                UPDATE bayes_total SET spam = greatest(0, spam - \(undoSpam)) + \(addSpam), ham = greatest(0, ham - \(undoHam)) + \(addHam)
                WHERE owner = \(id)
                """, on: db)
            try await execute("""
                INSERT INTO bayes_token(owner, token, spam, ham) SELECT \(id), t, \(addSpam), \(addHam) FROM unnest(\(unique)::bigint[]) AS t
                ON CONFLICT (owner, token) DO UPDATE SET spam = greatest(0, bayes_token.spam - \(undoSpam)) + \(addSpam),
                  ham = greatest(0, bayes_token.ham - \(undoHam)) + \(addHam)
                """, on: db)
            try await execute("""
                INSERT INTO bayes_trained(owner, message_key, spam) VALUES (\(id), \(key), \(spam))
                ON CONFLICT (owner, message_key) DO UPDATE SET spam = excluded.spam
                """, on: db)
            return true
        }
    }

    public func bayesTraining(owner: AccountID?, key: String) async throws -> Bool? {
        try await one("SELECT spam FROM bayes_trained WHERE owner = \(owner ?? 0) AND message_key = \(key)", as: Bool.self)
    }

    public func bayesCounts(owner: AccountID?, tokens: [Int64]) async throws -> BayesCounts {
        let owners: [Int64] = owner.map { [0, $0] } ?? [0]
        let unique = Array(Set(tokens))
        var out = BayesCounts()
        for (spam, ham) in try await all("SELECT spam, ham FROM bayes_total WHERE owner = ANY(\(owners))", as: (Int64, Int64).self) {
            out.spamMessages += Int(spam)
            out.hamMessages += Int(ham)
        }
        guard out.spamMessages + out.hamMessages > 0, !unique.isEmpty else { return out }
        for (token, spam, ham) in try await all("""
            SELECT token, spam, ham FROM bayes_token WHERE owner = ANY(\(owners)) AND token = ANY(\(unique))
            """, as: (Int64, Int64, Int64).self) {
            let old = out.tokens[token] ?? (0, 0)
            out.tokens[token] = (old.spam + Int(spam), old.ham + Int(ham))
        }
        return out
    }
}

extension PostgresMailStore: DeliveryLogStore {
    /// Writes events inside the caller's transaction.
    func insertLog(_ db: PostgresConnection, _ events: [DeliveryEvent]) async throws {
        for e in events {
            let detail = String(e.detail.prefix(2000))
            try await execute("""
                INSERT INTO delivery_log(at, queue_id, message_id, kind, detail, related)
                VALUES (\(e.at.timeIntervalSince1970), \(e.queueID), \(e.messageID), \(e.kind.rawValue), \(detail), \(e.related))
                """, on: db)
        }
    }

    public func log(_ events: [DeliveryEvent]) async throws {
        guard !events.isEmpty else { return }
        try await transaction { [self] db in try await insertLog(db, events) }
    }

    public func deliveryLog(id: String) async throws -> [DeliveryEvent] {
        let bare = id.hasPrefix("<") && id.hasSuffix(">") ? String(id.dropFirst().dropLast()) : id
        // The queue ids that match, directly or through the Message-ID of their `received` event, then those of the
        // messages made about them (bounces, delay notices, tester reports).
        var queueIDs = try await column("SELECT DISTINCT queue_id FROM delivery_log WHERE queue_id = \(bare) OR message_id = \(bare) LIMIT 100", as: String.self)
        guard !queueIDs.isEmpty else { return [] }
        queueIDs += try await column("SELECT DISTINCT queue_id FROM delivery_log WHERE related = ANY(\(queueIDs)) LIMIT 100", as: String.self)
            .filter { !queueIDs.contains($0) }
        return try await all("""
            SELECT at, queue_id, message_id, kind, detail, related FROM delivery_log
            WHERE queue_id = ANY(\(queueIDs)) ORDER BY at, id LIMIT 10000
            """, as: (Double, String, String?, String, String, String?).self).map {
            DeliveryEvent(at: Date(timeIntervalSince1970: $0.0), queueID: $0.1, messageID: $0.2, kind: DeliveryEvent.Kind(rawValue: $0.3) ?? .received,
                          detail: $0.4, related: $0.5)
        }
    }

    public func pruneDeliveryLog(before date: Date) async throws -> Int {
        let cutoff = date.timeIntervalSince1970
        return try await transaction { [self] db in try await execute("DELETE FROM delivery_log WHERE at < \(cutoff) RETURNING 1", on: db) }
    }
}

extension PostgresMailStore: StoreHousekeeping {
    public var inlineLimit: Int { Self.inlineLimit }

    /// Collects garbage soon, in a task of its own: the change that asked is answered without waiting for it, and
    /// asks made while one runs are served by one more run after it.
    func collectGarbageSoon() {
        guard garbage.enqueue(()) else { return }
        // Each run takes every ask made so far; the queue stops running when a run finds none waiting.
        Task { [self] in while !garbage.take().isEmpty { try? await collectGarbage() } }
    }

    /// Removes messages no mailbox or queue entry refers to any more (their chunks go with them).
    /// Messages no mailbox and no queue entry holds. Their counts say so, and the rows themselves confirm it: a count
    /// that drifted would otherwise stop every collection at the first foreign key.
    public func collectGarbage() async throws {
        _ = try await column("""
            DELETE FROM message m WHERE refcount <= 0
              AND NOT EXISTS (SELECT 1 FROM mailbox_message mm WHERE mm.message_id = m.id)
              AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id)
            RETURNING id
            """, as: Int64.self)
    }

    /// Removes what sessions that died mid-message left in the spool (nothing there was ever acknowledged), older than
    /// `BlobStore.leftoverAge`: an admin command beside the server may be spooling younger ones.
    public func cleanTemporaryFiles() throws {
        for folder in [blobs.tmp, blobs.root] { BlobStore.removeLeftovers(in: folder, now: clock.now) }
    }

    /// Spooled contents are removed once their message is in the database; none can be orphaned there.
    public func removeOrphanBlobs() async throws -> Int { 0 }
}
