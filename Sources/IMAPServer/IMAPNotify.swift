import IMAPMailboxView
import ServerCore
import IMAPCodec
import IMAPResponses
import MailStore
import Synchronization

extension IMAPSession {
    /// NOTIFY SET or NOTIFY NONE (RFC 5465 §3).
    func notify(_ spec: NotifySet?, tag: String, _ out: inout IMAPOutput) async throws {
        let a = try requireAuth()
        _ = wakeInbox.drain()
        guard let spec else {
            notifyState = nil
            out.ok(tag, "NOTIFY completed; no more notifications")
            return
        }
        var n = NotifyState(spec)
        n.mailboxes = try await store.mailboxes(account: a)
        n.subscriptions = Set(try await store.subscriptions(account: a))
        n.resolve()
        notifyState = n
        // §3: a successful NOTIFY SET reports at once what changed in the selected mailbox.
        if selected != nil && !n.selectedEvents.isEmpty { try await poll(&out, expunges: !n.delayed) }
        // §5.1 STATUS: the state of every watched mailbox (the selected one aside) now; without it the state is
        // recorded, so later notifications carry only what changed.
        for box in n.mailboxes where box.id != selected?.id {
            guard let events = n.watched[box.id] else { continue }
            if spec.status {
                var items = [IMAPParameterValue("MESSAGES", UInt64(box.messages)), IMAPParameterValue("UIDNEXT", UInt64(box.uidNext.rawValue)),
                             IMAPParameterValue("UIDVALIDITY", UInt64(box.uidValidity.rawValue))]
                if condstore && events.contains(.flagChange) { items.append(IMAPParameterValue("HIGHESTMODSEQ", UInt64(box.highestModSeq.rawValue))) }
                out.send(.status(mailbox: wireName(box.name), items))
            }
            notifyState?.lastStatus[box.id] = box
        }
        out.ok(tag, "NOTIFY completed")
    }

    /// Whether NOTIFY is in force (unsolicited responses may then come between commands).
    var notifying: Bool { notifyState != nil }

    /// What the connection should be woken for, or nil for nothing.
    func wakeInterest(idle: Bool) -> IMAPWakeups.Interest? {
        guard let a = account else { return nil }
        var boxes: Set<MailboxID> = []
        var tree = false
        if idle, let m = selected { boxes.insert(m.id) }
        if let n = notifyState {
            boxes.formUnion(n.watched.keys)
            if let m = selected, !n.selectedEvents.isEmpty { boxes.insert(m.id) }
            tree = n.watchesOthers
        }
        return boxes.isEmpty && !tree ? nil : IMAPWakeups.Interest(account: a, mailboxes: boxes, tree: tree)
    }

    /// Reports what the session was woken for, with no command running (or in IDLE): LIST for mailboxes created,
    /// deleted or renamed and for subscriptions changed, STATUS for other watched mailboxes, then the selected
    /// mailbox's changes as the client asked (all of them in IDLE without NOTIFY). Each step's responses are kept only
    /// when the step completed (its state saved with them); a step that failed leaves its changes to be looked at again.
    func push(inIdle: Bool) async -> IMAPOutput {
        var out = IMAPOutput()
        out.encoder.utf8 = utf8
        let (dirty, treeDirty) = wakeInbox.drain()
        func step(_ work: (inout IMAPOutput) async throws -> Void, retry: () -> Void) async {
            var part = IMAPOutput()
            part.encoder.utf8 = utf8
            do {
                try await work(&part)
                out.bytes += part.bytes
            } catch is SelectedMailboxGone {
                out.bytes += part.bytes
                out.close = true
            } catch {
                retry()
            }
        }
        if notifyState != nil, let a = account {
            if treeDirty {
                await step({ try await pushTreeChanges(&$0, account: a) }, retry: { wakeInbox.record(.tree) })
            }
            let others = dirty.filter { $0 != selected?.id && notifyState?.watched[$0] != nil }
            if !others.isEmpty {
                await step({ try await pushStatus(&$0, Set(others), account: a) },
                           retry: { for id in others { wakeInbox.record(.mailbox(id)) } })
            }
        }
        if let m = selected, dirty.contains(m.id) {
            let retry = { self.wakeInbox.record(.mailbox(m.id)) }
            if let n = notifyState {
                if !n.selectedEvents.isEmpty {
                    // §5.1: `selected` may report expunges at any time; `selected-delayed` only where RFC 9051 lets a
                    // command (IDLE does).
                    await step({ try await poll(&$0, expunges: inIdle || !n.delayed, verify: false,
                                                reportFlags: n.selectedEvents.contains(.flagChange)) }, retry: retry)
                }
            } else if inIdle {
                await step({ try await poll(&$0, expunges: true, verify: false) }, retry: retry)
            }
        }
        return out
    }

