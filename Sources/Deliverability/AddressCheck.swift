import Foundation
import MailCore

/// What `tern check address` says about one address: valid or not (with the reason), and its normalised forms.
public struct AddressVerdict: Sendable, Equatable {
    /// The text as given.
    public var input: String
    /// Why the address is refused; nil when it is valid.
    public var problem: String?
    /// The kind of problem, for reports that count them: syntax, no-dot, top-level-domain, special-use, ip-literal,
    /// unsafe-characters, idna, too-long, brackets.
    public var problemKind: String?
    /// `local@domain` with the domain lower-cased (Unicode form), the local part unquoted where quotes are not needed.
    public var normalized: String?
    /// The same with the domain as IDNA A-labels; nil when the local part itself needs SMTPUTF8.
    public var ascii: String?
    /// The domain in IDNA A-labels, lower case: the form lookups and duplicate detection use.
    public var asciiDomain: String?
    /// The address can only be carried with SMTPUTF8 (RFC 6531): its local part is not ASCII.
    public var smtputf8 = false
    /// What normalising changed (display name dropped, quotes removed, domain lower-cased…).
    public var notes: [String] = []

    /// The form lists are de-duplicated by: local part lower-cased (Tern, Postfix and Dovecot match local parts
    /// case-insensitively) and the domain's A-label form.
    public var duplicateKey: String?

    public var isValid: Bool { problem == nil }
}

/// Address checking for lists and forms: the syntax of RFC 5321 (with RFC 6531 for internationalised addresses), as
/// Tern's SMTP server parses it, plus what an address needs to receive mail on the internet: a domain with a dot and a
/// real top-level domain, no special-use names (RFC 6761, RFC 7686), no bracketed IP addresses, no Unicode that
/// displays misleadingly (controls, invisible format characters, unassigned code points, compatibility forms that
/// IDNA does not allow). Pure: the DNS part is `DomainCheck`.
public enum AddressCheck {
    /// Top-level names that never receive internet mail: RFC 6761 (invalid, localhost, test), RFC 6762 (local), RFC
    /// 7686 (onion), and arpa (infrastructure).
    public static let specialUseTLDs: Set<String> = ["arpa", "invalid", "local", "localhost", "onion", "test"]

    public static func check(_ input: String) -> AddressVerdict {
        var v = AddressVerdict(input: input)
        do {
            try run(input, &v)
        } catch {
            v.problem = error.text
            v.problemKind = error.kind
            v.normalized = nil
            v.ascii = nil
            v.asciiDomain = nil
            v.duplicateKey = nil
            v.smtputf8 = false
        }
        return v
    }

    struct Refusal: Error {
        var text: String
        var kind: String
        init(_ kind: String, _ text: String) {
            self.kind = kind
            self.text = text
        }
    }

