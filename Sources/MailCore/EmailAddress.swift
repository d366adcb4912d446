/// An email address as SMTP carries it: `Local-part "@" ( Domain / address-literal )`.
///
/// One parser for all of Tern (SMTP envelope, admin commands, address checks), following
/// RFC 5321 §4.1.2 and, when UTF-8 is allowed, RFC 6531 §3.3.
///
/// ```
/// Mailbox        = Local-part "@" ( Domain / address-literal )
/// Local-part     = Dot-string / Quoted-string
/// Dot-string     = Atom *("."  Atom)
/// Atom           = 1*atext
/// Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
/// QcontentSMTP   = qtextSMTP / quoted-pairSMTP
/// Domain         = sub-domain *("." sub-domain)
/// sub-domain     = Let-dig [Ldh-str]
/// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]"
/// ```
public struct EmailAddress: Hashable, Sendable, CustomStringConvertible {
    /// The local part as written, with quotes removed and quoted-pairs resolved.
    public let localPart: String
    /// The domain, or the address literal with its brackets (`[192.0.2.1]`).
    public let domain: String

    public init(localPart: String, domain: String) {
        self.localPart = localPart
        self.domain = domain
    }

    /// The domain in its ASCII (A-label) form, lower case: domains compare case-insensitively (RFC 5321 §2.4),
    /// and a U-label and its A-label are the same domain.
    public var normalizedDomain: String { Domain.canonical(domain) }

    /// `local@domain`, quoting the local part when it is not a dot-string.
    public var description: String {
        let local = EmailAddress.isDotString(localPart) ? localPart : EmailAddress.quote(localPart)
        return "\(local)@\(domain)"
    }

    /// The address that mailbox lookups use: the local part as given (lower-cased, since Tern treats
    /// local parts case-insensitively like Postfix and Dovecot do) and the domain in lower case.
    public var canonical: String { "\(localPart.lowercased())@\(normalizedDomain)" }

    /// Whether the address needs SMTPUTF8 (RFC 6531) to be carried.
    public var needsSMTPUTF8: Bool {
        localPart.utf8.contains { $0 >= 0x80 } || domain.utf8.contains { $0 >= 0x80 }
    }

    /// Parses a mailbox. `allowUTF8` enables RFC 6531 (SMTPUTF8) syntax.
    public static func parse(_ text: String, allowUTF8: Bool = true) throws(AddressSyntaxError) -> EmailAddress {
        try parse(Array(text.utf8), allowUTF8: allowUTF8)
    }

