import Foundation
import MailCore
import MailStore
import PostgresDatabase
import PostgresNIO

/// Mailboxes and messages on PostgreSQL. Each change is one transaction; a mailbox's row is locked by the change that
/// takes its next UID or MODSEQ, so that UIDs are handed out in commit order (a client never sees UID n+1 before n),
/// and changes that lock several mailboxes lock them in id order (no deadlock between two deliveries).
extension PostgresMailStore: MessageStore {
    /// A delivery of inline size shares a transaction with those arriving meanwhile (`PostgresCommitter`); a large
    /// one (its chunks written in the transaction) has its own.
    public func deliver(_ delivery: Delivery) async throws -> DeliveryReceipt {
        guard case .inline = delivery.content else { return try await deliverAll([delivery])[0] }
        return try await committer.submit(delivery) { [self] batch in await commitTogether(batch) }
    }

    /// One transaction for the batch, each delivery answered on its own: one to a mailbox that is gone fails alone.
    /// When the transaction fails as a whole (a deadlock with another node's batch, say), each is tried again in a
    /// transaction of its own — unless the database is unreachable, which every one of them would find too.
    func commitTogether(_ batch: [Delivery]) async -> [Result<DeliveryReceipt, Error>] {
        // Alone, the usual delivery is one statement without BEGIN and COMMIT around it.
        if batch.count == 1 {
            do { return [.success(try await deliverAll(batch)[0])] } catch { return [.failure(error)] }
        }
        let now = clock.now.timeIntervalSince1970
        // A batch of the usual deliveries is one statement too: one round trip, one implicit transaction.
        if batch.allSatisfy({ Self.usual($0) != nil }) {
            do {
                let results = try await deliverInOneStatement(batch, now: now, on: nil)
                changes.notify(results.compactMap { try? $0.get() }.flatMap { $0.placements.map(\.mailbox) })
                return results
            } catch let error as StoreUnavailable {
                return batch.map { _ in .failure(error) }
            } catch {
                // Rolled back whole (a deadlock with another node's batch, say): each again on its own, below.
            }
        }
        // Deliveries in the order they came (UIDs ascend in it); every mailbox any of them may write locked first, in
        // id order, as the one-statement delivery, COPY and `insert` lock theirs: no two transactions wait for each
        // other's mailboxes (an order by account and name here deadlocked against another node's batch).
        let order = Array(batch.indices)
        let targets = batch.flatMap(\.targets)
        let (accounts, names, uses) = (targets.map(\.account), targets.map { $0.mailbox ?? "INBOX" }, targets.map { $0.specialUse?.rawValue ?? "" })
        do {
            let results = try await transaction { [self] db in
                // A special-use target may end in INBOX (when the account has no such mailbox): both are locked.
                _ = try await column("""
                    SELECT m.id FROM mailbox m JOIN unnest(\(accounts), \(names), \(uses)) AS t(account, name, use)
                      ON m.account_id = t.account AND (m.name = t.name OR (t.use <> '' AND (m.special_use = t.use OR m.name = 'INBOX')))
                    ORDER BY m.id FOR UPDATE OF m
                    """, on: db, as: Int64.self)
                var results = [Result<DeliveryReceipt, Error>](repeating: .failure(StoreError.invalid("not delivered")), count: batch.count)
                for i in order {
                    if Self.usual(batch[i]) != nil {
                        // A missing mailbox is found before this delivery writes anything: the others go on.
                        results[i] = try await deliverInOneStatement([batch[i]], now: now, on: db)[0]
                        continue
                    }
                    // Any error of the general path leaves the transaction to be rolled back (below).
                    results[i] = .success(try await insert(db, batch[i], now: now))
                }
                return results
            }
            let receipts = results.compactMap { try? $0.get() }
            changes.notify(receipts.flatMap { $0.placements.map(\.mailbox) })
            if batch.contains(where: \.isQueued) { queueChanges.notify() }
            return results
        } catch let error as StoreUnavailable {
            return batch.map { _ in .failure(error) }
        } catch {
            if batch.count == 1 { return [.failure(error)] }
            var results: [Result<DeliveryReceipt, Error>] = []
            for delivery in batch {
                do { results.append(.success(try await deliverAll([delivery])[0])) } catch { results.append(.failure(error)) }
            }
            return results
        }
    }

