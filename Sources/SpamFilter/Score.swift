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
        "ACT_NOW": 0.0, "ADULT": 0.9, "ADVANCE_FEE": 1.2, "BAYES_00": -2.5, "BAYES_01": -1.6, "BAYES_05": -0.6,
        "BAYES_20": 0.1, "BAYES_40": 0.7, "BAYES_60": 2.2, "BAYES_80": 3.7, "BAYES_90": 3.7, "BAYES_95": 3.9,
        "BAYES_99": 5.5, "BULK_EMAIL": 1.3, "BULK_REMOVE": 1.0, "CABLE_DVD": 0.5, "CASINO": 1.1, "CHARSET_FARAWAY":
        1.2, "CLAIMS_NOT_SPAM": 1.0, "CLAIMS_OPT_IN": 1.0, "CLICK_HERE": 0.0, "DATE_IN_FUTURE": 1.5, "DATE_IN_PAST":
        1.1, "DATE_TZ_ABSURD": 1.5, "DEAR_SOMEONE": 1.4, "DIPLOMA": 1.2, "DISCOUNT": 0.1, "DKIM_INVALID": 0.5,
        "DKIM_VALID": -0.1, "DMARC_FAIL": 2.0, "DNSWL": -3.0, "EMPTY_SUBJECT": 0.5, "EXCLAIM_MANY": 0.3,
        "FORGED_OUTLOOK_MID": 1.9, "FREE_OFFER": 0.5, "FROM_DIGITS": 0.4, "FROM_NO_NAME": 2.2, "GUARANTEED": 0.9,
        "HEADER_8BIT": 1.2, "HTML_FONT": 0.0, "HTML_HIDDEN_TEXT": 0.1, "HTML_IMAGE_FEW_WORDS": 1.0,
        "HTML_NO_MIME_VERSION": 0.9, "HTML_ONLY": 1.1, "HTML_SCRIPT_FORM": 0.7, "INK_TONER": 0.9, "INVALID_DATE":
        1.0, "LINKS_MANY": 0.2, "LINK_TEXT_MISMATCH": 2.0, "LOANS": 1.0, "MILLIONS": 0.9, "MISSING_DATE": 1.0,
        "MISSING_FROM": 1.5, "MISSING_MID": 0.5, "MISSING_SUBJECT": 0.5, "MONEY_AMOUNTS": 0.5, "MONEY_FROM_HOME":
        0.7, "MSGID_NO_AT": 1.2, "OPT_OUT_WORDING": 1.0, "PHARMACY": 0.9, "RDNS_NONE": 0.8, "REMOVE_MAILTO": 1.0,
        "REPLYTO_DIFFERS": 0.5, "SPF_FAIL": 1.5, "SPF_HELO_FAIL": 1.0, "SPF_HELO_SOFTFAIL": 0.5, "SPF_PASS": -0.1,
        "SPF_SOFTFAIL": 0.7, "STOCK_TIP": 1.3, "SUBJ_ALL_CAPS": 1.7, "SUBJ_CAPS_WORDS": 0.4, "SUBJ_DOLLAR": 1.2,
        "SUBJ_EXCLAIM": 0.5, "SUBJ_FREE": 1.2, "SUBJ_PERCENT": 1.0, "SUBJ_RANDOM_TAG": 1.0, "TEXT_CAPS_LINES": 0.5,
        "TOLL_FREE": 1.3, "TO_UNDISCLOSED": 0.2, "URL_NUMERIC_IP": 1.5, "WEIGHT_LOSS": 1.2,
    ]

    /// The points while the classifier abstains (a fresh install, or too little trained): fitted apart, on the rules
    /// alone, since without the classifier's verdict each rule has to carry more of the decision.
    public static let rulesOnlyWeights: [String: Double] = [
        "ACT_NOW": 0.5, "ADULT": 1.0, "ADVANCE_FEE": 1.6, "BULK_EMAIL": 0.0, "BULK_REMOVE": 1.4, "CABLE_DVD": 0.4,
        "CASINO": 0.6, "CHARSET_FARAWAY": 2.1, "CLAIMS_NOT_SPAM": 1.9, "CLAIMS_OPT_IN": 1.2, "CLICK_HERE": 0.1,
        "DATE_IN_FUTURE": 1.5, "DATE_IN_PAST": 0.3, "DATE_TZ_ABSURD": 2.6, "DEAR_SOMEONE": 1.8, "DIPLOMA": 0.1,
        "DISCOUNT": 0.4, "DKIM_INVALID": 0.5, "DKIM_VALID": -0.1, "DMARC_FAIL": 2.0, "DNSWL": -3.0, "EMPTY_SUBJECT":
        0.7, "EXCLAIM_MANY": 0.0, "FORGED_OUTLOOK_MID": 2.2, "FREE_OFFER": 0.1, "FROM_DIGITS": 1.2, "FROM_NO_NAME":
        1.9, "GUARANTEED": 1.1, "HEADER_8BIT": 2.2, "HTML_FONT": 0.9, "HTML_HIDDEN_TEXT": 0.1,
        "HTML_IMAGE_FEW_WORDS": 1.6, "HTML_NO_MIME_VERSION": 0.0, "HTML_ONLY": 0.2, "HTML_SCRIPT_FORM": 0.4,
        "INK_TONER": 0.5, "INVALID_DATE": 1.0, "LINKS_MANY": 0.0, "LINK_TEXT_MISMATCH": 0.0, "LOANS": 1.2,
        "MILLIONS": 0.5, "MISSING_DATE": 1.0, "MISSING_FROM": 1.5, "MISSING_MID": 0.5, "MISSING_SUBJECT": 0.5,
        "MONEY_AMOUNTS": 0.0, "MONEY_FROM_HOME": 1.2, "MSGID_NO_AT": 1.2, "OPT_OUT_WORDING": 0.2, "PHARMACY": 1.1,
        "RDNS_NONE": 0.8, "REMOVE_MAILTO": 1.0, "REPLYTO_DIFFERS": 0.2, "SPF_FAIL": 1.5, "SPF_HELO_FAIL": 1.0,
        "SPF_HELO_SOFTFAIL": 0.5, "SPF_PASS": -0.1, "SPF_SOFTFAIL": 0.7, "STOCK_TIP": 0.0, "SUBJ_ALL_CAPS": 2.2,
        "SUBJ_CAPS_WORDS": 0.0, "SUBJ_DOLLAR": 1.7, "SUBJ_EXCLAIM": 0.8, "SUBJ_FREE": 1.5, "SUBJ_PERCENT": 1.4,
        "SUBJ_RANDOM_TAG": 1.8, "TEXT_CAPS_LINES": 0.0, "TOLL_FREE": 1.4, "TO_UNDISCLOSED": 0.7, "URL_NUMERIC_IP":
        1.1, "WEIGHT_LOSS": 2.2,
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
        ("PHARMACY", 1, ["viagra", "prescription", "pharmacy", "penis", "enlargement", "erection", "herbal", "impotence",
                          "anti-aging", "human growth hormone", "vitamin", "medication"], "pills and potions"),
        ("WEIGHT_LOSS", 1, ["lose weight", "weight loss", "lbs", "fat burn", "burn fat", "diet pill", "pounds in", "inches off"],
         "weight-loss offers"),
        ("ADULT", 1, ["xxx", "porn", "nude", "hardcore", "live girls", "hot girls", "adult site", "adult content", "sexy"],
         "adult content"),
        ("CASINO", 1, ["casino", "gambling", "jackpot", "you have won", "you've won", "lottery", "sweepstakes", "prize"],
         "casinos and prizes"),
        ("STOCK_TIP", 2, ["stock", "shares", "investor", "profit", "investment", "otc", "breaking news", "market"],
         "stock promotion"),
        ("CABLE_DVD", 1, ["descrambler", "cable tv", "satellite tv", "copy any dvd", "playstation", "backup copies"],
         "descramblers and DVD copying"),
        ("INK_TONER", 1, ["printer cartridge", "ink cartridge", "toner", "inkjet", "ink jet"], "printer ink"),
        ("BULK_EMAIL", 1, ["email marketing", "bulk email", "e-mail addresses", "email addresses", "targeted email",
                            "mass email", "million email", "opt-in list", "email list"], "selling bulk mail"),
        ("DISCOUNT", 2, ["% off", "retail", "lowest price", "best price", "wholesale", "discount", "save up to", "special offer",
                          "per month", "only $"], "discount offers"),
        ("DIPLOMA", 1, ["diploma", "degree program", "university degree", "college degree", "accredited", "life experience"],
         "degrees for sale"),
    ]

    /// Rules on the message's structure and header (not its words): each a test on the features.
    public static let structureRules: [(name: String, description: String, test: @Sendable (MessageFeatures) -> Bool)] = [
        ("HTML_HIDDEN_TEXT", "HTML that hides text from the reader (white or tiny fonts, display:none)", { $0.hiddenHTMLText }),
        ("HTML_IMAGE_FEW_WORDS", "images with fewer than 100 words of text", { f in
            f.images > 0 && f.hasHTMLPart && (f.tokens.contains("words:0-19") || f.tokens.contains("words:20-99")) }),
        ("HTML_SCRIPT_FORM", "HTML with a script, a form or a frame", { f in
            f.htmlTags.contains("script") || f.htmlTags.contains("form") || f.htmlTags.contains("iframe") }),
        ("HTML_FONT", "HTML that sets fonts", { $0.htmlTags.contains("font") }),
        ("HTML_NO_MIME_VERSION", "HTML without a MIME-Version field", { $0.hasHTMLPart && !$0.mimeVersion }),
        ("CHARSET_FARAWAY", "text in a character set for Chinese, Korean, Cyrillic or Arabic", { f in
            !f.charsets.isDisjoint(with: ["gb2312", "gbk", "gb18030", "big5", "ks_c_5601-1987", "euc-kr", "iso-2022-kr", "koi8-r",
                                          "windows-1251", "windows-1256"]) }),
        ("TO_UNDISCLOSED", "no recipient named in To", { f in
            (f.to ?? "").isEmpty || (f.to ?? "").lowercased().contains("undisclosed") || !(f.to ?? "").contains("@") }),
        ("REPLYTO_DIFFERS", "Reply-To in another domain than From", { $0.tokens.contains("rt:other") }),
        ("FROM_DIGITS", "digits in the From address's user part", { $0.tokens.contains("fl:digits") }),
        ("FROM_NO_NAME", "a From address without a name", { $0.tokens.contains("fn:none") || $0.tokens.contains("fn:empty") }),
        ("FORGED_OUTLOOK_MID", "claims Outlook but has a Message-ID Outlook does not make", { f in
            guard let m = f.mailer?.lowercased(), m.contains("outlook") else { return false }
            return !(f.messageID ?? "").contains("$") }),
        ("MSGID_NO_AT", "a Message-ID without @", { $0.tokens.contains("mid:no-at") }),
        ("TEXT_CAPS_LINES", "three or more lines in capitals", { $0.tokens.contains("capslines:3-9") || $0.tokens.contains("capslines:10+") }),
        ("EXCLAIM_MANY", "ten or more exclamation marks", { $0.tokens.contains("n!:10-29") || $0.tokens.contains("n!:30+") }),
        ("SUBJ_DOLLAR", "a dollar sign in the subject", { ($0.subject ?? "").contains("$") }),
        ("SUBJ_FREE", "\"free\" in the subject", { ($0.subject ?? "").lowercased().contains("free") }),
        ("SUBJ_PERCENT", "a percent sign in the subject", { ($0.subject ?? "").contains("%") }),
        ("SUBJ_RANDOM_TAG", "the subject ends in a random tag or a run of spaces", { f in
            guard let s = f.subject else { return false }
            if s.contains("     ") { return true }
            let parts = s.split(separator: " ")
            guard parts.count >= 3, let last = parts.last, ["-", "|", "..."].contains(parts[parts.count - 2]) else { return false }
            return (3...8).contains(last.count) && last.allSatisfy { $0.isLowercase } }),
        ("LINKS_MANY", "ten or more links", { $0.links.count >= 10 }),
        ("REMOVE_MAILTO", "a mailto link to be removed from a list", { f in
            f.links.prefix(100).contains { l in
                let h = l.href.lowercased(), t = l.text.lowercased()
                return h.hasPrefix("mailto:") && (h.contains("remove") || h.contains("unsubscribe") || t.contains("remove")) } }),
    ]

    /// `weights`: the points of each rule; by default `weights` when the classifier gave a probability and
    /// `rulesOnlyWeights` when it abstained (as SpamAssassin keeps score sets with and without Bayes).
    public static func score(_ f: MessageFeatures, facts: AuthenticationFacts = AuthenticationFacts(), bayes: Double?,
                             now: Date?, weights chosen: [String: Double]? = nil) -> SpamReport {
        let weights = chosen ?? (bayes == nil ? rulesOnlyWeights : self.weights)
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
        for rule in structureRules where rule.test(f) { hit(rule.name, rule.description) }
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
