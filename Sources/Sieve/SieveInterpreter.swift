@_exported import SieveLanguage
import Foundation
import MailMessage

/// A script ready to run: parsed, validated, its encoded characters decoded (RFC 5228 §2.4.2.4), and what it requires.
public struct SieveScript: Sendable, Hashable {
    public var commands: [SieveCommand]
    /// What the script requires, and the capabilities its ihave tests enable.
    public var required: Set<String>

    public static func compile(_ text: String, limits: SieveLimits = SieveLimits()) throws(SieveError) -> SieveScript {
        var commands = try SieveParser.parse(text, limits: limits)
        let required = try SieveValidator.walk(commands).enabled
        if required.contains("encoded-character") { commands = try commands.map { c throws(SieveError) in try decoded(c) } }
        return SieveScript(commands: commands, required: required)
    }

    /// Whether the script reads the message's body (the caller then passes its bytes).
    public var readsBody: Bool { required.contains("body") }

    private static func decoded(_ c: SieveCommand) throws(SieveError) -> SieveCommand {
        var c = c
        c.arguments = try c.arguments.map { a throws(SieveError) in try decoded(a) }
        c.tests = try c.tests.map { t throws(SieveError) in try decoded(t) }
        c.block = try c.block.map { b throws(SieveError) in try b.map { x throws(SieveError) in try decoded(x) } }
        return c
    }

    private static func decoded(_ t: SieveTest) throws(SieveError) -> SieveTest {
        var t = t
        t.arguments = try t.arguments.map { a throws(SieveError) in try decoded(a) }
        t.tests = try t.tests.map { x throws(SieveError) in try decoded(x) }
        return t
    }

    private static func decoded(_ a: SieveArgument) throws(SieveError) -> SieveArgument {
        guard case .strings(let list, let p) = a else { return a }
        var out: [String] = []
        for s in list {
            guard let d = SieveVariables.decodeEncoded(s) else { throw SieveError(p, "encoded character outside Unicode") }
            out.append(d)
        }
        return .strings(out, p)
    }
}

/// What a script reads of a message (RFC 5228 §2.5): its header fields (unfolded, RFC 2047 words decoded), its size,
/// its envelope, and its bytes when the script tests the body. Built once per message and recipient; pure data.
public struct SieveMessage: Sendable {
    public var fields: [(name: String, value: String)]
    public var size: Int
    /// The envelope sender (empty for the null sender `<>`) and the recipient this delivery is for.
    public var envelopeFrom: String
    public var envelopeTo: String
    /// The message (or its first part, when long) for the body test; nil: the body is not known.
    public var bytes: [UInt8]?

    public init(fields: [(name: String, value: String)], size: Int, envelopeFrom: String, envelopeTo: String, bytes: [UInt8]? = nil) {
        self.fields = fields
        self.size = size
        self.envelopeFrom = envelopeFrom
        self.envelopeTo = envelopeTo
        self.bytes = bytes
    }

    /// From a message's bytes (its header block parsed; the bytes kept for the body test).
    public init(bytes: [UInt8], envelopeFrom: String, envelopeTo: String) {
        let header = bytes[..<RawHeader.end(bytes)]
        fields = RawHeader.fields(header).map { f in
            // The value's octets after the colon, unfolded, decoded (RFC 2047) from the octets themselves.
            let value = f.raw.drop { $0 != 58 }.dropFirst().filter { $0 != 13 && $0 != 10 }.map { $0 == 9 ? 32 : $0 }
            return (f.name, EncodedWords.decode(bytes: Array(value)).trimmingWhitespace())
        }
        size = bytes.count
        self.envelopeFrom = envelopeFrom
        self.envelopeTo = envelopeTo
        self.bytes = bytes
    }

    func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map(\.value)
    }
}

/// What the script may know of where it runs: the time, the server's zone, the environment items (RFC 5183), the
/// user's mailboxes (RFC 5490 mailboxexists) and the spam checks' score (RFC 5235).
public struct SieveEnvironment: Sendable {
    public var now: Date
    /// Seconds east of UTC of the server's zone (currentdate and date without :zone).
    public var zoneOffset: Int
    /// RFC 5183 items by name: domain, host, location, name, phase, remote-host, remote-ip, version.
    public var items: [String: String]
    /// The user's mailbox names; nil: not known (mailboxexists is then false).
    public var mailboxes: Set<String>?
    /// The user's special-use mailboxes by their flag in lower case (`\\junk`), for RFC 8579's specialuse_exists.
    public var specialUses: [String: String] = [:]
    /// The scripts `include` may name (RFC 6609): the user's own (`:personal`) and the administrator's (`:global`).
    public var personalScripts: [String: SieveScript] = [:]
    public var globalScripts: [String: SieveScript] = [:]
    /// Duplicate keys (`SieveDuplicate.key`) and whether they were seen within their period; a key missing here is
    /// reported in the result's `unknownDuplicates` (and taken as not seen).
    public var duplicatesSeen: [String: Bool] = [:]
    /// spamtest's value, 1 to 10 (0: not tested), and spamtestplus's percentage.
    public var spamScore: Int?
    public var spamPercent: Int?

