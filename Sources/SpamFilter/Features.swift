import Foundation
import MailMessage

/// What the filter looks at in one message: a few header facts, the decoded text, the links, and the tokens the
/// Bayesian classifier counts. Trace fields (Received, Delivered-To…) are deliberately left out: they describe the
/// path, not the sender's content, and would teach the filter the receiving site's own habits.
public struct MessageFeatures: Sendable {
    public var subject: String?
    public var from: String?
    public var hasDate = false
    public var date: Date?
    public var hasMessageID: Bool { messageID != nil }
    /// The Date's zone as written: "+hhmm"/"-hhmm", or else its last word ("GMT", "EST").
    var dateZone: String?
    /// The Date's zone is not a real one (hours past 14 or minutes past 59), as in "-1900".
    public var dateZoneAbsurd = false
    /// Words of three or more letters in the subject written in capitals only.
    var subjectCapsWords = 0
    /// Subject or From carry raw 8-bit bytes that are not UTF-8 (neither RFC 2047 encoded nor RFC 6532 text).
    public var rawHeaderBytes = false
    public var hasTextPart = false
    public var hasHTMLPart = false
    /// Visible text of all text parts (HTML with its tags removed), capped.
    public var text = ""
    /// (href, anchor text) of HTML links, and bare URLs found in text.
    public var links: [(href: String, text: String)] = []
    public var tokens: Set<String> = []
    /// The groups of `SpamScorer.phraseRules` found in the subject and text, and the dollar amounts ("$" and a digit;
    /// counted to 3): searched here, where the message is read (on the server's thread pool), so scoring stays cheap.
    public var phraseGroups: Set<String> = []
    public var dollarAmounts = 0
    /// Names of the HTML tags used, and the MIME types and transfer encodings of the parts (structure, for the tokens).
    var htmlTags: Set<String> = []
    var partKinds: Set<String> = []
    /// HTML that hides some of its text (see HTMLText.strip).
    public var hiddenHTMLText = false
    /// Images in the HTML, and attachments that are images.
    public var images = 0
    /// The charsets of the text parts, lower-cased.
    public var charsets: Set<String> = []
    /// The header as the sender's program wrote it: X-Mailer/User-Agent, Message-ID, To, Reply-To (for the rules).
    public var mailer: String?
    public var messageID: String?
    public var to: String?
    public var replyTo: String?
    public var mimeVersion = false

    /// Text beyond this many characters is not read (SpamAssassin also looks only at the start of big messages).
    public static let maxText = 200_000

    public init(message bytes: [UInt8]) {
        let root = MIMEParser.parse(bytes)
        if let s = root.header("Subject") { subject = EncodedWords.decode(s) }
        if let f = root.header("From") { from = EncodedWords.decode(f) }
        // The charsets of RFC 2047 encoded words in Subject and From ("=?gb2312?B?…?=") count with the parts' own.
        for raw in [root.header("Subject"), root.header("From")].compactMap({ $0 }) {
            var rest = raw[...]
            while let start = rest.range(of: "=?") {
                let name = rest[start.upperBound...].prefix { $0 != "?" && !$0.isWhitespace }
                if !name.isEmpty, name.count < 40 { charsets.insert(name.lowercased()) }
                rest = rest[start.upperBound...]
            }
        }
        if let d = root.header("Date") {
            hasDate = true
            date = RFC5322Date.parse(d)
            let parts = d.split(whereSeparator: \.isWhitespace)
            if let zone = parts.first(where: { ($0.hasPrefix("+") || $0.hasPrefix("-")) && $0.count == 5 }) {
                dateZone = String(zone)
                if let z = Int(zone.dropFirst()), z / 100 > 14 || z % 100 > 59 { dateZoneAbsurd = true }
            } else if let last = parts.last, last.allSatisfy({ $0.isLetter }) {
                dateZone = String(last.prefix(8))
            } else {
                dateZone = "none"
            }
        }
        if let s = subject {
            subjectCapsWords = s.split(whereSeparator: { !$0.isLetter }).filter { $0.count >= 3 && $0.allSatisfy(\.isUppercase) }.count
        }
        rawHeaderBytes = (subject ?? "").contains("\u{FFFD}") || (from ?? "").contains("\u{FFFD}")
        messageID = root.header("Message-ID")
        mailer = root.header("X-Mailer") ?? root.header("User-Agent")
        to = root.headers("To").joined(separator: ", ")
        replyTo = root.header("Reply-To")
        mimeVersion = root.header("MIME-Version") != nil
        var html = ""
        collect(root, bytes, &html)
        if !html.isEmpty {
            var signals = HTMLText.Signals()
            let (visible, anchors, tags) = HTMLText.strip(html, signals: &signals)
            hiddenHTMLText = signals.hidden
            images += signals.images
            text += (text.isEmpty ? "" : "\n") + visible
            links += anchors
            htmlTags = tags
        }
        if text.count > Self.maxText { text = String(text.prefix(Self.maxText)) }
        for url in HTMLText.bareURLs(text) { links.append((url, "")) }
        findPhrases()
        tokens = Tokenizer.tokens(self, root: root)
    }

