import Foundation
import MailMessage
import SpamFilter
import TernTestSupport
import Testing

/// The filter's rules and its Bayesian classifier on messages the repository ships. The measurement on the whole
/// SpamAssassin corpus (caught spam and false positives on a held-out third) is bench/spam/, not a test.
@Suite struct CorpusTests {
    /// Tests/Fixtures/spam: 125 spam and 125 ham messages from the SpamAssassin public corpus (every 4th spam, every
    /// 25th easy ham, every 10th hard ham by name).
    static func fixtures(_ folder: String) -> [(features: MessageFeatures, received: Date?)] {
        Fixtures.files(in: "spam/" + folder).compactMap { url in
            guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
            let message = CorpusMessage(fileContents: Array(data))
            return (message.features, message.received)
        }
    }

    /// Five-fold cross-validation: each message is scored by a classifier trained on the other four fifths (100 of
    /// each kind, the least the classifier speaks with), as of the time it was received (its newest Received field).
    /// The figures hold whatever the day: no wall clock is read.
    @Test func fixtureMessagesCrossValidated() throws {
        let ham = Self.fixtures("ham"), spam = Self.fixtures("spam")
        try #require(ham.count == 125 && spam.count == 125, "fixtures missing under \(Fixtures.url("spam").path)")
        let all = ham.map { ($0, false) } + spam.map { ($0, true) }
        let folds = 5
        var falsePositives = 0, caught = 0
        for fold in 0..<folds {
            var bayes = BayesMemory()
            for (j, (other, isSpam)) in all.enumerated() where j % folds != fold { bayes.train(other.features.tokens, spam: isSpam) }
            for (i, (sample, isSpam)) in all.enumerated() where i % folds == fold {
                let probability = bayes.probability(sample.features.tokens)
                #expect(probability != nil, "the classifier was trained on too few messages to answer")
                let report = SpamScorer.score(sample.features, bayes: probability, now: sample.received)
                if report.score >= 5 {
                    if isSpam { caught += 1 } else { falsePositives += 1 }
                }
            }
        }
        print("spam fixtures, five-fold: \(caught)/\(spam.count) spam caught, \(falsePositives)/\(ham.count) false positives")
        #expect(falsePositives <= 1)
        #expect(caught >= 100)
    }

    /// The rules alone (no classifier) fire more on the spam than on the ham.
    @Test func rulesSeparateFixtureMessages() {
        func mean(_ set: [(features: MessageFeatures, received: Date?)]) -> Double {
            set.map { SpamScorer.score($0.features, bayes: nil, now: $0.received).score }.reduce(0, +) / Double(max(1, set.count))
        }
        let hamMean = mean(Self.fixtures("ham")), spamMean = mean(Self.fixtures("spam"))
        print("rules only: ham mean \(hamMean), spam mean \(spamMean)")
        #expect(spamMean > hamMean + 1)
    }

    @Test func phraseAndHeaderRules() {
        let msg = Array("""
            From: "BARRISTER JOHN" <j8812@mail.example>\r
            To: undisclosed-recipients:;\r
            Date: Wed, 07 Oct 2020 23:01:36 -1900\r
            Message-ID: <00004b14417b$0000234d@mail.example>\r
            Subject: URGENT BUSINESS PROPOSAL!! Reply today\r
            \r
            Dear Sir, I am the next of kin of the late minister, with $25,000,000 (twenty five million dollars) to move.\r
            Fees of $4,500 and $300 are paid by us. This is not spam: you are on our mailing list.\r
            To be removed, reply with REMOVE in the subject. If you do not wish to receive further mailings, write.\r
            We also offer the lowest rates on debt consolidation.\r
            公司業務\r

            """.utf8)
        let f = MessageFeatures(message: msg)
        let names = Set(SpamScorer.score(f, bayes: nil, now: nil).hits.map(\.name))
        for expected in ["DATE_TZ_ABSURD", "ADVANCE_FEE", "MILLIONS", "MONEY_AMOUNTS", "CLAIMS_NOT_SPAM", "BULK_REMOVE",
                         "SUBJ_EXCLAIM", "SUBJ_CAPS_WORDS", "DEAR_SOMEONE", "OPT_OUT_WORDING", "LOANS"] where SpamScorer.rulesOnlyWeights[expected] != 0 {
            #expect(names.contains(expected), "\(expected) did not fire")
        }
        #expect(!names.contains("HEADER_8BIT") && !names.contains("MISSING_MID") && !names.contains("DATE_IN_PAST"))
        // The Date as seen on arrival: five days later it is old, one day later it is not.
        let dated = f.date!
        #expect(SpamScorer.score(f, bayes: nil, now: dated.addingTimeInterval(5 * 86400)).hits.map(\.name).contains("DATE_IN_PAST"))
        #expect(!SpamScorer.score(f, bayes: nil, now: dated.addingTimeInterval(86400)).hits.map(\.name).contains("DATE_IN_PAST"))
        // Header shapes, CJK pairs and text facts become tokens for the classifier.
        for token in ["mid:9a9a$9a", "tz:-1900", "to:undisclosed", "公司", "司業", "業務", "n$:3-9", "fn:caps", "fl:a9", "mm:none:9a9a$9a"] {
            #expect(f.tokens.contains(token), "no token \(token)")
        }
        // Latin-1 bytes in a Subject that was not encoded: not UTF-8.
        var raw = Array("From: a@b.example\r\nSubject: caf".utf8) + [0xE9] + Array("\r\n\r\nbody\r\n".utf8)
        #expect(Set(SpamScorer.score(MessageFeatures(message: raw), bayes: nil, now: nil).hits.map(\.name)).contains("HEADER_8BIT"))
        raw = Array("From: a@b.example\r\nSubject: café\r\n\r\nbody\r\n".utf8)
        #expect(!Set(SpamScorer.score(MessageFeatures(message: raw), bayes: nil, now: nil).hits.map(\.name)).contains("HEADER_8BIT"))
    }

