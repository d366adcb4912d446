import MailCore
import SieveLanguage
import Foundation

/// RFC 5229 variables: names, `${…}` expansion in strings, and `set`'s modifiers; and RFC 5228 §2.4.2.4's encoded
/// characters, decoded once when a script is compiled.
enum SieveVariables {
    /// Bounds: octets a value keeps, and how many variables a script may set.
    static let maxValue = 4096
    static let maxCount = 255

    /// identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_") (RFC 5228 §8.1).
    static func isIdentifier(_ s: String) -> Bool { SieveValidator.isIdentifier(s) }

    /// Replaces each `${name}` (a variable, any case; an unknown one is empty) and `${N}` (a match variable) in `s`
    /// (RFC 5229 §3). Anything else that looks like a reference is left as it is.
    /// Linear in `s`: a reference's name is read only as far as it can go (letters, digits, "_" and "."), and the result
    /// stops growing once it is longer than a value may be.
    static func expand(_ s: String, variables: [String: String], matches: [String]) -> String {
        guard s.contains("${") else { return s }
        let scalars = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        var octets = 0
        func append(_ text: some Sequence<Unicode.Scalar>) {
            for c in text {
                out.append(c)
                octets += UTF8.width(c)
                if octets > maxValue { return }
            }
        }
        var i = 0
        while i < scalars.count && octets <= maxValue {
            if scalars[i] == "$", i + 1 < scalars.count, scalars[i + 1] == "{" {
                var close = i + 2
                // Each scalar is read here at most twice: a name holds neither "$" nor "{".
                while close < scalars.count, Self.nameScalar(scalars[close].value) { close += 1 }
                if close < scalars.count, scalars[close] == "}" {
                    let name = String(String.UnicodeScalarView(scalars[(i + 2)..<close]))
                    if !name.isEmpty, name.unicodeScalars.allSatisfy(\.isASCIIDigit) {
                        let n = Int(name.prefix(4)) ?? Int.max
                        append((n < matches.count ? matches[n] : "").unicodeScalars)
                        i = close + 1
                        continue
                    }
                    // Of the namespaces (a.b), RFC 6609's global. is known; others are left as written.
                    if isIdentifier(name) || name.lowercased().hasPrefix("global.") && isIdentifier(String(name.dropFirst(7))) {
                        append((variables[name.lowercased()] ?? "").unicodeScalars)
                        i = close + 1
                        continue
                    }
                }
            }
            append(CollectionOfOne(scalars[i]))
            i += 1
        }
        return clip(String(out))
    }