    public init(now: Date = Date(timeIntervalSince1970: 0), zoneOffset: Int = 0, items: [String: String] = [:], mailboxes: Set<String>? = nil,
                spamScore: Int? = nil, spamPercent: Int? = nil, specialUses: [String: String] = [:]) {
        self.now = now
        self.zoneOffset = zoneOffset
        self.items = items
        self.mailboxes = mailboxes
        self.spamScore = spamScore
        self.specialUses = specialUses
        self.spamPercent = spamPercent
    }
}

/// What a script decided for one message, in the order it decided it (RFC 5228 §4): where the message goes. `flags`
/// are the IMAP flags and keywords of RFC 5232 when the script uses imap4flags (nil: it does not).
public enum SieveAction: Hashable, Sendable {
    /// File into INBOX (an explicit `keep`, or the implicit keep).
    case keep(flags: [String]? = nil)
    /// `specialUse`: RFC 8579's :specialuse, the mailbox with that special use (RFC 6154) when the user has one.
    case fileinto(mailbox: String, create: Bool, flags: [String]? = nil, specialUse: String? = nil)
    case redirect(address: String)
    case discard
    /// An auto-reply (RFC 5230): the caller decides whether the sender gets it (the RFC's rules, once per period).
    case vacation(SieveVacation)
    /// Refuse the message for this recipient with this reason (RFC 5429 reject and ereject).
    case reject(reason: String)
    /// A notification (RFC 5435) by `method` (a mailto: URI, RFC 5436).
    case notify(SieveNotify)

    public static let keep = SieveAction.keep(flags: nil)
}

/// A notify action's arguments (RFC 5435 §3), variables expanded.
public struct SieveNotify: Hashable, Sendable {
    public var method: String
    public var from: String?
    /// "1" high, "2" normal (the default), "3" low.
    public var importance: String
    public var options: [String]
    public var message: String?

    public init(method: String, from: String? = nil, importance: String = "2", options: [String] = [], message: String? = nil) {
        self.method = method
        self.from = from
        self.importance = importance
        self.options = options
        self.message = message
    }
}

/// A vacation action's arguments (RFC 5230 §4, RFC 6131 :seconds), variables expanded.
public struct SieveVacation: Hashable, Sendable {
    public var reason: String
    public var subject: String?
    public var from: String?
    /// The user's other addresses (the recipient's own always counts).
    public var addresses: [String]
    /// The reason is a MIME entity (headers, an empty line, the body), not plain text.
    public var mime: Bool
    /// Replies with the same handle count as one for "once per period"; by default the reason, subject, from and mime.
    public var handle: String
    /// How long a sender gets no second reply: :days (default 7) or :seconds.
    public var seconds: UInt64

    public init(reason: String, subject: String? = nil, from: String? = nil, addresses: [String] = [], mime: Bool = false, handle: String? = nil,
                seconds: UInt64 = 7 * 86400) {
        self.reason = reason
        self.subject = subject
        self.from = from
        self.addresses = addresses
        self.mime = mime
        self.handle = handle ?? "\(reason)\u{0}\(subject ?? "")\u{0}\(from ?? "")\u{0}\(mime)"
        self.seconds = seconds
    }
}

/// The outcome of running a script: its actions, and the runtime error that ended it early, if one did. A failed
/// script keeps the message (RFC 5228 §2.10.6: an error means the implicit keep): the caller files it into INBOX
/// whatever `actions` held, so a filter never loses mail.
public struct SieveResult: Hashable, Sendable {
    public var actions: [SieveAction]
    public var error: SieveError?
    /// The header as the scripts left it (RFC 5293 editheader), in order; nil: unchanged.
    public var header: [SieveHeaderField]?
    /// The duplicate tests the run made (RFC 7352): what to remember once the message is delivered.
    public var duplicates: [SieveDuplicate] = []
    /// Duplicate keys the environment did not know: the caller looks them up and runs the script again.
    public var unknownDuplicates: [String] = []

    public init(actions: [SieveAction], error: SieveError? = nil, duplicates: [SieveDuplicate] = [], unknownDuplicates: [String] = []) {
        self.actions = actions
        self.error = error
        self.duplicates = duplicates
        self.unknownDuplicates = unknownDuplicates
    }

    /// One line per action, as `tern sieve test` prints them (a discard, which leaves no action, says so).
    public var lines: [String] {
        var out = actions.map { a -> String in
            func flags(_ f: [String]?) -> String { f.map { " flags [\($0.joined(separator: " "))]" } ?? "" }
            switch a {
            case .keep(let f): return "keep" + flags(f)
            case .fileinto(let name, let create, let f, let use):
                return "fileinto " + (use.map { "\($0) or " } ?? "") + "\"\(name)\"" + (create ? " (create)" : "") + flags(f)
            case .redirect(let address): return "redirect <\(address)>"
            case .discard: return "discard"
            case .vacation(let v): return "vacation \"\(v.subject ?? "")\" every \(v.seconds) s: \(v.reason.prefix(60).replacingOccurrences(of: "\r\n", with: " "))"
            case .reject(let reason): return "reject \"\(reason)\""
            case .notify(let n): return "notify \(n.method)" + (n.message.map { " \"\($0)\"" } ?? "")
            }
        }
        if out.isEmpty { out = ["discard"] }
        if let error { out.append("error at \(error); the message is kept") }
        return out
    }
}

