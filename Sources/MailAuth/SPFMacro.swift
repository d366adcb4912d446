import Foundation

/// SPF macro strings (RFC 7208 §7): `%{s}`, `%{l}`, `%{o}`, `%{d}`, `%{i}`, `%{p}`, `%{v}`, `%{h}`, and in explanations
/// also `%{c}`, `%{r}`, `%{t}`; with a digit count (rightmost labels), `r` (reverse) and delimiters `.-+,/_=`;
/// `%%`, `%_` and `%-` for "%", space and "%20". An upper-case letter URL-encodes the value.
enum SPFMacro {
    struct Context {
        var sender: String
        var local: String
        var senderDomain: String
        var domain: String
        var ip: IPAddress
        var helo: String
        var receiver: String
        var validatedName = "unknown"
        /// %{t}: when the check runs.
        var now: Date
    }

    static let letters: Set<Character> = ["s", "l", "o", "d", "i", "p", "v", "h"]
    static let explanationLetters: Set<Character> = ["c", "r", "t"]

    static func validate(_ text: String, explanation: Bool) throws {
        _ = try parse(text, explanation: explanation)
    }

    /// domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand (§7.1).
    static func validateDomainSpec(_ text: String) throws {
        let pieces = try parse(text, explanation: false)
        guard let last = pieces.last else { throw Evaluation.Stop.perm("empty domain-spec") }
        if case .macro = last { return }
        // The literal end must be a name ending in a toplabel (the whole spec, expanded, need not be checked here).
        var literal = ""
        if case .literal(let l) = last { literal = l }
        if literal.hasSuffix(".") { literal.removeLast() }
        guard let dot = literal.lastIndex(of: ".") else {
            // "%{d}com"-like ends are not valid; a lone label after a macro is "." toplabel only when a dot precedes.
            throw Evaluation.Stop.perm("domain-spec \(text) does not end in a top-level label")
        }
        let top = String(literal[literal.index(after: dot)...])
        guard SPFDomain.hasTopLabel("x." + top) else { throw Evaluation.Stop.perm("domain-spec \(text) does not end in a top-level label") }
    }

    enum Piece {
        case literal(String)
        case macro(letter: Character, upper: Bool, digits: Int?, reverse: Bool, delimiters: Set<Character>)
    }

    static func parse(_ text: String, explanation: Bool) throws -> [Piece] {
        var out: [Piece] = []
        var i = text.startIndex
        var literal = ""
        while i < text.endIndex {
            let c = text[i]
            guard c == "%" else {
                guard explanation || (c.isASCII && (c.asciiValue ?? 0) >= 0x21 && c != "%") else { throw Evaluation.Stop.perm("bad character in macro string") }
                literal.append(c)
                i = text.index(after: i)
                continue
            }
            let n = text.index(after: i)
            guard n < text.endIndex else { throw Evaluation.Stop.perm("lone % in macro string") }
            switch text[n] {
            case "%": literal.append("%"); i = text.index(after: n)
            case "_": literal.append(" "); i = text.index(after: n)
            case "-": literal.append("%20"); i = text.index(after: n)
            case "{":
                guard let close = text[n...].firstIndex(of: "}") else { throw Evaluation.Stop.perm("unclosed macro") }
                let body = text[text.index(after: n)..<close]
                guard let letterChar = body.first else { throw Evaluation.Stop.perm("empty macro") }
                let letter = Character(letterChar.lowercased())
                guard letters.contains(letter) || (explanation && explanationLetters.contains(letter)) else {
                    throw Evaluation.Stop.perm("unknown macro letter \(letterChar)")
                }
                var rest = body.dropFirst()
                let digitText = rest.prefix { $0.isNumber }
                rest = rest.dropFirst(digitText.count)
                var digits: Int?
                if !digitText.isEmpty {
                    guard let d = Int(digitText), d > 0, d <= 128 else { throw Evaluation.Stop.perm("bad macro digit count") }
                    digits = d
                }
                var reverse = false
                if rest.first == "r" || rest.first == "R" { reverse = true; rest = rest.dropFirst() }
                var delimiters = Set<Character>()
                for d in rest {
                    guard ".-+,/_=".contains(d) else { throw Evaluation.Stop.perm("bad macro delimiter \(d)") }
                    delimiters.insert(d)
                }
                if !literal.isEmpty { out.append(.literal(literal)); literal = "" }
                out.append(.macro(letter: letter, upper: letterChar.isUppercase, digits: digits, reverse: reverse,
                                  delimiters: delimiters.isEmpty ? ["."] : delimiters))
                i = text.index(after: close)
            default:
                throw Evaluation.Stop.perm("bad macro %\(text[n])")
            }
        }
        if !literal.isEmpty { out.append(.literal(literal)) }
        return out
    }

    static func expand(_ text: String, context: Context, explanation: Bool) async throws -> String {
        var out = ""
        for piece in try parse(text, explanation: explanation) {
            switch piece {
            case .literal(let s):
                out += s
            case .macro(let letter, let upper, let digits, let reverse, let delimiters):
                let value: String
                switch letter {
                case "s": value = context.sender
                case "l": value = context.local
                case "o": value = context.senderDomain
                case "d": value = context.domain
                case "i": value = context.ip.macroForm
                case "p": value = context.validatedName
                case "v": value = context.ip.isV4 ? "in-addr" : "ip6"
                case "h": value = context.helo
                case "c": value = context.ip.readable
                case "r": value = context.receiver
                case "t": value = String(Int(context.now.timeIntervalSince1970))
                default: value = ""
                }
                var parts = value.split(whereSeparator: { delimiters.contains($0) }).map(String.init)
                if value.isEmpty { parts = [""] }
                if reverse { parts.reverse() }
                if let digits, digits < parts.count { parts = Array(parts.suffix(digits)) }
                var joined = parts.joined(separator: ".")
                if upper { joined = urlEncode(joined) }
                out += joined
            }
        }
        return out
    }

    /// §7.3: upper-case macros escape everything outside the URI unreserved set.
    static func urlEncode(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(UnicodeScalar(b))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) { out.append(c) } else { out += String(format: "%%%02X", b) }
        }
        return out
    }
}
