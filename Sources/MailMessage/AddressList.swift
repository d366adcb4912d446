/// RFC 5322 §3.4 address lists, parsed leniently (as found in real mail, not as they should be).
public enum AddressList {
    public enum Item: Hashable, Sendable {
        /// `name <local@domain>` or `local@domain`; `domain` is nil for a bare local part.
        case mailbox(name: String?, local: String, domain: String?)
        case groupStart(String)
        case groupEnd
    }

    public static func parse(_ text: String) -> [Item] {
        parseRouted(text).map(\.item)
    }

    /// The items with the obsolete source route of each mailbox (RFC 5322 §4.4 obs-route, `<@a,@b:local@domain>` gives
    /// "@a,@b"), which IMAP's ENVELOPE reports as the address's adl (RFC 3501 §7.4.2).
    public static func parseRouted(_ text: String) -> [(item: Item, route: String?)] {
        var items: [(item: Item, route: String?)] = []
        var current = ""
        var inQuote = false, inAngle = false, commentDepth = 0
        var inGroup = false
        var escaped = false
        func flush() {
            let chunk = current.trimmingWhitespace()
            current = ""
            guard !chunk.isEmpty else { return }
            if let m = routedMailbox(chunk) { items.append(m) }
        }
        for ch in text {
            if escaped { current.append(ch); escaped = false; continue }
            if ch == "\\" && (inQuote || commentDepth > 0) { current.append(ch); escaped = true; continue }
            if commentDepth > 0 {
                if ch == "(" { commentDepth += 1 } else if ch == ")" { commentDepth -= 1 }
                current.append(ch)
                continue
            }
            if inQuote {
                if ch == "\"" { inQuote = false }
                current.append(ch)
                continue
            }
            switch ch {
            case "\"": inQuote = true; current.append(ch)
            case "(": commentDepth = 1; current.append(ch)
            case "<": inAngle = true; current.append(ch)
            case ">": inAngle = false; current.append(ch)
            case "," where !inAngle: flush()
            case ":" where !inAngle && !inGroup && !current.contains("@"):
                items.append((.groupStart(unquote(stripComments(current)).trimmingWhitespace()), nil))
                current = ""
                inGroup = true
            case ";" where !inAngle && inGroup:
                flush()
                items.append((.groupEnd, nil))
                inGroup = false
            default: current.append(ch)
            }
        }
        flush()
        if inGroup { items.append((.groupEnd, nil)) }
        return items
    }

    static func mailbox(_ chunk: String) -> Item? { routedMailbox(chunk)?.item }

    static func routedMailbox(_ chunk: String) -> (item: Item, route: String?)? {
        var name: String?
        var route: String?
        var spec: String
        // The angle bracket and the comment that count are outside quoted strings: "a<b@c>"@x is one quoted local part.
        if let open = outside(chunk, "<", last: true) {
            let close = chunk[open...].firstIndex(of: ">") ?? chunk.endIndex
            spec = String(chunk[chunk.index(after: open)..<close])
            let display = unquote(stripComments(String(chunk[..<open]))).trimmingWhitespace()
            name = display.isEmpty ? nil : display
            // An obsolete source route: <@a,@b:local@domain>
            if spec.hasPrefix("@"), let colon = spec.firstIndex(of: ":") {
                route = spec[..<colon].filter { !$0.isWhitespace }
                spec = String(spec[spec.index(after: colon)...])
            }
        } else {
            // `local@domain (Display Name)`: the comment is the name.
            if let open = outside(chunk, "(", last: false), let close = chunk.lastIndex(of: ")"), open < close {
                let comment = String(chunk[chunk.index(after: open)..<close]).trimmingWhitespace()
                if !comment.isEmpty { name = comment }
            }
            spec = stripComments(chunk)
        }
        // Folding white space goes, except inside a quoted local part ("quoted local"@example.org keeps its space).
        var inQuote = false, escaped = false
        spec = spec.filter { ch in
            if escaped { escaped = false; return true }
            if ch == "\\" && inQuote { escaped = true; return true }
            if ch == "\"" { inQuote.toggle(); return true }
            return inQuote || (ch != " " && ch != "\t" && ch != "\r" && ch != "\n")
        }
        guard !spec.isEmpty || name != nil else { return nil }
        if let at = spec.lastIndex(of: "@") {
            return (.mailbox(name: name, local: unquote(String(spec[..<at])), domain: String(spec[spec.index(after: at)...])), route)
        }
        return (.mailbox(name: name, local: unquote(spec), domain: nil), route)
    }

    /// Where `target` stands in `chunk` outside quoted strings (and, for anything but a parenthesis, outside comments):
    /// its last place, or its first. A quote or comment that never closes is no quote or comment: the place is then
    /// where the character stands at all (`"PayPal <service@paypal.com>` is still at paypal.com, for DMARC too).
    static func outside(_ chunk: String, _ target: Character, last: Bool) -> String.Index? {
        var found: String.Index?
        var inQuote = false, escaped = false, depth = 0
        for i in chunk.indices {
            let ch = chunk[i]
            if escaped { escaped = false; continue }
            if ch == "\\" && (inQuote || depth > 0) { escaped = true; continue }
            if inQuote { if ch == "\"" { inQuote = false }; continue }
            if ch == target && (depth == 0 || target == "(") {
                found = i
                if !last { return i }
            }
            if ch == "\"" && depth == 0 { inQuote = true } else if ch == "(" { depth += 1 } else if ch == ")" && depth > 0 { depth -= 1 }
        }
        guard !inQuote && depth == 0 else { return last ? chunk.lastIndex(of: target) : chunk.firstIndex(of: target) }
        return found
    }

    static func stripComments(_ s: String) -> String {
        var out = ""
        var depth = 0, inQuote = false, escaped = false
        for ch in s {
            if escaped { if depth == 0 { out.append(ch) }; escaped = false; continue }
            if ch == "\\" { escaped = true; if depth == 0 { out.append(ch) }; continue }
            if depth == 0 && ch == "\"" { inQuote.toggle() }
            if !inQuote && ch == "(" { depth += 1; continue }
            if !inQuote && ch == ")" && depth > 0 { depth -= 1; continue }
            if depth == 0 { out.append(ch) }
        }
        return out
    }

    static func unquote(_ s: String) -> String {
        var t = s.trimmingWhitespace()
        guard t.count >= 2, t.hasPrefix("\""), t.hasSuffix("\"") else { return t }
        t = String(t.dropFirst().dropLast())
        var out = ""
        var escaped = false
        for ch in t {
            if escaped { out.append(ch); escaped = false } else if ch == "\\" { escaped = true } else { out.append(ch) }
        }
        return out
    }
}
