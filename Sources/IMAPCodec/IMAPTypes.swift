import Foundation

/// A set of message numbers or UIDs: `1:3,7,10:*` (RFC 9051 §9 `sequence-set`).
public struct SequenceSet: Hashable, Sendable, CustomStringConvertible {
    /// One range; `nil` bounds stand for `*` (the largest number in use).
    public struct Range: Hashable, Sendable {
        public var from: UInt32?
        public var to: UInt32?
        public init(_ from: UInt32?, _ to: UInt32?) { self.from = from; self.to = to }
    }

    public var ranges: [Range] { didSet { lookup = Lookup(ranges) } }
    /// `$`: the result of the last SEARCH with SAVE (RFC 5182).
    public var isSaved = false
    /// The ranges arranged for `contains`: a set of tens of thousands of ranges (a 64 KB line of `1,3,5,…`) is asked
    /// about every message of a SEARCH, and a scan of them each time would hold a core for minutes.
    private var lookup: Lookup

    /// Ranges with two numbers merged, sorted and disjoint (binary search); those with a `*` reduced to the lowest and
    /// highest number they name: each covers the numbers between its bound and `*`, so together they cover those
    /// between the lowest (or `*`) and the highest (or `*`).
    private struct Lookup: Hashable, Sendable {
        var fixed: [ClosedRange<UInt32>] = []
        var hasStar = false
        var starLow: UInt32?
        var starHigh: UInt32?

        init(_ ranges: [Range]) {
            var fixed: [ClosedRange<UInt32>] = []
            for r in ranges {
                if let a = r.from, let b = r.to {
                    fixed.append(min(a, b)...max(a, b))
                } else {
                    hasStar = true
                    for bound in [r.from, r.to].compactMap({ $0 }) {
                        starLow = min(starLow ?? bound, bound)
                        starHigh = max(starHigh ?? bound, bound)
                    }
                }
            }
            self.fixed = Self.merge(fixed)
        }

        /// Ranges sorted and merged: disjoint, and no two adjacent.
        static func merge(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
            var out: [ClosedRange<UInt32>] = []
            for r in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
                if let last = out.last, r.lowerBound <= last.upperBound || r.lowerBound == last.upperBound &+ 1 {
                    out[out.count - 1] = last.lowerBound...max(last.upperBound, r.upperBound)
                } else {
                    out.append(r)
                }
            }
            return out
        }

        /// The ranges with `*` as `largest`, sorted and merged.
        func merged(largest: UInt32) -> [ClosedRange<UInt32>] {
            guard hasStar else { return fixed }
            let star = min(starLow ?? largest, largest)...max(starHigh ?? largest, largest)
            return Self.merge(fixed + [star])
        }

        func contains(_ n: UInt32, largest: UInt32) -> Bool {
            if hasStar, n >= min(starLow ?? largest, largest), n <= max(starHigh ?? largest, largest) { return true }
            var low = 0, high = fixed.count
            while low < high {
                let mid = (low + high) / 2
                if fixed[mid].upperBound < n { low = mid + 1 } else { high = mid }
            }
            return low < fixed.count && fixed[low].contains(n)
        }
    }

    public init(ranges: [Range]) {
        self.ranges = ranges
        lookup = Lookup(ranges)
    }

    public static func single(_ n: UInt32) -> SequenceSet { SequenceSet(ranges: [Range(n, n)]) }

    /// Whether `n` is in the set, with `*` meaning `largest`.
    public func contains(_ n: UInt32, largest: UInt32) -> Bool { lookup.contains(n, largest: largest) }

    /// The numbers of the set, with `*` meaning `largest`, as sorted ranges, disjoint and merged: a walk over them
    /// beside a mailbox in order finds what the set addresses.
    public func merged(largest: UInt32) -> [ClosedRange<UInt32>] { lookup.merged(largest: largest) }

    public var description: String {
        if isSaved { return "$" }
        return ranges.map { r in
            let a = r.from.map(String.init) ?? "*", b = r.to.map(String.init) ?? "*"
            return a == b ? a : "\(a):\(b)"
        }.joined(separator: ",")
    }

    /// The set of exactly these numbers, consecutive ones as ranges (in any order; duplicates are fine).
    public init(numbers: [UInt32]) {
        var ranges: [Range] = []
        for n in numbers.sorted() {
            if let last = ranges.last, let to = last.to, n <= to &+ 1, to != .max || n == to {
                ranges[ranges.count - 1].to = max(to, n)
            } else {
                ranges.append(Range(n, n))
            }
        }
        self.init(ranges: ranges)
    }

    /// Compact form of a list of numbers: `1:3,5,7:9`.
    public static func compact(_ numbers: [UInt32]) -> String { SequenceSet(numbers: numbers).description }
}

