import Foundation
import IMAPCodec
import MailCore

/// Writes `IMAPResponse` values as the octets RFC 9051 §9 defines. Every rule about how a value goes on the wire is
/// here, once: when a string is quoted and when it is a literal, how NIL and lists look, literal8 for BINARY, and
/// that no response line is left unterminated.
public struct IMAPResponseEncoder: Sendable {
    public var bytes: [UInt8] = []
    /// UTF-8 may appear in quoted strings (after `ENABLE UTF8=ACCEPT` or `IMAP4rev2`, RFC 6855 §3, RFC 9051 §4.3).
    public var utf8: Bool
    /// Items written since `fetchStart` (nil outside a FETCH response): the next one is preceded by a space.
    var fetchItemsWritten: Int?

    public init(utf8: Bool = false) {
        self.utf8 = utf8
    }

    public static func encode(_ response: IMAPResponse, utf8: Bool = false) -> [UInt8] {
        var e = IMAPResponseEncoder(utf8: utf8)
        e.response(response)
        return e.bytes
    }

    // MARK: responses

    public mutating func response(_ r: IMAPResponse) {
        switch r {
        case .tagged(let tag, let status):
            ascii(tag); space(); self.status(status)
        case .untagged(let status):
            ascii("* "); self.status(status)
        case .continuation(let text):
            ascii("+ "); self.text(text)
        case .capability(let caps):
            ascii("* CAPABILITY"); for c in caps { space(); atom(c) }
        case .enabled(let caps):
            ascii("* ENABLED"); for c in caps { space(); atom(c) }
        case .id(let fields):
            ascii("* ID ")
            if let fields {
                list(fields) { e, f in e.string(f.name); e.space(); e.string(f.value) }
            } else {
                ascii("NIL")
            }
        case .flags(let flags):
            ascii("* FLAGS "); atomList(flags)
        case .list(let item):
            ascii(item.lsub ? "* LSUB " : "* LIST ")
            atomList(item.attributes)
            space()
            if let d = item.delimiter { string(String(d)) } else { ascii("NIL") }
            space()
            string(item.mailbox)
            // Extended data (RFC 5258 §9 mbox-list-extended): tag and value pairs in one list.
            if !item.childInfo.isEmpty || item.oldName != nil {
                ascii(" (")
                if !item.childInfo.isEmpty {
                    ascii("\"CHILDINFO\" ")
                    list(item.childInfo) { e, s in e.string(s) }
                }
                if let old = item.oldName {
                    if !item.childInfo.isEmpty { space() }
                    ascii("\"OLDNAME\" ("); string(old); ascii(")")
                }
                ascii(")")
            }
        case .status(let mailbox, let items):
            ascii("* STATUS "); string(mailbox); space()
            list(items) { e, i in
                e.atom(i.name); e.space()
                if let id = i.objectID { e.ascii("("); e.atom(id); e.ascii(")") } else { e.number(i.value) }
            }
        case .search(let numbers, let modSeq):
            ascii("* SEARCH")
            for n in numbers { space(); number(UInt64(n)) }
            if let modSeq { ascii(" (MODSEQ "); number(modSeq); ascii(")") }
        case .esearch(let e):
            esearch(e)
        case .exists(let n):
            ascii("* "); number(UInt64(n)); ascii(" EXISTS")
        case .recent(let n):
            ascii("* "); number(UInt64(n)); ascii(" RECENT")
        case .expunge(let n):
            ascii("* "); number(UInt64(n)); ascii(" EXPUNGE")
        case .vanished(let earlier, let uids):
            ascii(earlier ? "* VANISHED (EARLIER) " : "* VANISHED "); ascii(SequenceSet.compact(uids))
        case .fetch(let seq, let items):
            fetchStart(seq)
            for item in items { fetchItem(item) }
            ascii(")")
            fetchItemsWritten = nil
        case .namespace(let personal):
            ascii("* NAMESPACE ")
            if personal.isEmpty { ascii("NIL") } else {
                list(personal) { e, p in e.ascii("("); e.string(p.name); e.space(); e.string(p.value); e.ascii(")") }
            }
            ascii(" NIL NIL")
        case .quotaRoot(let mailbox, let roots):
            ascii("* QUOTAROOT "); string(mailbox)
            for r in roots { space(); string(r) }
        case .quota(let root, let resources):
            ascii("* QUOTA "); string(root); space()
            list(resources) { e, r in
                e.atom(r.name); e.space(); e.number(UInt64(r.usage)); e.space(); e.number(UInt64(r.limit))
            }
        case .sort(let numbers, let modSeq):
            ascii("* SORT")
            for n in numbers { space(); number(UInt64(n)) }
            if let modSeq { ascii(" (MODSEQ "); number(modSeq); ascii(")") }
        case .thread(let roots):
            ascii("* THREAD")
            if !roots.isEmpty { space() }
            for root in roots { ascii("("); thread(root); ascii(")") }
        }
        crlf()
    }

