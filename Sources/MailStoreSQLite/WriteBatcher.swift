import Foundation
import GRDB
import Synchronization

/// Many small writes, one transaction: writes that arrive while one is being committed wait and go together in the
/// next, each in its own savepoint (one failing does not undo the others), with one WAL fsync for all of them. The
/// queue's per-delivery bookkeeping goes through here, so a hundred deliveries finishing at once cost one fsync, not a
/// hundred.
final class WriteBatcher: Sendable {
    private struct Item: @unchecked Sendable {
        var work: (Database) throws -> any Sendable
        var done: (Result<any Sendable, Error>) -> Void
    }
    private struct State {
        var pending: [Item] = []
        var running = false
    }
    private let state = Mutex(State())
    private let pool: DatabasePool
    static let maxBatch = 256

    init(pool: DatabasePool) {
        self.pool = pool
    }

    func write<T: Sendable>(_ work: @escaping (Database) throws -> T) async throws -> T {
        let any = try await withCheckedThrowingContinuation { (c: CheckedContinuation<any Sendable, Error>) in
            let item = Item(work: { try work($0) }, done: { c.resume(with: $0) })
            let start = state.withLock { s -> Bool in
                s.pending.append(item)
                if s.running { return false }
                s.running = true
                return true
            }
            if start {
                let thread = Thread { [self] in drain() }
                thread.name = "tern-batch-writer"
                thread.start()
            }
        }
        return any as! T
    }

    private func drain() {
        while true {
            let batch = state.withLock { s -> [Item] in
                let n = min(s.pending.count, Self.maxBatch)
                let b = Array(s.pending.prefix(n))
                s.pending.removeFirst(n)
                if b.isEmpty { s.running = false }
                return b
            }
            if batch.isEmpty { return }
            var results: [Result<any Sendable, Error>] = []
            do {
                try pool.write { db in
                    for item in batch {
                        do {
                            var value: (any Sendable)?
                            try db.inSavepoint {
                                value = try item.work(db)
                                return .commit
                            }
                            results.append(.success(value!))
                        } catch {
                            results.append(.failure(error))
                        }
                    }
                }
            } catch {
                results = Array(repeating: .failure(error), count: batch.count)
            }
            for (item, result) in zip(batch, results) { item.done(result) }
        }
    }
}