/// A section of a message for `BODY[...]` (RFC 9051 §6.4.5).
public struct SectionSpec: Hashable, Sendable, CustomStringConvertible {
    public enum Text: Hashable, Sendable {
        case full
        case header
        case headerFields([String])
        case headerFieldsNot([String])
        case text
        case mime
    }
    /// Part numbers (`1.2.3`); empty for the whole message.
    public var part: [Int]
    public var text: Text

    public init(part: [Int] = [], text: Text = .full) {
        self.part = part
        self.text = text
    }

    public var description: String {
        var s = part.map(String.init).joined(separator: ".")
        let t: String
        switch text {
        case .full: t = ""
        case .header: t = "HEADER"
        case .headerFields(let f): t = "HEADER.FIELDS (\(f.joined(separator: " ")))"
        case .headerFieldsNot(let f): t = "HEADER.FIELDS.NOT (\(f.joined(separator: " ")))"
        case .text: t = "TEXT"
        case .mime: t = "MIME"
        }
        if !s.isEmpty && !t.isEmpty { s += "." }
        return s + t
    }
}

/// What FETCH asks for.
public enum FetchAttribute: Hashable, Sendable {
    case uid
    case flags
    case internalDate
    case rfc822Size
    case envelope
    case bodyStructure
    /// `BODY` without a section: the non-extensible body structure.
    case body
    /// `BODY[section]<partial>` or `BODY.PEEK[...]`.
    case bodySection(SectionSpec, partial: ClosedRange<Int>?, peek: Bool)
    /// `BINARY[part]<partial>` / `BINARY.PEEK` (RFC 3516).
    case binary(part: [Int], partial: ClosedRange<Int>?, peek: Bool)
    case binarySize(part: [Int])
    /// `RFC822` (= BODY[]), `RFC822.HEADER` (= BODY.PEEK[HEADER]), `RFC822.TEXT` (= BODY[TEXT]).
    case rfc822
    case rfc822Header
    case rfc822Text
    case modSeq
    /// OBJECTID (RFC 8474): the message's immutable id, and its thread's.
    case emailID
    case threadID
    /// SAVEDATE (RFC 8514): when the message was saved into this mailbox.
    case saveDate
    /// PREVIEW (RFC 8970): up to 256 characters of the message's text; `lazy` lets the server answer NIL.
    case preview(lazy: Bool)
}

/// `+FLAGS`, `-FLAGS` or `FLAGS`.
public enum StoreOperation: Hashable, Sendable {
    case add, remove, replace
}

public enum StatusItem: String, Hashable, Sendable, CaseIterable {
    case messages = "MESSAGES"
    case recent = "RECENT"
    case uidNext = "UIDNEXT"
    case uidValidity = "UIDVALIDITY"
    case unseen = "UNSEEN"
    case size = "SIZE"
    case highestModSeq = "HIGHESTMODSEQ"
    case deleted = "DELETED"
    /// OBJECTID (RFC 8474 §4.2).
    case mailboxID = "MAILBOXID"
}

/// A SEARCH key (RFC 9051 §6.4.4).
public indirect enum SearchKey: Hashable, Sendable {
    case all
    case answered, deleted, draft, flagged, seen, recent, new, old
    case unanswered, undeleted, undraft, unflagged, unseen
    case keyword(String), unkeyword(String)
    case bcc(String), cc(String), from(String), to(String), subject(String)
    case header(String, String)
    case body(String), text(String)
    case before(SearchDate), on(SearchDate), since(SearchDate)
    case sentBefore(SearchDate), sentOn(SearchDate), sentSince(SearchDate)
    case larger(Int), smaller(Int)
    /// `YOUNGER n` / `OLDER n` (WITHIN, RFC 5032): INTERNALDATE within / more than n seconds before now.
    case younger(Int), older(Int)
    case uid(SequenceSet)
    case sequence(SequenceSet)
    case not(SearchKey)
    case or(SearchKey, SearchKey)
    case and([SearchKey])
    case modSeq(Int64)
    /// OBJECTID (RFC 8474 §5): `EMAILID id`, `THREADID id`.
    case emailID(String), threadID(String)
    /// SAVEDATE (RFC 8514 §4): by the date a message was saved into the mailbox.
    case savedBefore(SearchDate), savedOn(SearchDate), savedSince(SearchDate)
    case saveDateSupported
}

