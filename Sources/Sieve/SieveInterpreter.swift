import MailMessage

/// What a script reads of a message (RFC 5228 §2.5): its header fields (unfolded, RFC 2047 words decoded), its size
/// and its envelope. Built once per message and recipient; pure data.
public struct SieveMessage: Sendable {
    public var fields: [(name: String, value: String)]
    public var size: Int
    /// The envelope sender (empty for the null sender `<>`) and the recipient this delivery is for.
    public var envelopeFrom: String
    public var envelopeTo: String

    public init(fields: [(name: String, value: String)], size: Int, envelopeFrom: String, envelopeTo: String) {
        self.fields = fields
        self.size = size
        self.envelopeFrom = envelopeFrom
        self.envelopeTo = envelopeTo
    }

    /// From a message's bytes (only its header block is read).
    public init(bytes: [UInt8], envelopeFrom: String, envelopeTo: String) {
        let header = bytes[..<RawHeader.end(bytes)]
        fields = RawHeader.fields(header).map { f in
            (f.name, EncodedWords.decode(f.unfoldedValue).trimmingWhitespace())
        }
        size = bytes.count
        self.envelopeFrom = envelopeFrom
        self.envelopeTo = envelopeTo
    }

    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map(\.value)
    }
}

/// What a script decided for one message, in the order it decided it (RFC 5228 §4): where the message goes.
public enum SieveAction: Hashable, Sendable {
    /// File into INBOX (an explicit `keep`, or the implicit keep).
    case keep
    case fileinto(mailbox: String, create: Bool)
    case redirect(address: String)
    case discard
}

/// The outcome of running a script: its actions, and the runtime error that ended it early, if one did. A failed
/// script keeps the message (RFC 5228 §2.10.6: an error means the implicit keep): the caller files it into INBOX
/// whatever `actions` held, so a filter never loses mail.
public struct SieveResult: Hashable, Sendable {
    public var actions: [SieveAction]
    public var error: SieveError?

    public init(actions: [SieveAction], error: SieveError? = nil) {
        self.actions = actions
        self.error = error
    }
}

/// Bounds on what one run may do.
public struct SieveRunLimits: Sendable {
    public var actions = 32
    public var redirects = 4
    public init() {}
}

/// Runs a validated script (RFC 5228 core: keep, discard, fileinto, redirect, stop, if/elsif/else; the address,
/// envelope, header, exists, size, not, allof, anyof, true and false tests with :is, :contains and :matches under
/// i;ascii-casemap and i;octet).
public struct SieveInterpreter {
    let message: SieveMessage
    let limits: SieveRunLimits
    private var actions: [SieveAction] = []
    private var cancelKeep = false
    private var redirects = 0
    private var stopped = false

    public static func run(_ script: [SieveCommand], message: SieveMessage, limits: SieveRunLimits = SieveRunLimits()) -> SieveResult {
        var me = SieveInterpreter(message: message, limits: limits)
        do {
            try me.block(script)
        } catch {
            return SieveResult(actions: [.keep], error: error)
        }
        if !me.cancelKeep && !me.actions.contains(.keep) { me.actions.append(.keep) }
        return SieveResult(actions: me.actions, error: nil)
    }

    private init(message: SieveMessage, limits: SieveRunLimits) {
        self.message = message
        self.limits = limits
    }

    private mutating func block(_ commands: [SieveCommand]) throws(SieveError) {
        var chainTaken = false   // an if or elsif of the current chain ran its block
        for c in commands {
            guard !stopped else { return }
            switch c.name {
            case "require":
                continue
            case "if":
                chainTaken = try test(c.tests[0])
                if chainTaken { try block(c.block ?? []) }
            case "elsif":
                if !chainTaken, try test(c.tests[0]) {
                    chainTaken = true
                    try block(c.block ?? [])
                }
            case "else":
                if !chainTaken { try block(c.block ?? []) }
            case "stop":
                stopped = true
            case "keep":
                try add(.keep, c)
                cancelKeep = true
            case "discard":
                cancelKeep = true
            case "fileinto":
                let (tags, strings) = Self.split(c.arguments)
                // RFC 5228 §4.1: filing into INBOX is a keep.
                let name = strings[0][0]
                try add(name.uppercased() == "INBOX" ? .keep : .fileinto(mailbox: name, create: tags.contains("create")), c)
                if !tags.contains("copy") { cancelKeep = true }
            case "redirect":
                let (tags, strings) = Self.split(c.arguments)
                redirects += 1
                guard redirects <= limits.redirects else { throw SieveError(c.position, "more than \(limits.redirects) redirects") }
                try add(.redirect(address: strings[0][0]), c)
                if !tags.contains("copy") { cancelKeep = true }
            default:
                throw SieveError(c.position, "unknown command \(c.name)")
            }
        }
    }

    /// Records an action once (RFC 5228 §4.1, §4.2: the same mailbox or address twice is one action).
    private mutating func add(_ action: SieveAction, _ c: SieveCommand) throws(SieveError) {
        guard !actions.contains(action) else { return }
        guard actions.count < limits.actions else { throw SieveError(c.position, "more than \(limits.actions) actions") }
        actions.append(action)
    }

    static func split(_ arguments: [SieveArgument]) -> (tags: [String], strings: [[String]]) {
        var tags: [String] = [], strings: [[String]] = []
        for a in arguments {
            switch a {
            case .tag(let t, _): tags.append(t)
            case .strings(let s, _): strings.append(s)
            case .number: break
            }
        }
        return (tags, strings)
    }

