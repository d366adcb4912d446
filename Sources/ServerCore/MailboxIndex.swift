import MailCore
import MailStore
import Synchronization

/// One mailbox's messages as of one HIGHESTMODSEQ. Immutable, and shared by every session that has the mailbox
/// selected: a thousand clients idling in one INBOX hold one copy of its message list, not a thousand (Swift arrays
/// are copy-on-write, so a session's `messages` is the snapshot's own storage until the session changes it).
public final class MailboxSnapshot: Sendable {
    public let uidValidity: UIDValidity
    public let uidNext: UID
    public let highestModSeq: ModSeq
    /// In UID order.
    public let messages: [StoredMessage]

    public init(uidValidity: UIDValidity, uidNext: UID, highestModSeq: ModSeq, messages: [StoredMessage]) {
        self.uidValidity = uidValidity
        self.uidNext = uidNext
        self.highestModSeq = highestModSeq
        self.messages = messages
    }

    /// This snapshot brought up to date by a delta read after its modseq.
    public func applying(_ changes: MailboxChanges) -> MailboxSnapshot {
        if changes.changed.isEmpty && changes.expunged.isEmpty && changes.highestModSeq == highestModSeq && changes.uidNext == uidNext {
            return self
        }
        // Both lists are in UID order: expunges are skipped in one walk and changes found by binary search, with no
        // hashing per message (a session's command pays for this on a 100,000-message mailbox).
        var out: [StoredMessage]
        if changes.expunged.isEmpty {
            out = messages
        } else {
            let gone = changes.expunged.sorted()
            out = []
            out.reserveCapacity(messages.count + changes.changed.count)
            var g = 0
            for m in messages {
                while g < gone.count && gone[g] < m.uid { g += 1 }
                if g < gone.count && gone[g] == m.uid { continue }
                out.append(m)
            }
        }
        var added: [UID: StoredMessage] = [:]
        for c in changes.changed {
            var lo = 0, hi = out.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if out[mid].uid < c.uid { lo = mid + 1 } else { hi = mid }
            }
            if lo < out.count && out[lo].uid == c.uid { out[lo] = c } else { added[c.uid] = c }
        }
        // What is left is new: UIDs only grow, so it sorts after everything kept (sorted anyway, to be safe).
        let new = added.values.sorted { $0.uid < $1.uid }
        if let first = new.first, let last = out.last, first.uid < last.uid {
            out += new
            out.sort { $0.uid < $1.uid }
        } else {
            out += new
        }
        return MailboxSnapshot(uidValidity: uidValidity, uidNext: changes.uidNext, highestModSeq: changes.highestModSeq,
                               messages: out)
    }
}

/// The latest snapshot of every mailbox that sessions use, kept up to date from the store's deltas.
///
/// A change committed in this process marks its mailbox stale (`markChanged`); the next session to ask loads the
/// delta once, and every other session woken by the same change shares that load. A change made by another process
/// (an admin command) has no notification, so commands that must see it (SELECT, NOOP, STATUS) ask with `verify`,
/// which costs one indexed row read when nothing changed.
public final class MailboxIndex: Sendable {
    private struct Entry {
        var snapshot: MailboxSnapshot?
        /// Bumped by every announced change; a snapshot is fresh when it was loaded after the last bump.
        var changes = 0
        var loadedAt = -1
        var loading: Task<MailboxSnapshot, Error>?
        /// `changes` when `loading` started: what its result is fresh up to.
        var loadingChanges = 0
        var lastUse = 0
    }

    private struct State {
        var entries: [MailboxID: Entry] = [:]
        var clock = 0
        var cachedMessages = 0
    }

    private let state = Mutex(State())
    private let store: any MessageStore
    /// Messages kept in snapshots no session may be using (about 100 bytes each); least recently used go first.
    public let budget: Int

    public init(store: any MessageStore, budget: Int = 1_000_000) {
        self.store = store
        self.budget = budget
    }

    /// A change to this mailbox was committed: the next `snapshot` call reads the delta.
    public func markChanged(_ mailbox: MailboxID) {
        state.withLock { s in
            guard s.entries[mailbox] != nil else { return }
            s.entries[mailbox]!.changes += 1
        }
    }