    public static func parse(_ bytes: [UInt8], allowUTF8: Bool = true) throws(AddressSyntaxError) -> EmailAddress {
        guard !bytes.isEmpty else { throw .empty }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
        guard bytes.count <= Limits.maxPathLength - 2 else { throw .tooLong }
        var index = 0
        let local = try parseLocalPart(bytes, &index, allowUTF8: allowUTF8)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "@") else {
            throw index < bytes.count ? .unexpectedCharacter(at: index, in: "the local part") : .missingAt
        }
        index += 1
        let domain = try parseDomainOrLiteral(bytes, &index, allowUTF8: allowUTF8)
        guard index == bytes.count else { throw .unexpectedCharacter(at: index, in: "the domain") }
        return EmailAddress(localPart: local, domain: domain)
    }

    // MARK: local part

    static func parseLocalPart(_ b: [UInt8], _ i: inout Int, allowUTF8: Bool) throws(AddressSyntaxError) -> String {
        let start = i
        var out: [UInt8] = []
        if i < b.count, b[i] == UInt8(ascii: "\"") {
            i += 1
            var closed = false
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                if c == UInt8(ascii: "\\") {
                    // quoted-pairSMTP = %d92 %d32-126
                    guard i + 1 < b.count, (32...126).contains(b[i + 1]) else { throw .badQuotedString }
                    out.append(b[i + 1]); i += 2; continue
                }
                // qtextSMTP = %d32-33 / %d35-91 / %d93-126 (plus UTF8-non-ascii with RFC 6531)
                if (32...126).contains(c) || (allowUTF8 && c >= 0x80) {
                    out.append(c); i += 1; continue
                }
                throw .badQuotedString
            }
            guard closed else { throw .badQuotedString }
        } else {
            var atomLength = 0
            while i < b.count, b[i] != UInt8(ascii: "@") {
                let c = b[i]
                if c == UInt8(ascii: ".") {
                    guard atomLength > 0 else { throw .emptyAtom }
                    atomLength = 0
                } else if isAtext(c) || (allowUTF8 && c >= 0x80) {
                    atomLength += 1
                } else if c >= 0x80 {
                    throw .utf8NotAllowed
                } else {
                    throw .unexpectedCharacter(at: i, in: "the local part")
                }
                out.append(c); i += 1
            }
            guard !out.isEmpty else { throw .emptyLocalPart }
            guard atomLength > 0 else { throw .emptyAtom }
        }
        // RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
        guard i - start <= Limits.maxLocalPartLength else { throw .localPartTooLong }
        guard let text = String(validating: out, as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }

    // MARK: domain

    static func parseDomainOrLiteral(_ b: [UInt8], _ i: inout Int, allowUTF8: Bool) throws(AddressSyntaxError) -> String {
        guard i < b.count else { throw .emptyDomain }
        if b[i] == UInt8(ascii: "[") {
            guard let close = b[i...].firstIndex(of: UInt8(ascii: "]")) else { throw .badAddressLiteral }
            let inner = String(decoding: b[(i + 1)..<close], as: UTF8.self)
            guard AddressLiteral.isValid(inner) else { throw .badAddressLiteral }
            i = close + 1
            return "[\(inner)]"
        }
        let start = i
        while i < b.count, b[i] != UInt8(ascii: ">"), b[i] != UInt8(ascii: " ") { i += 1 }
        let text = b[start..<i]
        return try Domain.validate(Array(text), allowUTF8: allowUTF8)
    }

    // MARK: helpers

    /// atext (RFC 5322 §3.2.3): ALPHA / DIGIT / "!#$%&'*+-/=?^_`{|}~"
    public static func isAtext(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-/=?^_`{|}~".utf8.contains(c)
        }
    }

    /// A local part that goes unquoted (RFC 5321 §4.1.2 Dot-string; UTF-8 allowed, RFC 6531).
    public static func isDotString(_ s: String) -> Bool {
        // Octet by octet (String's `contains("..")` goes through Foundation's string search: every address written
        // out, several per message, paid for it): no dot first, last or after another.
        let dot = UInt8(ascii: ".")
        var previous = dot
        for c in s.utf8 {
            if c == dot { if previous == dot { return false } } else if !(isAtext(c) || c >= 0x80) { return false }
            previous = c
        }
        return previous != dot
    }

    /// A local part as a Quoted-string (`"` and `\` escaped). Scalar by scalar: a quote followed by a combining mark
    /// is one Character, which a Character comparison would not see as a quote.
    public static func quote(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        out.append("\"")
        for scalar in s.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { out.append("\\") }
            out.append(scalar)
        }
        out.append("\"")
        return String(out)
    }
}

/// Domain name syntax (RFC 5321 §4.1.2, RFC 1035 limits; U-labels per RFC 6531 when allowed).
public enum Domain {
    /// Validates a domain and returns it unchanged. Labels are 1–63 octets, the name at most 255.
    public static func validate(_ b: [UInt8], allowUTF8: Bool) throws(AddressSyntaxError) -> String {
        guard !b.isEmpty else { throw .emptyDomain }
        guard b.count <= Limits.maxDomainLength else { throw .domainTooLong }
        var label: [UInt8] = []
        var labels = 0
        func finish(_ label: [UInt8]) throws(AddressSyntaxError) {
            guard !label.isEmpty else { throw .emptyLabel }
            guard label.count <= 63 else { throw .labelTooLong }
            // sub-domain = Let-dig [Ldh-str]: no hyphen at either end
            guard label.first != UInt8(ascii: "-"), label.last != UInt8(ascii: "-") else { throw .hyphenAtLabelEdge }
        }
        for c in b {
            if c == UInt8(ascii: ".") {
                try finish(label); labels += 1; label.removeAll(keepingCapacity: true); continue
            }
            let ldh = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "-")
            if ldh { label.append(c); continue }
            if c >= 0x80 {
                guard allowUTF8 else { throw .utf8NotAllowed }
                label.append(c); continue
            }
            throw .badDomainCharacter(Character(Unicode.Scalar(c)))
        }
        try finish(label)
        guard let text = String(validating: b, as: UTF8.self) else { throw .invalidUTF8 }
        return text
    }

    public static func validate(_ s: String, allowUTF8: Bool = true) throws(AddressSyntaxError) -> String {
        try validate(Array(s.utf8), allowUTF8: allowUTF8)
    }

    /// The form Tern stores and compares: IDNA A-labels, lower case (address literals just lower-cased).
    public static func canonical(_ s: String) -> String {
        IDNA.toASCII(s) ?? s.lowercased()
    }
}