/// A field of the header editheader left (RFC 5293): one of the message's own (its index among the header's fields)
/// or one a script added.
public enum SieveHeaderField: Hashable, Sendable {
    case original(Int)
    case added(name: String, value: String)
}

/// One duplicate test's id (RFC 7352): its handle and the message's unique id, remembered for `seconds`; with :last
/// each occurrence restarts the period.
public struct SieveDuplicate: Hashable, Sendable {
    public var key: String
    public var seconds: UInt64
    public var last: Bool
}

/// Bounds on what one run may do.
public struct SieveRunLimits: Sendable {
    public var actions = 32
    public var redirects = 4
    /// Scripts included in one run, all told (Pigeonhole's sieve_include_max_includes): nesting alone (5 deep) would
    /// let a script of many includes, each of many, run its last level millions of times.
    public var includes = 255
    /// The work one run may do: a command or a test is a step, and a test also counts a step per 4 KiB of the values
    /// it compares (a body test on a 4 MB message, about a thousand). Past it the run fails, and the message is kept.
    public var steps = 100_000
    public init() {}
}

/// Runs a compiled script: the RFC 5228 core and the extensions `SieveValidator.capabilities` lists.
public struct SieveInterpreter {
    /// The message as the tests see it: editheader's changes show at once (RFC 5293 §3).
    var message: SieveMessage
    /// Where each of `message.fields` comes from, once a script changed the header.
    private var layout: [SieveHeaderField]?
    let environment: SieveEnvironment
    let limits: SieveRunLimits
    var required: Set<String>
    private var actions: [SieveAction] = []
    private var cancelKeep = false
    private var redirects = 0
    private var stopped = false
    private var variables: [String: String] = [:]
    private var matchValues: [String] = []
    /// imap4flags' internal variable (RFC 5232 §3).
    private var flags: [String] = []
    private var duplicates: [SieveDuplicate] = []
    /// RFC 6609: the global variables, the names this script declared global, the include chain and what it ran.
    private var globals: [String: String] = [:]
    private var globalNames: Set<String> = []
    private var includeStack: [String] = []
    private var included: Set<String> = []
    private var returned = false
    private var unknownDuplicates: [String] = []
    private var includes = 0
    private var steps = 0
    private var addedOctets = 0
    private var testPosition = SievePosition(line: 0, column: 0)
    /// The body test's texts for this message, by transform: worked out once per run.
    private var bodies: [String: [String]] = [:]

    public static func run(_ script: SieveScript, message: SieveMessage, environment: SieveEnvironment = SieveEnvironment(),
                           limits: SieveRunLimits = SieveRunLimits()) -> SieveResult {
        run(before: [], script: script, after: [], message: message, environment: environment, limits: limits)
    }

    /// The administrator's scripts around the user's (as Pigeonhole's sieve_before and sieve_after): `before` first,
    /// then the user's script, then `after` — only while keep is still in effect (no script stopped, and the implicit
    /// keep stands, or an explicit keep took its place: the after scripts may then move it). They share the actions
    /// and the implicit keep; each has its own variables. An error anywhere keeps the message.
    public static func run(before: [SieveScript], script: SieveScript?, after: [SieveScript], message: SieveMessage,
                           environment: SieveEnvironment = SieveEnvironment(), limits: SieveRunLimits = SieveRunLimits()) -> SieveResult {
        var me = SieveInterpreter(message: message, environment: environment, limits: limits, required: [])
        var usesFlags = false
        var held: SieveAction?
        do {
            for s in before + (script.map { [$0] } ?? []) where !me.stopped {
                try me.start(s)
                usesFlags = usesFlags || s.required.contains("imap4flags")
            }
            // "Keep still in effect": the implicit keep, or an explicit keep, which the after scripts may then move.
            let explicitKeep = me.actions.first(where: \.isKeep)
            if !me.stopped && !after.isEmpty && (!me.cancelKeep || explicitKeep != nil) {
                if explicitKeep != nil {
                    me.actions.removeAll(where: \.isKeep)
                    me.cancelKeep = false
                    held = explicitKeep
                }
                for s in after where !me.stopped {
                    try me.start(s)
                    usesFlags = usesFlags || s.required.contains("imap4flags")
                }
            }
        } catch {
            return SieveResult(actions: [.keep], error: error, duplicates: [], unknownDuplicates: me.unknownDuplicates)
        }
        // An explicit keep the after scripts left in place comes back as it was (its own :flags).
        if !me.cancelKeep && !me.actions.contains(where: \.isKeep) { me.actions.append(held ?? .keep(flags: usesFlags ? validFlags(me.flags) : nil)) }
        var result = SieveResult(actions: me.actions, error: nil, duplicates: me.duplicates, unknownDuplicates: me.unknownDuplicates)
        result.header = me.layout
        return result
    }

