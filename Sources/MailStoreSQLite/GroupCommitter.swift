import Foundation
import GRDB
import MailCore
import MailStore
import SQLiteDatabase
import Synchronization

/// Group commit: deliveries that arrive while a commit is in progress queue up and are written together in
/// the next transaction, with one WAL fsync for all of them (and one fsync per blob directory touched).
/// Each waiting session is resumed only after its batch is durable.
final class GroupCommitter: @unchecked Sendable {
    private struct Pending {
        var delivery: Delivery
        var completion: @Sendable (Result<DeliveryReceipt, Error>) -> Void

        init(delivery: Delivery, completion: @escaping @Sendable (Result<DeliveryReceipt, Error>) -> Void) {
            self.delivery = delivery
            self.completion = completion
        }

        init(delivery: Delivery, continuation: CheckedContinuation<DeliveryReceipt, Error>) {
            self.init(delivery: delivery, completion: { continuation.resume(with: $0) })
        }
    }

    /// Guarded by `condition`.
    private var pending: [Pending] = []
    private var writerRunning = false
    private let condition = NSCondition()
    private let pool: DatabasePool
    private let blobs: BlobStore
    /// The time a message row records as its arrival.
    private let clock: any WallClock
    /// The largest batch committed at once: bounds the time one transaction holds the write lock.
    static let maxBatch = 512
    /// The writer thread ends after this long without work and is started again by the next delivery.
    static let idleTimeout: TimeInterval = 2

    private let onCommit: @Sendable ([MailboxID]) -> Void
    private let onQueued: @Sendable () -> Void

    init(pool: DatabasePool, blobs: BlobStore, clock: any WallClock, onCommit: @escaping @Sendable ([MailboxID]) -> Void = { _ in },
         onQueued: @escaping @Sendable () -> Void = {}) {
        self.pool = pool
        self.blobs = blobs
        self.clock = clock
        self.onCommit = onCommit
        self.onQueued = onQueued
    }

    func submit(_ delivery: Delivery) async throws -> DeliveryReceipt {
        try await withCheckedThrowingContinuation { continuation in
            enqueue([Pending(delivery: delivery, continuation: continuation)])
        }
    }

    /// Queues a delivery; `completion` runs on the writer thread once the delivery is durable (or failed).
    func submit(_ delivery: Delivery, completion: @escaping @Sendable (Result<DeliveryReceipt, Error>) -> Void) {
        enqueue([Pending(delivery: delivery, completion: completion)])
    }

    /// Queues the deliveries together and in order, so their UIDs ascend in that order.
    func submit(batch: [Delivery]) async throws -> [DeliveryReceipt] {
        guard !batch.isEmpty else { return [] }
        let results = try await withCheckedThrowingContinuation { (all: CheckedContinuation<[DeliveryReceipt], Error>) in
            let collector = BatchCollector(count: batch.count, continuation: all)
            enqueue(batch.enumerated().map { i, d in Pending(delivery: d, completion: { collector.complete(i, $0) }) })
        }
        return results
    }

    private func enqueue(_ items: [Pending]) {
        condition.lock()
        pending.append(contentsOf: items)
        if writerRunning {
            condition.signal()
        } else {
            writerRunning = true
            let thread = Thread { [self] in writerLoop() }
            thread.name = "tern-writer"
            thread.start()
        }
        condition.unlock()
    }

    /// The single writer: takes whatever is pending, commits it in one transaction, completes every waiter.
    /// A dedicated thread rather than tasks and dispatch queues: GRDB's synchronous write runs right here,
    /// so a delivery costs no thread hops beyond the one into this thread and the one back to its session.
    private func writerLoop() {
        condition.lock()
        while true {
            while pending.isEmpty {
                // An idle timeout (elapsed time); NSCondition takes it as a date.
                if !condition.wait(until: Date().addingTimeInterval(Self.idleTimeout)) && pending.isEmpty {
                    writerRunning = false
                    condition.unlock()
                    return
                }
            }
            let n = min(pending.count, Self.maxBatch)
            let batch = Array(pending.prefix(n))
            pending.removeFirst(n)
            condition.unlock()
            commit(batch)
            condition.lock()
        }
    }

