/// The rules of RFC 5228 a parsed script must keep before it runs: `require` first and only for capabilities this
/// server has, `if`/`elsif`/`else` in order, every command and test known with arguments of the right kinds, tags
/// that belong to them (and the extension that brings a tag required), one match type, address part and
/// comparator at most. Every error carries its line and column (what ManageSieve's PUTSCRIPT and `tern sieve put`
/// report).
public enum SieveValidator {
    /// The capabilities a script may `require` (RFC 5228 §3.2). Grows with the interpreter's extensions.
    public static let capabilities: Set<String> = [
        "fileinto", "envelope", "encoded-character", "comparator-i;octet", "comparator-i;ascii-casemap", "copy", "mailbox",
    ]

    /// Checks `commands` (from `SieveParser`); returns the capabilities the script requires.
    @discardableResult
    public static func validate(_ commands: [SieveCommand], capabilities: Set<String> = capabilities) throws(SieveError) -> Set<String> {
        var required: Set<String> = []
        var seenOther = false
        try block(commands, top: true, required: &required, seenOther: &seenOther, capabilities: capabilities)
        return required
    }

    private static func block(_ commands: [SieveCommand], top: Bool, required: inout Set<String>, seenOther: inout Bool,
                              capabilities: Set<String>) throws(SieveError) {
        var previous: String?
        for c in commands {
            if c.name == "require" {
                // RFC 5228 §3.2: require may appear only at the start of the script, before any other command.
                guard top && !seenOther else { throw SieveError(c.position, "require must come before every other command") }
                let names = try shape(c.position, "require", c.arguments, Shape(positional: [.strings]), required).strings[0]
                for name in names {
                    let lower = name.lowercased()
                    guard capabilities.contains(lower) else { throw SieveError(c.arguments[0].position, "unsupported extension \"\(name)\"") }
                    required.insert(lower)
                }
                guard c.tests.isEmpty, c.block == nil else { throw SieveError(c.position, "require takes no test and no block") }
                previous = c.name
                continue
            }
            seenOther = true
            switch c.name {
            case "if", "elsif":
                if c.name == "elsif", previous != "if", previous != "elsif" { throw SieveError(c.position, "elsif must follow if or elsif") }
                _ = try shape(c.position, c.name, c.arguments, Shape(), required)
                guard c.tests.count == 1 else { throw SieveError(c.position, "\(c.name) takes one test") }
                guard let inner = c.block else { throw SieveError(c.position, "\(c.name) needs a block") }
                try test(c.tests[0], required: required)
                try block(inner, top: false, required: &required, seenOther: &seenOther, capabilities: capabilities)
            case "else":
                if previous != "if", previous != "elsif" { throw SieveError(c.position, "else must follow if or elsif") }
                _ = try shape(c.position, "else", c.arguments, Shape(), required)
                guard c.tests.isEmpty else { throw SieveError(c.position, "else takes no test") }
                guard let inner = c.block else { throw SieveError(c.position, "else needs a block") }
                try block(inner, top: false, required: &required, seenOther: &seenOther, capabilities: capabilities)
            case "stop", "keep", "discard":
                try action(c, Shape(), required)
            case "fileinto":
                guard required.contains("fileinto") else { throw SieveError(c.position, "fileinto needs require \"fileinto\"") }
                try action(c, Shape(tags: ["copy": .flag("copy"), "create": .flag("mailbox")], positional: [.string]), required)
            case "redirect":
                try action(c, Shape(tags: ["copy": .flag("copy")], positional: [.string]), required)
            default:
                throw SieveError(c.position, "unknown command \(c.name)")
            }
            previous = c.name
        }
    }

    private static func action(_ c: SieveCommand, _ s: Shape, _ required: Set<String>) throws(SieveError) {
        _ = try shape(c.position, c.name, c.arguments, s, required)
        guard c.tests.isEmpty else { throw SieveError(c.position, "\(c.name) takes no test") }
        guard c.block == nil else { throw SieveError(c.position, "\(c.name) takes no block; end it with ';'") }
    }

