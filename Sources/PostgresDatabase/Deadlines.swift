import Synchronization

/// Deadlines watched by one task, which runs while any is pending and looks every quarter second: a timer task per
/// operation (two tasks for every query, one of them sleeping) cost more than many of the queries they watched.
public final class Deadlines: Sendable {
    private struct State {
        var next = 0
        var pending: [Int: (at: ContinuousClock.Instant, expire: @Sendable () -> Void)] = [:]
        var watching = false
    }
    private let state = Mutex(State())
    public static let tick: Duration = .milliseconds(250)

    public init() {}

    /// Calls `expire` once `limit` has passed (within a tick), unless removed before.
    public func add(_ limit: Duration, expire: @escaping @Sendable () -> Void) -> Int {
        let (id, start) = state.withLock { s -> (Int, Bool) in
            s.next += 1
            s.pending[s.next] = (.now + limit, expire)
            defer { s.watching = true }
            return (s.next, !s.watching)
        }
        if start { Task { await self.watch() } }
        return id
    }

    public func remove(_ id: Int) {
        _ = state.withLock { $0.pending.removeValue(forKey: id) }
    }

    private func watch() async {
        while true {
            try? await Task.sleep(for: Self.tick)
            let now = ContinuousClock.now
            let (due, done) = state.withLock { s -> ([@Sendable () -> Void], Bool) in
                let due = s.pending.filter { $0.value.at <= now }
                for id in due.keys { s.pending[id] = nil }
                if s.pending.isEmpty { s.watching = false }
                return (due.values.map(\.expire), s.pending.isEmpty)
            }
            due.forEach { $0() }
            if done { return }
        }
    }
}