    public func deliver(_ delivery: Delivery, completion: @escaping @Sendable (Result<DeliveryReceipt, Error>) -> Void) {
        Task {
            do { completion(.success(try await deliver(delivery))) } catch { completion(.failure(error)) }
        }
    }

    /// In order, each in its own transaction (UIDs ascend in that order); PostgreSQL flushes the commits of concurrent
    /// sessions together, as SQLite's group commit does.
    public func deliver(batch: [Delivery]) async throws -> [DeliveryReceipt] {
        var receipts: [DeliveryReceipt] = []
        for delivery in batch { receipts.append(try await deliver(delivery)) }
        return receipts
    }

    public func deliverAll(_ batch: [Delivery]) async throws -> [DeliveryReceipt] {
        guard !batch.isEmpty else { return [] }
        let now = clock.now.timeIntervalSince1970
        let receipts: [DeliveryReceipt]
        if batch.count == 1, Self.usual(batch[0]) != nil {
            receipts = [try await deliverInOneStatement(batch, now: now, on: nil)[0].get()]
        } else {
            receipts = try await transaction { [self] db in
                var receipts: [DeliveryReceipt] = []
                for delivery in batch { receipts.append(try await insert(db, delivery, now: now)) }
                return receipts
            }
        }
        // The spooled files are in the database now.
        for case .blob(let key, _) in batch.map(\.content) { blobs.remove(key) }
        changes.notify(receipts.flatMap { $0.placements.map(\.mailbox) })
        if batch.contains(where: \.isQueued) { queueChanges.notify() }
        return receipts
    }

    /// The usual delivery — a message of inline size to one mailbox named by its name, nothing queued — with its one
    /// target and its content; nil for any other kind (`insert` in a transaction stores those).
    static func usual(_ delivery: Delivery) -> (DeliveryTarget, [UInt8])? {
        guard case .inline(let bytes) = delivery.content, !delivery.isQueued, let target = delivery.targets.first,
              delivery.targets.allSatisfy({ $0 == target }), target.specialUse == nil,
              target.flags == nil, target.keywords == nil else { return nil }
        return (target, bytes)
    }

    /// Usual deliveries (see `usual`) as one statement, so one round trip and, outside a transaction, one implicit
    /// one: their mailboxes' rows locked in id order and updated (the next UIDs and MODSEQs handed out in the batch's
    /// order), then the contents, the messages, their placements and their log lines. A delivery whose mailbox does not
    /// exist writes nothing and is answered `notFound`; the others are stored.
    func deliverInOneStatement(_ batch: [Delivery], now: Double, on db: PostgresConnection?) async throws -> [Result<DeliveryReceipt, Error>] {
        var s = DeliverStatement(now: now)
        for (n, delivery) in batch.enumerated() {
            guard let (target, bytes) = Self.usual(delivery) else { preconditionFailure("not a usual delivery") }
            s.account.append(target.account)
            s.name.append(target.mailbox ?? "INBOX")
            s.hash.append(ByteBuffer(bytes: Self.hash(bytes)))
            s.size.append(Int64(bytes.count))
            s.content.append(ByteBuffer(bytes: bytes))
            s.envelope.append(delivery.envelope.json)
            s.flags.append(Int64(delivery.flags.rawValue))
            s.keywords.append(delivery.keywords.joined(separator: " "))
            s.internalDate.append(delivery.internalDate.timeIntervalSince1970)
            for line in delivery.log {
                s.logOf.append(Int64(n + 1))
                s.at.append(line.at.timeIntervalSince1970)
                s.queueIDs.append(line.queueID)
                s.kinds.append(line.kind.rawValue)
                s.details.append(String(line.detail.prefix(2000)))
                s.messageIDs.append(line.messageID ?? ""); s.hasMessageID.append(line.messageID != nil)
                s.related.append(line.related ?? ""); s.hasRelated.append(line.related != nil)
            }
        }
        var placed: [Int64: DeliveryReceipt] = [:]
        for (n, messageID, mailbox, uid) in try await prepared(s, on: db) {
            placed[n] = DeliveryReceipt(messageID: messageID, placements: [(mailbox, UID(UInt32(uid)))])
        }
        return batch.indices.map { i in
            if let receipt = placed[Int64(i + 1)] { return .success(receipt) }
            let target = batch[i].targets[0]
            return .failure(StoreError.notFound("mailbox \(target.mailbox ?? "INBOX") of account \(target.account)"))
        }
    }