/// Address literals: `[192.0.2.1]`, `[IPv6:2001:db8::1]`, `[tag:content]` (RFC 5321 §4.1.3).
public enum AddressLiteral {
    public static func isValid(_ inner: String) -> Bool {
        if isIPv4(inner) { return true }
        if inner.lowercased().hasPrefix("ipv6:") { return isIPv6(String(inner.dropFirst(5))) }
        // General-address-literal = Standardized-tag ":" 1*dcontent; no tags are registered, so refuse.
        return false
    }

    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCIIDigit) && Int(p)! <= 255
        }
    }

    public static func isIPv6(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 45 else { return false }
        var text = Substring(s)
        var groupsNeeded = 8
        // An embedded IPv4 address takes the last two groups.
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard isIPv4(String(text[text.index(after: lastColon)...])) else { return false }
            text = text[...lastColon]
            if text.hasSuffix("::") { } else { text = text.dropLast() }
            groupsNeeded = 6
        }
        var halves: [String] = []
        if let r = text.firstRange(of: "::") {
            halves = [String(text[..<r.lowerBound]), String(text[r.upperBound...])]
            if halves[1].contains("::") { return false }
        } else {
            halves = [String(text)]
        }
        func groups(_ h: String) -> [Substring]? {
            if h.isEmpty { return [] }
            let g = h.split(separator: ":", omittingEmptySubsequences: false)
            guard g.allSatisfy({ !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isHexDigit) }) else { return nil }
            return g
        }
        if halves.count == 1 {
            guard let g = groups(halves[0]) else { return false }
            return g.count == groupsNeeded
        }
        guard let a = groups(halves[0]), let b = groups(halves[1]) else { return false }
        return a.count + b.count < groupsNeeded
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// Why an address was refused, in words an admin or a client can act on.
public enum AddressSyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case tooLong
    case missingAt
    case emptyLocalPart
    case emptyAtom
    case localPartTooLong
    case badQuotedString
    case unexpectedCharacter(at: Int, in: String)
    case utf8NotAllowed
    case invalidUTF8
    case emptyDomain
    case domainTooLong
    case emptyLabel
    case labelTooLong
    case hyphenAtLabelEdge
    case badDomainCharacter(Character)
    case badAddressLiteral

    public var description: String {
        switch self {
        case .empty: return "the address is empty"
        case .tooLong: return "the address is longer than 254 octets"
        case .missingAt: return "the address has no @"
        case .emptyLocalPart: return "the local part (before @) is empty"
        case .emptyAtom: return "the local part has an empty dot-separated part (leading, trailing or double dot)"
        case .localPartTooLong: return "the local part is longer than 64 octets"
        case .badQuotedString: return "the quoted local part is malformed"
        case .unexpectedCharacter(let at, let part): return "unexpected character at position \(at + 1) in \(part)"
        case .utf8NotAllowed: return "non-ASCII characters need SMTPUTF8"
        case .invalidUTF8: return "the address is not valid UTF-8"
        case .emptyDomain: return "the domain is empty"
        case .domainTooLong: return "the domain is longer than 255 octets"
        case .emptyLabel: return "the domain has an empty label (leading, trailing or double dot)"
        case .labelTooLong: return "a domain label is longer than 63 octets"
        case .hyphenAtLabelEdge: return "a domain label starts or ends with a hyphen"
        case .badDomainCharacter(let c): return "the domain contains \"\(c.unicodeScalars.first!.escaped(asASCII: true))\", which is not allowed in a host name"
        case .badAddressLiteral: return "the address literal is not a valid IPv4 or IPv6 address"
        }
    }
}
