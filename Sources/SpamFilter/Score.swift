import Foundation

/// What the receiving checks found, as the filter weighs it (plain values, so that this module needs no DNS).
public struct AuthenticationFacts: Sendable {
    public var spf: String?          // "pass", "fail", "softfail", …
    public var spfHelo: String?      // the HELO name's own SPF result
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
    /// Each rule's points. The content rules and the Bayesian bands were fitted on the training two thirds of the
    /// SpamAssassin corpus (`TERN_CORPUS_FIT=1 swift test --filter CorpusFit`, see docs/checks.md), the way
    /// SpamAssassin fits its scores; the rules on what the receiving checks found (SPF, DKIM, DMARC, reverse DNS,
    /// allowlists) never fire in that corpus and keep hand-set points.
    public static let weights: [String: Double] = [
        "MISSING_FROM": 1.5, "MISSING_DATE": 1.0, "INVALID_DATE": 1.0, "DATE_IN_FUTURE": 1.5, "DATE_TZ_ABSURD": 1.5,
        "DATE_IN_PAST": 1.4, "HEADER_8BIT": 1.4, "MISSING_MID": 0.5, "SUBJ_ALL_CAPS": 1.9, "EMPTY_SUBJECT": 0.5, "MISSING_SUBJECT": 0.5,
        "HTML_ONLY": 0.8, "LINK_TEXT_MISMATCH": 1.8, "URL_NUMERIC_IP": 1.5,
        "SPF_FAIL": 1.5, "SPF_SOFTFAIL": 0.7, "SPF_PASS": -0.1, "DKIM_INVALID": 0.5, "DKIM_VALID": -0.1,
        "BULK_REMOVE": 1.0, "CLAIMS_NOT_SPAM": 1.0, "CLAIMS_OPT_IN": 0.0, "MONEY_AMOUNTS": 1.6, "MILLIONS": 1.0,
        "ADVANCE_FEE": 1.0, "CLICK_HERE": 0.0, "ACT_NOW": 0.0, "GUARANTEED": 1.1, "FREE_OFFER": 1.1,
        "MONEY_FROM_HOME": 1.2, "TOLL_FREE": 0.7, "OPT_OUT_WORDING": 0.8, "DEAR_SOMEONE": 1.9,
        "LOANS": 1.0, "SUBJ_EXCLAIM": 0.5, "SUBJ_CAPS_WORDS": 0.9,
        "SPF_HELO_FAIL": 1.0, "SPF_HELO_SOFTFAIL": 0.5, "DMARC_FAIL": 2.0, "RDNS_NONE": 0.8, "DNSWL": -3.0,
        "BAYES_99": 6.0, "BAYES_95": 6.0, "BAYES_90": 4.0, "BAYES_80": 4.0, "BAYES_60": 2.2, "BAYES_40": 1.8,
        "BAYES_20": 0.4, "BAYES_05": -0.6, "BAYES_01": -1.6, "BAYES_00": -1.6,
    ]

    /// The Bayesian bands by their lower bounds, highest first.
    public static let bayesBands: [(name: String, from: Double, description: String)] = [
        ("BAYES_99", 0.99, "Bayesian spam probability 99 to 100%"), ("BAYES_95", 0.95, "Bayesian spam probability 95 to 99%"),
        ("BAYES_90", 0.90, "Bayesian spam probability 90 to 95%"), ("BAYES_80", 0.80, "Bayesian spam probability 80 to 90%"),
        ("BAYES_60", 0.60, "Bayesian spam probability 60 to 80%"), ("BAYES_40", 0.40, "Bayesian spam probability 40 to 60%"),
        ("BAYES_20", 0.20, "Bayesian spam probability 20 to 40%"), ("BAYES_05", 0.05, "Bayesian spam probability 5 to 20%"),
        ("BAYES_01", 0.01, "Bayesian spam probability 1 to 5%"), ("BAYES_00", 0, "Bayesian spam probability 0 to 1%"),
    ]

