import Foundation
import GRDB
import MailCore
import MailStore
import SQLiteDatabase
import Synchronization

extension SQLiteMailStore {
    public func observeChanges(_ observer: @escaping @Sendable (MailboxID) -> Void) {
        changes.add(observer)
    }

    public func observeMailboxTree(_ observer: @escaping @Sendable (AccountID) -> Void) {
        treeChanges.add(observer)
    }

    public func usage(account: AccountID) async throws -> Int64 {
        try await read { db in
            try Int64.fetchOne(db, sql: """
                SELECT coalesce(sum(m.size), 0) FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id
                JOIN message m ON m.id = mm.message_id WHERE b.account_id = ?
                """, arguments: [account]) ?? 0
        }
    }

    public func claimRecent(mailbox: MailboxID, below uidNext: UID, claim: Bool) async throws -> UID {
        let next = Int64(uidNext.rawValue)
        // Most SELECTs find nothing new: a read answers them without taking the writer.
        let seen = try await read { db in try Int64.fetchOne(db, sql: "SELECT first_recent_uid FROM mailbox WHERE id = ?", arguments: [mailbox]) }
        if (seen ?? next) >= next || !claim { return UID(UInt32(min(seen ?? next, next))) }
        let first = try await write { db -> Int64 in
            let old = try Int64.fetchOne(db, sql: "SELECT first_recent_uid FROM mailbox WHERE id = ?", arguments: [mailbox]) ?? next
            if claim && next > old {
                try db.execute(sql: "UPDATE mailbox SET first_recent_uid = ? WHERE id = ?", arguments: [next, mailbox])
            }
            return min(old, next)
        }
        return UID(UInt32(first))
    }

    public func unclaimedRecent(mailbox: MailboxID) async throws -> Int {
        try await read { db in
            try Int.fetchOne(db, sql: """
                SELECT count(*) FROM mailbox_message WHERE mailbox_id = ?1 AND uid >= (SELECT first_recent_uid FROM mailbox WHERE id = ?1)
                """, arguments: [mailbox]) ?? 0
        }
    }

