import IMAPMailboxView
import ServerCore
import IMAPCodec
import IMAPResponses
import MailStore

extension IMAPSession {
    /// Results kept up to date at once per session (RFC 5267 §4.2 asks for at least one); beyond, NOUPDATE.
    static let maxContexts = 10

    /// Starts keeping `c` up to date, or says (NOUPDATE) that the session already keeps as many as it will.
    func keepUpdated(_ c: SearchContext, _ out: inout IMAPOutput) {
        guard case .selected(let a, let u, var m) = state else { return }
        guard m.contexts.count < Self.maxContexts else {
            out.send(.untagged(IMAPStatus(.no, .noUpdate(c.tag), "Too many results kept up to date; this one will not be")))
            return
        }
        m.contexts.append(c)
        state = .selected(a, u, m)
    }

    /// CANCELUPDATE: stops the updates of the results with these tags; NO for a tag with none (those before it in
    /// the list are cancelled).
    func cancelUpdate(_ tags: [String], tag: String, _ out: inout IMAPOutput) throws {
        guard case .selected(let a, let u, var m) = state else { throw IMAPFailure.bad("No mailbox selected") }
        defer { state = .selected(a, u, m) }
        for t in tags {
            guard let i = m.contexts.firstIndex(where: { $0.tag == t }) else { throw IMAPFailure.no("No result kept up to date for tag \(t)") }
            m.contexts.remove(at: i)
        }
        out.ok(tag, "No further updates")
    }

    /// `key` with every sequence set (and `$`) replaced by the UIDs it addresses in the view `m` now.
    func bind(_ key: SearchKey, _ m: SelectedMailbox) -> SearchKey {
        func uids(_ list: [UID]) -> SearchKey {
            .uid(SequenceSet(numbers: list.map(\.rawValue)))
        }
        switch key {
        case .sequence(let set): return set.isSaved ? uids(m.saved) : uids(m.resolveIndices(set, uid: false).map { m.messages[$0].uid })
        case .uid(let set) where set.isSaved: return uids(m.saved)
        case .not(let k): return .not(bind(k, m))
        case .or(let x, let y): return .or(bind(x, m), bind(y, m))
        case .and(let keys): return .and(keys.map { bind($0, m) })
        default: return key
        }
    }

    /// Before expunges are reported (`gone`: indices in the view `m`, which still holds them): REMOVEFROM for every
    /// result holding any of them, numbered as the client still has them (RFC 5267 §4.3: before the EXPUNGE).
    func contextRemovals(_ out: inout IMAPOutput, _ m: inout SelectedMailbox, gone: [Int]) {
        guard !m.contexts.isEmpty, !gone.isEmpty else { return }
        let goneUIDs = Set(gone.map { m.messages[$0].uid })
        let view = m
        for ci in m.contexts.indices {
            var c = m.contexts[ci]
            let leaving = c.result.indices.filter { goneUIDs.contains(c.result[$0]) }
            guard !leaving.isEmpty else { continue }
            let uid = c.uid
            let number = { (u: UID) -> UInt32 in uid ? u.rawValue : UInt32(view.sequence(of: u) ?? 0) }
            var updates: [IMAPContextUpdate] = []
            if c.sort == nil {
                updates.append(IMAPContextUpdate(add: false, position: 0, numbers: leaving.map { number(c.result[$0]) }))
            } else {
                // Last first, so that each position is still right when the client applies it.
                for p in leaving.reversed() { updates.append(IMAPContextUpdate(add: false, position: p + 1, numbers: [number(c.result[p])])) }
            }
            for p in leaving.reversed() {
                c.result.remove(at: p)
                if c.sort != nil { c.infos.remove(at: p) }
            }
            m.contexts[ci] = c
            out.send(.esearch(IMAPESearch(tag: c.tag, uid: c.uid, updates: updates)))
        }
    }