    mutating func status(_ s: IMAPStatus) {
        ascii(s.condition.rawValue)
        space()
        if let code = s.code { self.code(code); space() }
        text(s.text)
    }

    mutating func code(_ code: IMAPResponseCode) {
        ascii("[")
        if let name = IMAPResponseCode.atoms.first(where: { $0.0 == code })?.1 {
            ascii(name)
        } else {
            switch code {
            case .capability(let caps): ascii("CAPABILITY"); for c in caps { space(); atom(c) }
            case .permanentFlags(let flags): ascii("PERMANENTFLAGS "); atomList(flags)
            case .uidNext(let n): ascii("UIDNEXT "); number(UInt64(n))
            case .uidValidity(let n): ascii("UIDVALIDITY "); number(UInt64(n))
            case .unseen(let n): ascii("UNSEEN "); number(UInt64(n))
            case .highestModSeq(let n): ascii("HIGHESTMODSEQ "); number(n)
            case .appendUID(let validity, let uids):
                ascii("APPENDUID "); number(UInt64(validity)); space(); ascii(Self.orderedSet(uids))
            case .copyUID(let validity, let source, let destination):
                ascii("COPYUID "); number(UInt64(validity)); space()
                ascii(Self.orderedSet(source)); space(); ascii(Self.orderedSet(destination))
            case .modified(let set): ascii("MODIFIED "); ascii(SequenceSet.compact(set))
            case .badCharset(let charsets):
                ascii("BADCHARSET")
                if !charsets.isEmpty { space(); list(charsets) { e, c in e.string(c) } }
            case .mailboxID(let id): ascii("MAILBOXID ("); atom(id); ascii(")")
            case .badEvent(let events): ascii("BADEVENT "); atomList(events)
            case .noUpdate(let tag): ascii("NOUPDATE "); string(tag)
            case .badURL(let url):
                // url-resp-text: any text but "]" and line ends.
                ascii("BADURL ")
                for b in url.utf8 where b >= 0x20 && b != 0x7F && b != 93 { bytes.append(b) }
            default: break
            }
        }
        ascii("]")
    }

    /// The numbers in the order given, consecutive runs written as ranges: COPYUID's two sets pair up by position
    /// (RFC 4315 §4.3), so they must not be sorted.
    static func orderedSet(_ numbers: [UInt32]) -> String {
        var out: [String] = []
        var i = 0
        while i < numbers.count {
            var j = i
            while j + 1 < numbers.count && numbers[j] != UInt32.max && numbers[j + 1] == numbers[j] + 1 { j += 1 }
            out.append(i == j ? "\(numbers[i])" : "\(numbers[i]):\(numbers[j])")
            i = j + 1
        }
        return out.joined(separator: ",")
    }

