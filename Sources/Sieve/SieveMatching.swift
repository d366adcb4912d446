import SieveLanguage
import Glibc

/// A test's comparator and match type (RFC 5228 §2.7, relational RFC 5231, regex draft-ietf-sieve-regex): whether
/// values match keys, and what the wildcards or groups captured (RFC 5229's match variables).
struct Match {
    var comparator = "i;ascii-casemap"
    var type = "is"
    /// The relational operator of :value and :count.
    var relation = "eq"

    init(_ args: Args) {
        if let c = args.tagStrings("comparator")?.first { comparator = c.lowercased() }
        for t in ["is", "contains", "matches", "regex", "value", "count"] where args.tags[t] != nil { type = t }
        if let r = args.tagStrings("value")?.first ?? args.tagStrings("count")?.first { relation = r.lowercased() }
    }

    init(type: String, comparator: String = "i;ascii-casemap") {
        self.type = type
        self.comparator = comparator
    }

    /// Whether any value matches any key; for :matches and :regex, what the first match captured (${0} is the whole).
    /// :count compares the number of values with each key (RFC 5231 §4.2).
    func test(_ values: [String], _ keys: [String], wantCaptures: Bool) -> (Bool, [String]?) {
        if type == "count" {
            let n = String(values.count)
            return (keys.contains { relate(compare(n, $0)) }, nil)
        }
        for v in values {
            for k in keys {
                switch type {
                case "matches":
                    let (value, pattern) = (fold(v), Self.pattern(fold(k)))
                    guard Self.wildcard(value[...], pattern[...]) else { continue }
                    guard wantCaptures else { return (true, nil) }
                    return (true, Self.captures(Array(v.utf8), value, pattern))
                case "regex":
                    guard let groups = regex(v, k) else { continue }
                    return (true, wantCaptures ? groups : nil)
                default:
                    if matches(v, k) { return (true, nil) }
                }
            }
        }
        return (false, nil)
    }

    /// Whether `k` occurs in `v`, in time linear in both (Knuth–Morris–Pratt): a long key on a long body is not their
    /// product.
    static func contains(_ v: [UInt8], _ k: [UInt8]) -> Bool {
        guard !k.isEmpty else { return true }
        guard v.count >= k.count else { return false }
        var fallback = [Int](repeating: 0, count: k.count)
        var j = 0
        for i in 1..<k.count {
            while j > 0 && k[i] != k[j] { j = fallback[j - 1] }
            if k[i] == k[j] { j += 1 }
            fallback[i] = j
        }
        j = 0
        for b in v {
            while j > 0 && b != k[j] { j = fallback[j - 1] }
            if b == k[j] {
                j += 1
                if j == k.count { return true }
            }
        }
        return false
    }

    func matches(_ value: String, _ key: String) -> Bool {
        switch type {
        case "contains":
            return Self.contains(fold(value), fold(key))
        case "matches":
            return Self.wildcard(fold(value)[...], Self.pattern(fold(key))[...])
        case "value":
            return relate(compare(value, key))
        case "regex":
            return regex(value, key) != nil
        default:
            return compare(value, key) == 0
        }
    }

    private func relate(_ order: Int) -> Bool {
        switch relation {
        case "gt": order > 0
        case "ge": order >= 0
        case "lt": order < 0
        case "le": order <= 0
        case "ne": order != 0
        default: order == 0
        }
    }

    /// The comparator's order of two strings (RFC 4790): i;ascii-numeric reads the leading digits as a number (none:
    /// positive infinity, equal to each other), the others compare the folded strings.
    func compare(_ a: String, _ b: String) -> Int {
        if comparator == "i;ascii-numeric" {
            func digits(_ s: String) -> Substring? {
                let d = s.prefix { $0.isASCII && $0.isNumber }
                guard !d.isEmpty else { return nil }
                let trimmed = d.drop { $0 == "0" }
                return trimmed.isEmpty ? "0" : trimmed
            }
            switch (digits(a), digits(b)) {
            case (nil, nil): return 0
            case (nil, _): return 1
            case (_, nil): return -1
            case (let x?, let y?):
                if x.count != y.count { return x.count < y.count ? -1 : 1 }
                return x == y ? 0 : (x < y ? -1 : 1)
            }
        }
        let (x, y) = (fold(a), fold(b))
        for (p, q) in zip(x, y) where p != q { return p < q ? -1 : 1 }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }

    /// The comparator's view of a string: its octets (RFC 5228 §2.7.1: i;octet and i;ascii-casemap define a
    /// character as one octet), ASCII letters folded for i;ascii-casemap. UTF-8 keeps the code points' order.
    func fold(_ s: String) -> [UInt8] {
        let octets = Array(s.utf8)
        guard comparator == "i;ascii-casemap" else { return octets }
        return octets.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    }

    enum Piece: Equatable { case star, one, char(UInt8) }

    /// `*` any run, `?` one character, `\` makes the next character literal (RFC 5228 §2.7.1).
    static func pattern(_ key: [UInt8]) -> [Piece] {
        var out: [Piece] = []
        var i = 0
        while i < key.count {
            switch key[i] {
            case UInt8(ascii: "*"): out.append(.star)
            case UInt8(ascii: "?"): out.append(.one)
            case UInt8(ascii: "\\") where i + 1 < key.count: i += 1; out.append(.char(key[i]))
            default: out.append(.char(key[i]))
            }
            i += 1
        }
        return out
    }

    /// Glob matching with backtracking to the last star only: linear in practice, never exponential.
    static func wildcard(_ v: ArraySlice<UInt8>, _ p: ArraySlice<Piece>) -> Bool {
        var vi = v.startIndex, pi = p.startIndex
        var star: (p: Int, v: Int)?
        while vi < v.endIndex {
            if pi < p.endIndex, p[pi] == .one || p[pi] == .char(v[vi]) {
                vi += 1
                pi += 1
            } else if pi < p.endIndex, p[pi] == .star {
                star = (pi, vi)
                pi += 1
            } else if let s = star {
                pi = s.p + 1
                vi = s.v + 1
                star = (s.p, s.v + 1)
            } else {
                return false
            }
        }
        while pi < p.endIndex && p[pi] == .star { pi += 1 }
        return pi == p.endIndex
    }

    /// What each `*` and `?` of a matching pattern took (RFC 5229 §3.2: each `*` as little as it can, leftmost first),
    /// taken from the original (unfolded) value; ${0} is the whole value. Found by a search that remembers the places it
    /// failed from, so it stays polynomial; a value over 8,192 characters, or a pattern of more than 1,024 pieces, gets no
    /// captures beyond ${0}.
    static func captures(_ original: [UInt8], _ v: [UInt8], _ p: [Piece]) -> [String] {
        let whole = String(decoding: original, as: UTF8.self)
        // The search recurses once per piece of the pattern and remembers up to pieces × octets places: both bounded.
        guard v.count <= 8192, p.count <= 1024, p.count * (v.count + 1) <= 1 << 22 else { return [whole] }
        var failed = Set<Int>()
        var spans: [Range<Int>] = []
        func go(_ pi: Int, _ vi: Int) -> Bool {
            if pi == p.count { return vi == v.count }
            let key = pi * (v.count + 1) + vi
            if failed.contains(key) { return false }
            switch p[pi] {
            case .star:
                for end in vi...v.count {
                    spans.append(vi..<end)
                    if go(pi + 1, end) { return true }
                    spans.removeLast()
                }
            case .one:
                if vi < v.count {
                    spans.append(vi..<(vi + 1))
                    if go(pi + 1, vi + 1) { return true }
                    spans.removeLast()
                }
            case .char(let c):
                if vi < v.count, v[vi] == c, go(pi + 1, vi + 1) { return true }
            }
            failed.insert(key)
            return false
        }
        guard go(0, 0) else { return [whole] }
        // A capture that cuts a character in two is not text: it is marked with U+FFFE (a noncharacter no mail text
        // holds), and a mailbox so named is an error when filed into.
        return [whole] + spans.map { String(validating: original[$0], as: UTF8.self) ?? "\u{FFFE}" + String(decoding: original[$0], as: UTF8.self) }
    }