    /// Phrases of bulk and fraudulent mail, in groups: a group fires when `least` of its phrases occur in the subject
    /// or the text (lower-cased). Their points are fitted like the rest.
    public static let phraseRules: [(name: String, least: Int, phrases: [String], description: String)] = [
        ("BULK_REMOVE", 1, ["to be removed", "be removed from", "remove in the subject", "with remove in", "reply with remove",
                             "removal instructions", "to opt out", "to opt-out", "removed from our", "remove me in the"],
         "instructions to get off a mailing list"),
        ("CLAIMS_NOT_SPAM", 1, ["not spam", "no spam", "this is not unsolicited", "s. 1618", "s.1618", "section 301"],
         "claims not to be spam"),
        ("CLAIMS_OPT_IN", 1, ["you are receiving this", "you received this", "opted in", "opt-in", "you signed up",
                               "your email address was", "on our mailing list", "expressed an interest"],
         "says the recipient asked for it"),
        ("MILLIONS", 1, ["million dollars", "millions of dollars", "million us dollars", "us$", "million united states",
                          "millions of pounds", "million pounds"], "talks of millions"),
        ("ADVANCE_FEE", 2, ["next of kin", "strictly confidential", "foreign partner", "business proposal", "please kindly",
                             "transfer of", "bank account", "urgent", "assistance", "beneficiary", "the deceased",
                             "late husband", "late father", "barrister", "security company", "diplomatic"],
         "advance-fee fraud wording"),
        ("CLICK_HERE", 1, ["click here", "click below", "click on the link below", "click the link below"], "click here"),
        ("ACT_NOW", 1, ["act now", "limited time", "order now", "call now", "don't delay", "do not delay",
                         "while supplies last", "today only", "order today", "apply now", "respond now"], "urges to act now"),
        ("GUARANTEED", 1, ["100% guaranteed", "satisfaction guaranteed", "money back", "money-back", "risk free", "risk-free",
                            "no obligation", "guaranteed!"], "promises guarantees"),
        ("FREE_OFFER", 1, ["free trial", "absolutely free", "100% free", "free gift", "free of charge", "totally free"],
         "offers something free"),
        ("MONEY_FROM_HOME", 1, ["home based business", "home-based business", "work from home", "from the comfort of",
                                 "extra income", "make money", "residual income", "financial freedom", "multi-level",
                                 "mlm", "earn $", "per month from", "/month"], "money from home"),
        ("OPT_OUT_WORDING", 1, ["no longer wish to receive", "wish to be removed", "do not wish to receive", "further mailings",
                                 "future mailings", "one-time mailing", "one time mailing", "sent in compliance"],
         "bulk mail's opt-out wording"),
        ("DEAR_SOMEONE", 1, ["dear sir", "dear friend", "dear user", "dear homeowner", "dear customer", "dear valued",
                              "dear member", "dear madam", "dear webmaster", "dear business owner"], "a greeting to nobody in particular"),
        ("LOANS", 1, ["lowest rates", "refinanc", "mortgage rate", "interest rates", "credit report", "bad credit",
                       "no credit check", "debt consolidation", "consolidate your debt"], "loans and credit offers"),
        ("TOLL_FREE", 1, ["1-800", "1-888", "1-877", "1-866", "1 800 ", "toll free", "toll-free"], "a toll-free number"),
    ]

