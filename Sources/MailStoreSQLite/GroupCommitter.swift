import Foundation
import GRDB
import MailStore
import Synchronization

/// Group commit: deliveries that arrive while a commit is in progress queue up and are written together in
/// the next transaction, with one WAL fsync for all of them (and one fsync per blob directory touched).
/// Each waiting session is resumed only after its batch is durable.
final class GroupCommitter: Sendable {
    private struct Pending {
        var delivery: Delivery
        var continuation: CheckedContinuation<DeliveryReceipt, Error>
    }

    private struct State {
        var pending: [Pending] = []
        var flushing = false
    }

    private let state = Mutex(State())
    private let pool: DatabasePool
    private let blobs: BlobStore
    /// The largest batch committed at once: bounds the time one transaction holds the write lock.
    static let maxBatch = 512

    init(pool: DatabasePool, blobs: BlobStore) {
        self.pool = pool
        self.blobs = blobs
    }

    func submit(_ delivery: Delivery) async throws -> DeliveryReceipt {
        try await withCheckedThrowingContinuation { continuation in
            let startFlusher = state.withLock { s -> Bool in
                s.pending.append(Pending(delivery: delivery, continuation: continuation))
                if s.flushing { return false }
                s.flushing = true
                return true
            }
            if startFlusher {
                Task.detached { await self.flushLoop() }
            }
        }
    }

    private func flushLoop() async {
        while true {
            let batch = state.withLock { s -> [Pending] in
                let n = min(s.pending.count, Self.maxBatch)
                let batch = Array(s.pending.prefix(n))
                s.pending.removeFirst(n)
                if batch.isEmpty { s.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            await commit(batch)
        }
    }

    private func commit(_ batch: [Pending]) async {
        let deliveries = batch.map(\.delivery)
        let results: [Result<DeliveryReceipt, Error>]
        do {
            // Renames of this batch's blob files become durable before the rows that name them.
            try blobs.syncDirectories(for: deliveries.compactMap {
                if case .blob(let key, _) = $0.content { return key } else { return nil }
            })
            results = try await pool.write { db in
                try deliveries.map { delivery in
                    do {
                        var receipt: DeliveryReceipt?
                        try db.inSavepoint {
                            receipt = try GroupCommitter.insert(db, delivery)
                            return .commit
                        }
                        return .success(receipt!)
                    } catch {
                        return .failure(error)
                    }
                }
            }
        } catch {
            results = Array(repeating: .failure(error), count: batch.count)
        }
        for (pending, result) in zip(batch, results) {
            pending.continuation.resume(with: result)
        }
    }

    static func insert(_ db: Database, _ delivery: Delivery) throws -> DeliveryReceipt {
        let envelope = String(decoding: try JSONEncoder().encode(delivery.envelope), as: UTF8.self)
        let blobKey: String?, inline: Data?
        switch delivery.content {
        case .inline(let bytes): blobKey = nil; inline = Data(bytes)
        case .blob(let key, _): blobKey = key; inline = nil
        }
        try db.execute(sql: "INSERT INTO message(size, blob_key, content, received, envelope) VALUES (?, ?, ?, ?, ?)",
                       arguments: [delivery.content.size, blobKey, inline, Date().timeIntervalSince1970, envelope])
        let messageID = db.lastInsertedRowID
        var placements: [(MailboxID, UID)] = []
        let keywords = delivery.keywords.joined(separator: " ")
        // A message reaches a mailbox once, even when several recipients resolve to it.
        var seenTargets = Set<DeliveryTarget>()
        for target in delivery.targets where seenTargets.insert(target).inserted {
            guard let row = try Row.fetchOne(db, sql: """
                UPDATE mailbox SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                WHERE account_id = ? AND name = ? RETURNING id, uidnext - 1 AS uid, highestmodseq
                """, arguments: [target.account, target.mailbox ?? "INBOX"]) else {
                throw StoreError.notFound("mailbox \(target.mailbox ?? "INBOX") of account \(target.account)")
            }
            let mailbox: MailboxID = row["id"]
            let uid: Int64 = row["uid"], modseq: Int64 = row["highestmodseq"]
            try db.execute(sql: """
                INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [mailbox, uid, messageID, modseq, delivery.flags.rawValue, keywords,
                                 delivery.internalDate.timeIntervalSince1970])
            placements.append((mailbox, UID(UInt32(uid))))
        }
        return DeliveryReceipt(messageID: messageID, placements: placements)
    }
}