    /// One message into its mailboxes, its log lines and the queue, inside the caller's transaction.
    func insert(_ db: PostgresConnection, _ delivery: Delivery, now: Double) async throws -> DeliveryReceipt {
        let envelope = delivery.envelope.json
        let size = Int64(delivery.content.size)
        var seenTargets = Set<DeliveryTarget>()
        var targets: [(DeliveryTarget, String)] = []
        for target in delivery.targets where seenTargets.insert(target).inserted {
            var name = target.mailbox ?? "INBOX"
            if let use = target.specialUse?.rawValue {
                name = try await one("SELECT name FROM mailbox WHERE account_id = \(target.account) AND special_use = \(use) ORDER BY id LIMIT 1",
                                     on: db, as: String.self) ?? "INBOX"
            }
            targets.append((target, name))
        }
        // Every target mailbox locked first, in id order, as COPY locks them; then the content (as the one-statement
        // delivery does: mailbox, then content), so that no two transactions take the same two locks the other way.
        _ = try await column("""
            SELECT m.id FROM mailbox m JOIN unnest(\(targets.map { $0.0.account }), \(targets.map(\.1))) AS t(account, name)
              ON m.account_id = t.account AND m.name = t.name ORDER BY m.id FOR UPDATE OF m
            """, on: db, as: Int64.self)
        let hash: Data
        switch delivery.content {
        case .inline(let bytes): hash = try await storeContent(db, bytes: bytes, size: bytes.count)
        case .blob(let key, let size): hash = try await storeContent(db, file: blobs.url(for: key), size: size)
        }
        // Its references: one per placement (the queue's is counted by the queue's trigger).
        guard let messageID = try await one("""
            INSERT INTO message(size, content_hash, received, envelope, refcount)
            VALUES (\(size), \(hash), \(now), \(envelope), \(Int64(targets.count))) RETURNING id
            """, on: db, as: Int64.self) else { throw StoreError.invalid("message row not written") }
        try await insertLog(db, delivery.log)
        var placements: [(MailboxID, UID)] = []
        let keywords = delivery.keywords.joined(separator: " ")
        let flags = Int64(delivery.flags.rawValue), internalDate = delivery.internalDate.timeIntervalSince1970
        for (target, name) in targets {
            guard let (mailbox, uid, modseq) = try await all("""
                UPDATE mailbox SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1, message_count = message_count + 1
                WHERE account_id = \(target.account) AND name = \(name) RETURNING id, uidnext - 1, highestmodseq
                """, on: db, as: (Int64, Int64, Int64).self).first else {
                throw StoreError.notFound("mailbox \(name) of account \(target.account)")
            }
            let (flags, keywords) = (target.flags.map { Int64($0.rawValue) } ?? flags,
                                     target.keywords.map { $0.joined(separator: " ") } ?? keywords)
            try await execute("""
                INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date, saved)
                VALUES (\(mailbox), \(uid), \(messageID), \(modseq), \(flags), \(keywords), \(internalDate), \(now))
                """, on: db)
            placements.append((mailbox, UID(UInt32(uid))))
        }
        if delivery.isQueued { try await insertQueued(db, messageID: messageID, delivery: delivery, now: now) }
        return DeliveryReceipt(messageID: messageID, placements: placements)
    }

    public func mailboxes(account: AccountID) async throws -> [MailboxInfo] {
        try await all("""
            SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq, message_count
            FROM mailbox WHERE account_id = \(account) ORDER BY (name = 'INBOX') DESC, name
            """, as: (Int64, String, String?, Int64, Int64, Int64, Int64).self).map {
            MailboxInfo(id: $0.0, name: $0.1, specialUse: $0.2.flatMap(SpecialUse.init), uidValidity: UIDValidity(rawValue: UInt32($0.3)),
                        uidNext: UID(UInt32($0.4)), highestModSeq: ModSeq(rawValue: $0.5), messages: Int($0.6))
        }
    }

