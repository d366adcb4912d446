import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailMessage
import MailStore

/// The rules an IMAP session applies that need nothing of the session: mailbox names and patterns, object ids, flag
/// names, what a search key needs, SORT order and REFERENCES threading. `IMAPSession` takes them on by conforming.
public protocol IMAPSessionRules {}

extension IMAPSessionRules {
    /// The hierarchy delimiter.
    public static var delimiter: String { MailboxNames.delimiter }
    /// Longest mailbox name accepted, in octets of UTF-8.
    public static var maxMailboxNameLength: Int { MailboxNames.maxLength }

    /// Why a well-formed name cannot be a mailbox (answered NO [CANNOT], never BAD: the command itself was fine).
    public static func impossibleMailboxName(_ name: String) -> String? { MailboxNames.problem(name) }

    /// OBJECTID (RFC 8474): ids the store never hands out twice (migration 6), so an id names one mailbox or one
    /// message for ever; a message keeps its id when copied or moved (the copies share their content row).
    public static func mailboxObjectID(_ id: MailboxID) -> String { "F\(id)" }

    public static func emailObjectID(_ id: MessageID) -> String { "M\(id)" }

    /// LIST pattern matching: `*` matches anything, `%` anything but the hierarchy delimiter.
    public static func matches(_ name: String, _ pattern: String) -> Bool {
        let n = Array(name.unicodeScalars), p = Array(pattern.unicodeScalars)
        var memo: [Int: Bool] = [:]
        func go(_ i: Int, _ j: Int) -> Bool {
            let key = i * (p.count + 1) + j
            if let v = memo[key] { return v }
            let r: Bool
            if j == p.count { r = i == n.count }
            else if p[j] == "*" { r = go(i, j + 1) || (i < n.count && go(i + 1, j)) }
            else if p[j] == "%" { r = go(i, j + 1) || (i < n.count && n[i] != "/" && go(i + 1, j)) }
            else { r = i < n.count && n[i] == p[j] && go(i + 1, j + 1) }
            memo[key] = r
            return r
        }
        return go(0, 0)
    }

    public static func flagNames(_ f: MessageFlags, _ keywords: [String]) -> [String] {
        var out: [String] = []
        if f.contains(.answered) { out.append("\\Answered") }
        if f.contains(.flagged) { out.append("\\Flagged") }
        if f.contains(.deleted) { out.append("\\Deleted") }
        if f.contains(.seen) { out.append("\\Seen") }
        if f.contains(.draft) { out.append("\\Draft") }
        return out + keywords
    }

    /// Whether a search key looks at headers or text (and so needs the message content).
    public static func needsContent(_ key: SearchKey) -> Bool {
        switch key {
        case .from, .to, .cc, .bcc, .subject, .header, .body, .text, .sentBefore, .sentOn, .sentSince: return true
        case .and(let keys): return keys.contains(where: needsContent)
        case .or(let a, let b): return needsContent(a) || needsContent(b)
        case .not(let a): return needsContent(a)
        default: return false
        }
    }

    /// Whether a search key looks at the body (BODY, TEXT), not only at header fields.
    public static func needsBody(_ key: SearchKey) -> Bool {
        switch key {
        case .body, .text: return true
        case .and(let keys): return keys.contains(where: needsBody)
        case .or(let a, let b): return needsBody(a) || needsBody(b)
        case .not(let a): return needsBody(a)
        default: return false
        }
    }

    public static func usesModSeq(_ key: SearchKey) -> Bool {
        switch key {
        case .modSeq: return true
        case .and(let keys): return keys.contains(where: usesModSeq)
        case .or(let a, let b): return usesModSeq(a) || usesModSeq(b)
        case .not(let a): return usesModSeq(a)
        default: return false
        }
    }