    private static func test(_ t: SieveTest, required: Set<String>) throws(SieveError) {
        let matching: [String: Shape.Tag] = [
            "is": .matchType(nil), "contains": .matchType(nil), "matches": .matchType(nil),
            "comparator": .comparator,
        ]
        let addressParts: [String: Shape.Tag] = ["all": .addressPart, "localpart": .addressPart, "domain": .addressPart]
        var nested = 0
        switch t.name {
        case "address":
            _ = try shape(t.position, "address", t.arguments, Shape(tags: matching.merging(addressParts) { a, _ in a }, positional: [.strings, .strings]), required)
        case "envelope":
            guard required.contains("envelope") else { throw SieveError(t.position, "envelope needs require \"envelope\"") }
            _ = try shape(t.position, "envelope", t.arguments, Shape(tags: matching.merging(addressParts) { a, _ in a }, positional: [.strings, .strings]), required)
        case "header":
            _ = try shape(t.position, "header", t.arguments, Shape(tags: matching, positional: [.strings, .strings]), required)
        case "exists":
            _ = try shape(t.position, "exists", t.arguments, Shape(positional: [.strings]), required)
        case "size":
            let found = try shape(t.position, "size", t.arguments, Shape(tags: ["over": .sizeBound, "under": .sizeBound], positional: [.number]), required)
            guard found.sizeBound else { throw SieveError(t.position, "size needs :over or :under") }
        case "true", "false":
            _ = try shape(t.position, t.name, t.arguments, Shape(), required)
        case "not":
            _ = try shape(t.position, "not", t.arguments, Shape(), required)
            nested = 1
        case "allof", "anyof":
            _ = try shape(t.position, t.name, t.arguments, Shape(), required)
            guard !t.tests.isEmpty else { throw SieveError(t.position, "\(t.name) needs a list of tests") }
            nested = -1
        default:
            throw SieveError(t.position, "unknown test \(t.name)")
        }
        if nested == 0 && !t.tests.isEmpty { throw SieveError(t.tests[0].position, "\(t.name) takes no nested test") }
        if nested == 1 && t.tests.count != 1 { throw SieveError(t.position, "not takes one test") }
        for inner in t.tests { try test(inner, required: required) }
    }

    /// The arguments a command or test takes: tags (some with a value), then positional arguments.
    struct Shape {
        enum Tag {
            /// A flag tag that needs its extension required.
            case flag(String?)
            case matchType(String?)
            case addressPart
            case comparator
            case sizeBound
        }
        enum Kind { case string, strings, number }
        var tags: [String: Tag] = [:]
        var positional: [Kind] = []
    }

    struct Found {
        var strings: [[String]] = []
        var sizeBound = false
    }

    private static func shape(_ at: SievePosition, _ name: String, _ arguments: [SieveArgument], _ s: Shape,
                              _ required: Set<String>) throws(SieveError) -> Found {
        var found = Found()
        var i = 0
        var seen: Set<String> = []
        var matchType = false, addressPart = false, comparator = false
        // Tags first (RFC 5228 §2.6.2: tagged arguments precede the positional ones).
        while i < arguments.count, case .tag(let tag, let p) = arguments[i] {
            guard let kind = s.tags[tag] else { throw SieveError(p, "\(name) has no tag :\(tag)") }
            guard seen.insert(tag).inserted else { throw SieveError(p, "tag :\(tag) given twice") }
            i += 1
            switch kind {
            case .flag(let ext):
                if let ext, !required.contains(ext) { throw SieveError(p, ":\(tag) needs require \"\(ext)\"") }
            case .matchType(let ext):
                if let ext, !required.contains(ext) { throw SieveError(p, ":\(tag) needs require \"\(ext)\"") }
                guard !matchType else { throw SieveError(p, "only one match type may be given") }
                matchType = true
            case .addressPart:
                guard !addressPart else { throw SieveError(p, "only one address part may be given") }
                addressPart = true
            case .sizeBound:
                guard !found.sizeBound else { throw SieveError(p, "size takes :over or :under, not both") }
                found.sizeBound = true
            case .comparator:
                guard !comparator else { throw SieveError(p, "only one comparator may be given") }
                comparator = true
                guard i < arguments.count, case .strings(let names, let q) = arguments[i], names.count == 1 else {
                    throw SieveError(p, ":comparator needs a comparator name")
                }
                let c = names[0].lowercased()
                // RFC 5228 §2.7.3: i;octet and i;ascii-casemap come without require; others need theirs.
                if c != "i;octet" && c != "i;ascii-casemap" && !required.contains("comparator-" + c) {
                    throw SieveError(q, "comparator \"\(names[0])\" needs require \"comparator-\(names[0])\"")
                }
                i += 1
            }
        }
        for kind in s.positional {
            guard i < arguments.count else { throw SieveError(at, "\(name) needs \(s.positional.count) argument\(s.positional.count == 1 ? "" : "s")") }
            switch (kind, arguments[i]) {
            case (.strings, .strings(let list, _)): found.strings.append(list)
            case (.string, .strings(let list, let p)):
                guard list.count == 1 else { throw SieveError(p, "\(name) takes one string here, not a list") }
                found.strings.append(list)
            case (.number, .number): break
            case (_, .tag(let t, let p)): throw SieveError(p, "tag :\(t) must come before the other arguments of \(name)")
            case (_, let a): throw SieveError(a.position, "\(name) expects \(kind == .number ? "a number" : "a string") here")
            }
            i += 1
        }
        if i < arguments.count { throw SieveError(arguments[i].position, "\(name) takes no more arguments") }
        return found
    }
}