    mutating func esearch(_ e: IMAPESearch) {
        ascii("* ESEARCH")
        if let tag = e.tag { ascii(" (TAG "); string(tag); ascii(")") }
        if e.uid { ascii(" UID") }
        if let v = e.min { ascii(" MIN "); number(UInt64(v)) }
        if let v = e.max { ascii(" MAX "); number(UInt64(v)) }
        if let v = e.count { ascii(" COUNT "); number(UInt64(v)) }
        if let v = e.all, !v.isEmpty { ascii(" ALL "); ascii(Self.orderedSet(v)) }
        if let v = e.modSeq { ascii(" MODSEQ "); number(v) }
        if let p = e.partial {
            ascii(" PARTIAL ("); ascii(p.range.description); space()
            if p.numbers.isEmpty { ascii("NIL") } else { ascii(Self.orderedSet(p.numbers)) }
            ascii(")")
        }
        for u in e.updates where !u.numbers.isEmpty {
            ascii(u.add ? " ADDTO (" : " REMOVEFROM ("); number(UInt64(u.position)); space()
            ascii(Self.orderedSet(u.numbers)); ascii(")")
        }
    }

    mutating func thread(_ node: IMAPThreadNode) {
        // RFC 5256 §4: a chain of single replies is written flat ("1 2 3"), a fork as nested lists.
        var n = node
        var wrote = false
        while true {
            if let m = n.message {
                if wrote { space() }
                number(UInt64(m)); wrote = true
            }
            if n.children.count == 1 { n = n.children[0]; continue }
            break
        }
        if n.children.count > 1 {
            if wrote { space() }
            for c in n.children { ascii("("); thread(c); ascii(")") }
        }
    }

    // MARK: FETCH

    /// `* n FETCH (`: a FETCH response written item by item (`fetchItem`), closed with `fetchEnd()`; the same
    /// octets as `.fetch(n, items)`, without an array of items per message.
    public mutating func fetchStart(_ seq: Int) {
        ascii("* "); number(UInt64(seq)); ascii(" FETCH (")
        fetchItemsWritten = 0
    }

    public mutating func fetchEnd() {
        ascii(")"); crlf()
        fetchItemsWritten = nil
    }

    /// The start of a FETCH item whose literal follows in pieces (`literalPiece`): a large message streamed out.
    /// `item` names it (RFC822, RFC822.TEXT or a BODY section, its data ignored); `count` is the literal's size.
    public mutating func fetchItemStreamed(_ item: IMAPFetchItem, count: Int) {
        fetchSeparator()
        switch item {
        case .rfc822: ascii("RFC822 ")
        case .rfc822Text: ascii("RFC822.TEXT ")
        case .bodySection(let section, let origin, _):
            ascii("BODY["); ascii(section); ascii("]")
            if let origin { ascii("<"); number(UInt64(origin)); ascii(">") }
            space()
        default: preconditionFailure("only message text is streamed")
        }
        bytes.append(123)
        number(UInt64(count))
        bytes.append(contentsOf: [125, 13, 10])
    }

    /// Octets of a literal begun with `fetchItemStreamed`; NUL goes out as 0x80, as in `literal`.
    public mutating func literalPiece(_ data: [UInt8]) {
        if data.contains(0) {
            bytes.append(contentsOf: data.lazy.map { $0 == 0 ? 0x80 : $0 })
        } else {
            bytes.append(contentsOf: data)
        }
    }

    private mutating func fetchSeparator() {
        if let n = fetchItemsWritten {
            if n > 0 { space() }
            fetchItemsWritten = n + 1
        }
    }

