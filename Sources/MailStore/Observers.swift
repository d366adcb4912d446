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