    public func deleteMailbox(account: AccountID, name: String) async throws {
        guard name != "INBOX" else { throw StoreError.invalid("INBOX cannot be deleted") }
        let id = try await write { db -> MailboxID in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM mailbox WHERE account_id = ? AND name = ?", arguments: [account, name]) else {
                throw StoreError.notFound("mailbox \(name)")
            }
            try db.execute(sql: "DELETE FROM mailbox WHERE id = ?", arguments: [id])
            return id
        }
        changes.notify([id])
        treeChanges.notify(account)
        // Housekeeping after the change was made: its failure does not undo the answer (a later run collects).
        try? await collectGarbage()
    }

    public func renameMailbox(account: AccountID, from: String, to: String) async throws {
        guard to != "INBOX", !to.isEmpty else { throw StoreError.invalid("cannot rename to \(to)") }
        let now = clock.now
        let emptied = try await write { db -> MailboxID? in
            guard try Int64.fetchOne(db, sql: "SELECT id FROM mailbox WHERE account_id = ? AND name = ?", arguments: [account, to]) == nil else {
                throw StoreError.alreadyExists("mailbox \(to)")
            }
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM mailbox WHERE account_id = ? AND name = ?", arguments: [account, from]) else {
                throw StoreError.notFound("mailbox \(from)")
            }
            if from == "INBOX" {
                // RFC 9051 §6.3.6: renaming INBOX moves its messages to the new mailbox; INBOX stays, empty.
                try MailboxRows.createMailbox(db, account: account, name: to, specialUse: nil, now: now)
                let target = db.lastInsertedRowID
                try db.execute(sql: """
                    UPDATE mailbox_message SET mailbox_id = ?1 WHERE mailbox_id = ?2
                    """, arguments: [target, id])
                // Its UIDs and MODSEQs go on from INBOX's (its messages keep theirs; RFC 7162: never a lower MODSEQ).
                try db.execute(sql: "UPDATE mailbox SET (uidnext, highestmodseq) = (SELECT uidnext, highestmodseq FROM mailbox WHERE id = ?1) WHERE id = ?2",
                               arguments: [id, target])
                try db.execute(sql: "UPDATE mailbox SET uidvalidity = uidvalidity + 1 WHERE id = ?", arguments: [id])
                return id
            }
            try db.execute(sql: "UPDATE mailbox SET name = ? WHERE id = ?", arguments: [to, id])
            for child in try Row.fetchAll(db, sql: "SELECT id, name FROM mailbox WHERE account_id = ? AND name LIKE ? ESCAPE '\\'",
                                          arguments: [account, Self.likeEscaped(from) + "/%"]) {
                let name: String = child["name"]
                try db.execute(sql: "UPDATE mailbox SET name = ? WHERE id = ?", arguments: [to + name.dropFirst(from.count), child["id"] as Int64])
            }
            return nil
        }
        // Renaming INBOX empties it: sessions that have it selected must hear of that.
        if let emptied { changes.notify([emptied]) }
        treeChanges.notify(account)
    }

    static func likeEscaped(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
    }

    public func setSubscribed(account: AccountID, name: String, _ subscribed: Bool) async throws {
        try await write { db in
            try db.execute(sql: "INSERT INTO subscription(account_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING", arguments: [account, name])
            if !subscribed {
                try db.execute(sql: "DELETE FROM subscription WHERE account_id = ? AND name = ?", arguments: [account, name])
            }
        }
        treeChanges.notify(account)
    }

    public func subscriptions(account: AccountID) async throws -> [String] {
        try await read { db in try String.fetchAll(db, sql: "SELECT name FROM subscription WHERE account_id = ? ORDER BY name", arguments: [account]) }
    }

    public func storeFlags(mailbox: MailboxID, uids: [UID], operation: FlagOperation, flags: MessageFlags, keywords: [String],
                           unchangedSince: ModSeq?) async throws -> (changed: [StoredMessage], failed: [UID]) {
        let result = try await write { db -> ([StoredMessage], [UID]) in
            var changed: [StoredMessage] = []
            var failed: [UID] = []
            for uid in uids {
                guard let row = try Row.fetchOne(db, sql: """
                    SELECT mm.*, m.size FROM mailbox_message mm JOIN message m ON m.id = mm.message_id WHERE mailbox_id = ? AND uid = ?
                    """, arguments: [mailbox, Int64(uid.rawValue)]) else { continue }
                var message = Self.storedMessage(row)
                if let unchangedSince, message.modSeq > unchangedSince { failed.append(uid); continue }
                let (newFlags, newKeywords) = operation.apply(flags, keywords, to: (message.flags, message.keywords))
                guard newFlags != message.flags || newKeywords != message.keywords else { continue }
                let modseq = try Int64.fetchOne(db, sql: "UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
                                                arguments: [mailbox])!
                try db.execute(sql: "UPDATE mailbox_message SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
                               arguments: [newFlags.rawValue, newKeywords.joined(separator: " "), modseq, mailbox, Int64(uid.rawValue)])
                message.flags = newFlags
                message.keywords = newKeywords
                message.modSeq = ModSeq(rawValue: modseq)
                changed.append(message)
            }
            return (changed, failed)
        }
        if !result.0.isEmpty { changes.notify([mailbox]) }
        return result
    }

    public func expunge(mailbox: MailboxID, uids: [UID], onlyDeleted: Bool) async throws -> [UID] {
        let removed = try await write { db in try Self.expunge(db, mailbox: mailbox, uids: uids, onlyDeleted: onlyDeleted) }
        if !removed.isEmpty {
            changes.notify([mailbox])
            try? await collectGarbage()
        }
        return removed
    }

    static func expunge(_ db: Database, mailbox: MailboxID, uids: [UID], onlyDeleted: Bool = false) throws -> [UID] {
        var removed: [UID] = []
        guard !uids.isEmpty else { return removed }
        guard try Bool.fetchOne(db, sql: "SELECT 1 FROM mailbox WHERE id = ?", arguments: [mailbox]) != nil else {
            throw StoreError.notFound("mailbox")
        }
        // Flags that must be set for a message to go (none: any goes).
        let required = onlyDeleted ? Int64(MessageFlags.deleted.rawValue) : 0
        var candidates = uids
        if onlyDeleted && uids.count > 64 {
            // A large set (UID EXPUNGE 1:*) is narrowed to the flagged messages first, in one read of the mailbox,
            // instead of a statement for every message it names.
            let flagged = Set(try Int64.fetchAll(db, sql: "SELECT uid FROM mailbox_message WHERE mailbox_id = ? AND flags & ? <> 0",
                                                 arguments: [mailbox, required]))
            candidates = uids.filter { flagged.contains(Int64($0.rawValue)) }
        }
        let delete = try db.cachedStatement(sql: "DELETE FROM mailbox_message WHERE mailbox_id = ? AND uid = ? AND flags & ? = ?")
        for uid in candidates {
            try delete.execute(arguments: [mailbox, Int64(uid.rawValue), required, required])
            if db.changesCount > 0 { removed.append(uid) }
        }
        // One new MODSEQ for what went (none when nothing did), recorded for QRESYNC.
        guard !removed.isEmpty else { return removed }
        let modseq = try Int64.fetchOne(db, sql: "UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
                                        arguments: [mailbox])!
        let record = try db.cachedStatement(sql: "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?, ?, ?)")
        for uid in removed { try record.execute(arguments: [mailbox, Int64(uid.rawValue), modseq]) }
        return removed
    }

    public func copy(from: MailboxID, uids: [UID], to: MailboxID, move: Bool, all: Bool) async throws -> (pairs: [(UID, UID)], uidValidity: UIDValidity) {
        let now = clock.now.timeIntervalSince1970
        let result = try await write { db -> ([(UID, UID)], UIDValidity) in
            guard let validity = try Int64.fetchOne(db, sql: "SELECT uidvalidity FROM mailbox WHERE id = ?", arguments: [to]) else {
                throw StoreError.notFound("target mailbox")
            }
            var pairs: [(UID, UID)] = [], missing: [UID] = []
            for uid in uids {
                guard let row = try Row.fetchOne(db, sql: "SELECT * FROM mailbox_message WHERE mailbox_id = ? AND uid = ?",
                                                 arguments: [from, Int64(uid.rawValue)]) else { missing.append(uid); continue }
                let target = try Row.fetchOne(db, sql: """
                    UPDATE mailbox SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 WHERE id = ?
                    RETURNING uidnext - 1 AS uid, highestmodseq
                    """, arguments: [to])!
                let newUID: Int64 = target["uid"]
                try db.execute(sql: """
                    INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date, saved)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [to, newUID, row["message_id"] as Int64, target["highestmodseq"] as Int64, row["flags"] as Int,
                                     row["keywords"] as String, row["internal_date"] as Double, now])
                pairs.append((uid, UID(UInt32(newUID))))
            }
            if all && !missing.isEmpty { throw MessagesExpunged(missing) }   // the transaction is rolled back
            if move { _ = try Self.expunge(db, mailbox: from, uids: pairs.map(\.0)) }
            return (pairs, UIDValidity(rawValue: UInt32(validity)))
        }
        changes.notify(move ? [from, to] : [to])
        return result
    }

    public func expunged(mailbox: MailboxID, since modSeq: ModSeq) async throws -> [UID] {
        try await read { db in
            try Int64.fetchAll(db, sql: "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                               arguments: [mailbox, modSeq.rawValue]).map { UID(UInt32($0)) }
        }
    }

    static func storedMessage(_ row: Row) -> StoredMessage {
        let keywords: String = row["keywords"]
        return StoredMessage(mailbox: row["mailbox_id"], uid: UID(UInt32(row["uid"] as Int64)), messageID: row["message_id"],
                             size: row["size"], internalDate: Date(timeIntervalSince1970: row["internal_date"]),
                             flags: MessageFlags(rawValue: row["flags"]), keywords: keywords.split(separator: " ").map(String.init),
                             modSeq: ModSeq(rawValue: row["modseq"]), savedDate: Date(timeIntervalSince1970: row["saved"]))
    }
}

/// Mailbox rows made the same way by every path (an account's first mailboxes, CREATE, RENAME's missing parents).
enum MailboxRows {
    static func createMailbox(_ db: Database, account: Int64, name: String, specialUse: SpecialUse?, now date: Date) throws {
        // UIDVALIDITY: seconds since 1970, and above every value this account's mailboxes ever had (deleted ones
        // included), so that a client never pairs old UIDs with a new mailbox of the same name.
        let now = Int64(date.timeIntervalSince1970) & 0xFFFF_FFFF
        let last = try Int64.fetchOne(db, sql: """
            SELECT max(a.last_uidvalidity, coalesce((SELECT max(uidvalidity) FROM mailbox WHERE account_id = a.id), 0))
            FROM account a WHERE a.id = ?
            """, arguments: [account]) ?? 0
        let validity = max(now, last + 1)
        try db.execute(sql: "UPDATE account SET last_uidvalidity = ? WHERE id = ?", arguments: [validity, account])
        try db.execute(sql: "INSERT INTO mailbox(id, account_id, name, special_use, uidvalidity) VALUES (\(SQLiteSchema.nextIDSQL("mailbox")), ?, ?, ?, ?)",
                       arguments: [account, name, specialUse?.rawValue, validity])
    }
}