    /// STATUS for watched mailboxes that changed (RFC 5465 §5.2–5.3): MESSAGES and UIDNEXT for new and expunged
    /// messages, UIDVALIDITY when it changed, HIGHESTMODSEQ with CONDSTORE; nothing when nothing the client asked for
    /// changed.
    func pushStatus(_ out: inout IMAPOutput, _ ids: Set<MailboxID>, account a: AccountID) async throws {
        guard var n = notifyState else { return }
        for box in try await store.mailboxes(account: a) where ids.contains(box.id) {
            guard let events = n.watched[box.id] else { continue }
            let old = n.lastStatus[box.id]
            var items: [IMAPParameterValue] = []
            let countsChanged = old.map { $0.messages != box.messages || $0.uidNext != box.uidNext } ?? true
            let newOrGone = countsChanged && !events.isDisjoint(with: [.messageNew, .messageExpunge])
            // Only flags changed (the counts did not, MODSEQ did): told with UIDVALIDITY and HIGHESTMODSEQ (§5.3).
            let flagsChanged = !countsChanged && condstore && events.contains(.flagChange) && old?.highestModSeq != box.highestModSeq
            if newOrGone {
                items += [IMAPParameterValue("MESSAGES", UInt64(box.messages)), IMAPParameterValue("UIDNEXT", UInt64(box.uidNext.rawValue))]
            }
            if old?.uidValidity != box.uidValidity || flagsChanged {
                items.append(IMAPParameterValue("UIDVALIDITY", UInt64(box.uidValidity.rawValue)))
            }
            if condstore && old?.highestModSeq != box.highestModSeq && (newOrGone || flagsChanged) {
                items.append(IMAPParameterValue("HIGHESTMODSEQ", UInt64(box.highestModSeq.rawValue)))
            }
            n.lastStatus[box.id] = box
            if !items.isEmpty { out.send(.status(mailbox: wireName(box.name), items)) }
        }
        notifyState = n
    }

