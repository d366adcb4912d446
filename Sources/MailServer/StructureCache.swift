import MailStore
import Synchronization

/// ENVELOPE and BODYSTRUCTURE strings of recently fetched messages. Message contents never change, so an entry is
/// valid for as long as the message exists; the cache is bounded by its total size and drops the oldest entries.
final class StructureCache: Sendable {
    struct Entry: Sendable {
        var envelope: String
        var bodyStructure: String
        var body: String
        var cost: Int { envelope.utf8.count + bodyStructure.utf8.count + body.utf8.count + 64 }
    }

    private struct State {
        var entries: [MessageID: Entry] = [:]
        var order: [MessageID] = []
        var head = 0
        var bytes = 0
    }

    private let state = Mutex(State())
    let budget: Int

    init(budget: Int = 32 << 20) {
        self.budget = budget
    }

    func get(_ id: MessageID) -> Entry? {
        state.withLock { $0.entries[id] }
    }

    func put(_ id: MessageID, _ entry: Entry) {
        state.withLock { s in
            guard s.entries[id] == nil else { return }
            s.entries[id] = entry
            s.order.append(id)
            s.bytes += entry.cost
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
