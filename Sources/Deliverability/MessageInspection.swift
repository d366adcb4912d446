import Foundation
import MailAuth
import MailCore
import MailMessage

/// One server's step in a message's journey, from its Received field (RFC 5321 §4.4).
public struct ReceivedHop: Sendable, Equatable, Encodable {
    /// The name the client gave in HELO/EHLO, and what the receiving server recorded beside it (reverse DNS, address).
    public var from: String?
    public var fromComment: String?
    /// The client's address, from the brackets of the from-clause.
    public var ip: String?
    public var by: String?
    /// The protocol (SMTP, ESMTPS, ESMTPSA, LMTP, HTTP, local …).
    public var with: String?
    public var id: String?
    public var date: Date?
    /// Seconds since the hop before (or, for the first hop, since the message's Date); negative when clocks disagree.
    public var delay: Double?
}

public enum ReceivedPath {
    /// The hops of a message, oldest first (Received fields are prepended, so the header lists them newest first).
    public static func hops(_ fields: [RawHeaderField], messageDate: Date?) -> [ReceivedHop] {
        var hops = fields.filter { $0.name.caseInsensitiveCompare("Received") == .orderedSame }
            .prefix(100).reversed().map { parse($0.unfoldedValue) }
        var previous = messageDate
        for i in hops.indices {
            if let date = hops[i].date {
                if let previous { hops[i].delay = date.timeIntervalSince(previous) }
                previous = date
            }
        }
        return hops
    }

    /// Parses `from A (B [ip]) by C with D id E for <F>; date`. Clauses are told apart at the top level only (not inside
    /// comments); the date follows the last semicolon.
    public static func parse(_ value: String) -> ReceivedHop {
        var hop = ReceivedHop()
        var clauses = value
        if let semicolon = value.lastIndex(of: ";") {
            hop.date = RFC5322Date.parse(String(value[value.index(after: semicolon)...]))
            clauses = String(value[..<semicolon])
        }
        // Words and comments at the top level.
        var items: [(text: String, comment: Bool)] = []
        var current = "", depth = 0
        for ch in clauses {
            if depth > 0 {
                if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
                if depth == 0 { items.append((current, true)); current = "" } else { current.append(ch) }
                continue
            }
            if ch == "(" {
                if !current.isEmpty { items.append((current, false)); current = "" }
                depth = 1
            } else if ch == " " {
                if !current.isEmpty { items.append((current, false)); current = "" }
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { items.append((current, depth > 0)) }
        var clause = ""
        for item in items {
            if item.comment {
                if clause == "from" {
                    hop.fromComment = hop.fromComment.map { $0 + " " + item.text } ?? item.text
                    if hop.ip == nil { hop.ip = bracketed(item.text) }
                }
                continue
            }
            let word = item.text.lowercased()
            if ["from", "by", "via", "with", "id", "for"].contains(word) {
                clause = word
                continue
            }
            switch clause {
            case "from" where hop.from == nil:
                hop.from = item.text
                if let ip = bracketed(item.text) { hop.ip = ip }
            case "from": if hop.ip == nil { hop.ip = bracketed(item.text) }
            case "by" where hop.by == nil: hop.by = item.text
            case "with" where hop.with == nil: hop.with = item.text
            case "id" where hop.id == nil: hop.id = item.text
            default: break
            }
        }
        return hop
    }

    /// The address in `[…]` when it is one ("IPv6:" dropped).
    static func bracketed(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else { return nil }
        var ip = String(text[text.index(after: open)..<close])
        if ip.lowercased().hasPrefix("ipv6:") { ip = String(ip.dropFirst(5)) }
        return IPNetwork(ip) != nil ? ip : nil
    }

    /// "2026-11-24 10:00:02", in UTC: how reports and `tern trace` show times.
    public static func timestamp(_ date: Date) -> String { utc.string(from: date) }

    static let utc: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f
    }()

    /// "2 s", "3 min 5 s", "1 h 2 min", "2 d 3 h".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(abs(seconds).rounded()), sign = seconds < 0 ? "-" : ""
        if s < 60 { return "\(sign)\(s) s" }
        if s < 3600 { return "\(sign)\(s / 60) min" + (s % 60 == 0 ? "" : " \(s % 60) s") }
        if s < 86400 { return "\(sign)\(s / 3600) h" + (s % 3600 / 60 == 0 ? "" : " \(s % 3600 / 60) min") }
        return "\(sign)\(s / 86400) d" + (s % 86400 / 3600 == 0 ? "" : " \(s % 86400 / 3600) h")
    }
}

/// Something in a message's header that breaks RFC 5322 (or RFC 2045/6532), or that receivers hold against it.
public struct HeaderProblem: Sendable, Equatable, Encodable {
    public enum Severity: String, Sendable, Encodable {
        /// A MUST of the RFCs is broken: some receivers refuse or mangle the message.
        case error
        /// Allowed, but a SHOULD is broken or spam filters count it against the message.
        case warning
    }
    public var field: String
    public var severity: Severity
    public var problem: String
}

public enum HeaderLint {
    /// Fields a message may carry at most once (RFC 5322 §3.6).
    static let single = ["Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID", "In-Reply-To", "References", "Subject"]

