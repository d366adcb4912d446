import MailCore
import MailMessage

/// The rules of RFC 5228 and its extensions a parsed script must keep before it runs: `require` first and only for
/// capabilities this server has, `if`/`elsif`/`else` in order, every command and test known (and its extension
/// required) with arguments of the right kinds, tags that belong to them, one match type, address part and comparator
/// at most. Every error carries its line and column (what ManageSieve's PUTSCRIPT and `tern sieve put` report).
public enum SieveValidator {
    /// The capabilities a script may `require` (RFC 5228 §3.2), as ManageSieve announces them.
    public static let capabilities: Set<String> = [
        "fileinto", "envelope", "encoded-character", "comparator-i;octet", "comparator-i;ascii-casemap", "comparator-i;ascii-numeric",
        "copy", "mailbox", "variables", "imap4flags", "subaddress", "body", "relational", "date", "index", "ihave", "environment",
        "spamtest", "spamtestplus", "regex", "vacation", "vacation-seconds", "reject", "ereject", "special-use", "duplicate", "include", "enotify", "editheader",
    ]

    /// Checks `commands` (from `SieveParser`); returns the capabilities the script requires.
    @discardableResult
    public static func validate(_ commands: [SieveCommand], capabilities: Set<String> = capabilities) throws(SieveError) -> Set<String> {
        try walk(commands, capabilities: capabilities).required
    }

    /// RFC 5463 §4: ihave is true for capabilities this server has, but never for those that change how a script is
    /// read (variables, encoded-character).
    package static func ihave(_ names: Set<String>, _ capabilities: Set<String> = capabilities) -> Bool {
        names.isSubset(of: capabilities) && names.isDisjoint(with: ["variables", "encoded-character"])
    }

    /// identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_") (RFC 5228 §8.1): variable names.
    package static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    /// The date parts of the date and currentdate tests (RFC 5260 §4.2).
    package static let dateParts: Set<String> = [
        "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11", "zone", "weekday",
    ]

