import Foundation
import Glibc
import Synchronization
import MailCore
import MailStore
import TernConfig
import TernTestSupport
import Testing

// A model-based concurrency test of the IMAP server (issue 18). Several clients, each on its own thread and socket,
// work at random on two shared mailboxes, INBOX and Archive (COPY and MOVE go from the selected one to the other;
// SELECT picks one): APPEND, STORE of flags and keywords, FETCH, SEARCH, EXPUNGE, COPY, MOVE, IDLE, NOOP and SELECT.
// Each keeps the mailbox as RFC 9051 lets it know it (sequence numbers, UIDs, flags, announced keywords), learnt only
// from what the server sent, and every response is checked against that model, against the messages' true contents
// (known from APPENDUID) and against the history of flag changes:
// - an untagged EXPUNGE, EXISTS or FETCH names a sequence number the client has; a FETCH's UID is the one the client
//   holds at that number; UIDs in the view only grow; no EXPUNGE arrives during FETCH, STORE or SEARCH;
// - the ENVELOPE subject, the Subject header field and RFC822.SIZE of a UID are those of the message appended with it;
// - a keyword appears in a FETCH only after FLAGS announced it;
// - MODSEQ of a message never goes down; clients with QRESYNC enabled (every third) hear expunges as VANISHED, and
//   when they select the mailbox again they resynchronise (SELECT ... (QRESYNC (validity modseq known-uids))): every
//   message expunged before that SELECT is in its VANISHED (EARLIER), a vanished UID never shows again, and every
//   message whose MODSEQ is above the client's is reported in the SELECT unless it changed after it (RFC 7162 §3.2.5);
// - each client owns one keyword ($kN) and is its only writer: a FETCH or SEARCH reports it exactly as the client
//   last stored it; another client's keyword is reported with a value it had at some moment during the FETCH (the
//   last change completed before the FETCH was sent, or a change in flight meanwhile);
// - two clients use NOTIFY SET (selected-delayed ...) (RFC 5465): what it pushes between commands obeys the same rules;
// - four clients keep a SEARCH or SORT result up to date (RETURN (UPDATE), CONTEXT=SEARCH/SORT, RFC 5267 §4), by UID
//   or by sequence number: they apply every ADDTO and REMOVEFROM at the positions given, a REMOVEFROM names what is in
//   the result, no EXPUNGE comes for a message still in it, and after each command the result is exactly the messages
//   of the client's view whose flags (as the client knows them) match, SORT's in the order of their subjects;
// - COPY and MOVE answer NO [EXPUNGEISSUED] only for a message another client began to expunge (or flagged \Deleted);
// - clients flag one of their messages \Deleted and clear the flag a few steps later while others EXPUNGE: at the end,
//   every such message is still there unless an EXPUNGE ran while the flag was set (RFC 9051 §6.4.3; a session's
//   EXPUNGE once removed what its possibly stale view showed flagged).

/// A parsed IMAP value: atom, string (quoted or literal), NIL, or parenthesised list.
indirect enum IMAPValue: Equatable {
    case atom(String)
    case string([UInt8])
    case nilValue
    case list([IMAPValue])

    var text: String? {
        switch self {
        case .atom(let a): return a
        case .string(let s): return String(decoding: s, as: UTF8.self)
        default: return nil
        }
    }
    var items: [IMAPValue] { if case .list(let l) = self { return l } else { return [] } }
}

/// One response line with its literals inlined: `parts` are the bytes between literals, `literals` their contents.
struct IMAPResponseLine {
    var bytes: [UInt8]     // the line with literals as {n} markers removed and replaced by index placeholders
    var literals: [[UInt8]]
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Parses the values of a response line after a prefix ("* 3 FETCH "), literals taken from `literals` in order.
struct IMAPValueParser {
    let b: [UInt8]
    var i: Int
    var literals: [[UInt8]]
    var nextLiteral = 0

    mutating func value() -> IMAPValue? {
        while i < b.count, b[i] == 32 { i += 1 }
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "("):
            i += 1
            var out: [IMAPValue] = []
            while true {
                while i < b.count, b[i] == 32 { i += 1 }
                if i >= b.count { return nil }
                if b[i] == UInt8(ascii: ")") { i += 1; return .list(out) }
                guard let v = value() else { return nil }
                out.append(v)
            }
        case UInt8(ascii: "\""):
            i += 1
            var s: [UInt8] = []
            while i < b.count, b[i] != UInt8(ascii: "\"") {
                if b[i] == UInt8(ascii: "\\"), i + 1 < b.count { i += 1 }
                s.append(b[i]); i += 1
            }
            i += 1
            return .string(s)
        case 0:   // a literal's place (the reader replaced "{n}" with a NUL)
            i += 1
            defer { nextLiteral += 1 }
            return nextLiteral < literals.count ? .string(literals[nextLiteral]) : nil
        default:
            let start = i
            var depth = 0
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "[") { depth += 1 } else if c == UInt8(ascii: "]") { depth -= 1 }
                if depth == 0 && (c == 32 || c == UInt8(ascii: ")") || c == UInt8(ascii: "(")) { break }
                i += 1
            }
            let atom = String(decoding: b[start..<i], as: UTF8.self)
            return atom.uppercased() == "NIL" ? .nilValue : .atom(atom)
        }
    }
}

/// A blocking IMAP client for the test threads.
final class ModelIMAPClient {
    let fd: Int32
    var buffer: [UInt8] = []
    var tagCounter = 0

    init(port: Int) throws {
        guard let fd = Loopback.connect(port: port, timeout: 20) else { throw POSIXError(.ECONNREFUSED) }
        self.fd = fd
        _ = try readResponseLine()   // greeting
    }

    deinit { close(fd) }