    public func createMailbox(account: AccountID, name: String) async throws -> MailboxID {
        guard !name.isEmpty, !name.contains("\0") else { throw StoreError.invalid("invalid mailbox name") }
        let canonical = name.uppercased() == "INBOX" ? "INBOX" : name
        let now = clock.now.timeIntervalSince1970
        let (id, created) = try await transaction { [self] db -> (MailboxID, Bool) in
            // The account's row first: two sessions creating the same name take turns.
            _ = try await one("SELECT id FROM account WHERE id = \(account) FOR UPDATE", on: db, as: Int64.self)
            if let id = try await one("SELECT id FROM mailbox WHERE account_id = \(account) AND name = \(canonical)", on: db, as: Int64.self) {
                return (id, false)
            }
            return (try await Self.createMailbox(db, account: account, name: canonical, specialUse: nil, now: now, logger: logger), true)
        }
        if created { treeChanges.notify(account) }
        return id
    }

    public func messages(mailbox: MailboxID) async throws -> [StoredMessage] {
        try await messages(nil, mailbox: mailbox, since: nil)
    }

    /// Messages of a mailbox in UID order, all or those changed after `since`.
    func messages(_ db: PostgresConnection?, mailbox: MailboxID, since: ModSeq?) async throws -> [StoredMessage] {
        let after = since?.rawValue ?? -1
        return try await all("""
            SELECT mm.uid, mm.message_id, m.size, mm.internal_date, mm.flags, mm.keywords, mm.modseq, mm.saved
            FROM mailbox_message mm JOIN message m ON m.id = mm.message_id
            WHERE mm.mailbox_id = \(mailbox) AND mm.modseq > \(after) ORDER BY mm.uid
            """, on: db, as: MessageRow.self).map { Self.storedMessage($0, mailbox: mailbox) }
    }

    /// uid, message_id, size, internal_date, flags, keywords, modseq, saved.
    typealias MessageRow = (Int64, Int64, Int64, Double, Int64, String, Int64, Double)

    static func storedMessage(_ row: MessageRow, mailbox: MailboxID) -> StoredMessage {
        let keywords = row.5.isEmpty ? [] : row.5.split(separator: " ").map(String.init)
        return StoredMessage(mailbox: mailbox, uid: UID(UInt32(row.0)), messageID: row.1, size: Int(row.2),
                             internalDate: Date(timeIntervalSince1970: row.3), flags: MessageFlags(rawValue: Int(row.4)), keywords: keywords,
                             modSeq: ModSeq(rawValue: row.6), savedDate: Date(timeIntervalSince1970: row.7))
    }

    public func mailboxState(account: AccountID, name: String) async throws -> (id: MailboxID, state: MailboxChanges)? {
        guard let row = try await prepared(MailboxStateStatement(account: account, name: name), on: nil).first else { return nil }
        var state = MailboxChanges(uidValidity: UIDValidity(rawValue: UInt32(row.1)), uidNext: UID(UInt32(row.2)),
                                   highestModSeq: ModSeq(rawValue: row.3), changed: [], expunged: [])
        state.firstRecent = UID(UInt32(row.4))
        return (row.0, state)
    }

    public func mailboxChanges(mailbox: MailboxID, since: ModSeq?) async throws -> MailboxChanges {
        // One statement, so one snapshot (READ COMMITTED gives each statement its own, as SQLite's read transaction
        // gives one): the mailbox's state (kind 0), the messages added or changed after `since` (1) and the UIDs
        // expunged after it (2), in one round trip. Nothing changed (a NOOP, the check before a FETCH): the state row
        // alone, both lists read from their (mailbox, modseq) indexes.
        let rows = try await prepared(ChangesStatement(mailbox: mailbox, after: since?.rawValue ?? -1, withExpunged: since != nil), on: nil)
        guard let state = rows.first(where: { $0.0 == 0 }) else { throw StoreError.notFound("mailbox") }
        var changes = MailboxChanges(uidValidity: UIDValidity(rawValue: UInt32(state.1)), uidNext: UID(UInt32(state.2)),
                                     highestModSeq: ModSeq(rawValue: state.7), changed: [], expunged: [])
        for row in rows {
            switch row.0 {
            case 1: changes.changed.append(Self.storedMessage((row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8), mailbox: mailbox))
            case 2: changes.expunged.append(UID(UInt32(row.1)))
            default: break
            }
        }
        return changes
    }

