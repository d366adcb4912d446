import Foundation
import IMAPCodec
import MailCore

/// Reads server responses back into `IMAPResponse` values: what a client does. Tern's tests use it to check replies
/// as values and to prove that every response the encoder writes parses back to what it was made from.
public struct IMAPResponseParser {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public let offset: Int
    }

    var bytes: [UInt8]
    var i = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Every response in `bytes`, which must end at the end of one.
    public static func parseAll(_ bytes: [UInt8]) throws(Failure) -> [IMAPResponse] {
        var p = IMAPResponseParser(bytes)
        var out: [IMAPResponse] = []
        while p.i < p.bytes.count { out.append(try p.response()) }
        return out
    }

    /// Exactly one response.
    public static func parse(_ bytes: [UInt8]) throws(Failure) -> IMAPResponse {
        let all = try parseAll(bytes)
        guard all.count == 1 else { throw Failure(description: "\(all.count) responses", offset: 0) }
        return all[0]
    }

    // MARK: tokens

    func fail(_ what: String) -> Failure { Failure(description: what, offset: i) }

    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func expect(_ s: String) throws(Failure) {
        for b in s.utf8 {
            guard peek == b else { throw fail("expected \(s)") }
            i += 1
        }
    }

    mutating func take(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard i + u.count <= bytes.count, Array(bytes[i..<(i + u.count)]) == u else { return false }
        i += u.count
        return true
    }

    mutating func space() throws(Failure) { try expect(" ") }

    mutating func crlf() throws(Failure) { try expect("\r\n") }

    /// What the encoder writes as an atom and the parser reads as one: flag names (`\Seen`, `\*`) and keywords too.
    static func isAtomChar(_ b: UInt8) -> Bool {
        b > 0x20 && b < 0x7F && b != 40 && b != 41 && b != 123 && b != 34 && b != 93
    }

    mutating func atom() throws(Failure) -> String {
        let start = i
        while let b = peek, Self.isAtomChar(b) { i += 1 }
        guard i > start else { throw fail("expected an atom") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    mutating func number() throws(Failure) -> UInt64 {
        let start = i
        var v: UInt64 = 0
        while let b = peek, b >= 48, b <= 57 {
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b - 48))
            guard !o1 && !o2 else { throw fail("number too large") }
            v = a
            i += 1
        }
        guard i > start else { throw fail("expected a number") }
        return v
    }

    mutating func int() throws(Failure) -> Int { Int(try number()) }

    mutating func uint32() throws(Failure) -> UInt32 {
        let n = try number()
        guard n <= UInt64(UInt32.max) else { throw fail("number too large") }
        return UInt32(n)
    }

    /// A quoted string or a literal (or literal8 when `binary`), as octets.
    mutating func stringBytes(binary: Bool = false) throws(Failure) -> [UInt8] {
        if peek == 34 {
            i += 1
            var out: [UInt8] = []
            while true {
                guard let b = peek else { throw fail("unterminated quoted string") }
                i += 1
                if b == 34 { return out }
                if b == 92 {
                    guard let e = peek, e == 34 || e == 92 else { throw fail("bad escape") }
                    out.append(e); i += 1
                } else {
                    guard b != 13 && b != 10 && b != 0 else { throw fail("CR, LF or NUL in a quoted string") }
                    out.append(b)
                }
            }
        }
        var isBinary = false
        if peek == 126 {
            guard binary else { throw fail("literal8 where only a literal may be") }
            isBinary = true
            i += 1
        }
        try expect("{")
        let n = try int()
        try expect("}\r\n")
        guard i + n <= bytes.count else { throw fail("literal runs past the end") }
        let data = Array(bytes[i..<(i + n)])
        guard isBinary || !data.contains(0) else { throw fail("NUL in a literal") }
        i += n
        return data
    }

    mutating func string() throws(Failure) -> String {
        String(decoding: try stringBytes(), as: UTF8.self)
    }

    mutating func nstring() throws(Failure) -> String? {
        if take("NIL") { return nil }
        return try string()
    }

    mutating func astring() throws(Failure) -> String {
        if peek == 34 || peek == 123 { return try string() }
        return try atom()
    }

    mutating func list<T>(_ each: (inout IMAPResponseParser) throws(Failure) -> T) throws(Failure) -> [T] {
        try expect("(")
        var out: [T] = []
        while peek != 41 {
            if !out.isEmpty { try space() }
            out.append(try each(&self))
        }
        i += 1
        return out
    }

    mutating func atomList() throws(Failure) -> [String] { try list { p throws(Failure) in try p.atom() } }

    mutating func numbers() throws(Failure) -> [UInt32] {
        var out: [UInt32] = []
        while peek == 32, i + 1 < bytes.count, bytes[i + 1] >= 48, bytes[i + 1] <= 57 {
            i += 1
            out.append(try uint32())
        }
        return out
    }

    /// A sequence set of explicit numbers (`1:3,7`), expanded.
    mutating func set() throws(Failure) -> [UInt32] {
        var out: [UInt32] = []
        repeat {
            let a = try uint32()
            if take(":") {
                let b = try uint32()
                out += Array(min(a, b)...max(a, b))
            } else {
                out.append(a)
            }
        } while take(",")
        return out
    }

    mutating func restOfLine() throws(Failure) -> String {
        let start = i
        while i + 1 < bytes.count && !(bytes[i] == 13 && bytes[i + 1] == 10) { i += 1 }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        try crlf()
        return text
    }

    // MARK: responses

    mutating func response() throws(Failure) -> IMAPResponse {
        if take("+ ") { return .continuation(try restOfLine()) }
        if take("+\r\n") { return .continuation("") }
        if take("* ") { return try untagged() }
        let tag = try atom()
        try space()
        return .tagged(tag, try status())
    }

    mutating func status() throws(Failure) -> IMAPStatus {
        let word = try atom()
        guard let condition = IMAPCondition(rawValue: word) else { throw fail("unknown condition \(word)") }
        try space()
        var code: IMAPResponseCode?
        if take("[") {
            code = try responseCode()
            try expect("]")
            if !take(" ") { return IMAPStatus(condition, code, try restOfLine()) }
        }
        return IMAPStatus(condition, code, try restOfLine())
    }

    mutating func responseCode() throws(Failure) -> IMAPResponseCode {
        let name = try atom()
        if let simple = IMAPResponseCode.atoms.first(where: { $0.1 == name })?.0 { return simple }
        switch name {
        case "CAPABILITY":
            var caps: [String] = []
            while take(" ") { caps.append(try atom()) }
            return .capability(caps)
        case "PERMANENTFLAGS": try space(); return .permanentFlags(try atomList())
        case "UIDNEXT": try space(); return .uidNext(try uint32())
        case "UIDVALIDITY": try space(); return .uidValidity(try uint32())
        case "UNSEEN": try space(); return .unseen(try int())
        case "HIGHESTMODSEQ": try space(); return .highestModSeq(try number())
        case "APPENDUID":
            try space(); let v = try uint32(); try space()
            return .appendUID(validity: v, uids: try set())
        case "COPYUID":
            try space(); let v = try uint32(); try space()
            let source = try set(); try space()
            return .copyUID(validity: v, source: source, destination: try set())
        case "MODIFIED": try space(); return .modified(try set())
        case "BADCHARSET":
            if take(" ") { return .badCharset(try list { p throws(Failure) in try p.astring() }) }
            return .badCharset([])
        case "MAILBOXID": try expect(" ("); let id = try atom(); try expect(")"); return .mailboxID(id)
        case "BADEVENT": try space(); return .badEvent(try atomList())
        case "NOUPDATE": try space(); return .noUpdate(try string())
        case "BADURL":
            try space()
            let start = i
            while let b = peek, b != 93, b != 13 { i += 1 }
            return .badURL(String(decoding: bytes[start..<i], as: UTF8.self))
        default: throw fail("unknown response code \(name)")
        }
    }

    mutating func untagged() throws(Failure) -> IMAPResponse {
        if let b = peek, b >= 48, b <= 57 {
            let n = try int()
            try space()
            let word = try atom()
            switch word {
            case "EXISTS": try crlf(); return .exists(n)
            case "RECENT": try crlf(); return .recent(n)
            case "EXPUNGE": try crlf(); return .expunge(n)
            case "FETCH":
                try space()
                let items = try list { p throws(Failure) in try p.fetchItem() }
                try crlf()
                return .fetch(n, items)
            default: throw fail("unknown response \(word)")
            }
        }
        let word = try atom()
        if let condition = IMAPCondition(rawValue: word) {
            i -= word.utf8.count
            _ = condition
            return .untagged(try status())
        }
        let r: IMAPResponse
        switch word {
        case "CAPABILITY", "ENABLED":
            var caps: [String] = []
            while take(" ") { caps.append(try atom()) }
            r = word == "CAPABILITY" ? .capability(caps) : .enabled(caps)
        case "ID":
            try space()
            if take("NIL") { r = .id(nil) } else {
                let items = try list { p throws(Failure) in try p.nstring() }
                guard items.count % 2 == 0 else { throw fail("ID with an odd number of strings") }
                r = .id(stride(from: 0, to: items.count, by: 2).map { IMAPParameter(items[$0] ?? "", items[$0 + 1] ?? "") })
            }
        case "FLAGS": try space(); r = .flags(try atomList())
        case "LIST", "LSUB":
            try space()
            let attributes = try atomList()
            try space()
            let delimiter = try nstring()
            try space()
            let name = try astring()
            var childInfo: [String] = []
            var oldName: String?
            if take(" (") {
                repeat {
                    let key = try astring()
                    try space()
                    switch key.uppercased() {
                    case "CHILDINFO": childInfo = try list { p throws(Failure) in try p.astring() }
                    case "OLDNAME": try expect("("); oldName = try astring(); try expect(")")
                    default: throw fail("unknown LIST extended item \(key)")
                    }
                } while take(" ")
                try expect(")")
            }
            r = .list(IMAPListItem(lsub: word == "LSUB", attributes: attributes, delimiter: delimiter?.first, mailbox: name,
                                   childInfo: childInfo, oldName: oldName))
        case "STATUS":
            try space()
            let name = try astring()
            try space()
            let items = try list { p throws(Failure) in
                let n = try p.atom(); try p.space()
                if p.take("(") { let id = try p.atom(); try p.expect(")"); return IMAPParameterValue(n, objectID: id) }
                return IMAPParameterValue(n, try p.number())
            }
            r = .status(mailbox: name, items)
        case "SEARCH", "SORT":
            let numbers = try numbers()
            var modSeq: UInt64?
            if take(" (MODSEQ ") { modSeq = try number(); try expect(")") }
            r = word == "SEARCH" ? .search(numbers, modSeq: modSeq) : .sort(numbers, modSeq: modSeq)
        case "ESEARCH": r = .esearch(try esearch())
        case "VANISHED":
            try space()
            let earlier = take("(EARLIER) ")
            r = .vanished(earlier: earlier, try set())
        case "NAMESPACE":
            try space()
            var personal: [IMAPParameter] = []
            if !take("NIL") {
                personal = try list { p throws(Failure) in
                    try p.expect("("); let prefix = try p.string(); try p.space(); let d = try p.nstring(); try p.expect(")")
                    return IMAPParameter(prefix, d ?? "")
                }
            }
            try expect(" NIL NIL")
            r = .namespace(personal: personal)
        case "QUOTAROOT":
            try space()
            let name = try astring()
            var roots: [String] = []
            while take(" ") { roots.append(try astring()) }
            r = .quotaRoot(mailbox: name, roots: roots)
        case "QUOTA":
            try space()
            let root = try astring()
            try space()
            r = .quota(root: root, try list { p throws(Failure) in
                let n = try p.atom(); try p.space(); let u = try p.int(); try p.space()
                return IMAPQuotaResource(n, usage: u, limit: try p.int())
            })
        case "THREAD":
            var roots: [IMAPThreadNode] = []
            if take(" ") {
                while peek == 40 { roots.append(try thread()) }
            }
            r = .thread(roots)
        default: throw fail("unknown response \(word)")
        }
        try crlf()
        return r
    }

    mutating func esearch() throws(Failure) -> IMAPESearch {
        var e = IMAPESearch(tag: nil, uid: false)
        if take(" (TAG ") { e.tag = try string(); try expect(")") }
        while take(" ") {
            let name = try atom()
            switch name {
            case "UID": e.uid = true
            case "MIN": try space(); e.min = try uint32()
            case "MAX": try space(); e.max = try uint32()
            case "COUNT": try space(); e.count = try int()
            case "ALL": try space(); e.all = try set()
            case "MODSEQ": try space(); e.modSeq = try number()
            case "PARTIAL":
                try expect(" (")
                let range = try partialRange()
                try space()
                let numbers = take("NIL") ? [] : try set()
                try expect(")")
                e.partial = IMAPPartialResult(range: range, numbers: numbers)
            case "ADDTO", "REMOVEFROM":
                // One or more `position set` pairs; each becomes its own update.
                try expect(" (")
                repeat {
                    let position = try int()
                    try space()
                    e.updates.append(IMAPContextUpdate(add: name == "ADDTO", position: position, numbers: try set()))
                } while take(" ")
                try expect(")")
            default: throw fail("unknown ESEARCH item \(name)")
            }
        }
        return e
    }

    mutating func partialRange() throws(Failure) -> PartialRange {
        let negative = take("-")
        let a = try int()
        try expect(":")
        if negative { try expect("-") }
        let b = try int()
        return negative ? PartialRange(-a, -b) : PartialRange(a, b)
    }

    /// `( ... )` of RFC 5256 §4, rebuilt as a tree: "1 2 (3)(4)" is 1, replied to by 2, which has the replies 3 and 4.
    mutating func thread() throws(Failure) -> IMAPThreadNode {
        try expect("(")
        var chain: [UInt32] = []
        var forks: [IMAPThreadNode] = []
        while peek != 41 {
            if peek == 32 { i += 1; continue }
            if peek == 40 { forks.append(try thread()) } else {
                guard forks.isEmpty else { throw fail("a number after a nested thread") }
                chain.append(try uint32())
            }
        }
        i += 1
        if chain.isEmpty {
            guard forks.count != 1 else { return forks[0] }
            return IMAPThreadNode(nil, forks)
        }
        var node = IMAPThreadNode(chain.last!, forks)
        for m in chain.dropLast().reversed() { node = IMAPThreadNode(m, [node]) }
        return node
    }

    // MARK: FETCH

    mutating func fetchItem() throws(Failure) -> IMAPFetchItem {
        let start = i
        while let b = peek, Self.isAtomChar(b), b != 91 { i += 1 }
        let name = String(decoding: bytes[start..<i], as: UTF8.self)
        func section(_ p: inout IMAPResponseParser) throws(Failure) -> String {
            try p.expect("[")
            let s = p.i
            while let b = p.peek, b != 93 { p.i += 1 }
            let text = String(decoding: p.bytes[s..<p.i], as: UTF8.self)
            try p.expect("]")
            return text
        }
        func origin(_ p: inout IMAPResponseParser) throws(Failure) -> Int? {
            guard p.take("<") else { return nil }
            let n = try p.int()
            try p.expect(">")
            return n
        }
        func part(_ text: String) throws(Failure) -> [Int] {
            if text.isEmpty { return [] }
            var out: [Int] = []
            for x in text.split(separator: ".", omittingEmptySubsequences: false) {
                guard let n = Int(x) else { throw fail("bad part \(text)") }
                out.append(n)
            }
            return out
        }
        switch name {
        case "UID": try space(); return .uid(try uint32())
        case "FLAGS": try space(); return .flags(try atomList())
        case "INTERNALDATE":
            try space()
            let text = try string()
            guard let d = IMAPDateTime.parse(text) else { throw fail("bad date-time \(text)") }
            return .internalDate(d)
        case "RFC822.SIZE": try space(); return .rfc822Size(try int())
        case "EMAILID": try expect(" ("); let id = try atom(); try expect(")"); return .emailID(id)
        case "THREADID":
            try space()
            if take("NIL") { return .threadID(nil) }
            try expect("("); let id = try atom(); try expect(")"); return .threadID(id)
        case "SAVEDATE":
            try space()
            if take("NIL") { return .saveDate(nil) }
            let text = try string()
            guard let d = IMAPDateTime.parse(text) else { throw fail("bad date-time \(text)") }
            return .saveDate(d)
        case "PREVIEW": try space(); return .preview(try nstring())
        case "MODSEQ": try expect(" ("); let n = try number(); try expect(")"); return .modSeq(n)
        case "RFC822": try space(); return .rfc822(try stringBytes()[...])
        case "RFC822.HEADER": try space(); return .rfc822Header(try stringBytes()[...])
        case "RFC822.TEXT": try space(); return .rfc822Text(try stringBytes()[...])
        case "ENVELOPE": try space(); return .envelope(try envelope())
        case "BODYSTRUCTURE": try space(); return .bodyStructure(try body())
        case "BODY":
            if peek == 32 { try space(); return .body(try body()) }
            let s = try section(&self)
            let o = try origin(&self)
            try space()
            if take("NIL") { return .bodySection(section: s, origin: o, data: nil) }
            return .bodySection(section: s, origin: o, data: try stringBytes()[...])
        case "BINARY":
            let p = try part(try section(&self))
            let o = try origin(&self)
            try space()
            return .binary(part: p, origin: o, data: try stringBytes(binary: true)[...])
        case "BINARY.SIZE":
            let p = try part(try section(&self))
            try space()
            return .binarySize(part: p, size: try int())
        default: throw fail("unknown FETCH item \(name)")
        }
    }

    mutating func addresses() throws(Failure) -> [IMAPAddress]? {
        if take("NIL") { return nil }
        try expect("(")
        var out: [IMAPAddress] = []
        while peek == 40 {
            i += 1
            let name = try nstring(); try space()
            let adl = try nstring(); try space()
            let mailbox = try nstring(); try space()
            let host = try nstring()
            try expect(")")
            out.append(IMAPAddress(name: name, adl: adl, mailbox: mailbox, host: host))
        }
        try expect(")")
        return out
    }

    mutating func envelope() throws(Failure) -> IMAPEnvelope {
        try expect("(")
        let date = try nstring(); try space()
        let subject = try nstring(); try space()
        var lists: [[IMAPAddress]?] = []
        for _ in 0..<6 { lists.append(try addresses()); try space() }
        let inReplyTo = try nstring(); try space()
        let messageID = try nstring()
        try expect(")")
        return IMAPEnvelope(date: date, subject: subject, from: lists[0], sender: lists[1], replyTo: lists[2], to: lists[3],
                            cc: lists[4], bcc: lists[5], inReplyTo: inReplyTo, messageID: messageID)
    }

    mutating func parameters() throws(Failure) -> [IMAPParameter] {
        if take("NIL") { return [] }
        let flat = try list { p throws(Failure) in try p.string() }
        guard flat.count % 2 == 0 else { throw fail("odd parameter list") }
        return stride(from: 0, to: flat.count, by: 2).map { IMAPParameter(flat[$0], flat[$0 + 1]) }
    }

    mutating func bodyTail() throws(Failure) -> IMAPBodyExtension {
        var t = IMAPBodyExtension()
        if !take("NIL") {
            try expect("(")
            t.dispositionKind = try string()
            try space()
            t.dispositionParameters = try parameters()
            try expect(")")
        }
        try space()
        if take("NIL") {
            t.language = nil
        } else if peek == 40 {
            t.language = try list { p throws(Failure) in try p.string() }
        } else {
            t.language = [try string()]
        }
        try space()
        t.location = try nstring()
        return t
    }

    mutating func body() throws(Failure) -> IMAPBody {
        try expect("(")
        if peek == 40 {
            var parts: [IMAPBody] = []
            while peek == 40 { parts.append(try body()) }
            try space()
            let subtype = try string()
            var ext: IMAPMultipartExtension?
            if take(" ") {
                let params = try parameters()
                try space()
                ext = IMAPMultipartExtension(parameters: params, tail: try bodyTail())
            }
            try expect(")")
            return .multipart(parts: parts, subtype: subtype, extension: ext)
        }
        let type = try string(); try space()
        let subtype = try string(); try space()
        let params = try parameters(); try space()
        let id = try nstring(); try space()
        let description = try nstring(); try space()
        let encoding = try string(); try space()
        let size = try int()
        var kind = IMAPSinglePart.Kind.basic
        if type.uppercased() == "MESSAGE" && (subtype.uppercased() == "RFC822" || subtype.uppercased() == "GLOBAL") {
            try space()
            let env = try envelope(); try space()
            let inner = try body(); try space()
            kind = .message(envelope: env, body: inner, lines: try int())
        } else if type.uppercased() == "TEXT" {
            try space()
            kind = .text(lines: try int())
        }
        var ext: IMAPSinglePart.Extension?
        if take(" ") {
            let md5 = try nstring()
            try space()
            ext = IMAPSinglePart.Extension(md5: md5, tail: try bodyTail())
        }
        try expect(")")
        return .single(IMAPSinglePart(type: type, subtype: subtype, parameters: params, id: id, description: description,
                                      encoding: encoding, size: size, kind: kind, extension: ext))
    }

}