    /// Runs one script of a sequence: its own capabilities and variables, the shared actions.
    private mutating func start(_ script: SieveScript) throws(SieveError) {
        required = script.required
        variables = [:]
        for (name, value) in globals { variables["global." + name] = value }
        globalNames = []
        matchValues = []
        try block(script.commands)
        returned = false
    }

    /// RFC 6609's include: the named script runs where it is included, with its own variables (but the global ones),
    /// sharing the actions; `return` ends it; a loop, too deep a nesting or a missing script is an error.
    private mutating func include(_ args: Args, _ c: SieveCommand) throws(SieveError) {
        let name = args.strings(0)[0], global = args.tags["global"] != nil
        let key = (global ? "global:" : "personal:") + name
        if args.tags["once"] != nil && included.contains(key) { return }
        guard !includeStack.contains(key) else { throw SieveError(c.position, "include loop: \(name) includes itself") }
        guard includeStack.count < 5 else { throw SieveError(c.position, "includes nested more than 5 deep") }
        guard let script = (global ? environment.globalScripts : environment.personalScripts)[name] else {
            if args.tags["optional"] != nil { return }
            throw SieveError(c.position, "no \(global ? "global" : "personal") script \(name) to include")
        }
        includes += 1
        guard includes <= limits.includes else { throw SieveError(c.position, "more than \(limits.includes) includes in one run") }
        let saved = (required, variables, matchValues, globalNames)
        includeStack.append(key)
        included.insert(key)
        try start(script)
        includeStack.removeLast()
        (required, variables, matchValues, globalNames) = saved
        // What the included script did to the global variables is seen here.
        for (name, value) in globals {
            variables["global." + name] = value
            if globalNames.contains(name) { variables[name] = value }
        }
    }

    private init(message: SieveMessage, environment: SieveEnvironment, limits: SieveRunLimits, required: Set<String>) {
        self.message = message
        self.environment = environment
        self.limits = limits
        self.required = required
    }

    /// A string argument as the script means it: variables expanded when the script requires them.
    private func str(_ s: String) -> String {
        required.contains("variables") ? SieveVariables.expand(s, variables: variables, matches: matchValues) : s
    }

    private func strs(_ list: [String]) -> [String] { list.map(str) }