/// `NOTIFY SET [STATUS] event-groups` (RFC 5465 §8).
public struct NotifySet: Hashable, Sendable {
    /// STATUS: answer with the current STATUS of every mailbox watched for message events.
    public var status: Bool
    public var groups: [NotifyGroup]
    public init(status: Bool, groups: [NotifyGroup]) { self.status = status; self.groups = groups }
}

/// One `(filter-mailboxes events)` of NOTIFY.
public struct NotifyGroup: Hashable, Sendable {
    public enum Filter: Hashable, Sendable {
        case selected, selectedDelayed, inboxes, personal, subscribed
        case subtree([String]), mailboxes([String])
        public var isSelected: Bool { self == .selected || self == .selectedDelayed }
    }
    public var filter: Filter
    /// Empty for NONE.
    public var events: NotifyEvents
    /// The FETCH items sent with a new message in the selected mailbox (MessageNew (...)).
    public var fetch: [FetchAttribute]
    public init(filter: Filter, events: NotifyEvents, fetch: [FetchAttribute] = []) {
        self.filter = filter
        self.events = events
        self.fetch = fetch
    }
}

/// The events of RFC 5465 §5 that Tern reports.
public struct NotifyEvents: OptionSet, Hashable, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let messageNew = NotifyEvents(rawValue: 1)
    public static let messageExpunge = NotifyEvents(rawValue: 2)
    public static let flagChange = NotifyEvents(rawValue: 4)
    public static let mailboxName = NotifyEvents(rawValue: 8)
    public static let subscriptionChange = NotifyEvents(rawValue: 16)
    public static let message: NotifyEvents = [.messageNew, .messageExpunge, .flagChange]
    /// Their names, for BADEVENT.
    public static let names = ["MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"]
}

/// A date in SEARCH: day, month (1–12), year.
public struct SearchDate: Hashable, Sendable {
    public var day: Int
    public var month: Int
    public var year: Int
    public init(day: Int, month: Int, year: Int) { self.day = day; self.month = month; self.year = year }
}

/// `RETURN (MIN MAX COUNT ALL SAVE)` of ESEARCH (RFC 4731).
public struct SearchReturn: OptionSet, Hashable, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let min = SearchReturn(rawValue: 1)
    public static let max = SearchReturn(rawValue: 2)
    public static let count = SearchReturn(rawValue: 4)
    public static let all = SearchReturn(rawValue: 8)
    public static let save = SearchReturn(rawValue: 16)
    /// CONTEXT=SEARCH/SORT (RFC 5267 §4): keep the result up to date with ADDTO and REMOVEFROM.
    public static let update = SearchReturn(rawValue: 32)
    /// RFC 5267 §4: a hint that the search will be repeated; nothing changes in the answer.
    public static let context = SearchReturn(rawValue: 64)
}

/// `PARTIAL first:last` (RFC 9394): a window of a SEARCH or SORT result, or of the messages a FETCH addresses, by
/// position: `1:100` the first hundred, `-1:-100` the last hundred.
public struct PartialRange: Hashable, Sendable, CustomStringConvertible {
    public var first: Int
    public var last: Int
    public init(_ first: Int, _ last: Int) {
        self.first = first
        self.last = last
    }

    public var description: String { "\(first):\(last)" }

    /// The positions (0-based) the window covers in a result of `count` items, clipped to it.
    public func indices(count: Int) -> Range<Int> {
        let a = min(abs(first), abs(last)), b = max(abs(first), abs(last))
        if first > 0 {
            let lo = min(a - 1, count), hi = min(b, count)
            return lo..<hi
        }
        // -1 is the last item.
        let lo = max(count - b, 0), hi = max(count - a + 1, 0)
        return lo..<hi
    }
}

/// `QRESYNC (uidvalidity modseq [known-uids])` of SELECT/EXAMINE (RFC 7162 §3.2.5).
public struct QResyncParameters: Hashable, Sendable {
    public var uidValidity: UInt32
    public var modSeq: Int64
    public var knownUIDs: SequenceSet?
    public init(uidValidity: UInt32, modSeq: Int64, knownUIDs: SequenceSet?) {
        self.uidValidity = uidValidity
        self.modSeq = modSeq
        self.knownUIDs = knownUIDs
    }
}

