/// Parses one complete IMAP command (its line and any literals, as assembled by `IMAPFramer`) into a
/// `TaggedCommand`. Grammar references are to RFC 9051 §9.
public struct IMAPCommandParser {
    /// Nesting limit for parenthesised lists and search keys: a 10,000-deep parenthesis is refused, not recursed.
    public static let maxDepth = 32

    var b: [UInt8]
    var i = 0
    var tag: String?
    /// UTF-8 mailbox names (IMAP4rev2 or UTF8=ACCEPT); otherwise modified UTF-7 (RFC 3501 §5.1.3).
    public var utf8Mailboxes: Bool

    public init(_ bytes: [UInt8], utf8Mailboxes: Bool = false) {
        b = bytes
        self.utf8Mailboxes = utf8Mailboxes
    }

    public static func parse(_ bytes: [UInt8], utf8Mailboxes: Bool = false) throws(IMAPParseError) -> TaggedCommand {
        var p = IMAPCommandParser(bytes, utf8Mailboxes: utf8Mailboxes)
        return try p.command()
    }

    func fail(_ message: String) -> IMAPParseError { IMAPParseError(tag: tag, message) }

    // MARK: lexical

    var atEnd: Bool { i >= b.count }
    var peek: UInt8? { i < b.count ? b[i] : nil }

    mutating func sp() throws(IMAPParseError) {
        guard peek == 0x20 else { throw fail("Expected a space at position \(i)") }
        i += 1
    }

    mutating func expect(_ s: String) throws(IMAPParseError) {
        for c in s.utf8 {
            guard let p = peek, upper(p) == c else { throw fail("Expected \(s)") }
            i += 1
        }
    }

    mutating func accept(_ s: String) -> Bool {
        let save = i
        for c in s.utf8 {
            guard let p = peek, upper(p) == c else { i = save; return false }
            i += 1
        }
        return true
    }

    func upper(_ c: UInt8) -> UInt8 { (97...122).contains(c) ? c - 32 : c }

    /// ATOM-CHAR: any CHAR except atom-specials `( ) { SP CTL % * " \ ]`
    static func isAtomChar(_ c: UInt8) -> Bool {
        guard c > 0x20, c < 0x7F else { return false }
        return !"(){%*\"\\]".utf8.contains(c)
    }

    /// ASTRING-CHAR = ATOM-CHAR / resp-specials ("]")
    static func isAStringChar(_ c: UInt8) -> Bool { isAtomChar(c) || c == UInt8(ascii: "]") }

    mutating func atom() throws(IMAPParseError) -> String {
        let start = i
        while let c = peek, Self.isAtomChar(c) { i += 1 }
        guard i > start else { throw fail("Expected an atom at position \(start)") }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    /// A list-mailbox atom also allows `%` and `*`.
    mutating func listChars() throws(IMAPParseError) -> String {
        let start = i
        while let c = peek, Self.isAStringChar(c) || c == UInt8(ascii: "%") || c == UInt8(ascii: "*") { i += 1 }
        guard i > start else { throw fail("Expected a mailbox pattern") }
        return String(decoding: b[start..<i], as: UTF8.self)
    }

    /// `string = quoted / literal`
    mutating func string() throws(IMAPParseError) -> [UInt8] {
        if peek == UInt8(ascii: "\"") { return try quoted() }
        if peek == UInt8(ascii: "{") || (peek == UInt8(ascii: "~") && i + 1 < b.count && b[i + 1] == UInt8(ascii: "{")) {
            return try literal()
        }
        throw fail("Expected a string")
    }

    mutating func quoted() throws(IMAPParseError) -> [UInt8] {
        i += 1
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            if c == UInt8(ascii: "\"") { return out }
            if c == UInt8(ascii: "\\") {
                guard let n = peek, n == UInt8(ascii: "\"") || n == UInt8(ascii: "\\") else { throw fail("Bad escape in quoted string") }
                out.append(n); i += 1
                continue
            }
            guard c != 0x0D, c != 0x0A, c != 0 else { throw fail("Quoted string contains CR, LF or NUL") }
            out.append(c)
        }
        throw fail("Unterminated quoted string")
    }

    /// `literal = "{" number ["+" / "-"] "}" CRLF *CHAR8`; `~{n}` is a literal8 (RFC 3516).
    mutating func literal() throws(IMAPParseError) -> [UInt8] {
        let isLiteral8 = peek == UInt8(ascii: "~")
        if isLiteral8 { i += 1 }
        i += 1
        let start = i
        while let c = peek, (48...57).contains(c) { i += 1 }
        guard i > start, i - start <= 10, let n = Int(String(decoding: b[start..<i], as: UTF8.self)) else { throw fail("Bad literal length") }
        if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
        guard peek == UInt8(ascii: "}") else { throw fail("Bad literal") }
        i += 1
        guard i + 1 < b.count, b[i] == 0x0D, b[i + 1] == 0x0A else { throw fail("Literal must be followed by CRLF") }
        i += 2
        guard i + n <= b.count else { throw fail("Literal is shorter than announced") }
        let out = Array(b[i..<(i + n)])
        // RFC 9051 §4.3: CHAR8 is any octet but NUL; only a literal8 (RFC 3516 §4.2) may carry NUL.
        guard isLiteral8 || !out.contains(0) else { throw fail("NUL in a literal (use a literal8, ~{n}, for binary data)") }
        i += n
        return out
    }

