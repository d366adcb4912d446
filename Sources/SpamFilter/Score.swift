import Foundation

/// What the receiving checks found, as the filter weighs it (plain values, so that this module needs no DNS).
public struct AuthenticationFacts: Sendable {
    public var spf: String?          // "pass", "fail", "softfail", …
    public var dkimPassed = false    // at least one valid signature
    public var dkimFailed = false    // a signature that did not verify
    public var dmarc: String?        // "pass", "fail", …
    public var iprev: String?        // "pass", "fail", "temperror"
    public var allowlisted = false
    public init() {}
}

/// One rule that fired, with its points.
public struct SpamRuleHit: Sendable, Equatable {
    public var name: String
    public var score: Double
    public var description: String
}

public struct SpamReport: Sendable {
    public var score: Double
    public var hits: [SpamRuleHit]
    /// The Bayesian probability, when the classifier had enough training to give one.
    public var bayes: Double?

    /// The X-Spam field: `X-Spam: yes|no, score=6.1 required=5.0 tests=BAYES_99,HTML_ONLY`.
    public func field(junkScore: Double) -> String {
        let verdict = score >= junkScore ? "yes" : "no"
        let tests = hits.map(\.name).joined(separator: ",")
        var line = "X-Spam: \(verdict), score=\(String(format: "%.1f", score)) required=\(String(format: "%.1f", junkScore))"
        if !tests.isEmpty { line += "\r\n\ttests=\(tests)" }
        if let bayes { line += "\r\n\tbayes=\(String(format: "%.4f", bayes))" }
        return line + "\r\n"
    }
}

/// Rule scores plus the Bayesian classifier's, added up.
public enum SpamScorer {
    public static func score(_ f: MessageFeatures, facts: AuthenticationFacts = AuthenticationFacts(), bayes: Double?,
                             now: Date? = Date()) -> SpamReport {
        var hits: [SpamRuleHit] = []
        func hit(_ name: String, _ score: Double, _ description: String) {
            hits.append(SpamRuleHit(name: name, score: score, description: description))
        }
        // Header rules.
        if f.from == nil { hit("MISSING_FROM", 1.5, "no From field") }
        if !f.hasDate { hit("MISSING_DATE", 1.0, "no Date field") } else if f.date == nil { hit("INVALID_DATE", 1.0, "Date field that cannot be read") }
        if let d = f.date, let now, d.timeIntervalSince(now) > 2 * 86400 { hit("DATE_IN_FUTURE", 1.5, "Date more than two days ahead") }
        if !f.hasMessageID { hit("MISSING_MID", 0.5, "no Message-ID field") }
        if let s = f.subject {
            let letters = s.filter(\.isLetter)
            if letters.count >= 10 && letters.allSatisfy({ $0.isUppercase }) { hit("SUBJ_ALL_CAPS", 1.5, "subject in capitals only") }
            if s.trimmingCharacters(in: .whitespaces).isEmpty { hit("EMPTY_SUBJECT", 0.5, "empty subject") }
        } else {
            hit("MISSING_SUBJECT", 0.5, "no Subject field")
        }
        // Body rules.
        if f.hasHTMLPart && !f.hasTextPart { hit("HTML_ONLY", 1.0, "HTML without a plain-text alternative") }
        var mismatch = false, ipLink = false
        for l in f.links.prefix(100) {
            let host = HTMLText.host(l.href)
            if !host.isEmpty, host.allSatisfy({ $0.isNumber || $0 == "." }) || host.hasPrefix("[") { ipLink = true }
            // Anchor text that shows a web address other than where the link goes.
            let shown = l.text.lowercased()
            if !host.isEmpty, shown.hasPrefix("http") || shown.hasPrefix("www.") {
                let shownHost = HTMLText.host(shown.hasPrefix("www.") ? "http://" + shown : shown)
                if !shownHost.isEmpty && shownHost != host && !shownHost.hasSuffix("." + host) && !host.hasSuffix("." + shownHost) {
                    mismatch = true
                }
            }
        }
        if mismatch { hit("LINK_TEXT_MISMATCH", 2.0, "a link's text shows one address and it goes to another") }
        if ipLink { hit("URL_NUMERIC_IP", 1.5, "a link to a bare IP address") }
        // What the receiving checks found.
        switch facts.spf {
        case "fail": hit("SPF_FAIL", 1.5, "SPF says the client may not send for the sender's domain")
        case "softfail": hit("SPF_SOFTFAIL", 0.7, "SPF soft failure")
        case "pass": hit("SPF_PASS", -0.1, "SPF pass")
        default: break
        }
        if facts.dkimFailed && !facts.dkimPassed { hit("DKIM_INVALID", 0.5, "DKIM signature present but invalid") }
        if facts.dkimPassed { hit("DKIM_VALID", -0.1, "valid DKIM signature") }
        if facts.dmarc == "fail" { hit("DMARC_FAIL", 2.0, "DMARC fails for the From domain") }
        if facts.iprev == "fail" { hit("RDNS_NONE", 0.8, "no forward-confirmed reverse DNS for the client") }
        if facts.allowlisted { hit("DNSWL", -3.0, "client on a DNS allowlist") }
        // The Bayesian classifier.
        if let p = bayes {
            switch p {
            case 0.99...: hit("BAYES_99", 5.5, "Bayesian spam probability 99 to 100%")
            case 0.95..<0.99: hit("BAYES_95", 5.0, "Bayesian spam probability 95 to 99%")
            case 0.80..<0.95: hit("BAYES_80", 3.5, "Bayesian spam probability 80 to 95%")
            case 0.60..<0.80: hit("BAYES_60", 2.0, "Bayesian spam probability 60 to 80%")
            case 0.40..<0.60: break
            case 0.20..<0.40: hit("BAYES_20", -0.5, "Bayesian spam probability 20 to 40%")
            case 0.05..<0.20: hit("BAYES_05", -1.0, "Bayesian spam probability 5 to 20%")
            case 0.01..<0.05: hit("BAYES_01", -2.0, "Bayesian spam probability 1 to 5%")
            default: hit("BAYES_00", -3.0, "Bayesian spam probability 0 to 1%")
            }
        }
        let total = hits.reduce(0) { $0 + $1.score }
        return SpamReport(score: (total * 10).rounded() / 10, hits: hits, bayes: bayes)
    }
}