    @Test func rulesFire() {
        let msg = Array("""
            From: "Bank" <security@bank.example>\r
            Subject: VERIFY YOUR ACCOUNT NOW\r
            Content-Type: text/html\r
            \r
            <p>Click <a href="http://192.0.2.7/login">https://www.bank.example/login</a></p>\r

            """.utf8)
        let f = MessageFeatures(message: msg)
        let now = RFC5322Date.parse("Tue, 24 Nov 2026 12:00:00 +0000")
        // Every rule that fires, each given one point (a rule with 0 points is left out of a report).
        let one = Dictionary(uniqueKeysWithValues: SpamScorer.weights.keys.map { ($0, 1.0) })
        let names = Set(SpamScorer.score(f, bayes: nil, now: now, weights: one).hits.map(\.name))
        #expect(names == ["MISSING_DATE", "MISSING_MID", "SUBJ_ALL_CAPS", "HTML_ONLY", "LINK_TEXT_MISMATCH", "URL_NUMERIC_IP", "TO_UNDISCLOSED",
                         "HTML_NO_MIME_VERSION"])
        // Untrained, the rules-only points apply; with a probability, the other set and a Bayesian band.
        let report = SpamScorer.score(f, bayes: nil, now: now)
        #expect(abs(report.score - names.reduce(0) { $0 + SpamScorer.rulesOnlyWeights[$1]! }) < 0.05)
        let trained = SpamScorer.score(f, bayes: 0.5, now: now)
        #expect(abs(trained.score - names.reduce(SpamScorer.weights["BAYES_40"]!) { $0 + SpamScorer.weights[$1]! }) < 0.05)
        #expect(f.text.contains("Click https://www.bank.example/login"))
        let clean = MessageFeatures(message: Array("From: Ann <a@b.example>\r\nTo: Bob <bob@b.example>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@b>\r\nSubject: Lunch\r\n\r\nSee you at noon.\r\n".utf8))
        // Judged an hour after its Date: nothing fires. (The time is the message's own, never the machine's.)
        #expect(SpamScorer.score(clean, bayes: nil, now: clean.date!.addingTimeInterval(3600)).hits.isEmpty)
        #expect(clean.tokens.contains("s:lunch") && clean.tokens.contains("noon") && clean.tokens.contains("fd:b.example"))
    }

    @Test func receivedFieldsBecomeTokens() {
        let msg = Array("""
            Received: from mx.example.net (mx.example.net [198.51.100.20])\r
            \tby mail.example.org (Postfix) with ESMTP id 1DE8; Tue, 17 Sep 2002 19:22:32 +0800\r
            Received: from relay.bulk.example.com (unknown [203.0.113.133] (may be forged)) by mx.example.net\r
            \twith SMTP id g8HB; Tue, 17 Sep 2002 19:20:00 +0800\r
            Received: from [10.0.0.1] by nowhere with HTTP\r
            From: a@b.example\r
            Subject: hello\r
            \r
            text\r

            """.utf8)
        let tokens = MessageFeatures(message: msg).tokens.filter { $0.hasPrefix("r") && $0.contains(":") && !$0.hasPrefix("rcpts:") }
        // Hosts by their last two labels (never a bracketed address), /24 networks, protocols, and a relay's doubts.
        #expect(tokens == ["rh:example.net", "rh:example.org", "rh:example.com", "rip:198.51.100", "rip:203.0.113", "rip:10.0.0",
                           "rw:esmtp", "rw:smtp", "rw:http", "r:unknown", "r:forged"])
    }
}
