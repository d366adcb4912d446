import MailCore

/// The Public Suffix List (https://publicsuffix.org/list/): which names are suffixes under which anyone can register
/// a domain, and so which part of a host name is its organizational domain (RFC 7489 §3.2). Both the ICANN and the
/// private sections are used, as DMARC implementations commonly do. Rules are kept in A-label (ASCII) form.
public struct PublicSuffixList: Sendable {
    private var rules: Set<String> = []
    /// `*.base` rules, by base.
    private var wildcards: Set<String> = []
    /// `!name` rules, by name.
    private var exceptions: Set<String> = []
    public private(set) var ruleCount = 0

    /// Reads a list in the publicsuffix.org format (comments with //, one rule per line, first word counts).
    public init(text: String) {
        for rawLine in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("//") { continue }
            let word = String(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
            var rule = word.lowercased()
            var kind = 0
            if rule.hasPrefix("!") { kind = 2; rule.removeFirst() } else if rule.hasPrefix("*.") { kind = 1; rule.removeFirst(2) }
            guard !rule.isEmpty else { continue }
            if !rule.allSatisfy(\.isASCII) {
                guard let ascii = IDNA.toASCII(rule) else { continue }
                rule = ascii.lowercased()
            }
            switch kind {
            case 1: wildcards.insert(rule)
            case 2: exceptions.insert(rule)
            default: rules.insert(rule)
            }
            ruleCount += 1
        }
    }

    /// The list built into this version of Tern.
    public static let builtIn = PublicSuffixList(text: builtInRules)

    /// The public suffix of `domain` (lower-cased, A-labels): the longest matching rule, an exception taking one label
    /// off, the last label when nothing matches ("*" is the default rule).
    public func publicSuffix(of domain: String) -> String {
        let labels = normalize(domain).split(separator: ".").map(String.init)
        guard !labels.isEmpty else { return "" }
        let n = labels.count
        func suffix(_ k: Int) -> String { labels[(n - k)...].joined(separator: ".") }
        for k in stride(from: n, through: 1, by: -1) where exceptions.contains(suffix(k)) {
            return suffix(k - 1)
        }
        var best = 1
        for k in 1...n {
            if rules.contains(suffix(k)) { best = max(best, k) }
            if k >= 2 && wildcards.contains(suffix(k - 1)) { best = max(best, k) }
        }
        return suffix(best)
    }

    /// The organizational domain: the public suffix and one label more; a name that is itself a public suffix is its
    /// own organizational domain.
    public func organizationalDomain(of domain: String) -> String {
        let name = normalize(domain)
        let suffix = publicSuffix(of: name)
        let labels = name.split(separator: ".")
        let suffixLabels = suffix.split(separator: ".").count
        guard labels.count > suffixLabels else { return name }
        return labels[(labels.count - suffixLabels - 1)...].joined(separator: ".")
    }

    private func normalize(_ domain: String) -> String {
        var d = domain.lowercased()
        while d.hasSuffix(".") { d.removeLast() }
        if !d.allSatisfy(\.isASCII), let ascii = IDNA.toASCII(d) { d = ascii.lowercased() }
        return d
    }
}