    /// The phrase lists as UTF-8, for a byte search: Foundation's String.contains (CFStringFind) is far slower and
    /// was most of the spam filter's cost per message.
    static let phraseBytes: [[[UInt8]]] = SpamScorer.phraseRules.map { $0.phrases.map { Array($0.utf8) } }

    /// Whether `needle` (not empty) occurs in `haystack`: memchr for its first byte, then memcmp.
    static func occurs(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer) -> Bool {
        guard let base = haystack.baseAddress, haystack.count >= needle.count else { return false }
        return needle.withUnsafeBytes { n in
            var offset = 0
            let last = haystack.count - needle.count
            while offset <= last, let hit = memchr(base + offset, Int32(needle[0]), last - offset + 1) {
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, n.baseAddress!, needle.count) == 0 { return true }
                offset = at + 1
            }
            return false
        }
    }

    private mutating func findPhrases() {
        let lower = Array(((subject ?? "") + "\n" + text.prefix(50_000)).lowercased().utf8)
        var groups: Set<String> = []
        lower.withUnsafeBytes { haystack in
            for (rule, phrases) in zip(SpamScorer.phraseRules, Self.phraseBytes) {
                var found = 0
                for p in phrases where Self.occurs(p, in: haystack) {
                    found += 1
                    if found >= rule.least { break }
                }
                if found >= rule.least { groups.insert(rule.name) }
            }
        }
        phraseGroups = groups
        var i = 0
        while dollarAmounts < 3, let d = lower[i...].firstIndex(of: UInt8(ascii: "$")) {
            i = d + 1
            if i < lower.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(lower[i]) { dollarAmounts += 1 }
        }
    }

    private mutating func collect(_ part: MIMEPart, _ bytes: [UInt8], _ html: inout String) {
        if part.contentType.isMultipart {
            for c in part.children { collect(c, bytes, &html) }
            return
        }
        if part.contentType.isMessage {
            for m in part.message { collect(m, bytes, &html) }
            return
        }
        partKinds.insert("\(part.contentType.type)/\(part.contentType.subtype) \(part.transferEncoding.lowercased())")
        if let cs = part.contentType.parameter("charset") {
            partKinds.insert("charset " + cs.lowercased())
            charsets.insert(cs.lowercased())
        }
        if part.contentType.type == "image" { images += 1 }
        guard part.contentType.type == "text", part.header("Content-Disposition")?.lowercased().hasPrefix("attachment") != true else { return }
        let raw = bytes[part.bodyStart..<min(part.end, bytes.count, part.bodyStart + Self.maxText * 2)]
        let decoded = TransferEncoding.decode(raw, encoding: part.transferEncoding) ?? Array(raw)
        let charset = part.contentType.parameter("charset") ?? "us-ascii"
        let string = EncodedWords.decodeCharset(decoded, charset) ?? String(decoding: decoded, as: UTF8.self)
        if part.contentType.subtype == "html" {
            hasHTMLPart = true
            html += string
        } else {
            hasTextPart = true
            text += (text.isEmpty ? "" : "\n") + string
        }
    }
}

/// HTML to visible text, with the links and their anchor texts.
enum HTMLText {
    /// What the tags say besides the text: some text is made invisible (white or tiny fonts, display:none, a trick to
    /// feed filters words the reader never sees), and how many images there are (at most 100 counted).
    struct Signals {
        var hidden = false
        var images = 0
    }

