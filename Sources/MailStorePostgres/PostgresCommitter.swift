import Foundation
import MailStore
import Synchronization

/// Group commit for PostgreSQL, as SQLite's GroupCommitter: deliveries that arrive while a commit is running wait and
/// share the next transaction, so many sessions pay for one commit (one WAL flush) and — above all when they deliver
/// to one mailbox — do not queue one by one for that mailbox's row lock, each holding it through its own flush.
final class PostgresCommitter: Sendable {
    private struct Waiting {
        let delivery: Delivery
        let continuation: CheckedContinuation<DeliveryReceipt, Error>
    }
    private struct State {
        var waiting: [Waiting] = []
        var running = false
    }
    private let state = Mutex(State())
    /// Deliveries per transaction at most.
    static let maxBatch = 64

    /// Waits for `delivery`'s commit. `commit` stores a batch in one transaction and answers each delivery. When no
    /// commit is running, the caller's own task runs it (with whatever else waits): a lone session pays no hop.
    func submit(_ delivery: Delivery, commit: @escaping @Sendable ([Delivery]) async -> [Result<DeliveryReceipt, Error>]) async throws -> DeliveryReceipt {
        let leads = state.withLock { s -> Bool in
            guard !s.running else { return false }
            s.running = true
            return true
        }
        if leads {
            let others = state.withLock { s -> [Waiting] in
                let taken = Array(s.waiting.prefix(Self.maxBatch - 1))
                s.waiting.removeFirst(taken.count)
                return taken
            }
            let results = await commit([delivery] + others.map(\.delivery))
            for (waiting, result) in zip(others, results.dropFirst()) { waiting.continuation.resume(with: result) }
            // Those that came meanwhile are committed by a task of their own; this caller has its answer.
            let more = state.withLock { s -> Bool in
                if s.waiting.isEmpty { s.running = false }
                return !s.waiting.isEmpty
            }
            if more { Task { await self.drain(commit) } }
            return try results[0].get()
        }
        return try await withCheckedThrowingContinuation { continuation in
            let start = state.withLock { s -> Bool in
                s.waiting.append(Waiting(delivery: delivery, continuation: continuation))
                guard !s.running else { return false }
                s.running = true
                return true
            }
            if start { Task { await self.drain(commit) } }
        }
    }

    private func drain(_ commit: @Sendable ([Delivery]) async -> [Result<DeliveryReceipt, Error>]) async {
        while true {
            let batch = state.withLock { s -> [Waiting] in
                let batch = Array(s.waiting.prefix(Self.maxBatch))
                s.waiting.removeFirst(batch.count)
                if batch.isEmpty { s.running = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let results = await commit(batch.map(\.delivery))
            for (waiting, result) in zip(batch, results) { waiting.continuation.resume(with: result) }
        }
    }
}
