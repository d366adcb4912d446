import IMAPMailboxView
import ServerCore
import Foundation
import IMAPCodec
import IMAPResponses
import MailMessage
import MailStore

extension IMAPSession {
    /// What SORT and THREAD need of the messages matching `key` (only those among `candidates`, ascending indices into
    /// the view, when given).
    func sortInfo(_ key: SearchKey, in m: SelectedMailbox, among candidates: [Int]? = nil) async throws -> [SortInfo] {
        let largestUID = m.messages.last?.uid.rawValue ?? 0
        let saved = Set(m.saved)
        // SORT and THREAD read header fields only: from the header cache FETCH fills, reading the messages it lacks
        // 200 at a time. (A search key on the body reads that message whole, in `matches`.)
        let headerCache = caches.headers
        let bodyKey = Self.needsBody(key)
        var prefetched: [MessageID: [UInt8]] = [:]
        var infos: [SortInfo] = []
        let indices = candidates ?? Array(m.messages.indices)
        for (n, i) in indices.enumerated() {
            let message = m.messages[i]
            if n % 200 == 0 {
                let ids = indices[n..<min(n + 200, indices.count)].map { m.messages[$0].messageID }.filter { headerCache.get($0) == nil }
                prefetched = ids.isEmpty ? [:] : try await store.contents(of: ids)
            }
            var header = headerCache.get(message.messageID)
            if header == nil {
                var bytes = prefetched[message.messageID]
                if bytes == nil {
                    // Evicted from the cache since the batch was read, or expunged by another session meanwhile (its
                    // content gone: it is left out).
                    do { bytes = try await store.content(of: message.messageID) } catch StoreError.notFound { continue }
                }
                header = Array(MessageParts(bytes!).header)
                headerCache.put(message.messageID, header!)
            }
            let parts = MessageParts(header!)
            var cache: MessageParts? = bodyKey ? nil : parts
            do {
                guard try await matches(key, message, seq: i + 1, count: m.messages.count, largestUID: largestUID, saved: saved, parts: &cache) else { continue }
            } catch StoreError.notFound {
                continue
            }
            func firstMailbox(_ field: String) -> (mailbox: String, display: String) {
                for item in parts.values(field).flatMap({ AddressList.parse($0) }) {
                    if case .mailbox(let name, let local, let domain) = item {
                        let addr = domain.map { "\(local)@\($0)" } ?? local
                        return (local.lowercased(), EncodedWords.decode(name ?? addr).lowercased())
                    }
                }
                return ("", "")
            }
            let from = firstMailbox("From"), to = firstMailbox("To"), cc = firstMailbox("Cc")
            let sent = parts.value("Date").flatMap(RFC5322Date.parse) ?? message.internalDate
            let ids = { (text: String?) -> [String] in
                guard let text else { return [] }
                return text.split(separator: "<").compactMap { piece in
                    guard let close = piece.firstIndex(of: ">") else { return nil }
                    return "<" + piece[..<close] + ">"
                }
            }
            var references = ids(parts.value("References"))
            if references.isEmpty, let first = ids(parts.value("In-Reply-To")).first { references = [first] }
            infos.append(SortInfo(seq: i + 1, message: message, subject: BaseSubject.extract(parts.value("Subject") ?? "").lowercased(),
                                  sentDate: sent, from: from.mailbox, to: to.mailbox, cc: cc.mailbox,
                                  displayFrom: from.display, displayTo: to.display,
                                  messageID: ids(parts.value("Message-ID")).first, references: references))
        }
        return infos
    }

    func sort(uid: Bool, criteria: [SortCriterion], key: SearchKey, returning: SearchReturn? = nil, partial: PartialRange? = nil,
              update: [FetchAttribute] = [], tag: String, _ out: inout IMAPOutput) async throws {
        if returning?.contains(.save) == true { setSaved([]) }
        let m = try requireSelected()
        let sorted = try await sortInfo(key, in: m).sorted(by: Self.sortOrder(criteria))
        answerResult(uid: uid, sorted.map { (seq: $0.seq, message: $0.message) }, returning: returning, partial: partial,
                     usesModSeq: IMAPSession.usesModSeq(key), sort: true, tag: tag, &out)
        if returning?.contains(.update) == true {
            keepUpdated(SearchContext(tag: tag, uid: uid, key: bind(key, m), sort: criteria, fetch: update,
                                      result: sorted.map(\.message.uid), infos: sorted), &out)
        }
        out.ok(tag, uid ? "UID SORT completed" : "SORT completed")
    }

    /// RFC 5256 §3: the order of SORT; ties go by sequence number, which is the order of UIDs (and stays true while
    /// messages come and go, which a result kept up to date needs).
    static func sortOrder(_ criteria: [SortCriterion]) -> (SortInfo, SortInfo) -> Bool {
        func compare(_ a: SortInfo, _ b: SortInfo, _ c: SortCriterion) -> Int {
            let r: Int
            switch c.key {
            case .arrival: r = a.message.internalDate < b.message.internalDate ? -1 : (a.message.internalDate > b.message.internalDate ? 1 : 0)
            case .date: r = a.sentDate < b.sentDate ? -1 : (a.sentDate > b.sentDate ? 1 : 0)
            case .size: r = a.message.size < b.message.size ? -1 : (a.message.size > b.message.size ? 1 : 0)
            case .subject: r = a.subject < b.subject ? -1 : (a.subject > b.subject ? 1 : 0)
            case .from: r = a.from < b.from ? -1 : (a.from > b.from ? 1 : 0)
            case .to: r = a.to < b.to ? -1 : (a.to > b.to ? 1 : 0)
            case .cc: r = a.cc < b.cc ? -1 : (a.cc > b.cc ? 1 : 0)
            case .displayFrom: r = a.displayFrom < b.displayFrom ? -1 : (a.displayFrom > b.displayFrom ? 1 : 0)
            case .displayTo: r = a.displayTo < b.displayTo ? -1 : (a.displayTo > b.displayTo ? 1 : 0)
            }
            return c.reverse ? -r : r
        }
        return { a, b in
            for c in criteria {
                let r = compare(a, b, c)
                if r != 0 { return r < 0 }
            }
            return a.message.uid < b.message.uid
        }
    }