/// One SORT criterion (RFC 5256 §3), possibly reversed.
public struct SortCriterion: Hashable, Sendable {
    public enum Key: String, Hashable, Sendable {
        case arrival = "ARRIVAL", cc = "CC", date = "DATE", from = "FROM", size = "SIZE", subject = "SUBJECT", to = "TO"
        case displayFrom = "DISPLAYFROM", displayTo = "DISPLAYTO"
    }
    public var key: Key
    public var reverse: Bool
    public init(_ key: Key, reverse: Bool = false) { self.key = key; self.reverse = reverse }
}

public enum ThreadAlgorithm: String, Hashable, Sendable {
    case orderedSubject = "ORDEREDSUBJECT"
    case references = "REFERENCES"
}

/// One message of an APPEND (several with MULTIAPPEND, RFC 3502).
public struct AppendMessage: Hashable, Sendable {
    public var flags: [String]
    /// `date-time` as written, such as `"17-Jul-1996 02:44:25 -0700"`.
    public var internalDate: String?
    public var data: [UInt8]
    /// CATENATE (RFC 4469): the message is made of these parts, in order (`data` is then empty).
    public var catenate: [CatenatePart]?
    public init(flags: [String], internalDate: String?, data: [UInt8], catenate: [CatenatePart]? = nil) {
        self.flags = flags
        self.internalDate = internalDate
        self.data = data
        self.catenate = catenate
    }
}

/// A part of a CATENATE APPEND: text sent with the command, or an IMAP URL of a message (or a part of one) already on
/// the server.
public enum CatenatePart: Hashable, Sendable {
    case text([UInt8])
    case url(String)
}

/// An IMAP URL naming a message or a part of one (RFC 5092): `/INBOX;UIDVALIDITY=385759045/;UID=20/;SECTION=1.MIME`,
/// or the same after `imap://[user@]host[:port]`. Only what CATENATE needs: no search URLs, no URLAUTH.
public struct IMAPURL: Hashable, Sendable {
    /// The host of an absolute URL (nil: relative to this server).
    public var host: String?
    public var user: String?
    /// The mailbox name with its %-escapes undone (RFC 5092 §3: the name as IMAP writes it, modified UTF-7 or UTF-8).
    public var mailbox: String
    public var uidValidity: UInt32?
    public var uid: UInt32
    public var section: SectionSpec?
    /// `;PARTIAL=offset[.length]`.
    public var partialOffset: Int?
    public var partialLength: Int?

    public init(host: String? = nil, user: String? = nil, mailbox: String, uidValidity: UInt32? = nil, uid: UInt32,
                section: SectionSpec? = nil) {
        self.host = host
        self.user = user
        self.mailbox = mailbox
        self.uidValidity = uidValidity
        self.uid = uid
        self.section = section
    }