    public func deleteMailbox(account: AccountID, name: String) async throws {
        guard name != "INBOX" else { throw StoreError.invalid("INBOX cannot be deleted") }
        let id = try await transaction { [self] db -> MailboxID in
            guard let id = try await one("DELETE FROM mailbox WHERE account_id = \(account) AND name = \(name) RETURNING id",
                                         on: db, as: Int64.self) else { throw StoreError.notFound("mailbox \(name)") }
            return id
        }
        changes.notify(id)
        treeChanges.notify(account)
        // Housekeeping after the change was made: its failure does not undo the answer (a later run collects).
        collectGarbageSoon()
    }

    public func usage(account: AccountID) async throws -> Int64 {
        try await one("""
            SELECT coalesce(sum(m.size), 0)::bigint FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id
            JOIN message m ON m.id = mm.message_id WHERE b.account_id = \(account)
            """, as: Int64.self) ?? 0
    }

    public func renameMailbox(account: AccountID, from: String, to: String) async throws {
        guard to != "INBOX", !to.isEmpty else { throw StoreError.invalid("cannot rename to \(to)") }
        let now = clock.now.timeIntervalSince1970
        let emptied = try await transaction { [self] db -> MailboxID? in
            _ = try await one("SELECT id FROM account WHERE id = \(account) FOR UPDATE", on: db, as: Int64.self)
            guard try await one("SELECT id FROM mailbox WHERE account_id = \(account) AND name = \(to)", on: db, as: Int64.self) == nil else {
                throw StoreError.alreadyExists("mailbox \(to)")
            }
            guard let id = try await one("SELECT id FROM mailbox WHERE account_id = \(account) AND name = \(from) FOR UPDATE",
                                         on: db, as: Int64.self) else { throw StoreError.notFound("mailbox \(from)") }
            if from == "INBOX" {
                // RFC 9051 §6.3.6: renaming INBOX moves its messages to the new mailbox; INBOX stays, empty.
                let target = try await Self.createMailbox(db, account: account, name: to, specialUse: nil, now: now, logger: logger)
                try await execute("UPDATE mailbox_message SET mailbox_id = \(target) WHERE mailbox_id = \(id)", on: db)
                // Its UIDs and MODSEQs go on from INBOX's (its messages keep theirs; RFC 7162: never a lower MODSEQ).
                try await execute("""
                    UPDATE mailbox SET (uidnext, highestmodseq) = (SELECT uidnext, highestmodseq FROM mailbox WHERE id = \(id)) WHERE id = \(target)
                    """, on: db)
                try await execute("UPDATE mailbox SET uidvalidity = uidvalidity + 1 WHERE id = \(id)", on: db)
                return id
            }
            // The mailbox and its children (`a` → `b` renames `a/x` → `b/x`).
            // Lengths in characters, as PostgreSQL's substr and left count them.
            let prefix = from + "/", length = Int32(from.unicodeScalars.count), prefixLength = Int32(prefix.unicodeScalars.count)
            try await execute("""
                UPDATE mailbox SET name = \(to) || substr(name, \(length) + 1)
                WHERE account_id = \(account) AND (id = \(id) OR left(name, \(prefixLength)) = \(prefix))
                """, on: db)
            return nil
        }
        if let emptied { changes.notify(emptied) }
        treeChanges.notify(account)
    }

    public func setSubscribed(account: AccountID, name: String, _ subscribed: Bool) async throws {
        try await transaction { [self] db in
            if subscribed {
                try await execute("INSERT INTO subscription(account_id, name) VALUES (\(account), \(name)) ON CONFLICT DO NOTHING", on: db)
            } else {
                try await execute("DELETE FROM subscription WHERE account_id = \(account) AND name = \(name)", on: db)
            }
        }
        treeChanges.notify(account)
    }