    public mutating func fetchItem(_ item: IMAPFetchItem) {
        fetchSeparator()
        switch item {
        case .uid(let n): ascii("UID "); number(UInt64(n))
        case .flags(let flags): ascii("FLAGS "); atomList(flags)
        case .internalDate(let d): ascii("INTERNALDATE \""); ascii(Self.internalDate(d)); ascii("\"")
        case .rfc822Size(let n): ascii("RFC822.SIZE "); number(UInt64(n))
        case .modSeq(let n): ascii("MODSEQ ("); number(n); ascii(")")
        case .rfc822(let data): ascii("RFC822 "); literal(data)
        case .rfc822Header(let data): ascii("RFC822.HEADER "); literal(data)
        case .rfc822Text(let data): ascii("RFC822.TEXT "); literal(data)
        case .bodySection(let section, let origin, let data):
            ascii("BODY["); ascii(section); ascii("]")
            if let origin { ascii("<"); number(UInt64(origin)); ascii(">") }
            space()
            if let data { literal(data) } else { ascii("NIL") }
        case .binary(let part, let origin, let data):
            ascii("BINARY["); ascii(part.map(String.init).joined(separator: ".")); ascii("]")
            if let origin { ascii("<"); number(UInt64(origin)); ascii(">") }
            space()
            literal(data, binary: true)
        case .binarySize(let part, let size):
            ascii("BINARY.SIZE["); ascii(part.map(String.init).joined(separator: ".")); ascii("] "); number(UInt64(size))
        case .envelope(let e): ascii("ENVELOPE "); envelope(e)
        case .body(let b): ascii("BODY "); body(b)
        case .bodyStructure(let b): ascii("BODYSTRUCTURE "); body(b)
        case .emailID(let id): ascii("EMAILID ("); atom(id); ascii(")")
        case .threadID(let id):
            ascii("THREADID ")
            if let id { ascii("("); atom(id); ascii(")") } else { ascii("NIL") }
        case .saveDate(let d):
            ascii("SAVEDATE ")
            if let d { ascii("\""); ascii(Self.internalDate(d)); ascii("\"") } else { ascii("NIL") }
        case .preview(let text): ascii("PREVIEW "); nstring(text)
        case .encoded(let e): bytes += e.bytes
        }
    }

    mutating func envelope(_ e: IMAPEnvelope) {
        ascii("("); nstring(e.date); space(); nstring(e.subject)
        for a in [e.from, e.sender, e.replyTo, e.to, e.cc, e.bcc] {
            space()
            if let a, !a.isEmpty {
                ascii("(")
                for x in a {
                    ascii("("); nstring(x.name); space(); nstring(x.adl); space(); nstring(x.mailbox); space(); nstring(x.host); ascii(")")
                }
                ascii(")")
            } else {
                ascii("NIL")
            }
        }
        space(); nstring(e.inReplyTo); space(); nstring(e.messageID); ascii(")")
    }

    mutating func parameters(_ p: [IMAPParameter]) {
        if p.isEmpty { ascii("NIL"); return }
        list(p) { e, x in e.string(x.name); e.space(); e.string(x.value) }
    }

    mutating func body(_ b: IMAPBody) {
        ascii("(")
        switch b {
        case .multipart(let parts, let subtype, let ext):
            for p in parts { body(p) }
            space(); string(subtype)
            if let ext {
                space(); parameters(ext.parameters); space(); bodyTail(ext.tail)
            }
        case .single(let p):
            string(p.type); space(); string(p.subtype); space(); parameters(p.parameters); space()
            nstring(p.id); space(); nstring(p.description); space(); string(p.encoding); space(); number(UInt64(p.size))
            switch p.kind {
            case .basic: break
            case .text(let lines): space(); number(UInt64(lines))
            case .message(let envelope, let inner, let lines):
                space(); self.envelope(envelope); space(); body(inner); space(); number(UInt64(lines))
            }
            if let ext = p.extension {
                space(); nstring(ext.md5); space(); bodyTail(ext.tail)
            }
        }
        ascii(")")
    }

    /// body-fld-dsp SP body-fld-lang SP body-fld-loc
    mutating func bodyTail(_ t: IMAPBodyExtension) {
        if let kind = t.dispositionKind {
            ascii("("); string(kind); space(); parameters(t.dispositionParameters); ascii(")")
        } else {
            ascii("NIL")
        }
        space()
        if let l = t.language, !l.isEmpty {
            if l.count == 1 { string(l[0]) } else { list(l) { e, s in e.string(s) } }
        } else {
            ascii("NIL")
        }
        space(); nstring(t.location)
    }