    private func test(_ t: SieveTest) throws(SieveError) -> Bool {
        switch t.name {
        case "true": return true
        case "false": return false
        case "not": return !(try test(t.tests[0]))
        case "allof":
            for inner in t.tests {
                if !(try test(inner)) { return false }
            }
            return true
        case "anyof":
            for inner in t.tests {
                if try test(inner) { return true }
            }
            return false
        case "exists":
            let names = Self.split(t.arguments).strings[0]
            return names.allSatisfy { !message.values($0).isEmpty }
        case "size":
            var over = false, limit: UInt64 = 0
            for a in t.arguments {
                if case .tag(let tag, _) = a { over = tag == "over" }
                if case .number(let n, _) = a { limit = n }
            }
            return over ? UInt64(message.size) > limit : UInt64(message.size) < limit
        case "header", "address", "envelope":
            let m = Match(t.arguments)
            var values: [String] = []
            for name in m.strings[0] {
                switch t.name {
                case "header":
                    values += message.values(name)
                case "address":
                    for value in message.values(name) {
                        for case .mailbox(_, let local, let domain) in AddressList.parse(value) {
                            values.append(m.part(local: local, domain: domain))
                        }
                    }
                default:
                    // RFC 5228 §5.4: "from" is the envelope sender, "to" the recipient; the null sender is "".
                    let address = name.lowercased() == "from" ? message.envelopeFrom : name.lowercased() == "to" ? message.envelopeTo : nil
                    guard let address else { continue }
                    if address.isEmpty { values.append(""); continue }
                    let at = address.lastIndex(of: "@")
                    let local = at.map { String(address[..<$0]) } ?? address
                    let domain = at.map { String(address[address.index(after: $0)...]) }
                    values.append(m.part(local: local, domain: domain))
                }
            }
            return values.contains { v in m.strings[1].contains { m.matches(v, $0) } }
        default:
            throw SieveError(t.position, "unknown test \(t.name)")
        }
    }
}

/// A test's comparator, match type and address part (RFC 5228 §2.7), and its string lists.
struct Match {
    var comparator = "i;ascii-casemap"
    var type = "is"
    var addressPart = "all"
    var strings: [[String]] = []

    init(_ arguments: [SieveArgument]) {
        var i = 0
        while i < arguments.count {
            switch arguments[i] {
            case .tag("comparator", _):
                if i + 1 < arguments.count, case .strings(let names, _) = arguments[i + 1] { comparator = names[0].lowercased() }
                i += 1
            case .tag(let t, _) where ["is", "contains", "matches"].contains(t): type = t
            case .tag(let t, _) where ["all", "localpart", "domain"].contains(t): addressPart = t
            case .strings(let s, _): strings.append(s)
            default: break
            }
            i += 1
        }
    }

    func part(local: String, domain: String?) -> String {
        switch addressPart {
        case "localpart": return local
        case "domain": return domain ?? ""
        default: return domain.map { "\(local)@\($0)" } ?? local
        }
    }

    /// The comparator's view of a string: ASCII letters folded for i;ascii-casemap, as is for i;octet.
    func fold(_ s: String) -> [Unicode.Scalar] {
        let scalars = Array(s.unicodeScalars)
        guard comparator == "i;ascii-casemap" else { return scalars }
        return scalars.map { ("A"..."Z").contains($0) ? Unicode.Scalar($0.value + 32)! : $0 }
    }

    func matches(_ value: String, _ key: String) -> Bool {
        let v = fold(value)
        switch type {
        case "contains":
            let k = fold(key)
            guard !k.isEmpty else { return true }
            guard v.count >= k.count else { return false }
            return (0...(v.count - k.count)).contains { v[$0..<($0 + k.count)].elementsEqual(k) }
        case "matches":
            return Self.wildcard(v[...], Self.pattern(fold(key))[...])
        default:
            return v == fold(key)
        }
    }

    enum Piece: Equatable { case star, one, char(Unicode.Scalar) }

    /// `*` any run, `?` one character, `\` makes the next character literal (RFC 5228 §2.7.1).
    static func pattern(_ key: [Unicode.Scalar]) -> [Piece] {
        var out: [Piece] = []
        var i = 0
        while i < key.count {
            switch key[i] {
            case "*": if out.last != .star { out.append(.star) }
            case "?": out.append(.one)
            case "\\" where i + 1 < key.count: i += 1; out.append(.char(key[i]))
            default: out.append(.char(key[i]))
            }
            i += 1
        }
        return out
    }

    /// Glob matching with backtracking to the last star only: linear in practice, never exponential.
    static func wildcard(_ v: ArraySlice<Unicode.Scalar>, _ p: ArraySlice<Piece>) -> Bool {
        var vi = v.startIndex, pi = p.startIndex
        var star: (p: Int, v: Int)?
        while vi < v.endIndex {
            if pi < p.endIndex, p[pi] == .one || p[pi] == .char(v[vi]) {
                vi += 1
                pi += 1
            } else if pi < p.endIndex, p[pi] == .star {
                star = (pi, vi)
                pi += 1
            } else if let s = star {
                pi = s.p + 1
                vi = s.v + 1
                star = (s.p, s.v + 1)
            } else {
                return false
            }
        }
        while pi < p.endIndex && p[pi] == .star { pi += 1 }
        return pi == p.endIndex
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