    /// Nil when the text is not an IMAP URL of a message.
    public static func parse(_ text: String) -> IMAPURL? {
        var rest = Substring(text)
        var host: String?, user: String?
        if rest.lowercased().hasPrefix("imap://") {
            rest = rest.dropFirst(7)
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            var authority = rest[..<slash]
            rest = rest[slash...]
            if let at = authority.lastIndex(of: "@") {
                let userPart = authority[..<at].split(separator: ";", maxSplits: 1).first ?? ""
                user = percentDecode(userPart)
                authority = authority[authority.index(after: at)...]
            }
            host = String(authority.split(separator: ":", maxSplits: 1).first ?? "").lowercased()
            guard !(host ?? "").isEmpty else { return nil }
        }
        guard rest.hasPrefix("/") else { return nil }
        rest = rest.dropFirst()
        // mailbox [";UIDVALIDITY=n"] "/;UID=n" ["/;SECTION=s"] ["/;PARTIAL=o[.l]"]
        let pieces = rest.components(separatedBy: "/;")
        guard pieces.count >= 2 else { return nil }
        var mailboxPart = Substring(pieces[0])
        var validity: UInt32?
        if let semi = mailboxPart.range(of: ";UIDVALIDITY=", options: .caseInsensitive) {
            guard let v = UInt32(mailboxPart[semi.upperBound...]), v > 0 else { return nil }
            validity = v
            mailboxPart = mailboxPart[..<semi.lowerBound]
        }
        guard let mailbox = percentDecode(mailboxPart), !mailbox.isEmpty else { return nil }
        var url: IMAPURL?
        for (n, piece) in pieces.dropFirst().enumerated() {
            guard let eq = piece.firstIndex(of: "=") else { return nil }
            let key = piece[..<eq].uppercased(), value = String(piece[piece.index(after: eq)...])
            switch (n, key) {
            case (0, "UID"):
                guard let uid = UInt32(value), uid > 0 else { return nil }
                url = IMAPURL(host: host, user: user, mailbox: mailbox, uidValidity: validity, uid: uid)
            case (_, "SECTION") where url != nil && url!.section == nil && url!.partialOffset == nil:
                guard let decoded = percentDecode(Substring(value)), let section = parseSection(decoded) else { return nil }
                url!.section = section
            case (_, "PARTIAL") where url != nil && url!.partialOffset == nil:
                let numbers = value.split(separator: ".", omittingEmptySubsequences: false)
                guard numbers.count <= 2, let offset = Int(numbers[0]), offset >= 0 else { return nil }
                url!.partialOffset = offset
                if numbers.count == 2 {
                    guard let length = Int(numbers[1]), length > 0 else { return nil }
                    url!.partialLength = length
                }
            default:
                return nil
            }
        }
        return url
    }

    /// `1.2`, `1.2.MIME`, `HEADER`, `TEXT`, `3.HEADER`: the section forms a URL carries.
    static func parseSection(_ s: String) -> SectionSpec? {
        var spec = SectionSpec()
        for (i, piece) in s.split(separator: ".", omittingEmptySubsequences: false).enumerated() {
            if let n = Int(piece), n > 0, spec.text == .full {
                spec.part.append(n)
                continue
            }
            guard spec.text == .full else { return nil }
            switch piece.uppercased() {
            case "HEADER": spec.text = .header
            case "TEXT": spec.text = .text
            case "MIME" where i > 0: spec.text = .mime
            default: return nil
            }
        }
        return spec
    }