    /// LIST for each mailbox created, deleted or renamed, and each subscription changed, since the client last heard
    /// (RFC 5465 §5.4–5.5), for the names the filters cover; then the watched mailboxes are worked out again.
    func pushTreeChanges(_ out: inout IMAPOutput, account a: AccountID) async throws {
        guard var n = notifyState else { return }
        let boxes = try await store.mailboxes(account: a)
        let subs = Set(try await store.subscriptions(account: a))
        let allSubs = subs.union(n.subscriptions)
        let old = Dictionary(n.mailboxes.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
        let new = Dictionary(boxes.map { ($0.id, $0) }, uniquingKeysWith: { x, _ in x })
        let listing = MailboxListing(mailboxes: boxes, subscriptions: subs, rev2: rev2)
        let oldNames = Set(n.mailboxes.map(\.name)), newNames = Set(boxes.map(\.name))
        func wants(_ name: String, _ e: NotifyEvents) -> Bool { n.events(for: name, subscribed: allSubs).contains(e) }
        func attributes(_ name: String) -> [String] {
            listing.list(patterns: [name], matches: { $0 == name }, selectSubscribed: false, selectSpecialUse: false, recursiveMatch: false,
                         returnSubscribed: true, returnSpecialUse: true).first?.attributes ?? ["\\NonExistent"]
        }
        func send(_ name: String, _ attrs: [String], oldName: String? = nil) {
            out.send(.list(IMAPListItem(attributes: attrs, delimiter: Character(Self.delimiter), mailbox: wireName(name),
                                        oldName: oldName.map(wireName))))
        }
        var told: Set<String> = []
        // Renamed: one LIST for the mailbox renamed, none for children that moved with it.
        // Parents first, so that a child is left out only when its parent's LIST went out.
        let renamed = boxes.compactMap { b in old[b.id].flatMap { $0.name != b.name ? ($0.name, b.name) : nil } }.sorted { $0.0.count < $1.0.count }
        var toldRenames: [(String, String)] = []
        for (from, to) in renamed where wants(to, .mailboxName) || wants(from, .mailboxName) {
            let moved = toldRenames.contains { p in from.hasPrefix(p.0 + Self.delimiter) && to == p.1 + from.dropFirst(p.0.count) }
            if !moved {
                send(to, attributes(to), oldName: from)
                told.insert(to)
                toldRenames.append((from, to))
            }
        }
        var parents: Set<String> = []
        for b in boxes where old[b.id] == nil {
            if wants(b.name, .mailboxName) { send(b.name, attributes(b.name)); told.insert(b.name) }
            parents.formUnion(listing.ancestors(b.name).suffix(1))
        }
        for b in n.mailboxes where new[b.id] == nil && !newNames.contains(b.name) {
            if wants(b.name, .mailboxName) {
                send(b.name, ["\\NonExistent"] + (subs.contains(b.name) ? ["\\Subscribed"] : []))
                told.insert(b.name)
            }
            parents.formUnion(listing.ancestors(b.name).suffix(1))
        }
        // A parent that gained its first child or lost its last one (\HasChildren / \HasNoChildren).
        for p in parents where newNames.contains(p) && oldNames.contains(p) && !told.contains(p) && wants(p, .mailboxName) {
            let had = oldNames.contains { $0.hasPrefix(p + Self.delimiter) }, has = newNames.contains { $0.hasPrefix(p + Self.delimiter) }
            if had != has { send(p, attributes(p)); told.insert(p) }
        }
        for name in subs.symmetricDifference(n.subscriptions).sorted() where !told.contains(name) && wants(name, .subscriptionChange) {
            var attrs = attributes(name)
            if !newNames.contains(name) { attrs = ["\\NonExistent"] + (subs.contains(name) ? ["\\Subscribed"] : []) }
            send(name, attrs)
        }
        n.mailboxes = boxes
        n.subscriptions = subs
        n.resolve()
        // A mailbox newly watched has no STATUS yet: the connection marks it changed when it starts watching it, and
        // the next push tells its counts (so that mail delivered to it right after it was created is not missed).
        notifyState = n
    }

    /// This session changed the mailbox list itself (CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE): the client is not
    /// told of its own change (RFC 5465 §5.4), so what it knows is brought up to date with that change alone; others'
    /// changes meanwhile are still reported.
    func ownTreeChange(account a: AccountID, _ apply: (inout NotifyState, [MailboxInfo]) -> Void) async throws {
        guard var n = notifyState else { return }
        let boxes = try await store.mailboxes(account: a)
        apply(&n, boxes)
        n.resolve()
        for b in boxes where n.watched[b.id] != nil && n.lastStatus[b.id] == nil { n.lastStatus[b.id] = b }
        notifyState = n
    }

    /// New messages in the selected mailbox, with NOTIFY's `MessageNew (fetch-att ...)`: their FETCH after the EXISTS
    /// (RFC 5465 §5.2), unless this session put them there.
    func notifyNewMessages(_ out: inout IMAPOutput, added: Int, own: Bool) async throws {
        guard added > 0, !own, let n = notifyState, n.selectedEvents.contains(.messageNew), !n.selectedFetch.isEmpty, let m = selected else { return }
        let uids = m.messages.suffix(added).map(\.uid.rawValue)
        let set = SequenceSet(numbers: uids)
        try await fetch(uid: true, set, n.selectedFetch.contains(.uid) ? n.selectedFetch : [.uid] + n.selectedFetch, changedSince: nil,
                        peek: true, tag: nil, &out)
    }
}