    /// What a reference's name may hold: ASCII letters, digits, "_", and "." (of a namespace).
    static func nameScalar(_ v: UInt32) -> Bool {
        (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || (v >= 0x30 && v <= 0x39) || v == 0x5F || v == 0x2E
    }

    /// `set`'s modifiers, highest precedence first (RFC 5229 §4.1).
    static func modify(_ value: String, _ tags: Set<String>) -> String {
        var v = value
        if tags.contains("lower") { v = asciiMap(v, upper: false) }
        if tags.contains("upper") { v = asciiMap(v, upper: true) }
        if tags.contains("lowerfirst"), let f = v.first { v = asciiMap(String(f), upper: false) + v.dropFirst() }
        if tags.contains("upperfirst"), let f = v.first { v = asciiMap(String(f), upper: true) + v.dropFirst() }
        if tags.contains("quotewildcard") {
            v = String(v.flatMap { "*?\\".contains($0) ? ["\\", $0] : [$0] })
        }
        // RFC 5435 §6 (precedence 15): percent-encoding for a URI, all but the unreserved characters.
        if tags.contains("encodeurl") {
            v = v.utf8.map { b in
                (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || "-._~".utf8.contains(b)
                    ? String(UnicodeScalar(b)) : String(format: "%%%02X", b)
            }.joined()
        }
        if tags.contains("length") { v = String(v.unicodeScalars.count) }
        return clip(v)
    }

    /// The case change of RFC 5229's modifiers: ASCII letters only (§4.1.3).
    static func asciiMap(_ s: String, upper: Bool) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.map { c in
            upper ? (("a"..."z").contains(c) ? Unicode.Scalar(c.value - 32)! : c) : (("A"..."Z").contains(c) ? Unicode.Scalar(c.value + 32)! : c)
        }))
    }

    /// A value cut to `maxValue` octets, at a character boundary.
    static func clip(_ s: String) -> String {
        guard s.utf8.count > maxValue else { return s }
        var out = ""
        for c in s {
            guard out.utf8.count + c.utf8.count <= maxValue else { break }
            out.append(c)
        }
        return out
    }

    /// RFC 5228 §2.4.2.4: `${hex: 4A 4b}` is the octets given, `${unicode: 1F600}` the code points; a sequence that is
    /// not of that form stays as written, a code point outside Unicode's is an error.
    static func decodeEncoded(_ s: String) -> String? {
        guard s.contains("${") else { return s }
        var out = ""
        var rest = Substring(s)
        while let start = rest.range(of: "${") {
            out += rest[..<start.lowerBound]
            let after = rest[start.upperBound...]
            // Only "hex:" or "unicode:" (any case), then hex digits and blanks to the "}": read no further than that, so
            // that a string of many "${" is read once, not once per "${".
            let lowered = after.prefix(8).lowercased()
            let kindLength = lowered.hasPrefix("hex:") ? 3 : lowered.hasPrefix("unicode:") ? 7 : 0
            var end = after.index(after.startIndex, offsetBy: kindLength + 1, limitedBy: after.endIndex) ?? after.endIndex
            while kindLength > 0, end < after.endIndex, after[end].isHexDigit || after[end] == " " || after[end] == "\t" || after[end].isNewline {
                end = after.index(after: end)
            }
            guard kindLength > 0, end < after.endIndex, after[end] == "}", let colon = after[..<end].firstIndex(of: ":") else {
                out += "${"
                rest = after
                continue
            }
            let close = end
            // The name follows "${" at once (blanks may follow the colon); a hex item is one or two digits.
            let kind = after[..<colon].lowercased()
            let items = after[after.index(after: colon)..<close].split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline })
            var decoded: String?
            if kind == "hex", items.allSatisfy({ $0.count <= 2 && UInt32($0, radix: 16) != nil }) {
                var bytes: [UInt8] = []
                for item in items { bytes.append(UInt8(truncatingIfNeeded: UInt32(item, radix: 16)!)) }
                decoded = String(decoding: bytes, as: UTF8.self)
            } else if kind == "unicode", items.allSatisfy({ $0.count <= 8 && UInt32($0, radix: 16) != nil }) {
                var text = String.UnicodeScalarView()
                for item in items {
                    guard let scalar = Unicode.Scalar(UInt32(item, radix: 16)!) else { return nil }
                    text.append(scalar)
                }
                decoded = String(text)
            }
            if let decoded {
                out += decoded
                rest = after[after.index(after: close)...]
            } else {
                out += "${"
                rest = after
            }
        }
        return out + rest
    }
}

/// A mailto: URI (RFC 6068) as RFC 5436 uses it: the recipients (to, cc, bcc), the subject and body, and other header
/// fields it asks for, except those a notification must set itself.
public struct SieveMailto: Sendable {
    public var to: [String]
    public var cc: [String]
    public var bcc: [String]
    public var subject: String?
    public var body: String?
    public var headers: [(name: String, value: String)]

    /// Fields a URI may not set (RFC 5436 §2.7: the notification's own, and the trace and routing ones).
    static let reserved: Set<String> = ["from", "sender", "auto-submitted", "received", "return-path", "message-id", "date", "to", "cc",
                                        "bcc", "subject", "body", "mime-version", "content-type", "content-transfer-encoding"]

    /// nil: not a mailto: URI with at least one valid recipient.
    public static func parse(_ uri: String) -> SieveMailto? {
        guard uri.lowercased().hasPrefix("mailto:") else { return nil }
        let rest = uri.dropFirst(7)
        let (path, query) = rest.firstIndex(of: "?").map { (rest[..<$0], rest[rest.index(after: $0)...]) } ?? (rest, "")
        func decode(_ s: Substring) -> String? { String(s).removingPercentEncoding }
        // Each an address as SMTP takes it (RFC 5321 syntax): they go into the notice's To and Cc fields and into RCPT TO,
        // so a CR or LF (percent-encoded in the URI) or anything else an address cannot hold refuses the whole URI.
        func addresses(_ s: String) -> [String]? {
            let list = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            var parsed: [String] = []
            for a in list {
                guard let address = try? EmailAddress.parse(a) else { return nil }
                parsed.append(address.description)
            }
            return parsed
        }
        guard let toText = decode(path), let to = addresses(toText) else { return nil }
        var m = SieveMailto(to: to, cc: [], bcc: [], subject: nil, body: nil, headers: [])
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0])?.lowercased(), let value = decode(parts.count > 1 ? parts[1] : "") else { return nil }
            switch name {
            case "to": guard let a = addresses(value) else { return nil }; m.to += a
            case "cc": guard let a = addresses(value) else { return nil }; m.cc += a
            case "bcc": guard let a = addresses(value) else { return nil }; m.bcc += a
            case "subject": m.subject = value
            case "body": m.body = value
            default:
                if !reserved.contains(name), !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) {
                    m.headers.append((name, value))
                }
            }
        }
        return m.to.isEmpty && m.cc.isEmpty && m.bcc.isEmpty ? nil : m
    }
}