    final class ThreadNode {
        var info: SortInfo?
        var children: [ThreadNode] = []
        weak var parent: ThreadNode?
        init(_ info: SortInfo?) { self.info = info }

        var date: Date { info?.sentDate ?? children.first?.date ?? .distantPast }
        var seq: Int { info?.seq ?? children.first?.seq ?? 0 }

        func isAncestor(of other: ThreadNode) -> Bool {
            var p: ThreadNode? = other
            while let n = p { if n === self { return true }; p = n.parent }
            return false
        }
    }

    func thread(uid: Bool, algorithm: ThreadAlgorithm, key: SearchKey, tag: String, _ out: inout IMAPOutput) async throws {
        let infos = try await sortInfo(key, in: try requireSelected())
        var roots: [ThreadNode] = []
        switch algorithm {
        case .orderedSubject:
            var groups: [String: ThreadNode] = [:]
            for info in infos.sorted(by: { ($0.sentDate, $0.seq) < ($1.sentDate, $1.seq) }) {
                if let root = groups[info.subject] {
                    let child = ThreadNode(info)
                    child.parent = root
                    root.children.append(child)
                } else {
                    let root = ThreadNode(info)
                    groups[info.subject] = root
                    roots.append(root)
                }
            }
        case .references:
            roots = referencesThreads(infos)
        }
        roots.sort { ($0.date, $0.seq) < ($1.date, $1.seq) }
        func node(_ n: ThreadNode) -> IMAPThreadNode {
            IMAPThreadNode(n.info.map { uid ? $0.message.uid.rawValue : UInt32($0.seq) }, n.children.map(node))
        }
        out.send(.thread(roots.map(node)))
        out.ok(tag, uid ? "UID THREAD completed" : "THREAD completed")
    }

    /// RFC 5256 §3 REFERENCES (the algorithm of Jamie Zawinski's threader).
    func referencesThreads(_ infos: [SortInfo]) -> [ThreadNode] {
        var table: [String: ThreadNode] = [:]
        var all: [ThreadNode] = []
        func container(_ id: String) -> ThreadNode {
            if let c = table[id] { return c }
            let c = ThreadNode(nil)
            table[id] = c
            all.append(c)
            return c
        }
        for info in infos {
            // A message without (or with a duplicate) Message-ID gets a container of its own.
            var c: ThreadNode
            if let id = info.messageID, let existing = table[id], existing.info == nil {
                c = existing
                c.info = info
            } else {
                c = ThreadNode(info)
                all.append(c)
                if let id = info.messageID, table[id] == nil { table[id] = c }
            }
            // Link the references chain, parent before child, never creating a loop.
            var previous: ThreadNode?
            for ref in info.references {
                let r = container(ref)
                if let p = previous, r.parent == nil, !r.isAncestor(of: p), r !== p {
                    r.parent = p
                    p.children.append(r)
                }
                previous = r
            }
            if let p = previous, p !== c, !c.isAncestor(of: p) {
                if let old = c.parent { old.children.removeAll { $0 === c } }
                c.parent = p
                p.children.append(c)
            }
        }
        var roots = all.filter { $0.parent == nil }
        // Prune empty containers: drop childless ones, promote the children of others (at the root only when one).
        func prune(_ nodes: [ThreadNode], atRoot: Bool) -> [ThreadNode] {
            var out: [ThreadNode] = []
            for n in nodes {
                n.children = prune(n.children, atRoot: false)
                if n.info == nil {
                    if n.children.isEmpty { continue }
                    if !atRoot || n.children.count == 1 {
                        for c in n.children { c.parent = n.parent }
                        out.append(contentsOf: n.children)
                        continue
                    }
                }
                out.append(n)
            }
            return out
        }
        roots = prune(roots, atRoot: true)
        // Group the root set by base subject: replies join the thread of the original.
        var bySubject: [String: ThreadNode] = [:]
        var merged: [ThreadNode] = []
        for r in roots.sorted(by: { ($0.date, $0.seq) < ($1.date, $1.seq) }) {
            let subject = r.info?.subject ?? r.children.first?.info?.subject ?? ""
            if !subject.isEmpty, let existing = bySubject[subject] {
                r.parent = existing
                existing.children.append(r)
            } else {
                if !subject.isEmpty { bySubject[subject] = r }
                merged.append(r)
            }
        }
        func sortChildren(_ n: ThreadNode) {
            n.children.sort { ($0.date, $0.seq) < ($1.date, $1.seq) }
            n.children.forEach(sortChildren)
        }
        merged.forEach(sortChildren)
        return merged
    }
}