    // MARK: values

    public mutating func ascii(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func space() { bytes.append(32) }
    mutating func crlf() { bytes.append(13); bytes.append(10) }

    /// An atom or flag name as given; characters an atom may not hold are dropped, so a response stays parseable.
    mutating func atom(_ s: String) {
        for b in s.utf8 where IMAPResponseParser.isAtomChar(b) { bytes.append(b) }
    }

    mutating func atomList(_ atoms: [String]) {
        list(atoms) { e, a in e.atom(a) }
    }

    mutating func list<T>(_ items: [T], _ each: (inout IMAPResponseEncoder, T) -> Void) {
        bytes.append(40)
        for (i, item) in items.enumerated() {
            if i > 0 { space() }
            each(&self, item)
        }
        bytes.append(41)
    }

    /// Human-readable text: to the end of the line, so CR, LF and other control characters become spaces.
    mutating func text(_ s: String) {
        for b in s.utf8 { bytes.append(b < 0x20 || b == 0x7F ? 32 : b) }
    }

    public mutating func number(_ n: UInt64) {
        guard n > 0 else { bytes.append(48); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var v = n
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 { d[19 - count] = UInt8(48 + v % 10); v /= 10; count += 1 }
            bytes.append(contentsOf: d[(20 - count)...])
        }
    }

    public mutating func nstring(_ s: String?) {
        if let s { string(s) } else { ascii("NIL") }
    }

    /// A string: quoted when it can be (short, no CR or LF, 8-bit only when UTF-8 is on), otherwise a literal. NUL,
    /// which no string may hold (RFC 9051 §4.3), is dropped.
    public mutating func string(_ s: String) {
        let utf8 = s.utf8
        var quotable = utf8.count <= 1024
        var hasNUL = false
        if quotable {
            for b in utf8 {
                if b == 0 { hasNUL = true } else if b == 13 || b == 10 || (b >= 0x80 && !self.utf8) { quotable = false; break }
            }
        } else {
            hasNUL = utf8.contains(0)
        }
        if quotable {
            bytes.append(34)
            for b in utf8 where b != 0 {
                if b == 34 || b == 92 { bytes.append(92) }
                bytes.append(b)
            }
            bytes.append(34)
        } else {
            let data = hasNUL ? Array(utf8.filter { $0 != 0 }) : Array(utf8)
            literal(data[...])
        }
    }

    /// `{n}` CRLF and the octets, or `~{n}` when `binary` and the data holds NUL (literal8, RFC 3516). An ordinary
    /// literal may not carry NUL (RFC 9051 §4.3): each is sent as 0x80, as Dovecot does, so the size stays the same.
    public mutating func literal(_ data: ArraySlice<UInt8>, binary: Bool = false) {
        let hasNUL = data.contains(0)
        if binary && hasNUL { bytes.append(126) }
        bytes.append(123)
        number(UInt64(data.count))
        bytes.append(contentsOf: [125, 13, 10])
        if hasNUL && !binary {
            bytes.append(contentsOf: data.lazy.map { $0 == 0 ? 0x80 : $0 })
        } else {
            bytes.append(contentsOf: data)
        }
    }

    /// `date-time` without its quotes, in UTC: ` 5-Dec-2026 14:07:52 +0000`.
    public static func internalDate(_ d: Date) -> String {
        let c = CivilTime(unixSeconds: Int(d.timeIntervalSince1970.rounded(.down)))
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(c.day < 10 ? " \(c.day)" : "\(c.day)")-\(CivilTime.monthNames[c.month - 1])-\(c.year) "
            + "\(two(c.hour)):\(two(c.minute)):\(two(c.second)) +0000"
    }
}