    /// `astring = 1*ASTRING-CHAR / string`
    mutating func astring() throws(IMAPParseError) -> [UInt8] {
        if peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "{") || peek == UInt8(ascii: "~") { return try string() }
        let start = i
        while let c = peek, Self.isAStringChar(c) { i += 1 }
        guard i > start else { throw fail("Expected a string or atom at position \(start)") }
        return Array(b[start..<i])
    }

    mutating func astringText() throws(IMAPParseError) -> String {
        String(decoding: try astring(), as: UTF8.self)
    }

    /// `mailbox = "INBOX" / astring`, decoded from modified UTF-7 unless UTF-8 was enabled.
    mutating func mailbox() throws(IMAPParseError) -> String {
        let raw = try astringText()
        if raw.uppercased() == "INBOX" { return "INBOX" }
        if utf8Mailboxes { return raw }
        guard let decoded = ModifiedUTF7.decode(raw) else { throw fail("Mailbox name is not valid modified UTF-7") }
        return decoded
    }

    mutating func listMailbox() throws(IMAPParseError) -> String {
        let raw: String
        if peek == UInt8(ascii: "\"") || peek == UInt8(ascii: "{") { raw = String(decoding: try string(), as: UTF8.self) } else { raw = try listChars() }
        if utf8Mailboxes { return raw }
        return ModifiedUTF7.decode(raw) ?? raw
    }

    mutating func number() throws(IMAPParseError) -> Int64 {
        let start = i
        while let c = peek, (48...57).contains(c) { i += 1 }
        guard i > start, i - start <= 19, let n = Int64(String(decoding: b[start..<i], as: UTF8.self)) else { throw fail("Expected a number") }
        return n
    }

    mutating func nzNumber() throws(IMAPParseError) -> UInt32 {
        let n = try number()
        guard n > 0, n <= Int64(UInt32.max) else { throw fail("Expected a number from 1 to 4294967295") }
        return UInt32(n)
    }

    /// `sequence-set = (seq-number / seq-range) ["," sequence-set]`, or `$`.
    mutating func sequenceSet() throws(IMAPParseError) -> SequenceSet {
        if peek == UInt8(ascii: "$") {
            i += 1
            var s = SequenceSet(ranges: [])
            s.isSaved = true
            return s
        }
        var ranges: [SequenceSet.Range] = []
        repeat {
            if !ranges.isEmpty { i += 1 }
            guard ranges.count < 10_000 else { throw fail("Sequence set has too many ranges") }
            let a = try seqNumber()
            if peek == UInt8(ascii: ":") {
                i += 1
                ranges.append(.init(a, try seqNumber()))
            } else {
                ranges.append(.init(a, a))
            }
        } while peek == UInt8(ascii: ",")
        return SequenceSet(ranges: ranges)
    }

    mutating func seqNumber() throws(IMAPParseError) -> UInt32? {
        if peek == UInt8(ascii: "*") { i += 1; return nil }
        do { return try nzNumber() } catch { throw fail("Invalid sequence set") }
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`
    mutating func flagList() throws(IMAPParseError) -> [String] {
        guard peek == UInt8(ascii: "(") else { throw fail("Expected a flag list") }
        i += 1
        var flags: [String] = []
        while peek != UInt8(ascii: ")") {
            if !flags.isEmpty { try sp() }
            flags.append(try flag())
        }
        i += 1
        return flags
    }

    mutating func flag() throws(IMAPParseError) -> String {
        if peek == UInt8(ascii: "\\") {
            i += 1
            let a = try atom()
            return "\\" + a
        }
        return try atom()
    }

    // MARK: commands

    mutating func command() throws(IMAPParseError) -> TaggedCommand {
        let start = i
        while let c = peek, Self.isAStringChar(c), c != UInt8(ascii: "+") { i += 1 }
        guard i > start else { throw IMAPParseError(tag: nil, "Missing tag") }
        tag = String(decoding: b[start..<i], as: UTF8.self)
        guard peek == 0x20 else { throw fail("Missing command") }
        i += 1
        var name = try atom().uppercased()
        var uid = false
        if name == "UID" {
            try sp()
            uid = true
            name = try atom().uppercased()
        }
        let cmd = try arguments(name, uid: uid)
        guard atEnd else { throw fail("Unexpected characters at the end of the command") }
        return TaggedCommand(tag: tag!, command: cmd)
    }

    mutating func arguments(_ name: String, uid: Bool) throws(IMAPParseError) -> IMAPCommand {
        if uid && !["FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE", "SORT", "THREAD"].contains(name) {
            throw fail("UID \(name) is not a command")
        }
        switch name {
        case "CAPABILITY": return .capability
        case "NOOP": return .noop
        case "LOGOUT": return .logout
        case "STARTTLS": return .startTLS
        case "NAMESPACE": return .namespace
        case "IDLE": return .idle
        case "CLOSE": return .close
        case "UNSELECT": return .unselect
        case "CHECK": return .check
        case "EXPUNGE":
            if uid { try sp(); return .uidExpunge(try sequenceSet()) }
            return .expunge
        case "LOGIN":
            try sp()
            let user = try astringText()
            try sp()
            return .login(user: user, password: try astringText())
        case "AUTHENTICATE":
            try sp()
            let mech = try atom().uppercased()
            var initial: String?
            if peek == 0x20 { i += 1; initial = try atom() }
            return .authenticate(mechanism: mech, initialResponse: initial)
        case "ENABLE":
            var caps: [String] = []
            while peek == 0x20 { i += 1; caps.append(try atom().uppercased()) }
            guard !caps.isEmpty else { throw fail("ENABLE needs a capability") }
            return .enable(caps)
        case "SELECT", "EXAMINE":
            try sp()
            let mb = try mailbox()
            var condstore = false
            var qresync: QResyncParameters?
            if peek == 0x20 {
                i += 1
                try expect("(")
                while peek != UInt8(ascii: ")") {
                    if peek == 0x20 { i += 1 }
                    let p = try atom().uppercased()
                    switch p {
                    case "CONDSTORE": condstore = true
                    case "QRESYNC":
                        // QRESYNC (uidvalidity mod-sequence-value [SP known-uids] [SP seq-match-data])
                        try sp()
                        try expect("(")
                        let validity = try nzNumber()
                        try sp()
                        let modseq = try number()
                        var known: SequenceSet?
                        if peek == 0x20 && i + 1 < b.count && b[i + 1] != UInt8(ascii: "(") { i += 1; known = try sequenceSet() }
                        if peek == 0x20 {
                            // seq-match-data is accepted and not needed: Tern keeps expunged UIDs for good.
                            i += 1
                            try expect("(")
                            _ = try sequenceSet()
                            try sp()
                            _ = try sequenceSet()
                            try expect(")")
                        }
                        try expect(")")
                        qresync = QResyncParameters(uidValidity: validity, modSeq: modseq, knownUIDs: known)
                    default: throw fail("Unknown SELECT parameter \(p)")
                    }
                }
                i += 1
            }
            return name == "SELECT" ? .select(mb, condstore: condstore, qresync: qresync) : .examine(mb, condstore: condstore, qresync: qresync)
        case "CREATE": try sp(); return .create(try mailbox())
        case "DELETE": try sp(); return .delete(try mailbox())
        case "SUBSCRIBE": try sp(); return .subscribe(try mailbox())
        case "UNSUBSCRIBE": try sp(); return .unsubscribe(try mailbox())
        case "GETQUOTAROOT": try sp(); return .getQuotaRoot(try mailbox())
        case "COMPRESS": try sp(); return .compress(try atom().uppercased())
        case "GETQUOTA": try sp(); return .getQuota(try astringText())
        case "RENAME":
            try sp()
            let from = try mailbox()
            try sp()
            return .rename(from: from, to: try mailbox())
        case "LIST": return try list()
        case "LSUB":
            try sp()
            let ref = try listMailbox()
            try sp()
            return .lsub(reference: ref, pattern: try listMailbox())
        case "STATUS":
            try sp()
            let mb = try mailbox()
            try sp()
            return .status(mb, try statusItems())
        case "APPEND": return try append()
        case "SEARCH": return try search(uid: uid)
        case "SORT":
            try sp()
            var returning: SearchReturn?
            var partial: PartialRange?
            var update: [FetchAttribute] = []
            if accept("RETURN") {
                (returning, partial, update) = try returnOptions()
                try sp()
            }
            return try afterReturn(returning) { p throws(IMAPParseError) in
                try p.sortCriteria(uid: uid, returning: returning, partial: partial, update: update)
            }
        case "CANCELUPDATE":
            var tags: [String] = []
            while peek == 0x20 {
                i += 1
                guard peek == UInt8(ascii: "\"") else { throw fail("CANCELUPDATE takes quoted tags") }
                tags.append(String(decoding: try astring(), as: UTF8.self))
            }
            guard !tags.isEmpty else { throw fail("CANCELUPDATE needs a tag") }
            return .cancelUpdate(tags)
        case "NOTIFY": try sp(); return try notify()
        case "THREAD":
            try sp()
            let word = try atom().uppercased()
            guard let algorithm = ThreadAlgorithm(rawValue: word) else { throw fail("Unknown THREAD algorithm \(word)") }
            try sp()
            try charset()
            return .thread(uid: uid, algorithm: algorithm, key: try searchKeys())
        case "FETCH": return try fetch(uid: uid)
        case "STORE": return try store(uid: uid)
        case "COPY", "MOVE":
            try sp()
            let set = try sequenceSet()
            try sp()
            let mb = try mailbox()
            return name == "COPY" ? .copy(uid: uid, set, mb) : .move(uid: uid, set, mb)
        case "ID":
            try sp()
            if accept("NIL") { return .id([:]) }
            try expect("(")
            var params: [String: String] = [:]
            while peek != UInt8(ascii: ")") {
                if !params.isEmpty { try sp() }
                let k = String(decoding: try string(), as: UTF8.self)
                try sp()
                let v = accept("NIL") ? "" : String(decoding: try string(), as: UTF8.self)
                guard params.count < 30 else { throw fail("Too many ID parameters") }
                params[k] = v
            }
            i += 1
            return .id(params)
        default:
            throw fail("Unknown command \(name)")
        }
    }

    mutating func statusItems() throws(IMAPParseError) -> [StatusItem] {
        try expect("(")
        var items: [StatusItem] = []
        while peek != UInt8(ascii: ")") {
            if !items.isEmpty { try sp() }
            let a = try atom().uppercased()
            guard let item = StatusItem(rawValue: a) else { throw fail("Unknown STATUS item \(a)") }
            items.append(item)
        }
        i += 1
        return items
    }

    /// `list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`
    mutating func list() throws(IMAPParseError) -> IMAPCommand {
        try sp()
        var selectSubscribed = false, selectSpecialUse = false, recursiveMatch = false
        if peek == UInt8(ascii: "(") {
            i += 1
            while peek != UInt8(ascii: ")") {
                if peek == 0x20 { i += 1 }
                switch try atom().uppercased() {
                case "SUBSCRIBED": selectSubscribed = true
                case "SPECIAL-USE": selectSpecialUse = true
                case "RECURSIVEMATCH": recursiveMatch = true
                case "REMOTE": break
                case let o: throw fail("Unknown LIST selection option \(o)")
                }
            }
            i += 1
            try sp()
            // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option to apply to.
            if recursiveMatch && !selectSubscribed && !selectSpecialUse { throw fail("RECURSIVEMATCH without a selection option") }
        }
        let ref = try listMailbox()
        try sp()
        var patterns: [String] = []
        if peek == UInt8(ascii: "(") {
            i += 1
            while peek != UInt8(ascii: ")") {
                if !patterns.isEmpty { try sp() }
                patterns.append(try listMailbox())
            }
            i += 1
        } else {
            patterns.append(try listMailbox())
        }
        var rSub = false, rChildren = false, rSpecial = false
        var rStatus: [StatusItem] = []
        if peek == 0x20 {
            i += 1
            try expect("RETURN")
            try sp()
            try expect("(")
            while peek != UInt8(ascii: ")") {
                if peek == 0x20 { i += 1 }
                switch try atom().uppercased() {
                case "SUBSCRIBED": rSub = true
                case "CHILDREN": rChildren = true
                case "SPECIAL-USE": rSpecial = true
                case "STATUS":
                    try sp()
                    rStatus = try statusItems()
                case let o: throw fail("Unknown LIST return option \(o)")
                }
            }
            i += 1
        }
        return .list(reference: ref, patterns: patterns, selectSubscribed: selectSubscribed, selectSpecialUse: selectSpecialUse,
                     recursiveMatch: recursiveMatch,
                     returnSubscribed: rSub, returnChildren: rChildren, returnSpecialUse: rSpecial, returnStatus: rStatus)
    }

    /// `append = "APPEND" SP mailbox 1*append-message` (MULTIAPPEND, RFC 3502)
    mutating func append() throws(IMAPParseError) -> IMAPCommand {
        try sp()
        let mb = try mailbox()
        var messages: [AppendMessage] = []
        while peek == 0x20 {
            i += 1
            var flags: [String] = []
            var date: String?
            if peek == UInt8(ascii: "(") {
                flags = try flagList()
                try sp()
            }
            if peek == UInt8(ascii: "\"") {
                date = String(decoding: try quoted(), as: UTF8.self)
                try sp()
            }
            if accept("CATENATE") {
                // RFC 4469: CATENATE (TEXT literal / URL "url" ...)
                try sp()
                try expect("(")
                var parts: [CatenatePart] = []
                while peek != UInt8(ascii: ")") {
                    if !parts.isEmpty { try sp() }
                    guard parts.count < 100 else { throw fail("CATENATE has too many parts") }
                    switch try atom().uppercased() {
                    case "TEXT": try sp(); parts.append(.text(try literal()))
                    case "URL": try sp(); parts.append(.url(String(decoding: try astring(), as: UTF8.self)))
                    case let other: throw fail("Unknown CATENATE part \(other)")
                    }
                }
                i += 1
                guard !parts.isEmpty else { throw fail("CATENATE needs a part") }
                messages.append(AppendMessage(flags: flags, internalDate: date, data: [], catenate: parts))
                continue
            }
            messages.append(AppendMessage(flags: flags, internalDate: date, data: try literal()))
        }
        guard !messages.isEmpty else { throw fail("APPEND needs a message literal") }
        return .append(mb, messages)
    }

    mutating func fetch(uid: Bool) throws(IMAPParseError) -> IMAPCommand {
        try sp()
        let set = try sequenceSet()
        try sp()
        var attrs: [FetchAttribute] = []
        if peek == UInt8(ascii: "(") {
            i += 1
            while peek != UInt8(ascii: ")") {
                if !attrs.isEmpty { try sp() }
                attrs.append(contentsOf: try fetchAttribute())
            }
            i += 1
        } else {
            attrs = try fetchAttribute()
        }
        var changedSince: Int64?
        var vanished = false
        var partial: PartialRange?
        if peek == 0x20 {
            i += 1
            try expect("(")
            while peek != UInt8(ascii: ")") {
                if peek == 0x20 { i += 1 }
                switch try atom().uppercased() {
                case "CHANGEDSINCE":
                    try sp()
                    changedSince = try number()
                case "VANISHED": vanished = true
                case "PARTIAL":
                    try sp()
                    partial = try partialRange()
                case let m: throw fail("Unknown FETCH modifier \(m)")
                }
            }
            i += 1
        }
        if uid && !attrs.contains(.uid) { attrs.insert(.uid, at: 0) }
        return .fetch(uid: uid, set, attrs, changedSince: changedSince, vanished: vanished, partial: partial)
    }

    mutating func fetchAttribute() throws(IMAPParseError) -> [FetchAttribute] {
        let start = i
        while let c = peek, Self.isAtomChar(c), c != UInt8(ascii: "["), c != UInt8(ascii: "<") { i += 1 }
        let name = String(decoding: b[start..<i], as: UTF8.self).uppercased()
        switch name {
        case "ALL": return [.flags, .internalDate, .rfc822Size, .envelope]
        case "FAST": return [.flags, .internalDate, .rfc822Size]
        case "FULL": return [.flags, .internalDate, .rfc822Size, .envelope, .body]
        case "UID": return [.uid]
        case "FLAGS": return [.flags]
        case "INTERNALDATE": return [.internalDate]
        case "RFC822.SIZE": return [.rfc822Size]
        case "ENVELOPE": return [.envelope]
        case "BODYSTRUCTURE": return [.bodyStructure]
        case "RFC822": return [.rfc822]
        case "RFC822.HEADER": return [.rfc822Header]
        case "RFC822.TEXT": return [.rfc822Text]
        case "MODSEQ": return [.modSeq]
        case "EMAILID": return [.emailID]
        case "THREADID": return [.threadID]
        case "SAVEDATE": return [.saveDate]
        case "PREVIEW":
            // RFC 8970 §3: PREVIEW or PREVIEW (LAZY).
            if peek == 0x20, i + 1 < b.count, b[i + 1] == UInt8(ascii: "(") {
                i += 2
                var lazy = false
                while peek != UInt8(ascii: ")") {
                    if peek == 0x20 { i += 1; continue }
                    let modifier = try atom().uppercased()
                    guard modifier == "LAZY" else { throw fail("Unknown PREVIEW modifier \(modifier)") }
                    lazy = true
                }
                i += 1
                return [.preview(lazy: lazy)]
            }
            return [.preview(lazy: false)]
        case "BODY", "BODY.PEEK":
            guard peek == UInt8(ascii: "[") else {
                if name == "BODY" { return [.body] }
                throw fail("BODY.PEEK needs a section")
            }
            let section = try sectionSpec()
            return [.bodySection(section, partial: try partial(), peek: name == "BODY.PEEK")]
        case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
            try expect("[")
            var part: [Int] = []
            while peek != UInt8(ascii: "]") {
                if !part.isEmpty { try expect(".") }
                part.append(Int(try nzNumber()))
            }
            i += 1
            if name == "BINARY.SIZE" { return [.binarySize(part: part)] }
            return [.binary(part: part, partial: try partial(), peek: name == "BINARY.PEEK")]
        default:
            throw fail("Unknown FETCH item \(name.isEmpty ? "at position \(start)" : name)")
        }
    }

    /// `section = "[" [section-spec] "]"`
    mutating func sectionSpec() throws(IMAPParseError) -> SectionSpec {
        try expect("[")
        var part: [Int] = []
        while let c = peek, (48...57).contains(c) {
            part.append(Int(try nzNumber()))
            guard peek == UInt8(ascii: ".") else { break }
            i += 1
        }
        var text: SectionSpec.Text = .full
        if peek != UInt8(ascii: "]") {
            let word = try atom().uppercased()
            switch word {
            case "HEADER": text = .header
            case "TEXT": text = .text
            case "MIME":
                guard !part.isEmpty else { throw fail("MIME needs a part number") }
                text = .mime
            case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
                try sp()
                try expect("(")
                var fields: [String] = []
                while peek != UInt8(ascii: ")") {
                    if !fields.isEmpty { try sp() }
                    fields.append(try astringText())
                    guard fields.count <= 100 else { throw fail("Too many header fields") }
                }
                i += 1
                text = word == "HEADER.FIELDS" ? .headerFields(fields) : .headerFieldsNot(fields)
            default:
                throw fail("Unknown section \(word)")
            }
        }
        try expect("]")
        return SectionSpec(part: part, text: text)
    }

    /// `partial = "<" number "." nz-number ">"`
    mutating func partial() throws(IMAPParseError) -> ClosedRange<Int>? {
        guard peek == UInt8(ascii: "<") else { return nil }
        i += 1
        let offset = Int(try number())
        try expect(".")
        let length = Int(try nzNumber())
        try expect(">")
        return offset...(offset + length - 1)
    }

    mutating func store(uid: Bool) throws(IMAPParseError) -> IMAPCommand {
        try sp()
        let set = try sequenceSet()
        try sp()
        var unchangedSince: Int64?
        if peek == UInt8(ascii: "(") {
            i += 1
            try expect("UNCHANGEDSINCE")
            try sp()
            unchangedSince = try number()
            try expect(")")
            try sp()
        }
        let op: StoreOperation
        if peek == UInt8(ascii: "+") { op = .add; i += 1 } else if peek == UInt8(ascii: "-") { op = .remove; i += 1 } else { op = .replace }
        try expect("FLAGS")
        let silent = accept(".SILENT")
        try sp()
        var flags: [String]
        if peek == UInt8(ascii: "(") {
            flags = try flagList()
        } else {
            flags = [try flag()]
            while peek == 0x20 { i += 1; flags.append(try flag()) }
        }
        return .store(uid: uid, set, op, flags: flags, silent: silent, unchangedSince: unchangedSince)
    }

    mutating func search(uid: Bool) throws(IMAPParseError) -> IMAPCommand {
        var returning: SearchReturn?
        var partial: PartialRange?
        var update: [FetchAttribute] = []
        try sp()
        if accept("RETURN") {
            (returning, partial, update) = try returnOptions()
            try sp()
        }
        return try afterReturn(returning) { p throws(IMAPParseError) in
            try p.searchCriteria(uid: uid, returning: returning, partial: partial, update: update)
        }
    }

    /// Parses the rest of a SEARCH or SORT; when that fails after `RETURN (SAVE ...)`, the error says `$` must become
    /// empty (RFC 5182 §2.1).
    mutating func afterReturn(_ returning: SearchReturn?,
                              _ rest: (inout IMAPCommandParser) throws(IMAPParseError) -> IMAPCommand) throws(IMAPParseError) -> IMAPCommand {
        do {
            return try rest(&self)
        } catch {
            var e = error
            e.clearsSavedResult = returning?.contains(.save) == true
            throw e
        }
    }

    mutating func searchCriteria(uid: Bool, returning: SearchReturn?, partial: PartialRange?,
                                 update: [FetchAttribute] = []) throws(IMAPParseError) -> IMAPCommand {
        if accept("CHARSET") {
            try sp()
            let cs = try astringText().uppercased()
            guard cs == "UTF-8" || cs == "US-ASCII" else {
                throw IMAPParseError(tag: tag, "Unsupported charset \(cs)", condition: .no, code: .badCharset(["UTF-8", "US-ASCII"]))
            }
            try sp()
        }
        var keys = [try searchKey(depth: 0)]
        while peek == 0x20 {
            i += 1
            keys.append(try searchKey(depth: 0))
        }
        return .search(uid: uid, key: keys.count == 1 ? keys[0] : .and(keys), returning: returning, partial: partial, update: update)
    }

    /// ` (MIN MAX COUNT ALL SAVE PARTIAL n:m CONTEXT UPDATE [(fetch-att ...)])` after RETURN (RFC 4731, 5182, 5267,
    /// 5465 §7, 9394); `()` means ALL. Each option at most once; ALL and PARTIAL exclude each other.
    mutating func returnOptions() throws(IMAPParseError) -> (SearchReturn, PartialRange?, [FetchAttribute]) {
        try sp()
        try expect("(")
        var r: SearchReturn = []
        var partial: PartialRange?
        var update: [FetchAttribute] = []
        while peek != UInt8(ascii: ")") {
            if peek == 0x20 { i += 1 }
            let name = try atom().uppercased()
            let option: SearchReturn
            switch name {
            case "MIN": option = .min
            case "MAX": option = .max
            case "COUNT": option = .count
            case "ALL": option = .all
            case "SAVE": option = .save
            case "CONTEXT": option = .context
            case "UPDATE":
                option = .update
                if peek == 0x20, i + 1 < b.count, b[i + 1] == UInt8(ascii: "(") {
                    i += 1
                    update = try fetchAttributeList()
                }
            case "PARTIAL":
                guard partial == nil else { throw fail("PARTIAL given twice") }
                try sp()
                partial = try partialRange()
                continue
            case let o: throw fail("Unknown return option \(o)")
            }
            guard !r.contains(option) else { throw fail("Return option \(name) given twice") }
            r.insert(option)
        }
        i += 1
        if partial != nil && r.contains(.all) { throw fail("ALL and PARTIAL exclude each other") }
        let onlyHints = r.subtracting([.context, .update]).isEmpty
        // RETURN () and RETURN (CONTEXT) mean ALL; UPDATE alone asks for no initial result (RFC 5267 §4.1).
        return (onlyHints && partial == nil && !r.contains(.update) ? r.union(.all) : r, partial, update)
    }

    /// `(fetch-att *(SP fetch-att))`: the FETCH items of UPDATE and of NOTIFY's MessageNew.
    mutating func fetchAttributeList() throws(IMAPParseError) -> [FetchAttribute] {
        try expect("(")
        var attrs: [FetchAttribute] = []
        while peek != UInt8(ascii: ")") {
            if !attrs.isEmpty { try sp() }
            attrs += try fetchAttribute()
        }
        i += 1
        guard !attrs.isEmpty else { throw fail("Empty FETCH item list") }
        return attrs
    }

    /// `sort-criteria SP charset SP search-criteria` of SORT (RFC 5256 §3).
    mutating func sortCriteria(uid: Bool, returning: SearchReturn?, partial: PartialRange?,
                               update: [FetchAttribute] = []) throws(IMAPParseError) -> IMAPCommand {
        try expect("(")
        var criteria: [SortCriterion] = []
        var reverse = false
        while peek != UInt8(ascii: ")") {
            if peek == 0x20 { i += 1 }
            let word = try atom().uppercased()
            if word == "REVERSE" { reverse = true; continue }
            guard let key = SortCriterion.Key(rawValue: word) else { throw fail("Unknown sort criterion \(word)") }
            criteria.append(SortCriterion(key, reverse: reverse))
            reverse = false
        }
        i += 1
        guard !criteria.isEmpty, !reverse else { throw fail("SORT needs criteria") }
        try sp()
        try charset()
        return .sort(uid: uid, criteria: criteria, key: try searchKeys(), returning: returning, partial: partial, update: update)
    }

    /// `NOTIFY SET [STATUS] event-groups` or `NOTIFY NONE` (RFC 5465 §8). Malformed groups, events that must come in
    /// pairs (MessageNew with MessageExpunge; FlagChange with both), FETCH items outside `selected` and a second
    /// `selected` filter are BAD; events Tern does not report are NO [BADEVENT (the ones it does)].
    mutating func notify() throws(IMAPParseError) -> IMAPCommand {
        let verb = try atom().uppercased()
        if verb == "NONE" { return .notify(nil) }
        guard verb == "SET" else { throw fail("NOTIFY SET or NOTIFY NONE") }
        try sp()
        var status = false
        if peek != UInt8(ascii: "(") {
            guard try atom().uppercased() == "STATUS" else { throw fail("Expected STATUS or an event group") }
            status = true
            try sp()
        }
        var groups: [NotifyGroup] = []
        var unsupported = false
        repeat {
            if !groups.isEmpty { try sp() }
            try expect("(")
            let filter: NotifyGroup.Filter
            switch try atom().uppercased() {
            case "SELECTED": filter = .selected
            case "SELECTED-DELAYED": filter = .selectedDelayed
            case "INBOXES": filter = .inboxes
            case "PERSONAL": filter = .personal
            case "SUBSCRIBED": filter = .subscribed
            case "SUBTREE": try sp(); filter = .subtree(try oneOrMoreMailboxes())
            case "MAILBOXES": try sp(); filter = .mailboxes(try oneOrMoreMailboxes())
            case let f: throw fail("Unknown NOTIFY filter \(f)")
            }
            try sp()
            var events: NotifyEvents = []
            var fetch: [FetchAttribute] = []
            if peek == UInt8(ascii: "(") {
                i += 1
                var any = false
                while peek != UInt8(ascii: ")") {
                    if any { try sp() }
                    any = true
                    let name = try atom()
                    switch name.lowercased() {
                    case "messagenew":
                        events.insert(.messageNew)
                        if peek == 0x20, i + 1 < b.count, b[i + 1] == UInt8(ascii: "(") {
                            i += 1
                            guard filter.isSelected else { throw fail("FETCH items are for the selected mailbox only") }
                            fetch = try fetchAttributeList()
                        }
                    case "messageexpunge": events.insert(.messageExpunge)
                    case "flagchange": events.insert(.flagChange)
                    case "mailboxname": events.insert(.mailboxName)
                    case "subscriptionchange": events.insert(.subscriptionChange)
                    case "annotationchange":
                        // Message events, and they need MessageNew and MessageExpunge as FlagChange does.
                        unsupported = true
                        events.insert(.flagChange)
                    default: unsupported = true
                    }
                }
                i += 1
                guard any else { throw fail("An empty event list; use NONE") }
            } else {
                guard try atom().uppercased() == "NONE" else { throw fail("Expected events or NONE") }
            }
            try expect(")")
            if events.contains(.messageNew) != events.contains(.messageExpunge) {
                throw fail("MessageNew and MessageExpunge go together")
            }
            if events.contains(.flagChange) && !events.contains(.messageNew) {
                throw fail("FlagChange needs MessageNew and MessageExpunge")
            }
            if filter.isSelected && !events.isDisjoint(with: [.mailboxName, .subscriptionChange]) {
                throw fail("Only message events apply to the selected mailbox")
            }
            if filter.isSelected && groups.contains(where: \.filter.isSelected) { throw fail("Only one selected filter") }
            groups.append(NotifyGroup(filter: filter, events: events, fetch: fetch))
        } while peek == 0x20
        if unsupported {
            throw IMAPParseError(tag: tag, "Unsupported NOTIFY event", condition: .no, code: .badEvent(NotifyEvents.names))
        }
        return .notify(NotifySet(status: status, groups: groups))
    }

    /// `one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"`.
    mutating func oneOrMoreMailboxes() throws(IMAPParseError) -> [String] {
        guard peek == UInt8(ascii: "(") else { return [try mailbox()] }
        i += 1
        var names = [try mailbox()]
        while peek == 0x20 { i += 1; names.append(try mailbox()) }
        try expect(")")
        return names
    }

    /// `partial-range = nz-number ":" nz-number / "-" nz-number ":" "-" nz-number` (RFC 9394 §4).
    mutating func partialRange() throws(IMAPParseError) -> PartialRange {
        let negative = peek == UInt8(ascii: "-")
        if negative { i += 1 }
        let a = Int(try nzNumber())
        try expect(":")
        if negative { try expect("-") }
        let b = Int(try nzNumber())
        return negative ? PartialRange(-a, -b) : PartialRange(a, b)
    }

    mutating func searchKey(depth: Int) throws(IMAPParseError) -> SearchKey {
        guard depth < Self.maxDepth else { throw fail("Search is nested too deeply") }
        if peek == UInt8(ascii: "(") {
            i += 1
            var keys: [SearchKey] = []
            while peek != UInt8(ascii: ")") {
                if !keys.isEmpty { try sp() }
                keys.append(try searchKey(depth: depth + 1))
            }
            i += 1
            return keys.count == 1 ? keys[0] : .and(keys)
        }
        if let c = peek, (48...57).contains(c) || c == UInt8(ascii: "*") || c == UInt8(ascii: "$") {
            return .sequence(try sequenceSet())
        }
        let word = try atom().uppercased()
        func text() throws(IMAPParseError) -> String { try sp(); return try astringText() }
        func date() throws(IMAPParseError) -> SearchDate { try sp(); return try searchDate() }
        switch word {
        case "ALL": return .all
        case "ANSWERED": return .answered
        case "DELETED": return .deleted
        case "DRAFT": return .draft
        case "FLAGGED": return .flagged
        case "SEEN": return .seen
        case "RECENT": return .recent
        case "NEW": return .new
        case "OLD": return .old
        case "UNANSWERED": return .unanswered
        case "UNDELETED": return .undeleted
        case "UNDRAFT": return .undraft
        case "UNFLAGGED": return .unflagged
        case "UNSEEN": return .unseen
        case "KEYWORD": try sp(); return .keyword(try atom())
        case "UNKEYWORD": try sp(); return .unkeyword(try atom())
        case "BCC": return .bcc(try text())
        case "CC": return .cc(try text())
        case "FROM": return .from(try text())
        case "TO": return .to(try text())
        case "SUBJECT": return .subject(try text())
        case "BODY": return .body(try text())
        case "TEXT": return .text(try text())
        case "HEADER":
            let field = try text()
            return .header(field, try text())
        case "BEFORE": return .before(try date())
        case "ON": return .on(try date())
        case "SINCE": return .since(try date())
        case "SENTBEFORE": return .sentBefore(try date())
        case "SENTON": return .sentOn(try date())
        case "SENTSINCE": return .sentSince(try date())
        case "LARGER": try sp(); return .larger(Int(try number()))
        case "SMALLER": try sp(); return .smaller(Int(try number()))
        // RFC 5032: `older = "OLDER" SP nz-number`, `younger = "YOUNGER" SP nz-number`
        case "YOUNGER", "OLDER":
            try sp()
            let n = Int(try number())
            guard n > 0 else { throw fail("\(word) needs a positive number of seconds") }
            return word == "YOUNGER" ? .younger(n) : .older(n)
        case "UID": try sp(); return .uid(try sequenceSet())
        case "NOT": try sp(); return .not(try searchKey(depth: depth + 1))
        case "OR":
            try sp()
            let a = try searchKey(depth: depth + 1)
            try sp()
            return .or(a, try searchKey(depth: depth + 1))
        case "MODSEQ":
            try sp()
            if peek == UInt8(ascii: "\"") { _ = try quoted(); try sp(); _ = try atom() ; try sp() }
            return .modSeq(try number())
        case "EMAILID", "THREADID":
            try sp()
            let id = try atom()
            guard id.utf8.count <= 255, id.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw fail("Invalid object id \(id)")
            }
            return word == "EMAILID" ? .emailID(id) : .threadID(id)
        case "SAVEDBEFORE": return .savedBefore(try date())
        case "SAVEDON": return .savedOn(try date())
        case "SAVEDSINCE": return .savedSince(try date())
        case "SAVEDATESUPPORTED": return .saveDateSupported
        default:
            throw fail("Unknown search key \(word)")
        }
    }

    /// The charset of SORT and THREAD (required there).
    mutating func charset() throws(IMAPParseError) {
        let cs = try astringText().uppercased()
        guard cs == "UTF-8" || cs == "US-ASCII" else { throw IMAPParseError(tag: tag, "Unsupported charset \(cs)", condition: .no, code: .badCharset(["UTF-8", "US-ASCII"])) }
        try sp()
    }

    mutating func searchKeys() throws(IMAPParseError) -> SearchKey {
        var keys = [try searchKey(depth: 0)]
        while peek == 0x20 {
            i += 1
            keys.append(try searchKey(depth: 0))
        }
        return keys.count == 1 ? keys[0] : .and(keys)
    }

    /// `date = date-text / DQUOTE date-text DQUOTE`, `date-text = date-day "-" date-month "-" date-year`
    mutating func searchDate() throws(IMAPParseError) -> SearchDate {
        let quotedDate = peek == UInt8(ascii: "\"")
        if quotedDate { i += 1 }
        let start = i
        while let c = peek, c != 0x20, c != UInt8(ascii: "\""), c != UInt8(ascii: ")") { i += 1 }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if quotedDate { try expect("\"") }
        let parts = text.split(separator: "-")
        let months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
        guard parts.count == 3, let d = Int(parts[0]), (1...31).contains(d), let m = months.firstIndex(of: parts[1].uppercased()),
              parts[2].count == 4, let y = Int(parts[2]) else { throw fail("Bad date \(text): use 1-Jan-2026") }
        return SearchDate(day: d, month: m + 1, year: y)
    }
}