    func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        guard n > 0 else { throw POSIXError(.ECONNRESET) }
        buffer += chunk[0..<n]
    }

    /// One response line; a literal's contents go to `literals` and its "{n}" becomes a NUL placeholder.
    func readResponseLine() throws -> IMAPResponseLine {
        var line: [UInt8] = []
        var literals: [[UInt8]] = []
        while true {
            while buffer.firstIndex(of: 10) == nil { try fill() }
            let nl = buffer.firstIndex(of: 10)!
            var part = Array(buffer[..<nl])
            buffer.removeFirst(nl + 1)
            if part.last == 13 { part.removeLast() }
            if part.last == UInt8(ascii: "}"), let open = part.lastIndex(of: UInt8(ascii: "{")),
               let n = Int(String(decoding: part[(open + 1)..<(part.count - 1)], as: UTF8.self)) {
                let isLiteral8 = open > 0 && part[open - 1] == UInt8(ascii: "~")
                line += part[..<(isLiteral8 ? open - 1 : open)]
                line.append(0)
                while buffer.count < n { try fill() }
                literals.append(Array(buffer[..<n]))
                buffer.removeFirst(n)
                continue
            }
            line += part
            return IMAPResponseLine(bytes: line, literals: literals)
        }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Sends a command and returns the untagged lines and the tagged completion.
    func command(_ text: String, literal: [UInt8]? = nil) throws -> (untagged: [IMAPResponseLine], tagged: String) {
        tagCounter += 1
        let tag = "m\(tagCounter)"
        if let literal {
            send("\(tag) \(text) {\(literal.count)+}\r\n")
            literal.withUnsafeBytes { _ = Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            send("\r\n")
        } else {
            send("\(tag) \(text)\r\n")
        }
        var untagged: [IMAPResponseLine] = []
        while true {
            let line: IMAPResponseLine
            do { line = try readResponseLine() } catch {
                if ProcessInfo.processInfo.environment["TERN_MODEL_DEBUG"] != nil { print("DEBUG EOF during \(text.prefix(80)): \(untagged.suffix(5).map(\.text))") }
                throw error
            }
            if line.text.hasPrefix(tag + " ") { return (untagged, String(line.text.dropFirst(tag.count + 1))) }
            untagged.append(line)
        }
    }
}

/// What every client shares, by message key (the mailbox's number << 32 | UID): the true subjects and sizes, and the history of each owned keyword.
final class ModelTruth: Sendable {
    struct Change { var value: Bool; var start: Int; var end: Int }
    private struct State {
        var clock = 0
        var subjects: [UInt64: (subject: String, size: Int)] = [:]
        /// Copies (COPY, MOVE): their keywords start as the source's were, which no history here records.
        var copies: Set<UInt64> = []
        /// (uid, owner) → changes of keyword $k<owner> on that message, in the owner's order.
        var keywordHistory: [String: [Change]] = [:]
        var observedSubjects: [(UInt64, String)] = []
        /// When each message's owner began to expunge it: from then on a session may hold it as expunged-but-not-yet-
        /// reported, with the flags it last knew (RFC 9051 §7.5.1 keeps its number until EXPUNGE may be sent).
        var expungeStarted: [UInt64: Int] = [:]
        /// When the expunge of each message had completed (its EXPUNGE or MOVE answered).
        var expungeDone: [UInt64: Int] = [:]
        /// Messages their owner flagged \Deleted and later not (end nil while still flagged): from the STORE that set
        /// the flag being sent to the STORE that cleared it being answered.
        var deletedWindows: [UInt64: (start: Int, end: Int?)] = [:]
        /// Messages their owner expunged or moved itself.
        var removedByOwner: Set<UInt64> = []
        /// Every EXPUNGE command, from sent to answered.
        var expungeRuns: [(start: Int, end: Int)] = []
    }
    private let state = Mutex(State())

    /// The owner is about to flag `uid` \Deleted: any session's EXPUNGE may remove it from now on.
    func markingDeleted(_ uid: UInt64) {
        state.withLock { s in
            s.clock += 1
            s.expungeStarted[uid] = s.expungeStarted[uid] ?? s.clock
            s.deletedWindows[uid] = (s.clock, nil)
        }
    }
    /// The owner's STORE that cleared \Deleted was answered.
    func unmarkedDeleted(_ uid: UInt64) { state.withLock { s in s.clock += 1; s.deletedWindows[uid]?.end = s.clock } }
    var closedDeletedWindows: Int { state.withLock { $0.deletedWindows.values.filter { $0.end != nil }.count } }
    func expungeBegun(_ uid: UInt64) -> Bool { state.withLock { $0.expungeStarted[uid] != nil } }
    func removingOwn(_ uid: UInt64) { state.withLock { s in _ = s.removedByOwner.insert(uid) } }
    func expungeRan(start: Int, end: Int) { state.withLock { $0.expungeRuns.append((start, end)) } }

    /// Messages missing at the end that no EXPUNGE could have removed: their \Deleted was cleared (answered) before
    /// every EXPUNGE that ran while it was set had been sent (RFC 9051 §6.4.3 removes only messages flagged \Deleted).
    func unjustifiedRemovals(present: Set<UInt64>) -> [String] {
        state.withLock { s in
            s.deletedWindows.compactMap { uid, window -> String? in
                guard let end = window.end, !present.contains(uid), !s.removedByOwner.contains(uid) else { return nil }
                let overlapped = s.expungeRuns.contains { $0.start <= end && $0.end >= window.start }
                return overlapped ? nil
                    : "\(ModelClient.mailboxes[Int(uid >> 32)]) UID \(uid & 0xFFFF_FFFF) expunged, though its \\Deleted was cleared before any EXPUNGE ran"
            }
        }
    }

    func expunging(_ uid: UInt64) { state.withLock { s in s.clock += 1; s.expungeStarted[uid] = s.expungeStarted[uid] ?? s.clock } }
    /// QRESYNC resynchronisations, live VANISHED responses and SELECTs of the second mailbox (so the test can show it
    /// exercised them).
    let qresyncEvents = Mutex((resyncs: 0, vanished: 0, archiveSelects: 0, contextUpdates: 0))

    func expunged(_ uid: UInt64) { state.withLock { s in s.clock += 1; s.expungeDone[uid] = s.expungeDone[uid] ?? s.clock } }
    func expungeCompleted(_ uid: UInt64, before time: Int) -> Bool { state.withLock { ($0.expungeDone[uid] ?? Int.max) < time } }
    func mayBeExpunged(_ uid: UInt64, by end: Int) -> Bool { state.withLock { ($0.expungeStarted[uid] ?? Int.max) <= end } }

    func tick() -> Int { state.withLock { $0.clock += 1; return $0.clock } }
    func appended(uid: UInt64, subject: String, size: Int) { state.withLock { $0.subjects[uid] = (subject, size) } }
    func copied(_ key: UInt64, from source: UInt64) {
        state.withLock { s in
            if let m = s.subjects[source] { s.subjects[key] = m }
            s.copies.insert(key)
        }
    }
    func isCopy(_ key: UInt64) -> Bool { state.withLock { $0.copies.contains(key) } }
    func message(_ uid: UInt64) -> (subject: String, size: Int)? { state.withLock { $0.subjects[uid] } }
    func observe(uid: UInt64, subject: String) { state.withLock { $0.observedSubjects.append((uid, subject)) } }
    func allObservations() -> [(UInt64, String)] { state.withLock { $0.observedSubjects } }

    /// A keyword change about to be sent: in flight (it may show anywhere from now on) until `finished`.
    func beginKeyword(uid: UInt64, owner: Int, value: Bool) -> Int {
        state.withLock { s in
            s.clock += 1
            s.keywordHistory["\(uid)/\(owner)", default: []].append(Change(value: value, start: s.clock, end: Int.max))
            return s.clock
        }
    }

    /// The change begun at `start` was applied (`applied`) or changed nothing (then it is forgotten).
    func finishKeyword(uid: UInt64, owner: Int, start: Int, applied: Bool) {
        state.withLock { s in
            s.clock += 1
            let key = "\(uid)/\(owner)"
            guard let i = s.keywordHistory[key]?.lastIndex(where: { $0.start == start }) else { return }
            if applied { s.keywordHistory[key]![i].end = s.clock } else { s.keywordHistory[key]!.remove(at: i) }
        }
    }

    /// The values keyword $k<owner> of `uid` may show in a response to a command that ran from `start` to `end`.
    func allowedKeywordValues(uid: UInt64, owner: Int, start: Int, end: Int) -> Set<Bool> {
        state.withLock { s in
            let history = s.keywordHistory["\(uid)/\(owner)"] ?? []
            var allowed: Set<Bool> = []
            if let last = history.last(where: { $0.end < start }) {
                allowed.insert(last.value)
            } else if s.copies.contains(uid) {
                allowed = [false, true]   // as the source had it when copied
            } else {
                allowed.insert(false)
            }
            for c in history where c.start <= end && c.end >= start { allowed.insert(c.value) }
            return allowed
        }
    }
}

/// One simulated client and its model of the selected mailbox.
final class ModelClient {
    struct Entry { var uid: UInt32?; var flags: Set<String> }
    let id: Int
    let client: ModelIMAPClient
    let truth: ModelTruth
    var view: [Entry] = []
    var announced: Set<String> = []
    /// The selected mailbox (INBOX or Archive); MOVE and COPY go to the other.
    var mailbox = "INBOX"
    var other: String { mailbox == "INBOX" ? "Archive" : "INBOX" }
    static let mailboxes = ["INBOX", "Archive"]
    /// The key of a UID of the selected mailbox in the shared truth.
    func key(_ uid: UInt32) -> UInt64 { key(uid, in: mailbox) }
    func key(_ uid: UInt32, in box: String) -> UInt64 { UInt64(Self.mailboxes.firstIndex(of: box)!) << 32 | UInt64(uid) }
    /// What this client knows of each mailbox while another is selected.
    struct Saved {
        var mine: [UInt32: Bool] = [:]
        var appendedUIDs: [UInt32] = []
        var gone: Set<UInt32> = []
        var modSeqs: [UInt32: UInt64] = [:]
        var uidValidity: UInt32?
        var selectedModSeq: UInt64?
        var knownAtSelect: [UInt32] = []
    }
    var saved: [String: Saved] = [:]

    /// Keeps the selected mailbox's state and takes `box`'s.
    func switchTo(_ box: String) {
        guard box != mailbox else { return }
        saved[mailbox] = Saved(mine: mine, appendedUIDs: appendedUIDs, gone: gone, modSeqs: modSeqs, uidValidity: uidValidity,
                               selectedModSeq: selectedModSeq, knownAtSelect: knownAtSelect)
        let s = saved[box] ?? Saved()
        (mine, appendedUIDs, gone, modSeqs) = (s.mine, s.appendedUIDs, s.gone, s.modSeqs)
        (uidValidity, selectedModSeq, knownAtSelect) = (s.uidValidity, s.selectedModSeq, s.knownAtSelect)
        mailbox = box
    }
    /// The owned keyword's value on each UID as this client last stored it.
    var mine: [UInt32: Bool] = [:]
    var appendedUIDs: [UInt32] = []
    /// This client's message flagged \Deleted that it will clear again, and its mailbox.
    var markedDeleted: (UInt32, String)?
    /// UIDs this client stored on after they were expunged (the STORE changed nothing): their flags in a view that
    /// still holds them are the last known, not checked against later stores.
    var gone: Set<UInt32> = []
    var mismatches: [String] = []
    var rng: SplitMix
    /// QRESYNC enabled (RFC 7162): expunges come as VANISHED, and SELECT resynchronises.
    let qresync: Bool
    /// The highest MODSEQ each message was reported with.
    var modSeqs: [UInt32: UInt64] = [:]
    /// The client's sync point and the UIDs it knows (`advanceSyncPoint`): the state a QRESYNC SELECT starts from.
    var uidValidity: UInt32?
    var selectedModSeq: UInt64?
    var knownAtSelect: [UInt32] = []
    /// Collected from the responses of the command being run.
    var vanishedEarlier: Set<UInt32> = []
    var reportedUIDs: Set<UInt32> = []
    var reportedHighest: UInt64?
    var reportedValidity: UInt32?
    var keyword: String { "$k\(id)" }

    /// NOTIFY SET (selected-delayed ...) (RFC 5465): new messages and flag changes may come between commands (read with
    /// the next command's responses); expunges still only where RFC 9051 allows them.
    let notify: Bool
    var hasSelected = false

    /// A result kept up to date (RFC 5267 §4): by UID or sequence number, SEARCH (mailbox order) or SORT (SUBJECT).
    enum ContextKind { case uidSearch, uidSort, seqSearch, seqSort }
    let contextKind: ContextKind?
    var contextTag: String?
    /// The result as the updates left it (UIDs or sequence numbers, in result order).
    var context: [UInt32] = []
    /// The result's search key matches either keyword.
    var contextKeywords: [String] { [keyword, "$k\((id + 1) % 10)"] }

    init(id: Int, port: Int, truth: ModelTruth, seed: UInt64) throws {
        self.id = id
        self.truth = truth
        self.rng = SplitMix(seed: seed)
        qresync = id % 3 == 0
        contextKind = [1: .uidSearch, 2: .uidSort, 5: .seqSearch, 7: .seqSort][id]
        notify = id == 4 || id == 9
        client = try ModelIMAPClient(port: port)
        let login = try client.command("LOGIN alice@example.test pw")
        if !login.tagged.hasPrefix("OK") { mismatches.append("login: \(login.tagged)") }
        if qresync {
            let enabled = try client.command("ENABLE QRESYNC")
            if !enabled.untagged.contains(where: { $0.text == "* ENABLED QRESYNC" }) { mismatches.append("ENABLE QRESYNC: \(enabled)") }
        }
        if notify {
            let set = try client.command("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange))")
            if !set.tagged.hasPrefix("OK") { mismatches.append("NOTIFY: \(set.tagged)") }
        }
    }

    /// `1:3,7` expanded.
    static func uids(_ set: Substring) -> [UInt32] {
        set.split(separator: ",").flatMap { part -> [UInt32] in
            let ends = part.split(separator: ":").compactMap { UInt32($0) }
            guard let a = ends.first else { return [] }
            let b = ends.count > 1 ? ends[1] : a
            return Array(min(a, b)...max(a, b))
        }
    }

    func fail(_ what: String) { if mismatches.count < 50 { mismatches.append("client \(id): \(what)") } }

    /// Applies untagged responses to the model, checking each; `during` is the command they came with.
    func apply(_ lines: [IMAPResponseLine], during command: String, start: Int, end: Int, checkOthers: Bool) {
        let mayExpunge = !["FETCH", "STORE", "SEARCH", "UID FETCH", "UID STORE", "UID SEARCH"].contains(command)
        for line in lines {
            let t = line.text
            let words = t.split(separator: " ", maxSplits: 3).map(String.init)
            guard words.count >= 2, words[0] == "*" else { fail("untagged line without *: \(t)"); continue }
            if words[1] == "FLAGS" {
                var p = IMAPValueParser(b: line.bytes, i: 8, literals: line.literals)
                announced = Set((p.value()?.items ?? []).compactMap(\.text).map { $0.lowercased() })
                continue
            }
            if words[1] == "OK" {
                if let r = t.range(of: "[HIGHESTMODSEQ ") { reportedHighest = UInt64(t[r.upperBound...].prefix { $0.isNumber }) }
                if let r = t.range(of: "[UIDVALIDITY ") { reportedValidity = UInt32(t[r.upperBound...].prefix { $0.isNumber }) }
                continue
            }
            if words[1] == "VANISHED" {
                if !qresync { fail("VANISHED without QRESYNC: \(t)") }
                if t.hasPrefix("* VANISHED (EARLIER) ") {
                    vanishedEarlier.formUnion(Self.uids(t.dropFirst("* VANISHED (EARLIER) ".count)))
                    continue
                }
                if !mayExpunge { fail("VANISHED during \(command)") }
                let gone = Set(Self.uids(t.dropFirst("* VANISHED ".count)))
                truth.qresyncEvents.withLock { $0.vanished += 1 }
                let known = Set(view.compactMap(\.uid))
                view.removeAll { $0.uid.map(gone.contains) ?? false }
                // UIDs the client has not learnt yet (EXISTS told it of messages whose UIDs it has not fetched): the
                // message is one of the unknown entries between the known UIDs around it; which one does not matter,
                // the next FETCH of UIDs names the rest.
                for uid in gone.sorted() where !known.contains(uid) {
                    let slot = view.indices.first { i in
                        guard view[i].uid == nil else { return false }
                        let below = view[..<i].last(where: { $0.uid != nil })?.uid ?? 0
                        let above = view[(i + 1)...].first(where: { $0.uid != nil })?.uid ?? UInt32.max
                        return below < uid && uid < above
                    }
                    guard let i = slot else {
                        fail("VANISHED \(uid): not a message this session has")
                        if ProcessInfo.processInfo.environment["TERN_MODEL_DEBUG"] != nil {
                            print("DEBUG client \(id) during \(command): \(lines.map(\.text)) known \(known.sorted().suffix(8))")
                        }
                        continue
                    }
                    view.remove(at: i)
                }
                continue
            }
            if words[1] == "ESEARCH" { applyESearch(t); continue }
            if words[1] == "SEARCH" || words[1] == "CAPABILITY" || words[1] == "LIST" { continue }
            guard let n = Int(words[1]), words.count >= 3 else { continue }
            switch words[2] {
            case "EXISTS":
                if n < view.count { fail("EXISTS \(n) below the \(view.count) messages known (during \(command))") }
                while view.count < n { view.append(Entry(uid: nil, flags: [])) }
            case "RECENT":
                continue
            case "EXPUNGE":
                if qresync { fail("EXPUNGE to a QRESYNC session: \(t)") }
                if !mayExpunge { fail("EXPUNGE during \(command)") }
                guard n >= 1 && n <= view.count else { fail("EXPUNGE \(n) of \(view.count)"); continue }
                if contextTag != nil {
                    // RFC 5267 §4.3: the REMOVEFROM comes before the EXPUNGE.
                    let byUID = contextKind == .uidSearch || contextKind == .uidSort
                    if byUID, let u = view[n - 1].uid, context.contains(u) { fail("EXPUNGE \(n) (UID \(u)) still in the kept result") }
                    if !byUID {
                        if context.contains(UInt32(n)) { fail("EXPUNGE \(n) still in the kept result") }
                        context = context.map { $0 > UInt32(n) ? $0 - 1 : $0 }
                    }
                }
                view.remove(at: n - 1)
            case "FETCH":
                guard n >= 1 && n <= view.count else { fail("FETCH \(n) of \(view.count): \(t)"); continue }
                let prefix = "* \(n) FETCH ".utf8.count
                var p = IMAPValueParser(b: line.bytes, i: prefix, literals: line.literals)
                guard let v = p.value() else { fail("unparseable FETCH: \(t)"); continue }
                let before = mismatches.count
                checkFetch(seq: n, items: v.items, start: start, end: end, checkOthers: checkOthers)
                if mismatches.count > before, ProcessInfo.processInfo.environment["TERN_MODEL_DEBUG"] != nil {
                    print("DEBUG client \(id) during \(command): \(t) | all: \(lines.map(\.text))")
                }
            default:
                continue
            }
        }
        // UIDs in the view only grow.
        var last: UInt32 = 0
        for e in view { if let u = e.uid { if u <= last { fail("UIDs not increasing in the view") }; last = u } }
        if qresync { advanceSyncPoint(lines) }
    }

    /// The sync point a QRESYNC client keeps between SELECTs (RFC 7162 §3.2.10 and its errata): a HIGHESTMODSEQ code
    /// among the responses is it; otherwise the largest MODSEQ it was told. With the UIDs it then knows, it is what
    /// the next SELECT of the mailbox resynchronises from: an expunge held back while a larger MODSEQ was sent, with
    /// no lower HIGHESTMODSEQ, would be missing from that SELECT's VANISHED (EARLIER).
    func advanceSyncPoint(_ lines: [IMAPResponseLine]) {
        guard let current = selectedModSeq else { return }
        var code: UInt64?, largest = current
        for line in lines {
            let t = line.text
            if t.hasPrefix("* OK ["), let r = t.range(of: "[HIGHESTMODSEQ ") {
                code = UInt64(t[r.upperBound...].prefix { $0.isNumber })
            } else if t.contains(" FETCH ("), let r = t.range(of: "MODSEQ ("), let v = UInt64(t[r.upperBound...].prefix { $0.isNumber }) {
                largest = max(largest, v)
            }
        }
        selectedModSeq = code ?? largest
        knownAtSelect = view.compactMap(\.uid)
    }

    /// `* ESEARCH (TAG "t") [UID] ALL set | ADDTO (pos set ...) | REMOVEFROM (pos set ...)`, applied to the kept result.
    func applyESearch(_ t: String) {
        guard let tag = contextTag, t.hasPrefix("* ESEARCH (TAG \"\(tag)\")") else { fail("ESEARCH not for the kept result: \(t)"); return }
        var rest = Substring(t.dropFirst("* ESEARCH (TAG \"\(tag)\")".count))
        let byUID = contextKind == .uidSearch || contextKind == .uidSort
        if rest.hasPrefix(" UID") != byUID { fail("ESEARCH UID indicator wrong: \(t)") }
        if rest.hasPrefix(" UID") { rest = rest.dropFirst(4) }
        let words = rest.replacingOccurrences(of: "(", with: " ").replacingOccurrences(of: ")", with: " ").split(separator: " ")
        var k = 0
        let sorted = contextKind == .uidSort || contextKind == .seqSort
        while k < words.count {
            let name = words[k]
            k += 1
            if name == "ALL" {
                context = Self.numbers(words[k]); k += 1
                continue
            }
            guard name == "ADDTO" || name == "REMOVEFROM" else { fail("unexpected ESEARCH item \(name): \(t)"); return }
            truth.qresyncEvents.withLock { $0.contextUpdates += 1 }
            // Pairs of position and set until the next item name.
            while k + 1 < words.count, let position = Int(words[k]) {
                let numbers = Self.numbers(words[k + 1])
                k += 2
                if sorted && position == 0 { fail("position 0 in a SORT update: \(t)") }
                if !sorted && position != 0 { fail("SEARCH update at position \(position): \(t)") }
                if name == "ADDTO" {
                    if sorted {
                        guard position - 1 <= context.count else { fail("ADDTO at \(position) of \(context.count): \(t)"); return }
                        context.insert(contentsOf: numbers, at: position - 1)
                    } else {
                        for n in numbers where context.contains(n) { fail("ADDTO \(n) already in the result: \(t)") }
                        context = (context + numbers).sorted()
                    }
                } else if sorted {
                    guard position - 1 + numbers.count <= context.count,
                          Array(context[(position - 1)..<(position - 1 + numbers.count)]) == numbers else {
                        fail("REMOVEFROM \(position) \(numbers) does not match the result \(context): \(t)"); return
                    }
                    context.removeSubrange((position - 1)..<(position - 1 + numbers.count))
                } else {
                    for n in numbers where !context.contains(n) { fail("REMOVEFROM \(n) not in the result: \(t)") }
                    context.removeAll { numbers.contains($0) }
                }
            }
        }
    }

    /// `1:3,7` in the order written (a range in SORT order is ascending).
    static func numbers(_ set: Substring) -> [UInt32] { uids(set) }

    /// Starts keeping a result up to date (after each SELECT: the selection ends the last one).
    func startContext() throws {
        guard let kind = contextKind else { return }
        context = []
        let key = "OR KEYWORD \(contextKeywords[0]) KEYWORD \(contextKeywords[1])"
        let command: String
        switch kind {
        case .uidSearch: command = "UID SEARCH RETURN (UPDATE ALL) \(key)"
        case .seqSearch: command = "SEARCH RETURN (UPDATE ALL) \(key)"
        case .uidSort: command = "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 \(key)"
        case .seqSort: command = "SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 \(key)"
        }
        contextTag = "m\(client.tagCounter + 1)"
        try run(command)
        try checkContext()
    }

    /// The kept result is exactly the view's messages whose flags match, in mailbox order or by subject.
    func checkContext() throws {
        guard contextTag != nil, view.allSatisfy({ $0.uid != nil }) else { return }
        let byUID = contextKind == .uidSearch || contextKind == .uidSort
        var uids: [UInt32] = []
        for n in context {
            if byUID { uids.append(n); continue }
            guard n >= 1 && Int(n) <= view.count else { fail("kept result holds \(n) of \(view.count)"); return }
            uids.append(view[Int(n) - 1].uid!)
        }
        let expected = view.filter { e in contextKeywords.contains { e.flags.contains($0) } }.map { $0.uid! }
        if Set(uids) != Set(expected) || uids.count != expected.count {
            fail("kept result \(uids.sorted()) but the view matches \(expected)")
            return
        }
        if contextKind == .uidSort || contextKind == .seqSort {
            let subjects = uids.map { truth.message(key($0))?.subject.lowercased() }
            guard !subjects.contains(nil) else { return }
            for i in uids.indices.dropFirst() where (subjects[i - 1]!, uids[i - 1]) > (subjects[i]!, uids[i]) {
                fail("kept SORT result out of order at \(i): \(subjects[i - 1]!) before \(subjects[i]!)")
            }
        } else if uids != uids.sorted() {
            fail("kept SEARCH result not in mailbox order: \(uids)")
        }
    }

    func checkFetch(seq: Int, items: [IMAPValue], start: Int, end: Int, checkOthers: Bool) {
        var k = 0
        var uid: UInt32?
        var flags: Set<String>?
        var subjects: [String] = []
        var size: Int?
        var modSeq: UInt64?
        while k + 1 < items.count {
            let name = (items[k].text ?? "").uppercased()
            let value = items[k + 1]
            switch name {
            case "UID": uid = value.text.flatMap { UInt32($0) }
            case "FLAGS": flags = Set(value.items.compactMap(\.text))
            case "RFC822.SIZE": size = value.text.flatMap { Int($0) }
            case "MODSEQ": modSeq = value.items.first?.text.flatMap { UInt64($0) }
            case "ENVELOPE":
                if value.items.count > 1, let s = value.items[1].text { subjects.append(s) }
            default:
                if name.hasPrefix("BODY[HEADER.FIELDS"), case .string(let bytes) = value {
                    let text = String(decoding: bytes, as: UTF8.self)
                    if let r = text.range(of: "Subject: ") {
                        let rest = text[r.upperBound...]
                        subjects.append(String(rest.prefix { !$0.isNewline }).trimmingCharacters(in: .whitespaces))
                    }
                }
            }
            k += 2
        }
        if let uid {
            if let known = view[seq - 1].uid, known != uid { fail("FETCH \(seq): UID \(uid), the model has \(known)") }
            view[seq - 1].uid = uid
        }
        guard let uid = uid ?? view[seq - 1].uid else { return }
        reportedUIDs.insert(uid)
        if let modSeq {
            if let old = modSeqs[uid], modSeq < old { fail("UID \(uid): MODSEQ \(modSeq) after \(old)") }
            modSeqs[uid] = max(modSeq, modSeqs[uid] ?? 0)
        } else if qresync && flags != nil {
            fail("UID \(uid): FETCH FLAGS without MODSEQ in a QRESYNC session")
        }
        if let flags {
            for f in flags where !f.hasPrefix("\\") && !announced.contains(f.lowercased()) {
                fail("keyword \(f) in FETCH before FLAGS announced it")
            }
            view[seq - 1].flags = flags
            // The owned keyword: exactly as last stored by this client.
            let expunged = truth.mayBeExpunged(key(uid), by: end)
            if !gone.contains(uid), !expunged, let expected = mine[uid], expected != flags.contains(keyword) {
                fail("UID \(uid): \(keyword) is \(flags.contains(keyword)), last stored \(expected)")
            }
            // Others' keywords: a value they had while this command ran. (Not for a plain FETCH of UID and FLAGS: it
            // answers for an expunged message the view still holds with its last known flags.)
            for owner in 0..<16 where owner != id && checkOthers && !expunged {
                let allowed = truth.allowedKeywordValues(uid: key(uid), owner: owner, start: start, end: end)
                if !allowed.contains(flags.contains("$k\(owner)")) {
                    fail("UID \(uid): $k\(owner) is \(flags.contains("$k\(owner)")), allowed \(allowed) during [\(start), \(end)]")
                }
            }
        }
        for s in subjects {
            if let m = truth.message(key(uid)) {
                if m.subject != s { fail("UID \(uid): subject \(s), appended as \(m.subject)") }
            } else {
                truth.observe(uid: key(uid), subject: s)
            }
        }
        if let size, let m = truth.message(key(uid)), m.size != size { fail("UID \(uid): RFC822.SIZE \(size), appended \(m.size)") }
    }

    @discardableResult
    func run(_ command: String, literal: [UInt8]? = nil, checkOthers: Bool = true,
             refusal: ((String) -> Bool)? = nil) throws -> (untagged: [IMAPResponseLine], tagged: String) {
        let start = truth.tick()
        let (untagged, tagged) = try client.command(command, literal: literal)
        let end = truth.tick()
        let verb = command.split(separator: " ").prefix(command.hasPrefix("UID ") ? 2 : 1).joined(separator: " ").uppercased()
        // A NOTIFY client's responses may include what was pushed before the command began: others' keywords in them
        // cannot be placed in time.
        apply(untagged, during: verb, start: start, end: end, checkOthers: checkOthers && !notify)
        if !tagged.hasPrefix("OK") && refusal?(tagged) != true { fail("\(command.prefix(60)) → \(tagged)") }
        try checkContext()
        return (untagged, tagged)
    }

    /// Fills in UIDs and flags of messages learnt of by EXISTS.
    func learnUnknown() throws {
        guard let first = view.firstIndex(where: { $0.uid == nil }) else { return }
        try run("FETCH \(first + 1):\(view.count) (UID FLAGS)", checkOthers: false)
    }

    func select(_ box: String = "INBOX") throws {
        if notify && hasSelected {
            // Changes pushed before the SELECT was read are the old mailbox's: they end at OK [CLOSED].
            let start = truth.tick()
            let (untagged, tagged) = try client.command("SELECT \(box)")
            let end = truth.tick()
            let cut = untagged.firstIndex { $0.text.hasPrefix("* OK [CLOSED]") }
            if cut == nil { fail("SELECT of another mailbox without OK [CLOSED]") }
            apply(Array(untagged[..<(cut ?? 0)]), during: "SELECT", start: start, end: end, checkOthers: false)
            switchTo(box)
            view = []
            apply(Array(untagged[(cut ?? 0)...]), during: "SELECT", start: start, end: end, checkOthers: false)
            if !tagged.hasPrefix("OK") { fail("SELECT \(box) → \(tagged)") }
            try learnUnknown()
            remember()
            return
        }
        hasSelected = true
        switchTo(box)
        if box != "INBOX" { truth.qresyncEvents.withLock { $0.archiveSelects += 1 } }
        view = []
        vanishedEarlier = []
        reportedUIDs = []
        reportedHighest = nil
        reportedValidity = nil
        guard qresync, let validity = uidValidity, let modSeq = selectedModSeq, !knownAtSelect.isEmpty else {
            contextTag = nil
            try run("SELECT \(mailbox)")
            try learnUnknown()
            remember()
            try startContext()
            return
        }
        // RFC 7162 §3.2.5: resynchronise from what the last SELECT left this client with.
        let start = truth.tick()
        try run("SELECT \(mailbox) (QRESYNC (\(validity) \(modSeq) \(knownAtSelect.map(String.init).joined(separator: ","))))")
        let vanished = vanishedEarlier, reported = reportedUIDs
        truth.qresyncEvents.withLock { $0.resyncs += 1 }
        guard reportedValidity == validity, let highest = reportedHighest else { fail("QRESYNC SELECT without UIDVALIDITY/HIGHESTMODSEQ"); return }
        try learnUnknown()
        let (lines, _) = try run("UID FETCH 1:* (FLAGS MODSEQ)", checkOthers: false)
        var now: [UInt32: UInt64] = [:]
        for line in lines where line.text.contains(" FETCH (") {
            let t = line.text
            guard let u = t.range(of: "UID "), let uid = UInt32(t[u.upperBound...].prefix { $0.isNumber }),
                  let m = t.range(of: "MODSEQ ("), let ms = UInt64(t[m.upperBound...].prefix { $0.isNumber }) else { continue }
            now[uid] = ms
        }
        for uid in vanished where now[uid] != nil { fail("UID \(uid) in VANISHED (EARLIER) is still there") }
        for uid in knownAtSelect where now[uid] == nil && !vanished.contains(uid) && truth.expungeCompleted(key(uid), before: start) {
            fail("UID \(uid) expunged before the SELECT but not in its VANISHED (EARLIER)")
        }
        for (uid, ms) in now where ms > modSeq && !reported.contains(uid) && ms <= highest {
            fail("UID \(uid) changed (MODSEQ \(ms) > \(modSeq)) before the SELECT (HIGHESTMODSEQ \(highest)) but was not reported")
        }
        remember()
    }

    /// The state a later QRESYNC SELECT starts from.
    func remember() {
        uidValidity = reportedValidity
        selectedModSeq = reportedHighest
        knownAtSelect = view.compactMap(\.uid)
    }

    func step() throws {
        try learnUnknown()
        let roll = rng.next(100)
        if roll < 20 || view.isEmpty {
            let n = appendedUIDs.count
            let subject = "model \(id)-\(n)-\(rng.next(1_000_000))"
            let body = String(repeating: "line \(id) \(n)\r\n", count: 1 + rng.next(20))
            let message = Array("From: c\(id)@example.test\r\nSubject: \(subject)\r\n\r\n\(body)".utf8)
            let tagged = try run("APPEND \(mailbox)", literal: message).tagged
            if let r = tagged.range(of: "APPENDUID "), let uid = tagged[r.upperBound...].split(separator: " ").dropFirst().first.flatMap({ UInt32($0.prefix { $0.isNumber }) }) {
                truth.appended(uid: key(uid), subject: subject, size: message.count)
                appendedUIDs.append(uid)
            } else {
                fail("APPEND without APPENDUID: \(tagged)")
            }
        } else if roll < 45 {
            // Toggle the owned keyword on a message the view holds.
            let seq = 1 + rng.next(view.count)
            guard let uid = view[seq - 1].uid else { return }
            let value = rng.next(2) == 0
            let start = truth.beginKeyword(uid: key(uid), owner: id, value: value)
            // While the STORE runs, its own answer may show either value.
            let previous = mine.removeValue(forKey: uid)
            let (untagged, _) = try run("UID STORE \(uid) \(value ? "+" : "-")FLAGS (\(keyword))")
            let applied = untagged.contains { $0.text.contains(" FETCH (") && $0.text.contains("UID \(uid) ") && $0.text.contains(keyword) == value }
            truth.finishKeyword(uid: key(uid), owner: id, start: start, applied: applied)
            if applied {
                // Applied: the STORE answered with the message's new flags.
                mine[uid] = value
            } else if (previous ?? false) != value {
                // Nothing changed although the value differs: the message is gone.
                gone.insert(uid)
            } else {
                mine[uid] = previous
            }
        } else if roll < 73 {
            let a = 1 + rng.next(view.count), b = min(view.count, a + rng.next(5))
            _ = try run("FETCH \(a):\(b) (UID FLAGS RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        } else if roll < 81 {
            let (untagged, _) = try run("SEARCH KEYWORD \(keyword)")
            // Exactly the messages this client last marked with its own keyword (it is the keyword's only writer).
            let found = Set(untagged.filter { $0.text.hasPrefix("* SEARCH") }.flatMap { $0.text.split(separator: " ").dropFirst(2).compactMap { Int($0) } })
            for (i, e) in view.enumerated() {
                guard let uid = e.uid, !gone.contains(uid), !truth.mayBeExpunged(key(uid), by: Int.max) else { continue }
                // A copy carries the keyword as its source had it until this client stores it on the copy itself.
                if mine[uid] == nil && truth.isCopy(key(uid)) { continue }
                if (mine[uid] ?? false) != found.contains(i + 1) { fail("SEARCH KEYWORD \(keyword): message \(i + 1) (UID \(uid)) \(found.contains(i + 1) ? "found" : "missing")") }
            }
        } else if roll < 85 {
            // Delete one of this client's own messages.
            guard let uid = appendedUIDs.randomElement(using: &rng) else { return }
            truth.expunging(key(uid))
            truth.removingOwn(key(uid))
            try run("UID STORE \(uid) +FLAGS.SILENT (\\Deleted)")
            let start = truth.tick()
            try run("EXPUNGE")
            truth.expungeRan(start: start, end: truth.tick())
            truth.expunged(key(uid))
        } else if roll < 88 {
            // EXPUNGE alone: whatever is flagged \Deleted now goes (other clients' messages between their two STOREs).
            let start = truth.tick()
            try run("EXPUNGE")
            truth.expungeRan(start: start, end: truth.tick())
        } else if roll < 89 {
            try run("NOOP")
        } else if roll < 93 {
            // Flag one of this client's own messages \Deleted, and at a later step clear the flag again: other sessions
            // learn of the flag meanwhile, and an EXPUNGE of theirs after it was cleared must leave the message.
            if let (uid, box) = markedDeleted {
                guard box == mailbox else { return }
                try run("UID STORE \(uid) -FLAGS.SILENT (\\Deleted)")
                truth.unmarkedDeleted(key(uid))
                markedDeleted = nil
            } else if let uid = appendedUIDs.randomElement(using: &rng), !truth.expungeBegun(key(uid)) {
                truth.markingDeleted(key(uid))
                try run("UID STORE \(uid) +FLAGS.SILENT (\\Deleted)")
                markedDeleted = (uid, mailbox)
            }
        } else if roll < 95 {
            // MOVE one of this client's own messages to Archive (an expunge here), or COPY any message there. Either
            // may find the message expunged by another session: then NO [EXPUNGEISSUED], and nothing copied.
            func expungedElsewhere(_ uid: UInt32) -> (String) -> Bool {
                { $0.hasPrefix("NO [EXPUNGEISSUED]") && self.truth.mayBeExpunged(self.key(uid), by: self.truth.tick()) }
            }
            if rng.next(2) == 0, let uid = appendedUIDs.randomElement(using: &rng) {
                // Another session can expunge this client's message only once it was flagged \Deleted (before now).
                let flagged = truth.expungeBegun(key(uid))
                let refused = { (tagged: String) in flagged && expungedElsewhere(uid)(tagged) }
                truth.expunging(key(uid))
                truth.removingOwn(key(uid))
                let (untagged, _) = try run("UID MOVE \(uid) \(other)", refusal: refused)
                recordCopies(untagged.map(\.text))
                truth.expunged(key(uid))
            } else if let uid = view.randomElement(using: &rng)?.uid {
                let (_, tagged) = try run("UID COPY \(uid) \(other)", refusal: expungedElsewhere(uid))
                recordCopies([tagged])
            }
        } else if roll < 98 {
            try idle()
        } else {
            try select(rng.next(10) < 7 ? "INBOX" : "Archive")
        }
    }

    /// COPYUID (RFC 4315) tells where copies went: they have their source's subject and size in the truth.
    func recordCopies(_ lines: [String]) {
        for line in lines {
            guard let r = line.range(of: "[COPYUID ") else { continue }
            let fields = line[r.upperBound...].prefix { $0 != "]" }.split(separator: " ")
            guard fields.count == 3 else { fail("COPYUID: \(line)"); continue }
            let sources = Self.uids(fields[1]), targets = Self.uids(fields[2])
            guard sources.count == targets.count else { fail("COPYUID sets differ: \(line)"); continue }
            for (src, dst) in zip(sources, targets) { truth.copied(key(dst, in: other), from: key(src)) }
        }
    }

    /// IDLE for a moment: whatever the server reports meanwhile is checked like any untagged response.
    func idle() throws {
        let start = truth.tick()
        client.tagCounter += 1
        let tag = "m\(client.tagCounter)"
        client.send("\(tag) IDLE\r\n")
        var lines: [IMAPResponseLine] = []
        // With NOTIFY, changes pushed before the IDLE was read may come before its continuation.
        var first = try client.readResponseLine()
        while notify && first.text.hasPrefix("* ") {
            lines.append(first)
            first = try client.readResponseLine()
        }
        guard first.text.hasPrefix("+") else { fail("IDLE answered \(first.text)"); return }
        // Up to 50 ms of updates, then DONE.
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(client.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        while let line = try? client.readResponseLine() { lines.append(line) }
        tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(client.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        client.send("DONE\r\n")
        while true {
            let line = try client.readResponseLine()
            if line.text.hasPrefix(tag + " ") {
                if !line.text.dropFirst(tag.count + 1).hasPrefix("OK") { fail("IDLE ended with \(line.text)") }
                break
            }
            lines.append(line)
        }
        apply(lines, during: "IDLE", start: start, end: truth.tick(), checkOthers: !notify)
        try checkContext()
    }
}


@Suite struct IMAPModelTests {
    /// Clients and steps: `TERN_IMAP_MODEL_STEPS` raises the steps for a longer run (bench/imap-model).
    static let clients = 10
    static let steps = Int(ProcessInfo.processInfo.environment["TERN_IMAP_MODEL_STEPS"] ?? "") ?? 120
    /// The run's seed (`TERN_IMAP_MODEL_SEED` repeats one; the thread interleaving still varies from run to run).
    static let seed = UInt64(ProcessInfo.processInfo.environment["TERN_IMAP_MODEL_SEED"] ?? "") ?? 1

    @Test func concurrentClientsAgreeWithTheModel() async throws {
        try await run(on: .sqlite)
    }

    /// The same clients against the store on PostgreSQL (its STORE, EXPUNGE and delivery are statements of their own).
    @Test(.enabled(if: TestDatabase.available, "needs TERN_TEST_POSTGRES (scripts/test starts a server)"))
    func concurrentClientsAgreeWithTheModelOnPostgreSQL() async throws {
        try await run(on: .postgres)
    }

    func run(on backend: InProcessServer.Backend) async throws {
        let s = try await InProcessServer.start(on: backend) {
            $0.listen[.imap] = [ListenAddress(host: "127.0.0.1", port: 0)]
            $0.limits.maxConnectionsPerAddress = 1000
        }
        let port = s.port(of: .imap)
        let truth = ModelTruth()
        let results = Mutex<[String]>([])
        let steps = Self.steps
        var threads: [Thread] = []
        let done = DispatchGroup()
        for c in 0..<Self.clients {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                do {
                    let client = try ModelClient(id: c, port: port, truth: truth, seed: Self.seed &+ UInt64(c + 1) * 7919)
                    try client.select()
                    for _ in 0..<steps { try client.step() }
                    try client.run("NOOP")
                    results.withLock { $0 += client.mismatches }
                } catch {
                    results.withLock { $0.append("client \(c): \(error)") }
                }
            }
            threads.append(thread)
            thread.start()
        }
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            done.notify(queue: .global()) { k.resume() }
        }
        var problems = results.withLock { $0 }
        // Subjects seen before their APPEND had answered: checked now that every APPEND has.
        for (key, subject) in truth.allObservations() {
            if let m = truth.message(key), m.subject != subject {
                problems.append("\(ModelClient.mailboxes[Int(key >> 32)]) UID \(key & 0xFFFF_FFFF): subject \(subject), appended as \(m.subject)")
            }
        }
        // What is left: no message was expunged while its \Deleted was cleared.
        if let alice = try await s.store.account(try EmailAddress.parse("alice@example.test")) {
            var present = Set<UInt64>()
            for box in try await s.store.mailboxes(account: alice) {
                guard let index = ModelClient.mailboxes.firstIndex(of: box.name) else { continue }
                for m in try await s.store.messages(mailbox: box.id) { present.insert(UInt64(index) << 32 | UInt64(m.uid.rawValue)) }
            }
            problems += truth.unjustifiedRemovals(present: present)
        } else {
            problems.append("alice is gone")
        }
        let windows = truth.closedDeletedWindows
        for p in problems.prefix(20) { print("model mismatch: \(p)") }
        // The QRESYNC clients did resynchronise and did hear expunges as VANISHED; clients worked in both mailboxes.
        let events = truth.qresyncEvents.withLock { $0 }
        #expect(events.resyncs > 0 && events.vanished > 0 && events.archiveSelects > 0 && events.contextUpdates > 0, "\(events)")
        #expect(windows > 0, "no client flagged a message \\Deleted and cleared it again")
        #expect(problems.isEmpty, "\(problems.count) mismatches")
        try await s.stop()
    }
}