    private mutating func block(_ commands: [SieveCommand]) throws(SieveError) {
        var chainTaken = false   // an if or elsif of the current chain ran its block
        for c in commands {
            guard !stopped && !returned else { return }
            try step(1, c.position)
            let args = Args(c.arguments)
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
                try add(.keep(flags: actionFlags(args)), c)
                cancelKeep = true
            case "discard":
                cancelKeep = true
            case "fileinto":
                // RFC 5228 §4.1: filing into INBOX is a keep.
                let name = str(args.strings(0)[0]), flags = actionFlags(args)
                // A name made of part of a character (a :matches capture cut inside one) is no mailbox name.
                guard !name.contains("\u{FFFE}") else { throw SieveError(c.position, "fileinto: the mailbox name is not valid UTF-8") }
                let use = args.tagStrings("specialuse")?.first.map(str)
                if let use, !SieveValidator.isSpecialUseFlag(use) { throw SieveError(c.position, "invalid special-use flag \"\(use)\"") }
                try add(name.uppercased() == "INBOX" && use == nil ? .keep(flags: flags)
                        : .fileinto(mailbox: name, create: args.tags["create"] != nil, flags: flags, specialUse: use), c)
                if args.tags["copy"] == nil { cancelKeep = true }
            case "redirect":
                redirects += 1
                guard redirects <= limits.redirects else { throw SieveError(c.position, "more than \(limits.redirects) redirects") }
                let given = str(args.strings(0)[0])
                guard let address = SieveValidator.redirectAddress(given) else { throw SieveError(c.position, "redirect to \"\(given)\": not an address") }
                try add(.redirect(address: address), c)
                if args.tags["copy"] == nil { cancelKeep = true }
            case "set":
                var name = args.strings(0)[0].lowercased()
                guard variables[name] != nil || variables.count < SieveVariables.maxCount else {
                    throw SieveError(c.position, "more than \(SieveVariables.maxCount) variables")
                }
                let value = SieveVariables.modify(str(args.strings(1)[0]), Set(args.tags.keys))
                if name.hasPrefix("global.") {
                    // RFC 6609 §3.4.2: the global namespace, declared or not.
                    name = String(name.dropFirst(7))
                    globals[name] = value
                    variables["global." + name] = value
                    if globalNames.contains(name) { variables[name] = value }
                    continue
                }
                variables[name] = value
                if globalNames.contains(name) {
                    globals[name] = variables[name]
                    variables["global." + name] = variables[name]
                }
            case "setflag", "addflag", "removeflag":
                let given = Self.flagList(strs(args.strings(args.positional.count - 1)))
                let variable = args.positional.count == 2 ? args.strings(0)[0].lowercased() : nil
                var current = variable.map { Self.flagList([variables[$0] ?? ""]) } ?? flags
                switch c.name {
                case "setflag": current = given
                case "addflag": current = Self.flagList(current + given)
                default:
                    let gone = Set(given.map { $0.lowercased() })
                    current.removeAll { gone.contains($0.lowercased()) }
                }
                if let variable { variables[variable] = SieveVariables.clip(current.joined(separator: " ")) } else { flags = current }
            case "error":
                throw SieveError(c.position, "error: " + str(args.strings(0)[0]))
            case "include":
                try include(args, c)
            case "addheader":
                try step(message.fields.count / 64, c.position)
                let name = str(args.strings(0)[0]), value = str(args.strings(1)[0])
                guard SieveValidator.isFieldName(name) else { throw SieveError(c.position, "addheader: invalid field name \"\(name)\"") }
                guard Self.editable(name) else { continue }
                var fields = layout ?? message.fields.indices.map { .original($0) }
                let clean = String(value.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.map(Character.init)).trimmingWhitespace()
                // Pigeonhole's default bound on an added field (sieve_editheader_max_header_size) is 2,048 octets.
                guard clean.utf8.count <= 8192 else { throw SieveError(c.position, "addheader: a value of more than 8,192 octets") }
                addedOctets += name.utf8.count + clean.utf8.count
                guard addedOctets <= 64 << 10 else { throw SieveError(c.position, "addheader: more than 64 KiB of fields added") }
                let at = args.tags["last"] != nil ? fields.count : 0
                fields.insert(.added(name: name, value: clean), at: at)
                message.fields.insert((name, clean), at: at)
                layout = fields
            case "deleteheader":
                try step(message.fields.count / 64, c.position)
                let name = str(args.strings(0)[0]).lowercased()
                guard Self.editable(name) else { continue }
                var fields = layout ?? message.fields.indices.map { .original($0) }
                var occurrences = message.fields.indices.filter { message.fields[$0].name.lowercased() == name }
                if let n = args.tagNumber("index") {
                    guard n > 0, n <= UInt64(occurrences.count) else { continue }
                    occurrences = [args.tags["last"] != nil ? occurrences[occurrences.count - Int(n)] : occurrences[Int(n) - 1]]
                }
                if args.positional.count == 2 {
                    let match = Match(args), patterns = strs(args.strings(1))
                    let octets = occurrences.reduce(0) { $0 + message.fields[$1].value.utf8.count }
                    try step(octets / 4096 * max(1, patterns.count) + octets * patterns.reduce(0) { $0 + $1.utf8.count } >> 16, c.position)
                    occurrences = occurrences.filter { i in patterns.contains { match.matches(message.fields[i].value, $0) } }
                }
                for i in occurrences.reversed() {
                    fields.remove(at: i)
                    message.fields.remove(at: i)
                }
                layout = fields
            case "notify":
                // RFC 5435 §3.8: a method this server cannot use is a run-time error.
                let method = str(args.strings(0)[0])
                guard SieveMailto.parse(method) != nil else { throw SieveError(c.position, "unsupported or invalid notification method \(method)") }
                let importance = args.tagStrings("importance")?.first.map(str) ?? "2"
                try add(.notify(SieveNotify(method: method, from: args.tagStrings("from")?.first.map(str),
                                            importance: ["1", "2", "3"].contains(importance) ? importance : "2",
                                            options: args.tagStrings("options").map(strs) ?? [], message: args.tagStrings("message")?.first.map(str))), c)
            case "return":
                returned = true
            case "global":
                for name in args.strings(0).map({ $0.lowercased() }) {
                    globalNames.insert(name)
                    variables[name] = globals[name] ?? ""
                }
            case "vacation":
                // RFC 5230 §4.7 (and Pigeonhole): one vacation per run; :days is at least 1, and both are bounded.
                guard !actions.contains(where: { if case .vacation = $0 { true } else { false } }) else {
                    throw SieveError(c.position, "more than one vacation")
                }
                // Bounded before it is counted in seconds: a :days of 10^14 must not overflow.
                let seconds = args.tagNumber("seconds") ?? min(max(1, args.tagNumber("days") ?? 7), 365) * 86400
                try add(.vacation(SieveVacation(reason: str(args.strings(0)[0]), subject: args.tagStrings("subject")?.first.map(str),
                                                from: args.tagStrings("from")?.first.map(str), addresses: args.tagStrings("addresses").map(strs) ?? [],
                                                mime: args.tags["mime"] != nil, handle: args.tagStrings("handle")?.first.map(str),
                                                seconds: min(seconds, 365 * 86400))), c)
            case "reject", "ereject":
                try add(.reject(reason: str(args.strings(0)[0])), c)
                cancelKeep = true
            default:
                throw SieveError(c.position, "unknown command \(c.name)")
            }
        }
    }

    /// The flags a keep or fileinto stores: its :flags, else the internal variable (nil without imap4flags).
    private func actionFlags(_ args: Args) -> [String]? {
        guard required.contains("imap4flags") else { return nil }
        return Self.validFlags(args.tagStrings("flags").map { Self.flagList(strs($0)) } ?? flags)
    }

    /// RFC 5232 §2: only valid flags are stored — the system flags but \\Recent, and keywords that are IMAP atoms.
    static func validFlags(_ flags: [String]) -> [String] {
        flags.filter { f in
            if f.hasPrefix("\\") { return ["\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"].contains(f.lowercased()) }
            return f.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && !"(){%*\"\\]".unicodeScalars.contains($0) }
        }
    }

    /// Flags from strings that may each hold several, separated by spaces; each once, whatever its case (RFC 5232 §3).
    /// The flags named, each once (in any case), as many as fit in a variable's 4 KB.
    static func flagList(_ strings: [String]) -> [String] {
        var out: [String] = [], seen = Set<String>(), octets = 0
        for s in strings {
            for f in s.split(separator: " ") where seen.insert(f.lowercased()).inserted {
                octets += f.utf8.count + 1
                guard octets <= SieveVariables.maxValue + 1 else { return out }
                out.append(String(f))
            }
        }
        return out
    }

    /// Records an action once (RFC 5228 §4.1, §4.2: the same mailbox or address twice is one action; with imap4flags
    /// the later flags win).
    private mutating func add(_ action: SieveAction, _ c: SieveCommand) throws(SieveError) {
        // RFC 5429 §2.1, §2.4: a rejected message is not also filed, kept or answered by vacation; one reject per run.
        let isVacation = { (a: SieveAction) -> Bool in if case .vacation = a { true } else { false } }
        if action.isReject && actions.contains(where: { $0.isReject || $0.isKeep || $0.isFileinto || isVacation($0) })
            || (action.isKeep || action.isFileinto || isVacation(action)) && actions.contains(where: \.isReject) {
            throw SieveError(c.position, "reject cannot be combined with keep, fileinto, vacation or another reject")
        }
        if let i = actions.firstIndex(where: { $0.sameTarget(action) }) {
            actions[i] = action
            return
        }
        guard actions.count < limits.actions else { throw SieveError(c.position, "more than \(limits.actions) actions") }
        actions.append(action)
    }

    /// How many strings the arguments hold, and their octets (as written).
    static func weight(_ arguments: [SieveArgument]) -> (strings: Int, octets: Int) {
        var strings = 0, octets = 0
        for case .strings(let list, _) in arguments {
            strings += list.count
            octets += list.reduce(0) { $0 + $1.utf8.count }
        }
        return (strings, octets)
    }

    /// Counts `n` steps of the run's budget; past it, the run fails (the message is kept).
    private mutating func step(_ n: Int, _ position: SievePosition) throws(SieveError) {
        steps += n
        guard steps <= limits.steps else { throw SieveError(position, "the script did more than \(limits.steps) steps of work") }
    }

    private mutating func test(_ t: SieveTest) throws(SieveError) -> Bool {
        // A step, and more for long argument lists, and for each header field name looked up in a long header.
        let (strings, octets) = Self.weight(t.arguments)
        let lookups = ["header", "exists", "address", "date"].contains(t.name) ? strings * (message.fields.count / 64) : 0
        try step(1 + (octets + 64 * strings) / 4096 + lookups, t.position)
        testPosition = t.position
        let args = Args(t.arguments)
        switch t.name {
        case "true": return true
        case "false": return false
        case "not": return !(try test(t.tests[0]))
        case "allof":
            for inner in t.tests where !(try test(inner)) { return false }
            return true
        case "anyof":
            for inner in t.tests where try test(inner) { return true }
            return false
        case "exists":
            return strs(args.strings(0)).allSatisfy { !message.values($0).isEmpty }
        case "size":
            let limit = args.number(0)
            return args.tags["over"] != nil ? UInt64(message.size) > limit : UInt64(message.size) < limit
        case "header":
            return try compare(args, values: fieldValues(strs(args.strings(0)), args), keys: args.strings(1))
        case "address":
            var values: [String] = []
            let raw = fieldValues(strs(args.strings(0)), args)
            try step(raw.reduce(0) { $0 + $1.utf8.count } / 4096, t.position)
            for value in raw {
                for case .mailbox(_, let local, let domain) in AddressList.parse(value) {
                    if let part = Self.part(args, local: local, domain: domain) { values.append(part) }
                }
            }
            return try compare(args, values: values, keys: args.strings(1))
        case "envelope":
            var values: [String] = []
            for name in strs(args.strings(0)) {
                // RFC 5228 §5.4: "from" is the envelope sender, "to" the recipient; the null sender is "".
                let address = name.lowercased() == "from" ? message.envelopeFrom : name.lowercased() == "to" ? message.envelopeTo : nil
                guard let address else { continue }
                if address.isEmpty { values.append(""); continue }
                let at = address.lastIndex(of: "@")
                let local = at.map { String(address[..<$0]) } ?? address
                if let part = Self.part(args, local: local, domain: at.map { String(address[address.index(after: $0)...]) }) { values.append(part) }
            }
            return try compare(args, values: values, keys: args.strings(1))
        case "string":
            let sources = strs(args.strings(0))
            // RFC 5229 §5: :count counts the non-empty strings.
            return try compare(args, values: Match(args).type == "count" ? sources.filter { !$0.isEmpty } : sources, keys: args.strings(1))
        case "hasflag":
            let current = args.positional.count == 2
                ? Self.flagList(strs(args.strings(0)).map { variables[$0.lowercased()] ?? "" }) : flags
            return try compare(args, values: current, keys: Self.flagList(args.strings(args.positional.count - 1)))
        case "body":
            let raw = args.tags["raw"] != nil, types = args.tagStrings("content").map(strs) ?? (raw ? nil : ["text"])
            let key = (raw ? "raw" : "") + "\u{0}" + (types ?? []).joined(separator: "\u{0}")
            if bodies[key] == nil { bodies[key] = SieveBody.texts(message.bytes, raw: raw, types: types) }
            return try compare(args, values: bodies[key] ?? [], keys: args.strings(0))
        case "date", "currentdate":
            let isDate = t.name == "date"
            var zone = environment.zoneOffset
            if let given = args.tagStrings("zone")?.first {
                guard let z = SieveDates.offset(str(given)) else { return false }
                zone = z
            }
            let part = str(args.strings(isDate ? 1 : 0)[0])
            var values: [String] = []
            if isDate {
                let name = str(args.strings(0)[0])
                let raw = fieldValues([name], args)
                try step(raw.reduce(0) { $0 + $1.utf8.count } / 4096, t.position)
                for field in raw {
                    // RFC 5260 §4: in a field of the Received form the date is what follows its last semicolon.
                    let value = field.split(separator: ";").last.map(String.init) ?? field
                    guard let (date, written) = RFC5322Date.parseWithZone(value) else { continue }
                    if let v = SieveDates.part(part, of: date, offset: args.tags["originalzone"] != nil ? written : zone) { values.append(v) }
                }
                // RFC 5260 §4: without :index, the first field only.
                if args.tags["index"] == nil { values = Array(values.prefix(1)) }
            } else if let v = SieveDates.part(part, of: environment.now, offset: zone) {
                values = [v]
            }
            return try compare(args, values: values, keys: args.strings(isDate ? 2 : 1))
        case "environment":
            guard let value = environment.items[str(args.strings(0)[0]).lowercased()] else { return false }
            return try compare(args, values: [value], keys: args.strings(1))
        case "ihave":
            return SieveValidator.ihave(Set(args.strings(0)))
        case "mailboxexists":
            guard let boxes = environment.mailboxes else { return false }
            return strs(args.strings(0)).allSatisfy { $0.uppercased() == "INBOX" || boxes.contains($0) }
        case "specialuse_exists":
            // RFC 8579 §4: every flag names a mailbox (the given one, when a mailbox is named).
            let flags = strs(args.strings(args.positional.count - 1)).map { $0.lowercased() }
            let mailbox = args.positional.count == 2 ? str(args.strings(0)[0]) : nil
            return flags.allSatisfy { f in environment.specialUses[f].map { mailbox == nil || $0 == mailbox } ?? false }
        case "duplicate":
            // RFC 7352: the id is the Message-ID unless :header or :uniqueid say otherwise; no id, no duplicate.
            let id: String?
            if let unique = args.tagStrings("uniqueid")?.first {
                id = str(unique)
            } else {
                id = message.values(str(args.tagStrings("header")?.first ?? "message-id")).first?.trimmingWhitespace()
            }
            guard let id, !id.isEmpty else { return false }
            let key = "\(str(args.tagStrings("handle")?.first ?? ""))\u{0}\(id)"
            let seconds = min(args.tagNumber("seconds") ?? 7 * 86400, 90 * 86400)
            if !duplicates.contains(where: { $0.key == key }) {
                // Each id is a question to the store: a few per message.
                guard duplicates.count < 32 else { throw SieveError(t.position, "more than 32 duplicate ids in one run") }
                duplicates.append(SieveDuplicate(key: key, seconds: seconds, last: args.tags["last"] != nil))
            }
            guard let seen = environment.duplicatesSeen[key] else {
                if !unknownDuplicates.contains(key) { unknownDuplicates.append(key) }
                return false
            }
            return seen
        case "valid_notify_method":
            return strs(args.strings(0)).allSatisfy { SieveMailto.parse($0) != nil }
        case "notify_method_capability":
            // RFC 5436 §2.2: whether a mailto recipient is online cannot be known: "maybe".
            guard SieveMailto.parse(str(args.strings(0)[0])) != nil, str(args.strings(1)[0]).lowercased() == "online" else { return false }
            return try compare(args, values: ["maybe"], keys: args.strings(2))
        case "spamtest":
            let percent = args.tags["percent"] != nil
            let value = percent ? environment.spamPercent.map { String(min(100, max(0, $0))) } : environment.spamScore.map { String(min(10, max(0, $0))) }
            return try compare(args, values: [value ?? "0"], keys: args.strings(0))
        default:
            throw SieveError(t.position, "unknown test \(t.name)")
        }
    }

    /// Compares values with the keys (expanded) under the test's match type and comparator; a successful :matches or
    /// :regex sets the match variables (RFC 5229 §3.2).
    private mutating func compare(_ args: Args, values: [String], keys: [String]) throws(SieveError) -> Bool {
        // Each key is compared with every value: a step per 4 KiB of values per key, and a pattern (whose match may take
        // the value's length times its own) a step per 64 K of that product.
        let keys = strs(keys), match = Match(args)
        let valueOctets = values.reduce(0) { $0 + $1.utf8.count }, keyOctets = keys.reduce(0) { $0 + $1.utf8.count }
        let patterned = match.type == "matches" || match.type == "regex"
        try step(valueOctets / 4096 * max(1, keys.count) + keyOctets / 4096 + (patterned ? valueOctets * keyOctets >> 16 : 0), testPosition)
        let wantCaptures = required.contains("variables") && patterned
        let (found, captured) = match.test(values, keys, wantCaptures: wantCaptures)
        if found, let captured { matchValues = captured.map(SieveVariables.clip) }
        return found
    }

    /// The values of the fields named `names`: RFC 5260 §6 counts all the named fields together for :index, "in the
    /// order specified by the header-list" (each name's fields in header order).
    private func fieldValues(_ names: [String], _ args: Args) -> [String] {
        indexed(names.flatMap { message.values($0) }, args)
    }

    /// :index N (from the end with :last) picks one of a field's occurrences (RFC 5260 §6).
    private func indexed(_ values: [String], _ args: Args) -> [String] {
        guard let n = args.tagNumber("index"), n > 0 else { return values }
        guard n <= UInt64(values.count) else { return [] }
        return [args.tags["last"] != nil ? values[values.count - Int(n)] : values[Int(n) - 1]]
    }

    /// RFC 5293 §4.5–4.6: a well-formed field name, and not one the trace depends on (Received, Auto-Submitted,
    /// Return-Path, which scripts may not add or delete; and Delivered-To, the redirect loop check: two users each
    /// deleting it and redirecting to the other would loop).
    static func editable(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 100 && name.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != 58 }
            && !["received", "auto-submitted", "return-path", "delivered-to"].contains(name.lowercased())
    }

    /// The address part a test asks for (RFC 5228 §2.7.4; :user and :detail of RFC 5233 with "+" as the separator:
    /// :detail of an address without one matches nothing).
    static func part(_ args: Args, local: String, domain: String?) -> String? {
        let plus = local.firstIndex(of: "+")
        // RFC 5228 §2.7.4: an address that is not valid (no domain) is matched by :all only.
        if domain == nil && (args.tags["localpart"] != nil || args.tags["domain"] != nil || args.tags["user"] != nil || args.tags["detail"] != nil) {
            return nil
        }
        if args.tags["localpart"] != nil { return local }
        if args.tags["domain"] != nil { return domain ?? "" }
        if args.tags["user"] != nil { return plus.map { String(local[..<$0]) } ?? local }
        if args.tags["detail"] != nil { return plus.map { String(local[local.index(after: $0)...]) } }
        // :all is the address as written in its canonical form: a local part that is no dot-atom in quotes.
        let atext = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.")
        let quoted = local.unicodeScalars.allSatisfy { atext.contains($0) || $0.value > 127 } && !local.isEmpty ? local
            : "\"" + local.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        return domain.map { "\(quoted)@\($0)" } ?? local
    }
}

extension SieveAction {
    var isKeep: Bool { if case .keep = self { true } else { false } }
    var isFileinto: Bool { if case .fileinto = self { true } else { false } }
    var isReject: Bool { if case .reject = self { true } else { false } }

    /// Two actions that deliver to the same place (whatever their flags).
    func sameTarget(_ other: SieveAction) -> Bool {
        switch (self, other) {
        case (.keep, .keep): true
        case (.fileinto(let a, _, _, let u), .fileinto(let b, _, _, let v)): a == b && u?.lowercased() == v?.lowercased()
        // RFC 5228 §5.1: the local part is case-sensitive, the domain is not.
        case (.redirect(let a), .redirect(let b)):
            a.split(separator: "@").first == b.split(separator: "@").first && a.split(separator: "@").last?.lowercased() == b.split(separator: "@").last?.lowercased()
        case (.notify(let a), .notify(let b)): a.method == b.method
        default: false
        }
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