    /// The problems of a message's header (and of its line lengths), in the order of the checks.
    public static func problems(_ message: [UInt8]) -> [HeaderProblem] {
        var out: [HeaderProblem] = []
        func add(_ field: String, _ severity: HeaderProblem.Severity, _ problem: String) {
            out.append(HeaderProblem(field: field, severity: severity, problem: problem))
        }
        let end = RawHeader.end(message)
        let header = message[..<end]
        let fields = RawHeader.fields(header)
        // Lines: at most 998 octets (§2.1.1), header lines that are not fields, field names.
        var longest = 0, lineStart = 0, longLines = 0
        for (i, b) in message.enumerated() where b == 10 {
            let length = i - lineStart - (i > lineStart && message[i - 1] == 13 ? 1 : 0)
            if length > 998 { longLines += 1 }
            longest = max(longest, length)
            lineStart = i + 1
        }
        if longLines > 0 {
            add("(lines)", .error, "\(longLines) line(s) longer than 998 octets (the longest \(longest)): RFC 5322 §2.1.1 forbids them; servers may break or refuse them")
        }
        var offset = header.startIndex
        for line in header.split(separator: 10, omittingEmptySubsequences: false).dropLast() {
            defer { offset += line.count + 1 }
            let text = line.last == 13 ? line.dropLast() : line[...]
            guard let first = text.first, first != 32, first != 9 else { continue }
            guard let colon = text.firstIndex(of: 58) else {
                add("(header)", .error, "a header line that is neither a field nor a continuation: \"\(String(decoding: text.prefix(40), as: UTF8.self))\"")
                continue
            }
            let name = text[text.startIndex..<colon]
            if name.isEmpty || !name.allSatisfy({ $0 >= 33 && $0 <= 126 }) {
                add(String(decoding: name.prefix(40), as: UTF8.self), .error, "field name with spaces or other characters RFC 5322 §3.6.8 does not allow")
            }
        }
        if header.contains(where: { $0 >= 0x80 }) {
            if String(validating: header, as: UTF8.self) == nil {
                add("(header)", .error, "8-bit octets that are not UTF-8 in the header: use MIME encoded words (RFC 2047)")
            } else {
                add("(header)", .warning, "UTF-8 in the header (RFC 6532): needs SMTPUTF8 all the way, or MIME encoded words (RFC 2047) for older servers")
            }
        }
        func values(_ name: String) -> [String] {
            fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.unfoldedValue)
        }
        for name in single {
            let count = values(name).count
            if count > 1 { add(name, .error, "\(count) \(name) fields: RFC 5322 §3.6 allows one") }
        }
        // Date: required, readable, a numeric zone.
        if let date = values("Date").first {
            if RFC5322Date.parse(date) == nil {
                add("Date", .error, "\"\(date.prefix(60))\" is not an RFC 5322 date")
            } else if !hasNumericZone(date) {
                add("Date", .warning, "\"\(date.prefix(60))\" has no numeric time zone (+hhmm): RFC 5322 §4.3 makes named zones obsolete")
            }
        } else {
            add("Date", .error, "no Date field: RFC 5322 §3.6 requires one")
        }
        // From: required, mailboxes with domains; Sender when there are several.
        if let from = values("From").first {
            let mailboxes = AddressList.parse(from).compactMap { item -> (String, String?)? in
                if case .mailbox(_, let local, let domain) = item { return (local, domain) }
                return nil
            }
            if mailboxes.isEmpty {
                add("From", .error, "no address in \"\(from.prefix(60))\"")
            } else if mailboxes.contains(where: { $0.1 == nil || $0.1!.isEmpty }) {
                add("From", .error, "an address without a domain in \"\(from.prefix(60))\"")
            }
            if mailboxes.count > 1 && values("Sender").isEmpty {
                add("From", .error, "\(mailboxes.count) authors but no Sender field: RFC 5322 §3.6.2 requires one")
            }
        } else {
            add("From", .error, "no From field: RFC 5322 §3.6 requires one, and DMARC has nothing to align with")
        }
        for name in ["To", "Cc", "Reply-To", "Sender"] {
            for value in values(name) {
                let items = AddressList.parse(value)
                let broken = items.contains { if case .mailbox(_, _, let d) = $0 { return d == nil || d!.isEmpty } else { return false } }
                if broken || (items.isEmpty && !value.trimmingCharacters(in: .whitespaces).isEmpty && !value.hasSuffix(";")) {
                    add(name, .error, "\"\(value.prefix(60))\" is not a list of addresses with domains")
                }
            }
        }
        if values("To").isEmpty && values("Cc").isEmpty && values("Bcc").isEmpty {
            add("To", .warning, "no To or Cc field: spam filters count that against the message")
        }
        if let id = values("Message-ID").first {
            if !isMessageID(id) { add("Message-ID", .error, "\"\(id.prefix(60))\" is not <left@right> (RFC 5322 §3.6.4)") }
        } else {
            add("Message-ID", .warning, "no Message-ID field: RFC 5322 §3.6.4 says every message should have one")
        }
        if values("Subject").isEmpty { add("Subject", .warning, "no Subject field") }
        if !values("Content-Type").isEmpty && values("MIME-Version").isEmpty {
            add("MIME-Version", .error, "Content-Type without MIME-Version: 1.0 (RFC 2045 §4): readers may ignore the MIME structure")
        }
        return out
    }

    static func hasNumericZone(_ date: String) -> Bool {
        let s = date.firstIndex(of: "(").map { String(date[..<$0]) } ?? date
        guard let zone = s.split(separator: " ").last, zone.count == 5, let sign = zone.first else { return false }
        return (sign == "+" || sign == "-") && zone.dropFirst().allSatisfy(\.isASCIIDigit)
    }

    /// `<left@right>` with no spaces or second angle brackets; the right side a dot-atom or a literal.
    public static func isMessageID(_ value: String) -> Bool {
        let v = value.trimmingCharacters(in: .whitespaces)
        guard v.hasPrefix("<"), v.hasSuffix(">"), v.count > 4 else { return false }
        let inner = v.dropFirst().dropLast()
        guard let at = inner.lastIndex(of: "@"), at != inner.startIndex, inner.index(after: at) != inner.endIndex else { return false }
        return !inner.contains(where: { $0 == " " || $0 == "<" || $0 == ">" || $0 == "\t" })
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