/// IMAP `date-time` (RFC 9051 §9): `dd-Mon-yyyy hh:mm:ss +zzzz`, the day possibly space-padded, the month name in any
/// case. Every field must be in range and the day one the month has; nil otherwise.
public enum IMAPDateTime {
    public static func parse(_ s: String) -> Date? {
        let parts = s.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard parts.count == 3 else { return nil }
        let dmy = parts[0].split(separator: "-"), hms = parts[1].split(separator: ":")
        guard dmy.count == 3, hms.count == 3, let day = Int(dmy[0]), let year = Int(dmy[2]),
              let month = CivilTime.monthNames.firstIndex(where: { $0.lowercased() == dmy[1].lowercased() }),
              let h = Int(hms[0]), let m = Int(hms[1]), let sec = Int(hms[2]),
              parts[2].count == 5, let sign = parts[2].first, sign == "+" || sign == "-", let zone = Int(parts[2].dropFirst()),
              (1...31).contains(day), (0...23).contains(h), (0...59).contains(m), (0...60).contains(sec),
              zone % 100 < 60, zone / 100 <= 23 else { return nil }
        let days = CivilTime.days(year: year, month: month + 1, day: day)
        // 31-Feb would be 3-Mar: refuse a day the month does not have.
        guard CivilTime(unixSeconds: days * 86400).day == day else { return nil }
        let offset = (zone / 100 * 3600 + zone % 100 * 60) * (sign == "-" ? -1 : 1)
        return Date(timeIntervalSince1970: TimeInterval(days * 86400 + h * 3600 + m * 60 + sec - offset))
    }
}