    static func strip(_ html: String, signals: inout Signals) -> (String, [(href: String, text: String)], Set<String>) {
        var tags = Set<String>()
        var out = ""
        var links: [(String, String)] = []
        var currentHref: String?
        var anchor = ""
        var i = html.startIndex
        var skipping: String?  // inside <style> or <script>
        while i < html.endIndex {
            let c = html[i]
            if c == "<", let close = html[i...].firstIndex(of: ">") {
                let tag = html[html.index(after: i)..<close]
                let lower = tag.lowercased()
                let closing = lower.hasPrefix("/")
                let name = String(lower.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber })
                if !name.isEmpty && tags.count < 100 { tags.insert(name) }
                if name == "img", !closing, signals.images < 100 { signals.images += 1 }
                if !signals.hidden, !closing, name == "font" || name == "span" || name == "div" || name == "p" || name == "td" {
                    let t = lower.replacingOccurrences(of: " ", with: "")
                    if t.contains("color=\"#ffffff\"") || t.contains("color=#ffffff") || t.contains("color=\"white\"") || t.contains("color=white")
                        || t.contains("size=\"0\"") || t.contains("size=0") || t.contains("display:none") || t.contains("visibility:hidden")
                        || t.contains("font-size:0") || t.contains("font-size:1px") || t.contains("color:#ffffff") || t.contains("color:white") {
                        signals.hidden = true
                    }
                }
                if let s = skipping {
                    if closing && name == s { skipping = nil }
                } else if !closing && (name == "style" || name == "script") {
                    skipping = name
                } else if name == "a" && !closing {
                    currentHref = attribute("href", in: String(tag))
                    anchor = ""
                } else if name == "a" {
                    if let h = currentHref { links.append((h, anchor.trimmingCharacters(in: .whitespacesAndNewlines))) }
                    currentHref = nil
                } else if ["br", "p", "div", "tr", "li", "td", "table", "h1", "h2", "h3"].contains(name) {
                    out += " \n"
                }
                i = html.index(after: close)
                continue
            }
            if skipping == nil {
                if c == "&", let semi = html[i...].prefix(10).firstIndex(of: ";") {
                    let entity = html[html.index(after: i)..<semi].lowercased()
                    let value = ["nbsp": " ", "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"][entity]
                        ?? (entity.hasPrefix("#") ? Int(entity.dropFirst()).flatMap(Unicode.Scalar.init).map { String($0) } : nil)
                    if let value {
                        out += value
                        if currentHref != nil { anchor += value }
                        i = html.index(after: semi)
                        continue
                    }
                }
                out.append(c)
                if currentHref != nil { anchor.append(c) }
            }
            i = html.index(after: i)
        }
        return (out, links, tags)
    }

    static func attribute(_ name: String, in tag: String) -> String? {
        guard let r = tag.range(of: name + "=", options: .caseInsensitive) else { return nil }
        var rest = tag[r.upperBound...]
        if let q = rest.first, q == "\"" || q == "'" {
            rest = rest.dropFirst()
            return String(rest.prefix { $0 != q })
        }
        return String(rest.prefix { !$0.isWhitespace && $0 != ">" })
    }

    /// http(s) URLs written out in text.
    static func bareURLs(_ text: String) -> [String] {
        var out: [String] = []
        var search = text[...]
        while let r = search.range(of: "http", options: .caseInsensitive), out.count < 100 {
            let candidate = search[r.lowerBound...].prefix { !$0.isWhitespace && !"<>\"')]".contains($0) }
            if candidate.lowercased().hasPrefix("http://") || candidate.lowercased().hasPrefix("https://") { out.append(String(candidate)) }
            search = search[r.upperBound...]
        }
        return out
    }

    /// The host of a URL, lower-cased ("" when there is none).
    static func host(_ url: String) -> String {
        var s = Substring(url.lowercased())
        guard let scheme = s.range(of: "://") else { return "" }
        s = s[scheme.upperBound...]
        let host = s.prefix { !"/?#:".contains($0) }
        return String(host.split(separator: "@").last ?? "")
    }
}