    private func commit(_ batch: [Pending]) {
        let deliveries = batch.map(\.delivery)
        let results: [Result<DeliveryReceipt, Error>]
        do {
            // Renames of this batch's blob files become durable before the rows that name them.
            try blobs.syncDirectories(for: deliveries.compactMap {
                if case .blob(let key, _) = $0.content { return key } else { return nil }
            })
            let now = clock.now
            results = try pool.write { db in
                deliveries.map { delivery in
                    do {
                        var receipt: DeliveryReceipt?
                        try db.inSavepoint {
                            receipt = try GroupCommitter.insert(db, delivery, now: now)
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
            pending.completion(result)
        }
        let touched = results.flatMap { (try? $0.get())?.placements.map(\.mailbox) ?? [] }
        if !touched.isEmpty { onCommit(touched) }
        if zip(deliveries, results).contains(where: { d, r in d.isQueued && (try? r.get()) != nil }) { onQueued() }
    }

    static func insert(_ db: Database, _ delivery: Delivery, now: Date) throws -> DeliveryReceipt {
        let envelope = delivery.envelope.json
        let blobKey: String?, inline: Data?
        switch delivery.content {
        case .inline(let bytes): blobKey = nil; inline = Data(bytes)
        case .blob(let key, _): blobKey = key; inline = nil
        }
        // Referenced once by this insert until its placements are counted (by their triggers): a message row made with
        // no references enters the index of unreferenced ones and leaves it again, a page of the WAL more.
        try db.cachedStatement(sql: """
            INSERT INTO message(id, size, blob_key, received, envelope, refcount)
            VALUES (\(SQLiteSchema.nextIDSQL("message")), ?, ?, ?, ?, 1)
            """).execute(arguments: [delivery.content.size, blobKey, now.timeIntervalSince1970, envelope])
        let messageID = db.lastInsertedRowID
        if let inline {
            try db.cachedStatement(sql: "INSERT INTO message_content(id, content) VALUES (?, ?)").execute(arguments: [messageID, inline])
        }
        try DeliveryLogSQL.insert(db, delivery.log)
        var placements: [(MailboxID, UID)] = []
        let keywords = delivery.keywords.joined(separator: " ")
        // A message reaches a mailbox once, even when several recipients resolve to it.
        var seenTargets = Set<DeliveryTarget>()
        for target in delivery.targets where seenTargets.insert(target).inserted {
            var name = target.mailbox ?? "INBOX"
            if let use = target.specialUse {
                name = try String.fetchOne(db.cachedStatement(sql: "SELECT name FROM mailbox WHERE account_id = ? AND special_use = ? LIMIT 1"),
                                           arguments: [target.account, use.rawValue]) ?? "INBOX"
            }
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                UPDATE mailbox SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
                WHERE account_id = ? AND name = ? RETURNING id, uidnext - 1 AS uid, highestmodseq
                """), arguments: [target.account, name]) else {
                throw StoreError.notFound("mailbox \(name) of account \(target.account)")
            }
            let mailbox: MailboxID = row["id"]
            let uid: Int64 = row["uid"], modseq: Int64 = row["highestmodseq"]
            try db.cachedStatement(sql: """
                INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date, saved)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [mailbox, uid, messageID, modseq, (target.flags ?? delivery.flags).rawValue,
                                 target.keywords.map { $0.joined(separator: " ") } ?? keywords,
                                 delivery.internalDate.timeIntervalSince1970, now.timeIntervalSince1970])
            placements.append((mailbox, UID(UInt32(uid))))
        }
        if delivery.isQueued {
            try QueueSQL.insert(db, messageID: messageID, delivery: delivery, now: now)
        }
        try db.cachedStatement(sql: "UPDATE message SET refcount = refcount - 1 WHERE id = ?").execute(arguments: [messageID])
        return DeliveryReceipt(messageID: messageID, placements: placements)
    }
}

/// Gathers the results of a batch and resumes its caller once all are in (the first error wins).
private final class BatchCollector: Sendable {
    private struct State {
        var results: [DeliveryReceipt?]
        var remaining: Int
        var error: Error?
    }
    private let state: Mutex<State>
    private let continuation: CheckedContinuation<[DeliveryReceipt], Error>

    init(count: Int, continuation: CheckedContinuation<[DeliveryReceipt], Error>) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
        self.continuation = continuation
    }

    func complete(_ index: Int, _ result: Result<DeliveryReceipt, Error>) {
        let done = state.withLock { s -> Result<[DeliveryReceipt], Error>? in
            switch result {
            case .success(let r): s.results[index] = r
            case .failure(let e): s.error = s.error ?? e
            }
            s.remaining -= 1
            guard s.remaining == 0 else { return nil }
            if let e = s.error { return .failure(e) }
            return .success(s.results.map { $0! })
        }
        if let done { continuation.resume(with: done) }
    }
}
