import IMAPCodec
import IMAPResponses
import MailStore
import Synchronization

/// What FETCH derives from a message's content, kept in memory for messages fetched recently. Message contents
/// never change, so an entry is valid for as long as the message exists; each cache is bounded by its total size
/// and drops the oldest entries first.
public final class DerivedCache<Value: Sendable>: Sendable {
    private struct State {
        var entries: [MessageID: (value: Value, cost: Int)] = [:]
        var order: [MessageID] = []
        var head = 0
        var bytes = 0
    }

    private let state = Mutex(State())
    public let budget: Int
    private let cost: @Sendable (Value) -> Int

    public init(budget: Int, cost: @escaping @Sendable (Value) -> Int) {
        self.budget = budget
        self.cost = cost
    }

    public func get(_ id: MessageID) -> Value? {
        state.withLock { $0.entries[id]?.value }
    }

    public func put(_ id: MessageID, _ value: Value) {
        let c = cost(value) + 64
        state.withLock { s in
            guard s.entries[id] == nil else { return }
            s.entries[id] = (value, c)
            s.order.append(id)
            s.bytes += c
            while s.bytes > budget, s.head < s.order.count {
                let old = s.order[s.head]
                s.head += 1
                if let e = s.entries.removeValue(forKey: old) { s.bytes -= e.cost }
            }
            if s.head > 4096 && s.head * 2 > s.order.count {
                s.order.removeFirst(s.head)
                s.head = 0
            }
        }
    }
}

/// ENVELOPE, BODYSTRUCTURE and BODY of a message, encoded for the wire by IMAPResponseEncoder (a class: one
/// reference to pass around).
public final class StructureEntry: Sendable {
    public let envelope: IMAPEncodedItem
    public let bodyStructure: IMAPEncodedItem
    public let body: IMAPEncodedItem

    public init(envelope: IMAPEncodedItem, bodyStructure: IMAPEncodedItem, body: IMAPEncodedItem) {
        self.envelope = envelope
        self.bodyStructure = bodyStructure
        self.body = body
    }
}

public typealias StructureCache = DerivedCache<StructureEntry>
/// The header block of a message (what `BODY.PEEK[HEADER]` and `HEADER.FIELDS` read: clients list a mailbox with them).
public typealias HeaderCache = DerivedCache<[UInt8]>

extension DerivedCache where Value == StructureEntry {
    convenience init() {
        self.init(budget: 32 << 20) { $0.envelope.bytes.count + $0.bodyStructure.bytes.count + $0.body.bytes.count }
    }
}

extension DerivedCache where Value == [UInt8] {
    convenience init() {
        self.init(budget: 64 << 20) { $0.count }
    }
}

/// What IMAP sessions share beyond the core: ENVELOPE/BODYSTRUCTURE and header blocks of recently fetched messages.
public final class IMAPCaches: Sendable {
    public init() {}
    public let structures = StructureCache()
    public let headers = HeaderCache()
}
