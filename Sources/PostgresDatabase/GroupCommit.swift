import Foundation
import MailStore
import PostgresNIO
import Synchronization

/// Something that runs a body in a PostgreSQL transaction (committed when it returns, rolled back when it throws).
public protocol PostgresTransactional: Sendable {
    func transaction<R: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R
}

/// What waits for the next shared transaction, and whether one is being run: the part both batchers below share.
/// (Also the store's coalesced clean-up: asks made while one runs are served by one more run.)
public final class BatchQueue<Element: Sendable>: Sendable {
    private let state = Mutex<(waiting: [Element], running: Bool)>(([], false))
    let maxBatch: Int

    public init(maxBatch: Int) { self.maxBatch = maxBatch }

    /// The caller runs the next transaction itself when none is running (true).
    func lead() -> Bool {
        state.withLock { s in
            guard !s.running else { return false }
            s.running = true
            return true
        }
    }

    /// Adds `element`; true when no transaction is running and the caller must start one.
    public func enqueue(_ element: Element) -> Bool {
        state.withLock { s in
            s.waiting.append(element)
            guard !s.running else { return false }
            s.running = true
            return true
        }
    }

    /// The next batch (at most `max`), taken out of the queue; empty (and no longer running) when nothing waits and
    /// `stopWhenEmpty`.
    public func take(max: Int? = nil, stopWhenEmpty: Bool = true) -> [Element] {
        state.withLock { s in
            let batch = Array(s.waiting.prefix(max ?? maxBatch))
            s.waiting.removeFirst(batch.count)
            if batch.isEmpty, stopWhenEmpty { s.running = false }
            return batch
        }
    }

    /// After a transaction the caller ran itself: true when more wait (running stays on, for a drain to take them).
    func more() -> Bool {
        state.withLock { s in
            if s.waiting.isEmpty { s.running = false }
            return !s.waiting.isEmpty
        }
    }
}

/// Group commit for PostgreSQL, as SQLite's GroupCommitter: deliveries that arrive while a commit is running wait and
/// share the next transaction, so many sessions pay for one commit (one WAL flush) and — above all when they deliver
/// to one mailbox — do not queue one by one for that mailbox's row lock, each holding it through its own flush.
public final class PostgresCommitter: Sendable {
    private struct Waiting {
        let delivery: Delivery
        let continuation: CheckedContinuation<DeliveryReceipt, Error>
    }
    /// Deliveries per transaction at most: 64.
    private let queue = BatchQueue<Waiting>(maxBatch: 64)

    public init() {}

    /// Waits for `delivery`'s commit. `commit` stores a batch in one transaction and answers each delivery. When no
    /// commit is running, the caller's own task runs it (with whatever else waits): a lone session pays no hop.
    public func submit(_ delivery: Delivery, commit: @escaping @Sendable ([Delivery]) async -> [Result<DeliveryReceipt, Error>]) async throws -> DeliveryReceipt {
        if queue.lead() {
            let others = queue.take(max: queue.maxBatch - 1, stopWhenEmpty: false)
            // In a task of its own: the caller being cancelled (its session gone) must not cancel the others' commit.
            let batch = [delivery] + others.map(\.delivery)
            let results = await Task { await commit(batch) }.value
            for (waiting, result) in zip(others, results.dropFirst()) { waiting.continuation.resume(with: result) }
            // Those that came meanwhile are committed by a task of their own; this caller has its answer.
            if queue.more() { Task { await self.drain(commit) } }
            return try results[0].get()
        }
        return try await withCheckedThrowingContinuation { continuation in
            if queue.enqueue(Waiting(delivery: delivery, continuation: continuation)) { Task { await self.drain(commit) } }
        }
    }

    private func drain(_ commit: @Sendable ([Delivery]) async -> [Result<DeliveryReceipt, Error>]) async {
        while true {
            let batch = queue.take()
            guard !batch.isEmpty else { return }
            let results = await commit(batch.map(\.delivery))
            for (waiting, result) in zip(batch, results) { waiting.continuation.resume(with: result) }
        }
    }
}

/// Group commit for the other writes sessions make (STORE, EXPUNGE, COPY and MOVE): changes that arrive while a
/// transaction is running share the next one, so many sessions changing one mailbox do not queue one by one for its
/// row lock, each holding it through its own flush. Each change runs as it would alone, in arrival order; when the
/// shared transaction fails (one change's error, or a deadlock with another node), it is rolled back whole and every
/// change runs again in a transaction of its own, so each caller gets its own answer.
public final class PostgresWriteBatcher: Sendable {
    /// One change: runs its body on the shared connection and returns what to do once committed (answer the caller).
    typealias Work = @Sendable (PostgresConnection) async throws -> @Sendable () -> Void
    private struct Waiting {
        let work: Work
        /// Runs the change in a transaction of its own and answers the caller (success or failure).
        let alone: @Sendable () async -> Void
        let fail: @Sendable (Error) -> Void
    }
    private let queue = BatchQueue<Waiting>(maxBatch: 64)

    public init() {}

    /// Runs `body` in a transaction shared with the changes waiting at the same time.
    public func run<R: Sendable>(_ store: some PostgresTransactional, _ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        try await submit(store, work: body, alone: { try await store.transaction(body) })
    }

    /// Runs `body`, one statement, in a transaction shared with the changes waiting at the same time; alone, without
    /// one (`body` gets no connection and runs on any: the statement is its own transaction, no BEGIN and COMMIT).
    public func runStatement<R: Sendable>(_ store: some PostgresTransactional,
                                          _ body: @escaping @Sendable (PostgresConnection?) async throws -> R) async throws -> R {
        try await submit(store, work: { try await body($0) }, alone: { try await body(nil) })
    }

    private func submit<R: Sendable>(_ store: some PostgresTransactional, work: @escaping @Sendable (PostgresConnection) async throws -> R,
                                     alone: @escaping @Sendable () async throws -> R) async throws -> R {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<R, Error>) in
            let waiting = Waiting(
                work: { db in
                    let value = try await work(db)
                    return { continuation.resume(returning: value) }
                },
                alone: {
                    do { continuation.resume(returning: try await alone()) } catch { continuation.resume(throwing: error) }
                },
                fail: { continuation.resume(throwing: $0) })
            if queue.enqueue(waiting) { Task { await self.drain(store) } }
        }
    }

    private func drain(_ store: some PostgresTransactional) async {
        while true {
            let batch = queue.take()
            guard !batch.isEmpty else { return }
            if batch.count == 1 {
                await batch[0].alone()
                continue
            }
            do {
                let answers = try await store.transaction { db in
                    var answers: [@Sendable () -> Void] = []
                    for w in batch { answers.append(try await w.work(db)) }
                    return answers
                }
                answers.forEach { $0() }
            } catch let error as StoreUnavailable {
                batch.forEach { $0.fail(error) }
            } catch {
                for w in batch { await w.alone() }
            }
        }
    }
}