    /// RFC 5322 §3.6.8: a field name is printable US-ASCII but the colon.
    public static func isFieldName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 100 && name.utf8.allSatisfy { $0 > 32 && $0 < 127 && $0 != 58 }
    }

    /// RFC 6154 §6: use-attr = "\" atom.
    public static func isSpecialUseFlag(_ flag: String) -> Bool {
        flag.hasPrefix("\\") && flag.count > 1
            && flag.dropFirst().unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && !"(){%*\"\\]".unicodeScalars.contains($0) }
    }

    /// Header fields that hold addresses: what the address test may look at (RFC 5228 §5.1).
    static let addressFields: Set<String> = [
        "from", "sender", "to", "cc", "bcc", "reply-to", "resent-from", "resent-sender", "resent-to", "resent-cc", "resent-bcc",
        "resent-reply-to", "delivered-to", "errors-to", "return-receipt-to", "disposition-notification-to", "approved", "mail-followup-to",
        "mail-reply-to", "x-original-to", "envelope-to", "x-envelope-to", "original-recipient", "return-path",
    ]

    /// A constant address for redirect (RFC 5228 §2.4.2.3): an addr-spec, or a name-addr; its addr-spec, as it goes in
    /// RCPT TO (RFC 5321 §4.1.2): a local part that is no dot-atom quoted again. Nil for anything else, and for an
    /// address with a control character (a CR LF in a quoted local part would end the SMTP command).
    public static func redirectAddress(_ s: String) -> String? {
        guard !s.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) else { return nil }
        let items = AddressList.parse(s)
        guard items.count == 1, case .mailbox(_, let local, let domain?) = items[0], !local.isEmpty, !domain.isEmpty,
              !(local + domain).unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }),
              domain.utf8.allSatisfy({ $0 >= 0x80 || $0 == 0x2D || $0 == 0x2E || ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x5B || $0 == 0x5D || $0 == 0x3A })
        else { return nil }
        return "\(EmailAddress.isDotString(local) ? local : EmailAddress.quote(local))@\(domain)"
    }

    /// The walk's findings: what `require` names, and what the script may use at run time (those and the
    /// capabilities an ihave test found here).
    package static func walk(_ commands: [SieveCommand], capabilities: Set<String> = capabilities) throws(SieveError) -> (required: Set<String>, enabled: Set<String>) {
        var v = Walk(capabilities: capabilities)
        try v.block(commands, top: true)
        return (v.required, v.required.union(v.enabled))
    }

    struct Walk {
        let capabilities: Set<String>
        var required: Set<String> = []
        /// Capabilities usable inside ihave blocks.
        var enabled: Set<String> = []
        var seenOther = false

        mutating func block(_ commands: [SieveCommand], top: Bool) throws(SieveError) {
            var previous: String?
            for c in commands {
                defer { previous = c.name }
                if c.name == "require" {
                    // RFC 5228 §3.2: require may appear only at the start of the script, before any other command.
                    guard top && !seenOther else { throw SieveError(c.position, "require must come before every other command") }
                    let args = try shape(c.position, "require", c.arguments, Spec(positional: [.strings]))
                    for name in args.strings(0) {
                        // RFC 5228 §6: capability names are case-sensitive.
                        guard capabilities.contains(name) else { throw SieveError(c.arguments[0].position, "unsupported extension \"\(name)\"") }
                        required.insert(name)
                        // RFC 6131 §2: vacation-seconds implies vacation.
                        if name == "vacation-seconds" { required.insert("vacation") }
                    }
                    guard c.tests.isEmpty, c.block == nil else { throw SieveError(c.position, "require takes no test and no block") }
                    continue
                }
                seenOther = true
                switch c.name {
                case "if", "elsif", "else":
                    if c.name != "if", previous != "if", previous != "elsif" { throw SieveError(c.position, "\(c.name) must follow if or elsif") }
                    _ = try shape(c.position, c.name, c.arguments, Spec())
                    guard c.tests.count == (c.name == "else" ? 0 : 1) else {
                        throw SieveError(c.position, c.name == "else" ? "else takes no test" : "\(c.name) takes one test")
                    }
                    guard let inner = c.block else { throw SieveError(c.position, "\(c.name) needs a block") }
                    if let t = c.tests.first { try test(t) }
                    // RFC 5463 §4: a block guarded by ihave of capabilities this server lacks never runs, and what it
                    // uses of them is no error; those it has are usable inside as if required.
                    if let t = c.tests.first, t.name == "ihave" {
                        let names = Set(Args(t.arguments).strings(0))
                        guard SieveValidator.ihave(names, capabilities) else { continue }
                        // RFC 5463 §4: usable from here on, in the block and after it.
                        required.formUnion(names)
                        enabled.formUnion(names)
                        try block(inner, top: false)
                    } else {
                        try block(inner, top: false)
                    }
                default:
                    guard let spec = SieveValidator.commands[c.name] else { throw SieveError(c.position, "unknown command \(c.name)") }
                    if let ext = spec.ext, !required.contains(ext) { throw SieveError(c.position, "\(c.name) needs require \"\(ext)\"") }
                    let args = try shape(c.position, c.name, c.arguments, spec)
                    guard c.tests.isEmpty else { throw SieveError(c.position, "\(c.name) takes no test") }
                    guard c.block == nil else { throw SieveError(c.position, "\(c.name) takes no block; end it with ';'") }
                    try extra(c.name, c.position, args)
                }
            }
        }

        /// Rules beyond the arguments' shape.
        func extra(_ name: String, _ at: SievePosition, _ args: Args) throws(SieveError) {
            switch name {
            case "set":
                // RFC 5229 §4: one modifier of each precedence at most; the name is an identifier.
                let tags = Set(args.tags.keys)
                if tags.contains("lower") && tags.contains("upper") || tags.contains("lowerfirst") && tags.contains("upperfirst") {
                    throw SieveError(at, "set takes one modifier of each kind")
                }
                let variable = args.strings(0)[0]
                // RFC 6609 §3.4.2: "global.NAME" names a global variable.
                let global = required.contains("include") && variable.lowercased().hasPrefix("global.")
                guard SieveValidator.isIdentifier(global ? String(variable.dropFirst(7)) : variable) else {
                    throw SieveError(at, "invalid variable name \"\(variable)\"")
                }
            case "global":
                // RFC 6609 §3.3: global variables are variables.
                guard required.contains("variables") else { throw SieveError(at, "global needs require \"variables\"") }
                for name in args.strings(0) where !SieveValidator.isIdentifier(name) { throw SieveError(at, "invalid variable name \"\(name)\"") }
            case "redirect":
                // A constant that is no address is an error now; one made with variables is checked when it runs.
                let target = args.strings(0)[0]
                if !(required.contains("variables") && target.contains("${")) && SieveValidator.redirectAddress(target) == nil {
                    throw SieveError(at, "redirect needs an address, not \"\(target)\"")
                }
            case "addheader":
                // RFC 5293 §4: a field name that is not one is an error (now, when it is a constant).
                let field = args.strings(0)[0]
                if !(required.contains("variables") && field.contains("${")) && !SieveValidator.isFieldName(field) {
                    throw SieveError(at, "invalid header field name \"\(field)\"")
                }
            case "fileinto":
                // RFC 8579: a special-use flag is RFC 6154's: a backslash and an atom.
                if let use = args.tagStrings("specialuse")?.first, !(required.contains("variables") && use.contains("${")),
                   !SieveValidator.isSpecialUseFlag(use) {
                    throw SieveError(at, "invalid special-use flag \"\(use)\"")
                }
            case "deleteheader":
                if args.tags["last"] != nil, args.tags["index"] == nil { throw SieveError(at, ":last needs :index") }
            case "include":
                guard SieveScriptName.isValid(args.strings(0)[0]) else { throw SieveError(at, "invalid script name \"\(args.strings(0)[0])\"") }
            case "setflag", "addflag", "removeflag":
                if args.positional.count == 2 {
                    guard required.contains("variables") else { throw SieveError(at, "a variable name in \(name) needs require \"variables\"") }
                    guard SieveValidator.isIdentifier(args.strings(0)[0]) else { throw SieveError(at, "invalid variable name \"\(args.strings(0)[0])\"") }
                }
            default:
                break
            }
        }

        mutating func test(_ t: SieveTest) throws(SieveError) {
            var nested = 0
            switch t.name {
            case "not":
                _ = try shape(t.position, "not", t.arguments, Spec())
                nested = 1
            case "allof", "anyof":
                _ = try shape(t.position, t.name, t.arguments, Spec())
                guard !t.tests.isEmpty else { throw SieveError(t.position, "\(t.name) needs a list of tests") }
                nested = -1
            default:
                guard let spec = SieveValidator.tests[t.name] else { throw SieveError(t.position, "unknown test \(t.name)") }
                if let ext = spec.ext, !required.contains(ext), !(t.name == "spamtest" && required.contains("spamtestplus")) {
                    throw SieveError(t.position, "\(t.name) needs require \"\(ext)\"")
                }
                let args = try shape(t.position, t.name, t.arguments, spec)
                let usesVariables = required.contains("variables")
                let constant = { (s: String) in !(usesVariables && s.contains("${")) }
                if t.name == "address" {
                    for name in args.strings(0) where constant(name) && !SieveValidator.addressFields.contains(name.lowercased()) {
                        throw SieveError(t.position, "address tests only header fields that hold addresses, not \(name)")
                    }
                }
                if t.name == "envelope" {
                    // RFC 5228 §5.4: unknown envelope parts are an error.
                    for part in args.strings(0) where constant(part) && !["from", "to"].contains(part.lowercased()) {
                        throw SieveError(t.position, "unknown envelope part \"\(part)\"")
                    }
                }
                if t.name == "size", args.tags["over"] == nil, args.tags["under"] == nil { throw SieveError(t.position, "size needs :over or :under") }
                if t.name == "hasflag", args.positional.count == 2, !required.contains("variables") {
                    throw SieveError(t.position, "a variable list in hasflag needs require \"variables\"")
                }
                if spec.index, args.tags["last"] != nil, args.tags["index"] == nil { throw SieveError(t.position, ":last needs :index") }
                if t.name == "date" || t.name == "currentdate" {
                    let part = args.strings(t.name == "date" ? 1 : 0)[0].lowercased()
                    guard SieveValidator.dateParts.contains(part) else { throw SieveError(t.position, "unknown date part \"\(part)\"") }
                }
            }
            if nested == 0 && !t.tests.isEmpty { throw SieveError(t.tests[0].position, "\(t.name) takes no nested test") }
            if nested == 1 && t.tests.count != 1 { throw SieveError(t.position, "not takes one test") }
            for inner in t.tests { try test(inner) }
        }

        func shape(_ at: SievePosition, _ name: String, _ arguments: [SieveArgument], _ s: Spec) throws(SieveError) -> Args {
            var i = 0
            var groups: Set<String> = []
            var args = Args()
            // Tags first (RFC 5228 §2.6.2: tagged arguments precede the positional ones).
            while i < arguments.count, case .tag(let tag, let p) = arguments[i] {
                guard let kind = s.tags[tag] ?? Spec.shared(tag, s) else { throw SieveError(p, "\(name) has no tag :\(tag)") }
                guard args.tags[tag] == nil else { throw SieveError(p, "tag :\(tag) given twice") }
                if let ext = kind.ext, !required.contains(ext) { throw SieveError(p, ":\(tag) needs require \"\(ext)\"") }
                if let group = kind.group {
                    guard groups.insert(group).inserted else { throw SieveError(p, "only one \(group) may be given") }
                }
                i += 1
                var value: SieveArgument?
                if let valueKind = kind.value {
                    guard i < arguments.count else { throw SieveError(p, ":\(tag) needs a value") }
                    switch (valueKind, arguments[i]) {
                    case (.number, .number), (.strings, .strings): break
                    case (.string, .strings(let list, _)) where list.count == 1: break
                    default: throw SieveError(arguments[i].position, ":\(tag) needs \(valueKind == .number ? "a number" : "a string")")
                    }
                    value = arguments[i]
                    i += 1
                }
                args.tags[tag] = value.map { .some($0) } ?? .some(nil)
                if tag == "comparator", case .strings(let names, let q)? = value {
                    // RFC 5228 §2.7.3: i;octet and i;ascii-casemap come without require; others need theirs.
                    let c = names[0].lowercased()
                    if c != "i;octet" && c != "i;ascii-casemap" && !required.contains("comparator-" + c) {
                        throw SieveError(q, "comparator \"\(names[0])\" needs require \"comparator-\(names[0])\"")
                    }
                }
                if tag == "value" || tag == "count", case .strings(let ops, let q)? = value,
                   !["gt", "ge", "lt", "le", "eq", "ne"].contains(ops[0].lowercased()) {
                    throw SieveError(q, "unknown relational operator \"\(ops[0])\"")
                }
            }
            let given = arguments.count - i
            var kinds = s.positional
            if given < kinds.count, let optional = s.optional, given == kinds.count - 1 {
                kinds.remove(at: optional == .leading ? 0 : kinds.count - 1)
            }
            for kind in kinds {
                guard i < arguments.count else {
                    throw SieveError(at, "\(name) needs \(s.positional.count) argument\(s.positional.count == 1 ? "" : "s")")
                }
                switch (kind, arguments[i]) {
                case (.strings, .strings), (.number, .number): break
                case (.string, .strings(let list, let p)):
                    guard list.count == 1 else { throw SieveError(p, "\(name) takes one string here, not a list") }
                case (_, .tag(let t, let p)): throw SieveError(p, "tag :\(t) must come before the other arguments of \(name)")
                case (_, let a): throw SieveError(a.position, "\(name) expects \(kind == .number ? "a number" : "a string") here")
                }
                args.positional.append(arguments[i])
                i += 1
            }
            if i < arguments.count { throw SieveError(arguments[i].position, "\(name) takes no more arguments") }
            return args
        }
    }

    /// What a command or test takes: its extension, its tags, its positional arguments (one of them perhaps optional).
    struct Spec {
        enum Kind { case string, strings, number }
        enum Optional { case leading, trailing }
        struct Tag {
            var ext: String?
            /// Tags of one group exclude each other (one match type, one address part, ...).
            var group: String?
            /// The kind of the value the tag takes; nil: none.
            var value: Kind?

            static func flag(_ ext: String? = nil, group: String? = nil) -> Tag { Tag(ext: ext, group: group) }
        }
        var ext: String?
        var tags: [String: Tag] = [:]
        var positional: [Kind] = []
        var optional: Optional?
        /// Takes a match type and a comparator.
        var matching = false
        var addressPart = false
        var index = false

        /// The match types, comparators, address parts and :index the tests share.
        static func shared(_ tag: String, _ s: Spec) -> Tag? {
            if s.matching {
                switch tag {
                case "is", "contains", "matches": return Tag(group: "match type")
                case "regex": return Tag(ext: "regex", group: "match type")
                case "value", "count": return Tag(ext: "relational", group: "match type", value: .string)
                case "comparator": return Tag(group: "comparator", value: .string)
                default: break
                }
            }
            if s.addressPart {
                switch tag {
                case "all", "localpart", "domain": return Tag(group: "address part")
                case "user", "detail": return Tag(ext: "subaddress", group: "address part")
                default: break
                }
            }
            if s.index {
                if tag == "index" { return Tag(ext: "index", value: .number) }
                if tag == "last" { return Tag(ext: "index") }
            }
            return nil
        }
    }

    static let commands: [String: Spec] = [
        "stop": Spec(), "discard": Spec(),
        "keep": Spec(tags: ["flags": .init(ext: "imap4flags", value: .strings)]),
        "fileinto": Spec(ext: "fileinto", tags: ["copy": .flag("copy"), "create": .flag("mailbox"),
                                                 "flags": .init(ext: "imap4flags", value: .strings),
                                                 "specialuse": .init(ext: "special-use", value: .string)], positional: [.string]),
        "redirect": Spec(tags: ["copy": .flag("copy")], positional: [.string]),
        "set": Spec(ext: "variables", tags: [
            "lower": .flag(), "upper": .flag(), "lowerfirst": .flag(), "upperfirst": .flag(), "quotewildcard": .flag(), "length": .flag(),
            "encodeurl": .flag("enotify"),
        ], positional: [.string, .string]),
        "setflag": Spec(ext: "imap4flags", positional: [.string, .strings], optional: .leading),
        "addflag": Spec(ext: "imap4flags", positional: [.string, .strings], optional: .leading),
        "removeflag": Spec(ext: "imap4flags", positional: [.string, .strings], optional: .leading),
        "error": Spec(ext: "ihave", positional: [.string]),
        "vacation": Spec(ext: "vacation", tags: [
            "days": .init(group: "period", value: .number), "seconds": .init(ext: "vacation-seconds", group: "period", value: .number),
            "subject": .init(value: .string), "from": .init(value: .string), "addresses": .init(value: .strings), "mime": .flag(),
            "handle": .init(value: .string),
        ], positional: [.string]),
        "reject": Spec(ext: "reject", positional: [.string]),
        "include": Spec(ext: "include", tags: ["personal": .flag(group: "location"), "global": .flag(group: "location"), "once": .flag(),
                                               "optional": .flag()], positional: [.string]),
        "return": Spec(ext: "include"),
        "addheader": Spec(ext: "editheader", tags: ["last": .flag()], positional: [.string, .string]),
        // RFC 5293 §5: deleteheader's :index and :last are its own (no "index" needed).
        "deleteheader": Spec(ext: "editheader", tags: ["index": .init(value: .number), "last": .flag()], positional: [.string, .strings],
                             optional: .trailing, matching: true),
        "notify": Spec(ext: "enotify", tags: [
            "from": .init(value: .string), "importance": .init(value: .string), "options": .init(value: .strings), "message": .init(value: .string),
        ], positional: [.string]),
        "global": Spec(ext: "include", positional: [.strings]),
        "ereject": Spec(ext: "ereject", positional: [.string]),
    ]

    static let tests: [String: Spec] = [
        "true": Spec(), "false": Spec(),
        "address": Spec(positional: [.strings, .strings], matching: true, addressPart: true, index: true),
        "envelope": Spec(ext: "envelope", positional: [.strings, .strings], matching: true, addressPart: true),
        "header": Spec(positional: [.strings, .strings], matching: true, index: true),
        "exists": Spec(positional: [.strings]),
        "size": Spec(tags: ["over": .flag(group: "size bound"), "under": .flag(group: "size bound")], positional: [.number]),
        "string": Spec(ext: "variables", positional: [.strings, .strings], matching: true),
        "hasflag": Spec(ext: "imap4flags", positional: [.strings, .strings], optional: .leading, matching: true),
        "body": Spec(ext: "body", tags: ["raw": .flag(group: "body transform"), "text": .flag(group: "body transform"),
                                         "content": .init(group: "body transform", value: .strings)],
                     positional: [.strings], matching: true),
        "date": Spec(ext: "date", tags: ["zone": .init(group: "zone", value: .string), "originalzone": .flag(group: "zone")],
                     positional: [.string, .string, .strings], matching: true, index: true),
        "currentdate": Spec(ext: "date", tags: ["zone": .init(value: .string)], positional: [.string, .strings], matching: true),
        "environment": Spec(ext: "environment", positional: [.string, .strings], matching: true),
        "ihave": Spec(ext: "ihave", positional: [.strings]),
        "mailboxexists": Spec(ext: "mailbox", positional: [.strings]),
        "specialuse_exists": Spec(ext: "special-use", positional: [.string, .strings], optional: .leading),
        "duplicate": Spec(ext: "duplicate", tags: [
            "handle": .init(value: .string), "header": .init(group: "id", value: .string), "uniqueid": .init(group: "id", value: .string),
            "seconds": .init(value: .number), "last": .flag(),
        ]),
        "valid_notify_method": Spec(ext: "enotify", positional: [.strings]),
        "notify_method_capability": Spec(ext: "enotify", positional: [.string, .string, .strings], matching: true),
        "spamtest": Spec(ext: "spamtest", tags: ["percent": .flag("spamtestplus")], positional: [.string], matching: true),
    ]
}

