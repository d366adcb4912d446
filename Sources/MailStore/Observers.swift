import Synchronization

/// Callbacks to run after a committed change, each with what changed (a mailbox, an account): how a backend tells
/// the sessions of this process (IMAP IDLE and NOTIFY, the queue runner) that there is something new to read.
public final class Observers<Value: Hashable & Sendable>: Sendable {
    private let list = Mutex<[@Sendable (Value) -> Void]>([])

    public init() {}

    public func add(_ observer: @escaping @Sendable (Value) -> Void) {
        list.withLock { $0.append(observer) }
    }

    /// Calls every observer once for each distinct value.
    public func notify(_ values: some Sequence<Value>) {
        let observers = list.withLock { $0 }
        for value in Set(values) { for o in observers { o(value) } }
    }

    public func notify(_ value: Value) { notify([value]) }
}

/// Callbacks to run after a committed change that carries no detail (a message entered the outbound queue).
public final class Signal: Sendable {
    private let list = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    public func add(_ observer: @escaping @Sendable () -> Void) { list.withLock { $0.append(observer) } }

    public func notify() { for o in list.withLock({ $0 }) { o() } }
}

/// Recipient resolutions kept in memory for a store whose directory changes are announced to it (`bump`): a lookup
/// answers only from the generation it was computed in, so an answer read before a change is never kept after it.
public final class ResolutionCache: Sendable {
    private struct State {
        var generation = 0
        var entries: [String: RecipientResolution] = [:]
        /// Each account's active Sieve script (nil: none), kept by the same rule.
        var scripts: [AccountID: String?] = [:]
    }
    private let state = Mutex(State())
    public static let maxEntries = 50_000

    public init() {}

    public var generation: Int { state.withLock { $0.generation } }

    public func lookup(_ key: String) -> RecipientResolution? { state.withLock { $0.entries[key] } }

    /// Keeps `resolution` when the directory has not changed since `generation` was read (before the lookup began).
    public func store(_ key: String, _ resolution: RecipientResolution, computedAt generation: Int) {
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.entries.count >= Self.maxEntries { s.entries.removeAll(keepingCapacity: true) }
            s.entries[key] = resolution
        }
    }

    /// An account's active script as cached: nil when unknown, .some(nil) when it has none.
    public func script(_ account: AccountID) -> String?? { state.withLock { $0.scripts[account] } }

    public func storeScript(_ account: AccountID, _ script: String?, computedAt generation: Int) {
        state.withLock { s in
            guard s.generation == generation else { return }
            if s.scripts.count >= Self.maxEntries { s.scripts.removeAll(keepingCapacity: true) }
            s.scripts[account] = .some(script)
        }
    }

    /// The directory (or a Sieve script) changed: forget every answer.
    public func bump() {
        state.withLock { s in
            s.generation += 1
            s.entries.removeAll(keepingCapacity: true)
            s.scripts.removeAll(keepingCapacity: true)
        }
    }
}