    /// The mailbox as it is now. Without `verify`, a snapshot no announced change has made stale is returned
    /// without asking the store.
    public func snapshot(_ mailbox: MailboxID, verify: Bool) async throws -> MailboxSnapshot {
        enum Next { case ready(MailboxSnapshot), wait(Task<MailboxSnapshot, Error>, Int) }
        let next: Next = state.withLock { s in
            s.clock += 1
            var e = s.entries[mailbox] ?? Entry()
            e.lastUse = s.clock
            defer { s.entries[mailbox] = e }
            if let snap = e.snapshot, e.loadedAt == e.changes, !verify { return .ready(snap) }
            // A load already under way is shared only when it started after the last announced change: one that
            // started before it would answer with data older than a change this caller must see (a session that
            // reads its own STORE back, or another session's that completed before this command).
            if let t = e.loading, !verify, e.loadingChanges == e.changes { return .wait(t, e.loadingChanges) }
            let base = e.snapshot
            let task = Task { [store] () throws -> MailboxSnapshot in
                let delta = try await store.mailboxChanges(mailbox: mailbox, since: base?.highestModSeq)
                if let base, delta.uidValidity == base.uidValidity {
                    return base.applying(delta)
                }
                // First load, or UIDVALIDITY changed: the delta was everything only if it was read from the start.
                let full = base == nil ? delta : try await store.mailboxChanges(mailbox: mailbox, since: nil)
                return MailboxSnapshot(uidValidity: full.uidValidity, uidNext: full.uidNext,
                                       highestModSeq: full.highestModSeq, messages: full.changed)
            }
            e.loading = task
            e.loadingChanges = e.changes
            return .wait(task, e.changes)
        }
        switch next {
        case .ready(let snap):
            return snap
        case .wait(let task, let startChanges):
            do {
                let snap = try await task.value
                install(snap, mailbox: mailbox, task: task, seenChanges: startChanges)
                return snap
            } catch {
                state.withLock { s in
                    if s.entries[mailbox]?.loading == task { s.entries[mailbox]?.loading = nil }
                }
                throw error
            }
        }
    }

    /// Keeps a loaded snapshot when it is newer than the one held.
    private func install(_ snap: MailboxSnapshot, mailbox: MailboxID, task: Task<MailboxSnapshot, Error>, seenChanges: Int) {
        state.withLock { s in
            guard var e = s.entries[mailbox] else { return }
            if e.loading == task { e.loading = nil }
            let newer = e.snapshot.map { $0.uidValidity != snap.uidValidity || $0.highestModSeq < snap.highestModSeq } ?? true
            if newer {
                s.cachedMessages += snap.messages.count - (e.snapshot?.messages.count ?? 0)
                e.snapshot = snap
            }
            if newer || e.snapshot === snap { e.loadedAt = max(e.loadedAt, seenChanges) }
            s.entries[mailbox] = e
            evict(&s)
        }
    }

    private func evict(_ s: inout State) {
        guard s.cachedMessages > budget else { return }
        for (id, e) in s.entries.sorted(by: { $0.value.lastUse < $1.value.lastUse }) where s.cachedMessages > budget && e.loading == nil {
            s.cachedMessages -= e.snapshot?.messages.count ?? 0
            s.entries[id] = nil
        }
    }

    /// The mailbox as of a state just read from the store with its id (SELECT, a POP3 login): the snapshot held when
    /// it matches that state, without a second read; otherwise brought up to date as `snapshot(_:verify:)` does.
    public func snapshot(_ mailbox: MailboxID, current: MailboxChanges) async throws -> MailboxSnapshot {
        let held: MailboxSnapshot? = state.withLock { s in
            guard let snap = s.entries[mailbox]?.snapshot, snap.uidValidity == current.uidValidity,
                  snap.highestModSeq == current.highestModSeq, snap.uidNext == current.uidNext else { return nil }
            s.clock += 1
            s.entries[mailbox]?.lastUse = s.clock
            return snap
        }
        if let held { return held }
        return try await snapshot(mailbox, verify: true)
    }
}