    public static func score(_ f: MessageFeatures, facts: AuthenticationFacts = AuthenticationFacts(), bayes: Double?,
                             now: Date?, weights: [String: Double] = weights) -> SpamReport {
        var hits: [SpamRuleHit] = []
        func hit(_ name: String, _ description: String) {
            let points = weights[name] ?? 0
            // A rule fitted to nothing says nothing: it is left out of the report.
            if points != 0 || name.hasPrefix("BAYES_") { hits.append(SpamRuleHit(name: name, score: points, description: description)) }
        }
        // Header rules.
        if f.from == nil { hit("MISSING_FROM", "no From field") }
        if !f.hasDate { hit("MISSING_DATE", "no Date field") } else if f.date == nil { hit("INVALID_DATE", "Date field that cannot be read") }
        if let d = f.date, let now, d.timeIntervalSince(now) > 2 * 86400 { hit("DATE_IN_FUTURE", "Date more than two days ahead") }
        if let d = f.date, let now, now.timeIntervalSince(d) > 4 * 86400 { hit("DATE_IN_PAST", "Date more than four days before it arrived") }
        if f.dateZoneAbsurd { hit("DATE_TZ_ABSURD", "Date with a time zone that does not exist") }
        if f.rawHeaderBytes { hit("HEADER_8BIT", "Subject or From in raw 8-bit bytes that are not UTF-8") }
        if !f.hasMessageID { hit("MISSING_MID", "no Message-ID field") }
        if let s = f.subject {
            let letters = s.filter(\.isLetter)
            if letters.count >= 10 && letters.allSatisfy({ $0.isUppercase }) { hit("SUBJ_ALL_CAPS", "subject in capitals only") }
            if s.trimmingCharacters(in: .whitespaces).isEmpty { hit("EMPTY_SUBJECT", "empty subject") }
        } else {
            hit("MISSING_SUBJECT", "no Subject field")
        }
        // Body rules.
        if f.hasHTMLPart && !f.hasTextPart { hit("HTML_ONLY", "HTML without a plain-text alternative") }
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
        if mismatch { hit("LINK_TEXT_MISMATCH", "a link's text shows one address and it goes to another") }
        if ipLink { hit("URL_NUMERIC_IP", "a link to a bare IP address") }
        // Phrases, money amounts (found when the features were read), shouting in the subject.
        for rule in phraseRules where f.phraseGroups.contains(rule.name) { hit(rule.name, rule.description) }
        if f.dollarAmounts >= 3 { hit("MONEY_AMOUNTS", "three or more dollar amounts") }
        if let s = f.subject {
            if s.filter({ $0 == "!" }).count >= 2 || s.contains("?!") || s.contains("!?") { hit("SUBJ_EXCLAIM", "subject with exclamation marks") }
            if f.subjectCapsWords >= 3 && !s.filter(\.isLetter).allSatisfy(\.isUppercase) { hit("SUBJ_CAPS_WORDS", "several words of the subject in capitals") }
        }
        // What the receiving checks found.
        switch facts.spf {
        case "fail": hit("SPF_FAIL", "SPF says the client may not send for the sender's domain")
        case "softfail": hit("SPF_SOFTFAIL", "SPF soft failure")
        case "pass": hit("SPF_PASS", "SPF pass")
        default: break
        }
        // The HELO name's own result counts when it says something the MAIL FROM result did not.
        switch facts.spf == "fail" || facts.spf == "softfail" ? nil : facts.spfHelo {
        case "fail": hit("SPF_HELO_FAIL", "SPF says the client may not use its HELO name")
        case "softfail": hit("SPF_HELO_SOFTFAIL", "SPF soft failure of the HELO name")
        default: break
        }
        if facts.dkimFailed && !facts.dkimPassed { hit("DKIM_INVALID", "DKIM signature present but invalid") }
        if facts.dkimPassed { hit("DKIM_VALID", "valid DKIM signature") }
        if facts.dmarc == "fail" { hit("DMARC_FAIL", "DMARC fails for the From domain") }
        if facts.iprev == "fail" { hit("RDNS_NONE", "no forward-confirmed reverse DNS for the client") }
        if facts.allowlisted { hit("DNSWL", "client on a DNS allowlist") }
        // The Bayesian classifier, in bands.
        if let p = bayes, let band = bayesBands.first(where: { p >= $0.from }) { hit(band.name, band.description) }
        let total = hits.reduce(0) { $0 + $1.score }
        return SpamReport(score: (total * 10).rounded() / 10, hits: hits, bayes: bayes)
    }
}