    static func run(_ input: String, _ v: inout AddressVerdict) throws(Refusal) {
        var text = try unwrapNameAddr(input, &v)
        if !text.contains("@") {
            if text.contains("＠") { throw Refusal("syntax", "it has a full-width at-sign (＠) instead of @") }
            if text.contains("﹫") { throw Refusal("syntax", "it has a small commercial at (﹫) instead of @") }
            if !text.isEmpty { throw Refusal("syntax", "the address has no @") }
        }
        let isASCII = text.utf8.allSatisfy { $0 < 0x80 }
        if !isASCII {
            try unsafeCharacters(text)
            let nfc = text.precomposedStringWithCanonicalMapping
            // Swift's == treats canonically equivalent strings as equal: compare the code points.
            if !nfc.unicodeScalars.elementsEqual(text.unicodeScalars) {
                v.notes.append("Unicode normalised (NFC)")
                text = nfc
            }
        }
        let address: EmailAddress
        do {
            address = try EmailAddress.parse(text, allowUTF8: true)
        } catch {
            throw Refusal("syntax", error.description)
        }
        let domain = address.domain
        if domain.hasPrefix("[") {
            throw Refusal("ip-literal", "the domain is a bracketed IP address (\(domain)), which mail on the internet does not use")
        }
        let ascii = try checkDomain(domain)
        var local = address.localPart
        if local.lowercased() == "postmaster" && local != "postmaster" {
            // RFC 5321 §4.5.1: postmaster is case-insensitive.
            local = "postmaster"
            v.notes.append("postmaster lower-cased")
        }
        let normalizedAddress = EmailAddress(localPart: local, domain: isASCII && !ascii.contains("xn--") ? ascii : IDNA.toUnicode(ascii))
        if text.hasPrefix("\"") && !normalizedAddress.description.hasPrefix("\"") { v.notes.append("unneeded quotes removed") }
        if domain != normalizedAddress.domain { v.notes.append("domain lower-cased") }
        let asciiAddress = EmailAddress(localPart: local, domain: ascii).description
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets, so an address at most 254.
        let octets = asciiAddress.utf8.count, limit = Limits.maxPathLength - 2
        if octets > limit { throw Refusal("too-long", "the address is \(octets - limit) octet\(octets == limit + 1 ? "" : "s") too long (\(limit) at most, with the domain in IDNA form)") }
        v.normalized = normalizedAddress.description
        v.asciiDomain = ascii
        v.duplicateKey = asciiAddress.lowercased()
        v.smtputf8 = local.utf8.contains { $0 >= 0x80 }
        v.ascii = v.smtputf8 ? nil : asciiAddress
    }

    /// `Name <addr>` and `<addr>` (RFC 5322 name-addr): the address, with a note that the display name was dropped.
    static func unwrapNameAddr(_ input: String, _ v: inout AddressVerdict) throws(Refusal) -> String {
        guard let open = input.firstIndex(of: "<") else {
            if input.hasSuffix(">") && !input.hasPrefix("\"") { throw Refusal("brackets", "a closing angle bracket without an opening one") }
            return input
        }
        // An opening bracket inside a quoted local part is part of the address.
        if input.hasPrefix("\""), let close = input.dropFirst().firstIndex(of: "\""), close > open { return input }
        guard let close = input.lastIndex(of: ">"), close > open else {
            throw Refusal("brackets", "an opening angle bracket without a closing one")
        }
        guard input.index(after: close) == input.endIndex else { throw Refusal("brackets", "text after the address's closing angle bracket") }
        let name = input[..<open].trimmingCharacters(in: .whitespaces)
        let inner = String(input[input.index(after: open)..<close])
        if inner.contains("<") || inner.contains(">") { throw Refusal("brackets", "more than one pair of angle brackets") }
        if !name.isEmpty {
            let quoted = name.hasPrefix("\"") && name.hasSuffix("\"") && name.count >= 2
            // An unquoted display name is words of atext (RFC 5322 phrase); anything else needs quotes.
            if !quoted, let bad = name.unicodeScalars.first(where: { $0 != " " && !($0.value >= 0x80 || EmailAddress.isAtext(UInt8($0.value))) }) {
                throw Refusal("brackets", "the display name has \(describe(bad)), which needs quotes")
            }
            v.notes.append("display name dropped")
        } else {
            v.notes.append("angle brackets removed")
        }
        return inner
    }