    public func subscriptions(account: AccountID) async throws -> [String] {
        try await column("SELECT name FROM subscription WHERE account_id = \(account) ORDER BY name", as: String.self)
    }

    public func storeFlags(mailbox: MailboxID, uids: [UID], operation: FlagOperation, flags: MessageFlags, keywords: [String],
                           unchangedSince: ModSeq?) async throws -> (changed: [StoredMessage], failed: [UID]) {
        // One statement (alone, its own transaction): the mailbox's row locked first (as every change to its messages
        // does), its messages read as they are now (locked too: one changed by a transaction that held the mailbox while
        // this statement waited is read in its new state), the new flags worked out, each changed message given its own
        // MODSEQ in the order asked, and written.
        let statement = StoreFlagsStatement(
            mailbox: mailbox, uids: uids.map { Int64($0.rawValue) }, operation: operation, flags: Int64(flags.rawValue),
            keywords: keywords, unchangedSince: unchangedSince.map(\.rawValue))
        let rows = try await writes.runStatement(self) { [self] db in try await prepared(statement, on: db) }
        let result = (rows.filter { !$0.8 }.map { Self.storedMessage(($0.0, $0.1, $0.2, $0.3, $0.4, $0.5, $0.6, $0.7), mailbox: mailbox) },
                      rows.filter(\.8).map { UID(UInt32($0.0)) })
        if !result.0.isEmpty { changes.notify(mailbox) }
        return result
    }

    public func expunge(mailbox: MailboxID, uids: [UID], onlyDeleted: Bool) async throws -> [UID] {
        let removed = try await writes.runStatement(self) { [self] db in
            try await expunge(db, mailbox: mailbox, uids: uids, onlyDeleted: onlyDeleted)
        }
        if !removed.isEmpty {
            changes.notify(mailbox)
            collectGarbageSoon()
        }
        return removed
    }

    /// Removes the UIDs and records them for QRESYNC, all under one new MODSEQ, in one statement (inside the caller's
    /// transaction, or alone): the mailbox's row locked first, then the placements removed (a placement changed or
    /// removed by another transaction meanwhile is seen as it is now, as by a statement of its own), then the MODSEQ
    /// raised if any went.
    func expunge(_ db: PostgresConnection?, mailbox: MailboxID, uids: [UID], onlyDeleted: Bool = false) async throws -> [UID] {
        guard !uids.isEmpty else { return [] }
        let wanted = uids.map { Int64($0.rawValue) }
        // Flags that must be set for a message to go (none: any goes).
        let required = onlyDeleted ? Int64(MessageFlags.deleted.rawValue) : 0
        // The mailbox's row locked first (as every write to it does), then the placements removed, then one new MODSEQ
        // for what went (none when nothing did).
        let rows = try await all("""
            WITH locked AS (
              SELECT id FROM mailbox WHERE id = \(mailbox) FOR UPDATE
            ), gone AS (
              DELETE FROM mailbox_message WHERE mailbox_id = \(mailbox) AND uid = ANY(\(wanted)) AND EXISTS (SELECT 1 FROM locked)
                AND flags & \(required) = \(required)
              RETURNING uid
            ), box AS (
              UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = \(mailbox) AND EXISTS (SELECT 1 FROM gone)
              RETURNING highestmodseq
            ), recorded AS (
              INSERT INTO expunged(mailbox_id, uid, modseq) SELECT \(mailbox), gone.uid, box.highestmodseq FROM gone, box
              ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq
            )
            SELECT locked.id, gone.uid FROM locked LEFT JOIN gone ON true
            """, on: db, as: (Int64, Int64?).self)
        guard !rows.isEmpty else { throw StoreError.notFound("mailbox") }
        let gone = Set(rows.compactMap(\.1))
        return uids.filter { gone.contains(Int64($0.rawValue)) }
    }