    /// RFC 5256 §3: the order of SORT; ties go by sequence number, which is the order of UIDs (and stays true while
    /// messages come and go, which a result kept up to date needs).
    public static func sortOrder(_ criteria: [SortCriterion]) -> (SortInfo, SortInfo) -> Bool {
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

    /// THREAD's answer (RFC 5256 §3): the threads' roots, ordered by their dates.
    public func threads(_ infos: [SortInfo], _ algorithm: ThreadAlgorithm) -> [ThreadNode] {
        var roots: [ThreadNode] = []
        switch algorithm {
        case .orderedSubject:
            // ORDEREDSUBJECT: one thread per base subject, its messages by sent date under the first.
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
        return roots.sorted { ($0.date, $0.seq) < ($1.date, $1.seq) }
    }

    /// RFC 5256 §3 REFERENCES (the algorithm of Jamie Zawinski's threader).
    public func referencesThreads(_ infos: [SortInfo]) -> [ThreadNode] {
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

    /// Whether message `m`, number `seq` of `count`, matches `key` (RFC 9051 §6.4.4). `content` reads the message when
    /// a key needs it (once, kept in `parts`); `recent` says whether it is recent to the session; `now` is the server's
    /// time (WITHIN).
    public func searchMatches(_ key: SearchKey, _ m: StoredMessage, seq: Int, count: Int, largestUID: UInt32, saved: Set<UID>, now: Date,
                              parts: inout MessageParts?, recent isRecent: (UID) -> Bool,
                              content load: () async throws -> [UInt8]) async throws -> Bool {
        func content() async throws -> MessageParts {
            if let parts { return parts }
            let p = MessageParts(try await load())
            parts = p
            return p
        }
        func contains(_ haystack: String, _ needle: String) -> Bool {
            // The same folding as BODY and TEXT (ASCII case at byte speed, Foundation's comparison for other text).
            TextSearch.contains(Array(haystack.utf8)[...], needle)
        }
        func day(_ d: Date) -> SearchDate {
            var cal = Calendar(identifier: .gregorian)
            cal.timeZone = TimeZone(identifier: "UTC")!
            let c = cal.dateComponents([.year, .month, .day], from: d)
            return SearchDate(day: c.day!, month: c.month!, year: c.year!)
        }
        func compare(_ a: SearchDate, _ b: SearchDate) -> Int {
            (a.year, a.month, a.day) < (b.year, b.month, b.day) ? -1 : ((a.year, a.month, a.day) == (b.year, b.month, b.day) ? 0 : 1)
        }
        func sentDate() async throws -> SearchDate {
            // The day as written in the Date field, in its own zone (RFC 9051 §6.4.4), not converted to UTC.
            if let v = try await content().value("Date"), let d = RFC5322Date.writtenDay(v) {
                return SearchDate(day: d.day, month: d.month, year: d.year)
            }
            return day(m.internalDate)
        }
        switch key {
        case .all: return true
        case .answered: return m.flags.contains(.answered)
        case .deleted: return m.flags.contains(.deleted)
        case .draft: return m.flags.contains(.draft)
        case .flagged: return m.flags.contains(.flagged)
        case .seen: return m.flags.contains(.seen)
        case .unanswered: return !m.flags.contains(.answered)
        case .undeleted: return !m.flags.contains(.deleted)
        case .undraft: return !m.flags.contains(.draft)
        case .unflagged: return !m.flags.contains(.flagged)
        case .unseen: return !m.flags.contains(.seen)
        case .recent: return isRecent(m.uid)
        case .new: return isRecent(m.uid) && !m.flags.contains(.seen)
        case .old: return !isRecent(m.uid)
        case .keyword(let k): return m.keywords.contains { $0.lowercased() == k.lowercased() }
        case .unkeyword(let k): return !m.keywords.contains { $0.lowercased() == k.lowercased() }
        case .from(let s): return try await content().values("From").contains { contains($0, s) }
        case .to(let s): return try await content().values("To").contains { contains($0, s) }
        case .cc(let s): return try await content().values("Cc").contains { contains($0, s) }
        case .bcc(let s): return try await content().values("Bcc").contains { contains($0, s) }
        case .subject(let s): return try await content().values("Subject").contains { contains($0, s) }
        case .header(let field, let s):
            let values = try await content().values(field)
            return s.isEmpty ? !values.isEmpty : values.contains { contains($0, s) }
        case .body(let s): return TextSearch.contains(try await content().body, s)
        case .text(let s): return TextSearch.contains(try await content().bytes[...], s)
        case .emailID(let id): return Self.emailObjectID(m.messageID) == id
        case .threadID: return false
        case .savedBefore(let d): return compare(day(m.savedDate), d) < 0
        case .savedOn(let d): return compare(day(m.savedDate), d) == 0
        case .savedSince(let d): return compare(day(m.savedDate), d) >= 0
        case .saveDateSupported: return true   // every mailbox keeps save dates
        case .before(let d): return compare(day(m.internalDate), d) < 0
        case .on(let d): return compare(day(m.internalDate), d) == 0
        case .since(let d): return compare(day(m.internalDate), d) >= 0
        case .sentBefore(let d): return compare(try await sentDate(), d) < 0
        case .sentOn(let d): return compare(try await sentDate(), d) == 0
        case .sentSince(let d): return compare(try await sentDate(), d) >= 0
        case .larger(let n): return m.size > n
        // RFC 5032 WITHIN: by INTERNALDATE against the server's clock.
        case .younger(let n): return now.timeIntervalSince(m.internalDate) <= Double(n)
        case .older(let n): return now.timeIntervalSince(m.internalDate) > Double(n)
        case .smaller(let n): return m.size < n
        case .uid(let set): return set.isSaved ? saved.contains(m.uid) : set.contains(m.uid.rawValue, largest: largestUID)
        case .sequence(let set): return set.isSaved ? saved.contains(m.uid) : set.contains(UInt32(seq), largest: UInt32(count))
        case .not(let k): return !(try await searchMatches(k, m, seq: seq, count: count, largestUID: largestUID, saved: saved, now: now, parts: &parts, recent: isRecent, content: load))
        case .or(let a, let b):
            if try await searchMatches(a, m, seq: seq, count: count, largestUID: largestUID, saved: saved, now: now, parts: &parts, recent: isRecent, content: load) { return true }
            return try await searchMatches(b, m, seq: seq, count: count, largestUID: largestUID, saved: saved, now: now, parts: &parts, recent: isRecent, content: load)
        case .and(let keys):
            for k in keys where !(try await searchMatches(k, m, seq: seq, count: count, largestUID: largestUID, saved: saved, now: now, parts: &parts, recent: isRecent, content: load)) { return false }
            return true
        case .modSeq(let n): return m.modSeq.rawValue >= n
        }
    }
}

/// A message (or a missing one a reference names) in a REFERENCES thread (RFC 5256 §2.2).
public final class ThreadNode {
    public var info: SortInfo?
    public var children: [ThreadNode] = []
    public weak var parent: ThreadNode?
    public init(_ info: SortInfo?) { self.info = info }

    public var date: Date { info?.sentDate ?? children.first?.date ?? .distantPast }
    public var seq: Int { info?.seq ?? children.first?.seq ?? 0 }

    public func isAncestor(of other: ThreadNode) -> Bool {
        var p: ThreadNode? = other
        while let n = p { if n === self { return true }; p = n.parent }
        return false
    }
}

extension IMAPSessionRules {
    /// Flag names from STORE or APPEND: the system flags (\Recent ignored; an unknown one is BAD) and keywords.
    public static func parseFlags(_ names: [String]) throws -> (MessageFlags, [String]) {
        var flags: MessageFlags = []
        var keywords: [String] = []
        for n in names {
            switch n.lowercased() {
            case "\\seen": flags.insert(.seen)
            case "\\answered": flags.insert(.answered)
            case "\\flagged": flags.insert(.flagged)
            case "\\deleted": flags.insert(.deleted)
            case "\\draft": flags.insert(.draft)
            case "\\recent": break
            default:
                guard !n.hasPrefix("\\") else { throw IMAPFailure.bad("Unknown system flag \(n)") }
                if !keywords.contains(n) { keywords.append(n) }
            }
        }
        return (flags, keywords)
    }
}

extension IMAPSessionRules {
    /// STATUS items of a mailbox (RFC 9051 §6.3.11); `messages` its messages when UNSEEN, SIZE or DELETED is asked,
    /// `recent` its unclaimed \Recent count.
    public static func statusValues(_ box: MailboxInfo, _ items: [StatusItem], messages: [StoredMessage], recent: Int) -> [IMAPParameterValue] {
        items.map { item in
            let value: Int
            switch item {
            case .messages: value = box.messages
            case .recent: value = recent
            case .uidNext: value = Int(box.uidNext.rawValue)
            case .uidValidity: value = Int(box.uidValidity.rawValue)
            case .unseen: value = messages.filter { !$0.flags.contains(.seen) }.count
            case .size: value = messages.reduce(0) { $0 + $1.size }
            case .highestModSeq: value = Int(box.highestModSeq.rawValue)
            case .deleted: value = messages.filter { $0.flags.contains(.deleted) }.count
            case .mailboxID: return IMAPParameterValue(item.rawValue, objectID: mailboxObjectID(box.id))
            }
            return IMAPParameterValue(item.rawValue, UInt64(value))
        }
    }

    public static func storeErrorCode(_ e: StoreError) -> IMAPResponseCode? {
        switch e {
        case .notFound: return .nonExistent
        case .alreadyExists: return .alreadyExists
        default: return nil
        }
    }
}

extension IMAPSessionRules {
    /// Why a URL in CATENATE may not be used by this user on this server (RFC 4469 §5): another server or another
    /// user's mailbox; nil when it may.
    public static func foreign(_ url: IMAPURL, hostname: String, user: String) -> String? {
        if let host = url.host, host != hostname.lowercased() { return "The URL names another server" }
        if let owner = url.user, owner.lowercased() != user.lowercased() { return "The URL names another user's mailbox" }
        return nil
    }
}