    /// About how many atoms a POSIX ERE compiles to: glibc's regcomp copies a group once per count of an interval
    /// (`(a{1,1000}){1,1000}` is a million atoms), so nested intervals are sized before it sees them. Saturating.
    static func expandedSize(_ pattern: String) -> Int {
        let b = Array(pattern.utf8)
        var frames: [Int] = [0]          // the size of each open group so far
        var last = 0                     // the size of the atom a quantifier would repeat
        var i = 0
        func add(_ n: Int) { frames[frames.count - 1] = min(frames[frames.count - 1] + n, 1 << 30) }
        while i < b.count {
            switch b[i] {
            case UInt8(ascii: "\\"):
                i += 2
                add(1); last = 1
                continue
            case UInt8(ascii: "["):
                // A bracket expression is one atom: to its closing "]" (a "]" first in it is a member).
                var j = i + 1
                if j < b.count && b[j] == UInt8(ascii: "^") { j += 1 }
                if j < b.count && b[j] == UInt8(ascii: "]") { j += 1 }
                while j < b.count && b[j] != UInt8(ascii: "]") { j += 1 }
                i = j + 1
                add(1); last = 1
                continue
            case UInt8(ascii: "("):
                frames.append(0)
            case UInt8(ascii: ")"):
                let inner = frames.count > 1 ? frames.removeLast() : 0
                add(inner); last = inner
            case UInt8(ascii: "{"):
                var j = i + 1, numbers: [Int] = [0], digits = false
                while j < b.count, b[j] != UInt8(ascii: "}") {
                    if b[j] == UInt8(ascii: ",") { numbers.append(0) }
                    else if b[j] >= 48 && b[j] <= 57 { numbers[numbers.count - 1] = min(numbers[numbers.count - 1] * 10 + Int(b[j] - 48), 1 << 20); digits = true }
                    j += 1
                }
                guard digits else { add(1); last = 1; break }
                let count = max(1, numbers.max() ?? 1)
                add(min(last * (count - 1), 1 << 30))
                last = min(last * count, 1 << 30)
                i = j + 1
                continue
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "|"), UInt8(ascii: "^"), UInt8(ascii: "$"):
                break
            default:
                add(1); last = 1
            }
            i += 1
        }
        return frames.reduce(0) { min($0 + $1, 1 << 30) }
    }

    /// POSIX extended regular expression match (draft-ietf-sieve-regex): the groups ${0}…${9} when it matches. A
    /// pattern that does not compile, or longer than 4,096 octets, matches nothing.
    func regex(_ value: String, _ pattern: String) -> [String]? {
        // Bounded: the pattern's size, no back-references (glibc's extension to ERE, which can take exponential time),
        // and the text it runs on.
        guard pattern.utf8.count <= 4096, value.utf8.count <= 1 << 16, Self.expandedSize(pattern) <= 10_000,
              !zip(pattern.utf8, pattern.utf8.dropFirst()).contains(where: { $0 == UInt8(ascii: "\\") && $1 >= 49 && $1 <= 57 }) else { return nil }
        var re = regex_t()
        let flags = REG_EXTENDED | (comparator == "i;ascii-casemap" ? REG_ICASE : 0)
        guard regcomp(&re, pattern, flags) == 0 else { return nil }
        defer { regfree(&re) }
        var groups = [regmatch_t](repeating: regmatch_t(), count: 10)
        let bytes = Array(value.utf8)
        let found = bytes.withUnsafeBufferPointer { b -> Bool in
            var text = Array(b) + [0]
            return text.withUnsafeMutableBufferPointer { t in
                t.baseAddress!.withMemoryRebound(to: CChar.self, capacity: t.count) { regexec(&re, $0, 10, &groups, 0) == 0 }
            }
        }
        guard found else { return nil }
        return groups.map { g in
            g.rm_so < 0 ? "" : String(decoding: bytes[Int(g.rm_so)..<Int(g.rm_eo)], as: UTF8.self)
        }
    }
}