    public func copy(from: MailboxID, uids: [UID], to: MailboxID, move: Bool, all requireAll: Bool) async throws -> (pairs: [(UID, UID)], uidValidity: UIDValidity) {
        let now = clock.now.timeIntervalSince1970
        let result = try await writes.run(self) { [self] db -> ([(UID, UID)], UIDValidity) in
            let locked = try await all("SELECT id, uidvalidity FROM mailbox WHERE id IN (\(from), \(to)) ORDER BY id FOR UPDATE",
                                       on: db, as: (Int64, Int64).self)
            guard let validity = locked.first(where: { $0.0 == to })?.1 else { throw StoreError.notFound("target mailbox") }
            let wanted = uids.map { Int64($0.rawValue) }
            var rows: [Int64: (Int64, Int64, String, Double)] = [:]
            for r in try await all("""
                SELECT uid, message_id, flags, keywords, internal_date FROM mailbox_message WHERE mailbox_id = \(from) AND uid = ANY(\(wanted))
                """, on: db, as: (Int64, Int64, Int64, String, Double).self) {
                rows[r.0] = (r.1, r.2, r.3, r.4)
            }
            // In the order given: each copy the next UID and its own MODSEQ, all taken from the target at once, then
            // written by one statement (a COPY of 10,000 messages was 20,000 round trips).
            let found = uids.filter { rows[Int64($0.rawValue)] != nil }
            if requireAll && found.count < uids.count { throw MessagesExpunged(uids.filter { rows[Int64($0.rawValue)] == nil }) }
            var pairs: [(UID, UID)] = []
            if !found.isEmpty {
                let count = Int64(found.count)
                guard let (next, highest) = try await all("""
                    UPDATE mailbox SET uidnext = uidnext + \(count), highestmodseq = highestmodseq + \(count),
                      message_count = message_count + \(count) WHERE id = \(to)
                    RETURNING uidnext, highestmodseq
                    """, on: db, as: (Int64, Int64).self).first else { throw StoreError.notFound("target mailbox") }
                let (firstUID, firstModSeq) = (next - count, highest - count + 1)
                var newUIDs: [Int64] = [], messageIDs: [Int64] = [], modseqs: [Int64] = [], flagList: [Int64] = []
                var keywordList: [String] = [], dates: [Double] = []
                for (i, uid) in found.enumerated() {
                    let (messageID, flags, keywords, internalDate) = rows[Int64(uid.rawValue)]!
                    newUIDs.append(firstUID + Int64(i))
                    messageIDs.append(messageID)
                    modseqs.append(firstModSeq + Int64(i))
                    flagList.append(flags)
                    keywordList.append(keywords)
                    dates.append(internalDate)
                    pairs.append((uid, UID(UInt32(firstUID + Int64(i)))))
                }
                try await execute("""
                    INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date, saved)
                    SELECT \(to), u.uid, u.message_id, u.modseq, u.flags, u.keywords, u.internal_date, \(now)
                    FROM unnest(\(newUIDs)::bigint[], \(messageIDs)::bigint[], \(modseqs)::bigint[], \(flagList)::bigint[],
                                \(keywordList)::text[], \(dates)::double precision[]) AS u(uid, message_id, modseq, flags, keywords, internal_date)
                    """, on: db)
                try await addReferences(db, messages: messageIDs)
            }
            if move { _ = try await expunge(db, mailbox: from, uids: pairs.map(\.0)) }
            return (pairs, UIDValidity(rawValue: UInt32(validity)))
        }
        changes.notify(move ? [from, to] : [to])
        return result
    }

    /// The references new placements hold, counted by the statement that makes them (schema 12): one update for all.
    func addReferences(_ db: PostgresConnection, messages: [Int64]) async throws {
        try await execute("""
            UPDATE message m SET refcount = m.refcount + c.n
            FROM (SELECT id, count(*) AS n FROM unnest(\(messages)::bigint[]) AS id GROUP BY id) c WHERE m.id = c.id
            """, on: db)
    }

    public func claimRecent(mailbox: MailboxID, below uidNext: UID, claim: Bool) async throws -> UID {
        let next = Int64(uidNext.rawValue)
        guard claim else {
            let seen = try await one("SELECT first_recent_uid FROM mailbox WHERE id = \(mailbox)", as: Int64.self) ?? next
            return UID(UInt32(min(seen, next)))
        }
        // Nothing new since the last session claimed (first_recent_uid only grows): no write, no flush.
        if let seen = try await one("SELECT first_recent_uid FROM mailbox WHERE id = \(mailbox)", as: Int64.self), seen >= next {
            return uidNext
        }
        // One statement: the row is locked and read again after any concurrent claim committed (READ COMMITTED's
        // re-check of a locked row), so exactly one of several sessions claiming at once gets the old value.
        let old = try await one("""
            UPDATE mailbox m SET first_recent_uid = \(next)
            FROM (SELECT first_recent_uid AS old FROM mailbox WHERE id = \(mailbox) FOR UPDATE) o
            WHERE m.id = \(mailbox) AND o.old < \(next) RETURNING o.old
            """, as: Int64.self) ?? next
        return UID(UInt32(min(old, next)))
    }