/// The arguments of a command or test after validation: its tags (with their values) and its positional arguments.
package struct Args {
    package var tags: [String: SieveArgument?] = [:]
    package var positional: [SieveArgument] = []

    /// Reads arguments the validator accepted (tags that take a value are known by name).
    package init(_ arguments: [SieveArgument]) {
        var i = 0
        while i < arguments.count, case .tag(let tag, _) = arguments[i] {
            i += 1
            if Self.valued.contains(tag), i < arguments.count, !arguments[i].isTag {
                tags[tag] = .some(arguments[i])
                i += 1
            } else {
                tags[tag] = .some(nil)
            }
        }
        positional = Array(arguments[i...])
    }

    init() {}

    /// Tags followed by a value, in every command and test this interpreter knows.
    static let valued: Set<String> = ["comparator", "value", "count", "flags", "content", "zone", "index", "days", "seconds", "subject",
                                      "from", "addresses", "handle", "specialuse", "header", "uniqueid",
                                      "importance", "options", "message"]

    package func strings(_ i: Int) -> [String] {
        guard i < positional.count, case .strings(let s, _) = positional[i] else { return [] }
        return s
    }

    package func number(_ i: Int) -> UInt64 {
        guard i < positional.count, case .number(let n, _) = positional[i] else { return 0 }
        return n
    }

    package func tagStrings(_ tag: String) -> [String]? {
        guard case .some(.some(.strings(let s, _))) = tags[tag] else { return nil }
        return s
    }

    package func tagNumber(_ tag: String) -> UInt64? {
        guard case .some(.some(.number(let n, _))) = tags[tag] else { return nil }
        return n
    }
}

extension SieveArgument {
    package var isTag: Bool { if case .tag = self { true } else { false } }
}

/// RFC 5804 §1.6: a script name is not empty, at most 512 octets, without control characters (C0, DEL, C1) or the
/// Unicode line and paragraph separators (ManageSieve's names, and what include may name).
public enum SieveScriptName {
    public static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 512
            && !name.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029 }
    }
}

extension Unicode.Scalar {
    package var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    package var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