    /// Characters that the RFCs allow in UTF-8 addresses but that no real address has and that can hide or disguise
    /// text: controls, format characters (zero-width, bidi overrides), separators, surrogates, private use, unassigned
    /// code points, and a combining mark at the start of a part or on an ASCII sign ("<" with U+0338 displays as "≮"
    /// and normalises to it).
    static func unsafeCharacters(_ text: String) throws(Refusal) {
        var bad: [Unicode.Scalar] = []
        var atStart = true
        var previous: Unicode.Scalar = "@"
        for s in text.unicodeScalars {
            defer {
                atStart = s == "@" || s == "."
                previous = s
            }
            guard s.value >= 0x80 else { continue }
            if previous.value < 0x80, !previous.properties.isAlphabetic, !("0"..."9").contains(previous),
               [.nonspacingMark, .spacingMark, .enclosingMark].contains(s.properties.generalCategory) {
                bad.append(s)
                continue
            }
            switch s.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned, .spaceSeparator, .lineSeparator, .paragraphSeparator:
                bad.append(s)
            case .nonspacingMark, .spacingMark, .enclosingMark:
                if atStart { bad.append(s) }
            default:
                break
            }
        }
        if !bad.isEmpty {
            throw Refusal("unsafe-characters", "it contains unsafe characters: \(bad.prefix(5).map(describe).joined(separator: ", "))")
        }
    }

    /// The domain's rules beyond RFC 5321 syntax; returns its A-label form.
    static func checkDomain(_ domain: String) throws(Refusal) -> String {
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard labels.count >= 2 else { throw Refusal("no-dot", "the domain \(domain) has no dot: it is not a domain on the internet") }
        for label in labels {
            if label.unicodeScalars.contains(where: { $0.value >= 0x80 }) {
                // IDNA2008 takes no compatibility forms (full-width letters and dots, circled digits, ligatures).
                let nfkc = label.precomposedStringWithCompatibilityMapping
                if !nfkc.unicodeScalars.elementsEqual(label.unicodeScalars) {
                    throw Refusal("idna", "the domain has characters IDNA does not allow (\(label) would be \(nfkc))")
                }
                if let s = label.unicodeScalars.first(where: { s in
                    let c = s.properties.generalCategory
                    return s.value >= 0x80 && !(c == .lowercaseLetter || c == .uppercaseLetter || c == .titlecaseLetter
                        || c == .otherLetter || c == .modifierLetter || c == .nonspacingMark || c == .spacingMark
                        || c == .decimalNumber)
                }) {
                    throw Refusal("idna", "the domain has \(describe(s)), which is not a letter or digit")
                }
            } else {
                let lower = label.lowercased()
                // IDNA2008 reserves "??--" labels for encodings; only xn-- (Punycode) is defined.
                if lower.count >= 4, lower.dropFirst(2).hasPrefix("--") {
                    guard lower.hasPrefix("xn--") else { throw Refusal("idna", "the domain label \(label) has -- in the third and fourth places, which only xn-- labels may") }
                    guard let decoded = Punycode.decode(String(lower.dropFirst(4))),
                          decoded.unicodeScalars.contains(where: { $0.value >= 0x80 }), IDNA.toASCII(decoded) == lower else {
                        throw Refusal("idna", "the domain label \(label) is not a valid IDNA A-label")
                    }
                }
            }
        }
        let tld = labels.last!.lowercased()
        if tld.allSatisfy(\.isASCII) {
            guard tld.allSatisfy(\.isLetter) || (tld.hasPrefix("xn--") && tld.dropFirst(4).allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }) else {
                throw Refusal("top-level-domain", "the domain ends in .\(labels.last!), which is not a top-level domain")
            }
        }
        if specialUseTLDs.contains(tld) {
            throw Refusal("special-use", "the domain is under .\(tld), a special-use name that never receives internet mail")
        }
        guard let ascii = IDNA.toASCII(domain) else { throw Refusal("idna", "the domain cannot be written in IDNA form") }
        if ascii.utf8.count > 253 {
            throw Refusal("too-long", "the domain is \(ascii.utf8.count - 253) octets too long in IDNA form (253 at most)")
        }
        return ascii
    }

    static func describe(_ s: Unicode.Scalar) -> String {
        let code = String(format: "U+%04X", s.value)
        if s.value >= 0x21 && s.value < 0x7F { return "'\(Character(s))'" }
        if let name = s.properties.name { return "\(code) \(name)" }
        return code
    }
}
