import Foundation

/// RFC 5229 variables: names, `${…}` expansion in strings, and `set`'s modifiers; and RFC 5228 §2.4.2.4's encoded
/// characters, decoded once when a script is compiled.
enum SieveVariables {
    /// Bounds: octets a value keeps, and how many variables a script may set.
    static let maxValue = 4096
    static let maxCount = 255

    /// identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_") (RFC 5228 §8.1).
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCIILetter || $0.isASCIIDigit || $0 == "_" }
    }

    /// Replaces each `${name}` (a variable, any case; an unknown one is empty) and `${N}` (a match variable) in `s`
    /// (RFC 5229 §3). Anything else that looks like a reference is left as it is.
    static func expand(_ s: String, variables: [String: String], matches: [String]) -> String {
        guard s.contains("${") else { return s }
        let scalars = Array(s.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "$", i + 1 < scalars.count, scalars[i + 1] == "{", let close = scalars[(i + 2)...].firstIndex(of: "}") {
                let name = String(String.UnicodeScalarView(scalars[(i + 2)..<close]))
                if !name.isEmpty, name.unicodeScalars.allSatisfy(\.isASCIIDigit) {
                    let n = Int(name.prefix(4)) ?? Int.max
                    out.append(contentsOf: (n < matches.count ? matches[n] : "").unicodeScalars)
                    i = close + 1
                    continue
                }
                // Of the namespaces (a.b), RFC 6609's global. is known; others are left as written.
                if isIdentifier(name) || name.lowercased().hasPrefix("global.") && isIdentifier(String(name.dropFirst(7))) {
                    out.append(contentsOf: (variables[name.lowercased()] ?? "").unicodeScalars)
                    i = close + 1
                    continue
                }
            }
            out.append(scalars[i])
            i += 1
        }
        return clip(String(out))
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
        if tags.contains("length") { v = String(v.unicodeScalars.count) }
        return clip(v)
    }

    /// The case change of RFC 5229's modifiers: Unicode case mapping, as Pigeonhole does for :lower and :upper.
    static func asciiMap(_ s: String, upper: Bool) -> String { upper ? s.uppercased() : s.lowercased() }

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
            guard let close = after.firstIndex(of: "}"), let colon = after[..<close].firstIndex(of: ":") else {
                out += "${"
                rest = after
                continue
            }
            let kind = after[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let items = after[after.index(after: colon)..<close].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" })
            var decoded: String?
            if kind == "hex", items.allSatisfy({ $0.count <= 8 && UInt32($0, radix: 16) != nil }) {
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

extension Unicode.Scalar {
    var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