    public func unclaimedRecent(mailbox: MailboxID) async throws -> Int {
        Int(try await one("""
            SELECT count(*) FROM mailbox_message WHERE mailbox_id = \(mailbox) AND uid >= (SELECT first_recent_uid FROM mailbox WHERE id = \(mailbox))
            """, as: Int64.self) ?? 0)
    }

    public func expunged(mailbox: MailboxID, since modSeq: ModSeq) async throws -> [UID] {
        try await column("SELECT uid FROM expunged WHERE mailbox_id = \(mailbox) AND modseq > \(modSeq.rawValue) ORDER BY uid", as: Int64.self).map { UID(UInt32($0)) }
    }

    public func observeChanges(_ observer: @escaping @Sendable (MailboxID) -> Void) {
        changes.add(observer)
    }

    public func observeMailboxTree(_ observer: @escaping @Sendable (AccountID) -> Void) {
        treeChanges.add(observer)
    }

    public func content(of message: MessageID) async throws -> [UInt8] {
        guard let found = try await contents(of: [message])[message] else { throw StoreError.notFound("message \(message)") }
        return found
    }

    public func contents(of messages: [MessageID]) async throws -> [MessageID: [UInt8]] {
        guard !messages.isEmpty else { return [:] }
        var result: [MessageID: [UInt8]] = [:]
        var cached: [MessageID: [UInt8]] = [:]
        for id in messages { if let c = contentCache.get(id) { cached[id] = c } }
        var chunked: [Data: [MessageID]] = [:]
        // Every message is looked up (one that is gone gives nothing, cached or not); the data comes only for those
        // not in the cache, decoded as ByteBuffer (a view of the row, no copy) and copied once into the result.
        for (id, hash, inline, isChunked) in try await all("""
            SELECT m.id, c.hash, CASE WHEN m.id = ANY(\(Array(cached.keys))) THEN NULL ELSE c.data END, c.data IS NULL
            FROM message m JOIN content c ON c.hash = m.content_hash WHERE m.id = ANY(\(messages))
            """, as: (Int64, Data, ByteBuffer?, Bool).self) {
            if let c = cached[id] {
                result[id] = c
            } else if let inline {
                let bytes = Array(inline.readableBytesView)
                result[id] = bytes
                contentCache.put(id, bytes)
            } else if isChunked {
                result[id] = []
                chunked[hash, default: []].append(id)
            }
        }
        // Contents kept in chunks, put together in order.
        if !chunked.isEmpty {
            var pieces: [Data: [UInt8]] = [:]
            for (hash, data) in try await all("""
                SELECT hash, data FROM content_chunk WHERE hash = ANY(\(chunked.keys.map { ByteBuffer(bytes: $0) })) ORDER BY hash, seq
                """, as: (Data, Data).self) {
                pieces[hash, default: []].append(contentsOf: data)
            }
            // Chunks gone meanwhile (the content collected between the two reads): the message is gone, not empty.
            for (hash, ids) in chunked { for id in ids { result[id] = pieces[hash] } }
        }
        return result
    }

    /// An inline content in memory; a chunked one read a chunk range at a time.
    public func openContent(of message: MessageID) async throws -> any ContentReader {
        guard let (hash, size, inline) = try await all("""
            SELECT c.hash, c.size, c.data FROM message m JOIN content c ON c.hash = m.content_hash WHERE m.id = \(message)
            """, as: (Data, Int64, Data?).self).first else { throw StoreError.notFound("message \(message)") }
        if let inline { return InMemoryContent(Array(inline)) }
        return PostgresChunkedContent(store: self, hash: hash, size: Int(size))
    }
}