    static func percentDecode(_ s: Substring) -> String? {
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let c = it.first {
            it = it.dropFirst()
            if c == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(v)
                it = it.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}

/// A command as the client sent it.
public struct TaggedCommand: Hashable, Sendable {
    public var tag: String
    public var command: IMAPCommand
    public init(tag: String, command: IMAPCommand) {
        self.tag = tag
        self.command = command
    }
}

/// IMAP commands (RFC 9051 §6 and the extensions Tern offers).
public enum IMAPCommand: Hashable, Sendable {
    /// `CAPABILITY`
    case capability
    /// `NOOP`
    case noop
    /// `LOGOUT`
    case logout
    /// `STARTTLS`
    case startTLS
    /// `LOGIN user password`
    case login(user: String, password: String)
    /// `AUTHENTICATE mechanism [initial-response]` (SASL-IR, RFC 4959)
    case authenticate(mechanism: String, initialResponse: String?)
    /// `ENABLE capability...` (RFC 5161)
    case enable([String])
    /// `SELECT mailbox [(CONDSTORE / QRESYNC (...))]`
    case select(String, condstore: Bool, qresync: QResyncParameters?)
    /// `EXAMINE mailbox`
    case examine(String, condstore: Bool, qresync: QResyncParameters?)
    case create(String)
    case delete(String)
    case rename(from: String, to: String)
    case subscribe(String)
    case unsubscribe(String)
    /// `LIST [(selection)] reference pattern(s) [RETURN (...)]` (RFC 5258, RFC 5819)
    case list(reference: String, patterns: [String], selectSubscribed: Bool, selectSpecialUse: Bool, recursiveMatch: Bool,
              returnSubscribed: Bool, returnChildren: Bool, returnSpecialUse: Bool, returnStatus: [StatusItem])
    case lsub(reference: String, pattern: String)
    case namespace
    case status(String, [StatusItem])
    /// `APPEND mailbox [flags] [date] literal` (possibly several with MULTIAPPEND)
    case append(String, [AppendMessage])
    case idle
    case close
    case unselect
    case expunge
    /// `UID EXPUNGE set` (UIDPLUS)
    case uidExpunge(SequenceSet)
    /// `update`: the FETCH items of `RETURN (UPDATE (...))` (RFC 5465 §7), sent for new messages joining the result.
    case search(uid: Bool, key: SearchKey, returning: SearchReturn?, partial: PartialRange? = nil, update: [FetchAttribute] = [])
    case fetch(uid: Bool, SequenceSet, [FetchAttribute], changedSince: Int64?, vanished: Bool, partial: PartialRange? = nil)
    case store(uid: Bool, SequenceSet, StoreOperation, flags: [String], silent: Bool, unchangedSince: Int64?)
    case copy(uid: Bool, SequenceSet, String)
    case move(uid: Bool, SequenceSet, String)
    /// `ID (params)` (RFC 2971)
    case id([String: String])
    /// `SORT (criteria) charset search-key` (RFC 5256)
    /// `returning`: ESORT (RFC 5267 §3) answers with ESEARCH.
    case sort(uid: Bool, criteria: [SortCriterion], key: SearchKey, returning: SearchReturn? = nil, partial: PartialRange? = nil,
              update: [FetchAttribute] = [])
    /// `CANCELUPDATE "tag" ...` (RFC 5267 §4.2)
    case cancelUpdate([String])
    /// `NOTIFY SET ...` or `NOTIFY NONE` (nil) (RFC 5465)
    case notify(NotifySet?)
    /// `THREAD algorithm charset search-key` (RFC 5256)
    case thread(uid: Bool, algorithm: ThreadAlgorithm, key: SearchKey)
    case getQuotaRoot(String)
    /// `COMPRESS mechanism` (RFC 4978)
    case compress(String)
    case getQuota(String)
    case check

    /// The command name, for logs (never arguments: they may hold credentials).
    public var name: String {
        switch self {
        case .capability: return "CAPABILITY"
        case .noop: return "NOOP"
        case .logout: return "LOGOUT"
        case .startTLS: return "STARTTLS"
        case .login: return "LOGIN"
        case .authenticate: return "AUTHENTICATE"
        case .enable: return "ENABLE"
        case .select: return "SELECT"
        case .examine: return "EXAMINE"
        case .create: return "CREATE"
        case .delete: return "DELETE"
        case .rename: return "RENAME"
        case .subscribe: return "SUBSCRIBE"
        case .unsubscribe: return "UNSUBSCRIBE"
        case .list: return "LIST"
        case .lsub: return "LSUB"
        case .namespace: return "NAMESPACE"
        case .status: return "STATUS"
        case .append: return "APPEND"
        case .idle: return "IDLE"
        case .close: return "CLOSE"
        case .unselect: return "UNSELECT"
        case .expunge: return "EXPUNGE"
        case .uidExpunge: return "UID EXPUNGE"
        case .cancelUpdate: return "CANCELUPDATE"
        case .notify: return "NOTIFY"
        case .search(let uid, _, _, _, _): return uid ? "UID SEARCH" : "SEARCH"
        case .fetch(let uid, _, _, _, _, _): return uid ? "UID FETCH" : "FETCH"
        case .store(let uid, _, _, _, _, _): return uid ? "UID STORE" : "STORE"
        case .copy(let uid, _, _): return uid ? "UID COPY" : "COPY"
        case .move(let uid, _, _): return uid ? "UID MOVE" : "MOVE"
        case .id: return "ID"
        case .sort(let uid, _, _, _, _, _): return uid ? "UID SORT" : "SORT"
        case .thread(let uid, _, _): return uid ? "UID THREAD" : "THREAD"
        case .compress: return "COMPRESS"
        case .getQuotaRoot: return "GETQUOTAROOT"
        case .getQuota: return "GETQUOTA"
        case .check: return "CHECK"
        }
    }
}

/// A command the parser refused: the tag (when it could be read) and the text for a tagged BAD.
public struct IMAPParseError: Error, Hashable, Sendable {
    public var tag: String?
    public var message: String
    /// BAD for a command that is not well-formed; NO for one that is but asks what cannot be (an unknown charset).
    public var condition: IMAPCondition
    public var code: IMAPResponseCode?
    /// The command asked to SAVE its result (RFC 5182) before it failed: `$` must become empty.
    public var clearsSavedResult = false
    public init(tag: String?, _ message: String, condition: IMAPCondition = .bad, code: IMAPResponseCode? = nil) {
        self.tag = tag
        self.message = message
        self.condition = condition
        self.code = code
    }
}