/// Words for the classifier: lower-cased, 3 to 20 letters, from the subject (prefixed), the From name and domain, the
/// body text, link hosts, and a few structural facts.
enum Tokenizer {
    /// Added by servers along the way, not by the sender: left out of the tokens.
    static let traceFields: Set<String> = ["received", "return-path", "delivered-to", "authentication-results", "received-spf",
                                           "x-original-to", "delivery-date", "envelope-to", "arc-seal", "arc-message-signature",
                                           "arc-authentication-results", "x-virus-scanned"]
    static func tokens(_ f: MessageFeatures, root: MIMEPart) -> Set<String> {
        var out = Set<String>()
        func words(_ s: String, prefix: String = "") {
            var word = ""
            func flush() {
                if (3...20).contains(word.count) { out.insert(prefix + word) }
                else if word.count > 20 { out.insert(prefix + "long:\(word.prefix(3))") }
                word = ""
            }
            var previousIdeograph: Character?
            for ch in s.lowercased() {
                // Chinese, Japanese and Korean are written without spaces: pairs of characters stand in for words.
                if let v = ch.unicodeScalars.first?.value, (0x2E80...0x9FFF).contains(v) || (0xAC00...0xD7AF).contains(v) || (0xF900...0xFAFF).contains(v) {
                    flush()
                    if let p = previousIdeograph { out.insert(prefix + String([p, ch])) }
                    previousIdeograph = ch
                    continue
                }
                previousIdeograph = nil
                if ch.isLetter || ch.isNumber || ch == "$" || ch == "!" || ch == "'" || ch == "-" { word.append(ch) } else { flush() }
                if out.count > 3000 { return }
            }
            flush()
        }
        if let s = f.subject { words(s, prefix: "s:") }
        if let from = f.from {
            words(from, prefix: "f:")
            if let at = from.lastIndex(of: "@") {
                out.insert("fd:" + from[from.index(after: at)...].prefix { $0 != ">" && !$0.isWhitespace }.lowercased())
            }
        }
        for name in ["X-Mailer", "User-Agent"] {
            if let v = root.header(name) { words(v, prefix: "m:") }
        }
        // Which header fields the sender's software wrote (not the trace fields servers add on the way), and the
        // values of a few that bulk mailers like to set.
        for field in root.fields.prefix(200) {
            let name = field.name.lowercased()
            if Tokenizer.traceFields.contains(name) || name.hasPrefix("x-spam") { continue }
            out.insert("h:" + name)
            if ["x-priority", "x-msmail-priority", "importance", "precedence"].contains(name) {
                out.insert("hv:\(name):" + field.value.lowercased().trimmingCharacters(in: .whitespaces).prefix(20))
            }
        }
        if let charset = root.contentType.parameter("charset") { out.insert("cs:" + charset.lowercased()) }
        out.insert("ct:" + root.contentType.type + "/" + root.contentType.subtype)
        words(f.text)
        for l in f.links.prefix(50) {
            let host = HTMLText.host(l.href)
            if !host.isEmpty {
                out.insert("u:" + host)
                // The registrable-looking end of the host, and the words of the path.
                out.insert("u:" + host.split(separator: ".").suffix(2).joined(separator: "."))
                if let scheme = l.href.range(of: "://") {
                    let rest = l.href[scheme.upperBound...].drop { $0 != "/" }
                    words(String(rest), prefix: "up:")
                }
            }
        }
        for t in f.htmlTags { out.insert("t:" + t) }
        // Link counts in bands, the top-level domains linked to, and the domains of addresses written in the text.
        out.insert("links:" + (f.links.isEmpty ? "0" : f.links.count < 3 ? "1-2" : f.links.count < 10 ? "3-9" : "10+"))
        for l in f.links.prefix(50) {
            if let tld = HTMLText.host(l.href).split(separator: ".").last, tld.allSatisfy(\.isLetter) { out.insert("tld:" + tld) }
        }
        var search = f.text[...]
        var found = 0
        while found < 20, let at = search.firstIndex(of: "@") {
            let domain = search[search.index(after: at)...].prefix { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" }
            if domain.contains(".") { out.insert("e:" + domain.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))) }
            found += 1
            search = search[search.index(after: at)...]
        }
        // Shouting: words in capitals.
        var caps = 0, words = 0, length = 0, allUpper = true
        for u in f.text.unicodeScalars where words < 5000 {
            let c = ScalarClass(u)
            if c.alphabetic {
                length += 1
                allUpper = allUpper && c.upper
            } else if length > 0 {
                if length >= 4 && allUpper { caps += 1 }
                words += 1
                length = 0
                allUpper = true
            }
        }
        if length >= 4 && allUpper && words < 5000 { caps += 1 }
        out.insert("caps:" + (caps == 0 ? "0" : caps < 5 ? "1-4" : caps < 20 ? "5-19" : "20+"))
        for k in f.partKinds { out.insert("p:" + k) }
        if let s = f.subject {
            if s.contains("!!") { out.insert("s:!!") }
            if s.contains("$") { out.insert("s:$") }
            if s.hasSuffix(" ") || s.contains("   ") { out.insert("s:spaces") }
        }
        if f.hasHTMLPart && !f.hasTextPart { out.insert("x:html-only") }
        headerShapes(root, f, &out)
        textShapes(f, &out)
        traceTokens(root, &out)
        return out
    }

    /// The path the message took, from its Received fields (as SpamBayes reads them): the domains of the hosts that
    /// handed it on and their /24 networks, a relay that could not name the sender ("unknown") or found its name
    /// forged, and the protocols used (plain SMTP where every modern mailer speaks ESMTP). A server's own hops are the
    /// same on every message and so tell the classifier nothing; the hops before it are what differ.
    static func traceTokens(_ root: MIMEPart, _ out: inout Set<String>) {
        for field in root.fields.prefix(200).filter({ $0.name.lowercased() == "received" }).prefix(8) {
            let value = field.value.lowercased()
            let parts = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "(" || $0 == ")" })
            for (i, part) in parts.enumerated() {
                if part.hasPrefix("["), let ip = IPv4Prefix(part.dropFirst().prefix { $0 != "]" }) {
                    out.insert("rip:" + ip)
                } else if (part == "with" || part == "by" || part == "from"), i + 1 < parts.count {
                    let next = parts[i + 1]
                    if part == "with" {
                        if next.count <= 12 { out.insert("rw:" + next) }
                    } else if next.contains("."), next.contains(where: \.isLetter), !next.hasPrefix("[") {
                        out.insert("rh:" + next.split(separator: ".").suffix(2).joined(separator: "."))
                    }
                }
            }
            if value.contains("unknown") { out.insert("r:unknown") }
            if value.contains("may be forged") { out.insert("r:forged") }
        }
    }

    /// The first three octets of a dotted IPv4 address ("a.b.c"), or nil.
    static func IPv4Prefix(_ s: Substring) -> String? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }) else { return nil }
        return octets.prefix(3).joined(separator: ".")
    }

    static func band(_ n: Int, _ limits: [Int]) -> String {
        var lower = 0
        for l in limits {
            if n < l { return lower == l - 1 ? "\(lower)" : "\(lower)-\(l - 1)" }
            lower = l
        }
        return "\(lower)+"
    }

    /// Facts about how the text is written, as tokens: how long, how loud, how much money and how many calls to act.
    static func textShapes(_ f: MessageFeatures, _ out: inout Set<String>) {
        // One pass over the code points (not Characters: grapheme breaking made this the filter's slowest part, and a
        // CRLF is one Character, so lines of CRLF text were never told apart).
        var exclamations = 0, dollars = 0, percents = 0, capsLines = 0, lines = 0, words = 0
        var letters = 0, upper = 0, lineCount = 0, inWord = false
        func endLine() {
            if letters >= 10 {
                lines += 1
                if upper == letters { capsLines += 1 }
            }
            letters = 0
            upper = 0
            lineCount += 1
        }
        for u in f.text.unicodeScalars.prefix(50_000) {
            switch u {
            case "!": exclamations += 1
            case "$": dollars += 1
            case "%": percents += 1
            case "\n": if lineCount < 2000 { endLine() }
            default: break
            }
            let c = ScalarClass(u)
            if c.space { inWord = false } else if !inWord { inWord = true; words += 1 }
            if lineCount < 2000, c.alphabetic {
                letters += 1
                if c.upper { upper += 1 }
            }
        }
        if lineCount < 2000 { endLine() }
        out.insert("n!:" + band(exclamations, [1, 3, 10, 30]))
        out.insert("n$:" + band(dollars, [1, 3, 10]))
        out.insert("n%:" + band(percents, [1, 3, 10]))
        out.insert("capslines:" + band(capsLines, [1, 3, 10]))
        out.insert("words:" + band(words, [20, 100, 300, 1000, 3000]))
        if lines > 0 { out.insert("capsratio:" + band(capsLines * 10 / lines, [1, 3, 6])) }
        if let from = f.from {
            let address = from.split(separator: "<").last.map { $0.prefix { $0 != ">" } } ?? Substring(from)
            if let at = address.firstIndex(of: "@") {
                out.insert("fl:" + shape(address[..<at].prefix(40)))
                if address[..<at].contains(where: \.isNumber) { out.insert("fl:digits") }
            }
            if from.contains("<") {
                let name = from[..<from.firstIndex(of: "<")!].trimmingCharacters(in: CharacterSet(charactersIn: "\" "))
                if name.isEmpty { out.insert("fn:empty") }
                else if name.filter(\.isLetter).count >= 4 && name.filter(\.isLetter).allSatisfy(\.isUppercase) { out.insert("fn:caps") }
            } else {
                out.insert("fn:none")
            }
        }
        if let s = f.subject {
            out.insert("slen:" + band(s.count, [10, 30, 60, 100]))
            if s.hasSuffix("!") { out.insert("s:ends!") }
            out.insert("scaps:" + band(f.subjectCapsWords, [1, 2, 4]))
        }
        if f.links.count > 0 {
            let hosts = Set(f.links.prefix(50).map { HTMLText.host($0.href) })
            out.insert("linkhosts:" + band(hosts.count, [1, 2, 4, 8]))
        }
    }

    /// The shapes of fields that bulk-mail software writes in its own way: the Message-ID, the Date's form and zone,
    /// the recipients, Reply-To against From. Each becomes a token, so the classifier learns which shapes go with spam.
    static func headerShapes(_ root: MIMEPart, _ f: MessageFeatures, _ out: inout Set<String>) {
        if let mid = f.messageID {
            let id = mid.trimmingCharacters(in: CharacterSet(charactersIn: "<> \t"))
            if let at = id.lastIndex(of: "@") {
                out.insert("mid:" + shape(id[..<at].prefix(60)))
                // The Message-ID's shape with the mail program that claims to have written it: forged mailers give
                // themselves away by IDs their program never makes.
                let mailer = (f.mailer ?? "none").lowercased()
                    .split(whereSeparator: { !$0.isLetter }).first.map(String.init) ?? "none"
                out.insert("mm:\(mailer):" + shape(id[..<at].prefix(60)))
                out.insert("midd:" + id[id.index(after: at)...].lowercased().filter { $0 != ">" }.split(separator: ".").suffix(2).joined(separator: "."))
            } else {
                out.insert("mid:no-at")
            }
        }
        if let d = root.header("Date") {
            out.insert("tz:" + (f.dateZone ?? ""))
            out.insert("date:" + shape(Substring(d.prefix(40))))
        }
        let to = f.to ?? ""
        let cc = root.headers("Cc").joined(separator: ",")
        let recipients = (to + "," + cc).split(separator: ",").filter { $0.contains("@") }.count
        out.insert("rcpts:" + band(recipients, [1, 2, 5]))
        if to.isEmpty { out.insert("to:none") }
        if to.lowercased().contains("undisclosed") { out.insert("to:undisclosed") }
        if let from = f.from, let rt = f.replyTo {
            func domain(_ s: String) -> String { s.lowercased().split(separator: "@").last.map { String($0.prefix { $0 != ">" && !$0.isWhitespace }) } ?? "" }
            out.insert(domain(from) == domain(rt) ? "rt:same" : "rt:other")
        }
    }

    /// Digits as 9, letters as a (upper A), runs collapsed: "00004b14417b$0000234d" → "9a9a$9a".
    static func shape(_ s: Substring) -> String {
        var out = ""
        for ch in s {
            let c: Character = ch.isNumber ? "9" : ch.isLowercase ? "a" : ch.isUppercase ? "A" : ch
            if out.last != c { out.append(c) }
        }
        return out
    }
}

/// The Unicode properties the text counts need, answered without a table lookup for ASCII (most mail text).
struct ScalarClass {
    var alphabetic: Bool, upper: Bool, space: Bool

    @inline(__always) init(_ u: Unicode.Scalar) {
        let v = u.value
        if v < 0x80 {
            upper = v >= 0x41 && v <= 0x5A
            alphabetic = upper || (v >= 0x61 && v <= 0x7A)
            space = v == 0x20 || (v >= 0x09 && v <= 0x0D)
        } else {
            let p = u.properties
            alphabetic = p.isAlphabetic
            upper = p.isUppercase
            space = p.isWhitespace
        }
    }
}