    /// After the view changed (flags of the messages at `changed`, indices in the view; the last `added` messages
    /// new): ADDTO and REMOVEFROM for every result they join or leave, numbered in the view as the client now has
    /// it. A new message joining a result that asked for FETCH items (`UPDATE (...)`) is fetched first, unless this
    /// session put it there itself (`own`).
    func contextRefresh(_ out: inout IMAPOutput, changed: [Int], added: Int, own: Bool) async throws {
        guard case .selected(let a, let u, var m) = state, !m.contexts.isEmpty else { return }
        let n = m.messages.count
        let fresh = Set((n - added)..<n)
        let candidates = Array(Set(changed).union(fresh)).sorted()
        guard !candidates.isEmpty else { return }
        var responses: [IMAPESearch] = []
        var toFetch: [(uids: [UInt32], attrs: [FetchAttribute])] = []
        for ci in m.contexts.indices {
            var c = m.contexts[ci]
            let (updates, joined) = c.sort == nil ? try await refreshSearch(&c, in: m, candidates: candidates)
                : try await refreshSort(&c, in: m, candidates: candidates)
            m.contexts[ci] = c
            if !own && !c.fetch.isEmpty {
                let newOnes = joined.filter { fresh.contains((m.sequence(of: $0) ?? 0) - 1) }.map(\.rawValue)
                if !newOnes.isEmpty { toFetch.append((newOnes, c.fetch)) }
            }
            if !updates.isEmpty { responses.append(IMAPESearch(tag: c.tag, uid: c.uid, updates: updates)) }
        }
        state = .selected(a, u, m)
        // RFC 5465 §7: EXISTS, then the new messages' FETCH, then the ESEARCH that adds them.
        for f in toFetch {
            try await fetch(uid: true, SequenceSet(numbers: f.uids),
                            f.attrs.contains(.uid) ? f.attrs : [.uid] + f.attrs, changedSince: nil, peek: true, tag: nil, &out)
        }
        for r in responses { out.send(.esearch(r)) }
    }

    /// A SEARCH result after the messages at `candidates` changed: REMOVEFROM, then ADDTO, in UID order.
    private func refreshSearch(_ c: inout SearchContext, in m: SelectedMailbox, candidates: [Int]) async throws
        -> (updates: [IMAPContextUpdate], joined: [UID]) {
        let uidNumbers = c.uid
        let number = { (uid: UID) -> UInt32 in uidNumbers ? uid.rawValue : UInt32(m.sequence(of: uid) ?? 0) }
        let inResult = Set(c.result)
        let hits = Set(try await matchingIndices(c.key, in: m, among: candidates))
        var updates: [IMAPContextUpdate] = [], joined: [UID] = [], leaving = Set<UID>()
        for i in candidates {
            let uid = m.messages[i].uid
            if hits.contains(i) && !inResult.contains(uid) { joined.append(uid) }
            if !hits.contains(i) && inResult.contains(uid) { leaving.insert(uid) }
        }
        if !leaving.isEmpty {
            updates.append(IMAPContextUpdate(add: false, position: 0, numbers: c.result.filter(leaving.contains).map(number)))
        }
        if !joined.isEmpty { updates.append(IMAPContextUpdate(add: true, position: 0, numbers: joined.map(number))) }
        c.result = c.result.filter { !leaving.contains($0) } + joined
        c.result.sort()
        return (updates, joined)
    }

    /// A SORT result after the messages at `candidates` changed: REMOVEFROM with positions, then ADDTO at the places
    /// the joining messages take.
    private func refreshSort(_ c: inout SearchContext, in m: SelectedMailbox, candidates: [Int]) async throws
        -> (updates: [IMAPContextUpdate], joined: [UID]) {
        let uidNumbers = c.uid
        let number = { (uid: UID) -> UInt32 in uidNumbers ? uid.rawValue : UInt32(m.sequence(of: uid) ?? 0) }
        let inResult = Set(c.result), candidateSet = Set(candidates)
        let infos = try await sortInfo(c.key, in: m, among: candidates)
        let matched = Set(infos.map(\.message.uid))
        var updates: [IMAPContextUpdate] = []
        // Leaving: last first, so that each position is still right when the client applies it.
        for p in c.result.indices.reversed() {
            let uid = c.result[p]
            guard let i = m.sequence(of: uid).map({ $0 - 1 }), candidateSet.contains(i), !matched.contains(uid) else { continue }
            updates.append(IMAPContextUpdate(add: false, position: p + 1, numbers: [number(uid)]))
            c.result.remove(at: p)
            c.infos.remove(at: p)
        }
        // Joining: each put at its final place, in ascending order of place; neighbours make one run.
        let order = Self.sortOrder(c.sort!)
        let joining = infos.filter { !inResult.contains($0.message.uid) }.sorted(by: order)
        let (merged, runs) = SearchContext.merge(joining, into: c.infos, order: order)
        for run in runs {
            updates.append(IMAPContextUpdate(add: true, position: run.position, numbers: run.members.map { number($0.message.uid) }))
        }
        c.infos = merged
        c.result = merged.map(\.message.uid)
        return (updates, joining.map(\.message.uid))
    }
}
