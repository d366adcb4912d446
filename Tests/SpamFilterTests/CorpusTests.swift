import Foundation
import MailMessage
import SpamFilter
import Testing

/// The filter on the SpamAssassin public corpus (../shared/testdata/spam): two thirds of each folder train the
/// classifier, the other third (every third file by name, never seen in training) is scored with the default
/// threshold. The figures are printed and written up in docs/checks.md.
@Suite struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/testdata/spam").standardized

    static func files(_ folder: String) -> [URL] {
        let dir = corpus.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "cmds" }.sorted().map { dir.appendingPathComponent($0) }
    }

    /// One message of the corpus: its features, when it was received, and its file name (for the debug listing).
    struct Sample {
        var features: MessageFeatures
        /// When the corpus owner's server received the message (the date of the newest Received field): the "now"
        /// the date rules would have seen.
        var received: Date?
        var name: String
    }

    static func sample(_ url: URL) -> Sample? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        var bytes = Array(data)
        // The corpus files start with an mbox "From " line; it is not part of the message.
        if bytes.starts(with: Array("From ".utf8)), let nl = bytes.firstIndex(of: 10) { bytes.removeSubrange(...nl) }
        var received: Date?
        if let field = MIMEParser.parse(bytes).header("Received"), let semi = field.lastIndex(of: ";") {
            received = RFC5322Date.parse(String(field[field.index(after: semi)...]))
        }
        return Sample(features: MessageFeatures(message: bytes), received: received, name: url.lastPathComponent)
    }

    /// Every message with its label and whether it is held out (every third file by name). Yields every few messages:
    /// this is seconds of CPU work, and Swift Testing runs it on the cooperative thread pool (as wide as the machine
    /// has cores) that the in-process servers of other suites need too.
    static func labelled(includeHeldOut: Bool = true) async -> [(sample: Sample, spam: Bool, heldOut: Bool)] {
        var out: [(Sample, Bool, Bool)] = []
        for (isSpam, files) in [(false, files("easy_ham") + files("hard_ham")), (true, files("spam"))] {
            for (i, url) in files.enumerated() where includeHeldOut || i % 3 != 2 {
                if i % 20 == 0 { await Task.yield() }
                if let s = sample(url) { out.append((s, isSpam, i % 3 == 2)) }
            }
        }
        return out
    }

    /// Async, and yielding every few messages: this is seconds of CPU work, and Swift Testing runs it on the
    /// cooperative thread pool (as wide as the machine has cores) that the in-process servers of other suites need too.
    @Test func spamAssassinCorpus() async throws {
        let ham = Self.files("easy_ham") + Self.files("hard_ham")
        let spam = Self.files("spam")
        try #require(ham.count > 2000 && spam.count > 400, "corpus not found at \(Self.corpus.path)")
        var bayes = BayesMemory()
        var testHam: [Sample] = [], testSpam: [Sample] = []
        for (sample, isSpam, heldOut) in await Self.labelled() {
            if !heldOut {
                bayes.train(sample.features.tokens, spam: isSpam)
            } else if isSpam {
                testSpam.append(sample)
            } else {
                testHam.append(sample)
            }
        }
        let threshold = 5.0
        func report(_ s: Sample) -> SpamReport {
            SpamScorer.score(s.features, bayes: bayes.probability(s.features.tokens), now: s.received)
        }
        var falsePositives = 0, caught = 0
        for (i, s) in testHam.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            if report(s).score >= threshold { falsePositives += 1 }
        }
        for (i, s) in testSpam.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            if report(s).score >= threshold { caught += 1 }
        }
        let fpRate = Double(falsePositives) / Double(testHam.count)
        let recall = Double(caught) / Double(testSpam.count)
        let precision = Double(caught) / Double(max(1, caught + falsePositives))
        print("SpamAssassin corpus: trained \(bayes.hamMessages) ham + \(bayes.spamMessages) spam; tested \(testHam.count) ham, \(testSpam.count) spam")
        print(String(format: "  false positives %d (%.2f%%), spam caught %d (recall %.2f%%), precision %.2f%%",
                     falsePositives, fpRate * 100, caught, recall * 100, precision * 100))
        if ProcessInfo.processInfo.environment["TERN_CORPUS_DEBUG"] != nil {
            for s in testSpam {
                let r = report(s)
                if r.score < threshold { print("missed spam \(s.name): \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(s.features.subject ?? "")") }
            }
            for s in testHam {
                let r = report(s)
                if r.score >= 2 { print("high ham \(s.name): \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(s.features.subject ?? "")") }
            }
        }
        // Goals (issue 6): false positives under 0.5% and spam recall over 95%, with the points fitted on the training
        // set only.
        #expect(fpRate < 0.005)
        #expect(recall > 0.95)
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
                         "SUBJ_EXCLAIM", "SUBJ_CAPS_WORDS", "DEAR_SOMEONE", "OPT_OUT_WORDING", "LOANS"] where SpamScorer.weights[expected] != 0 {
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
        let report = SpamScorer.score(f, bayes: nil, now: Date())
        let names = Set(report.hits.map(\.name))
        #expect(names == ["MISSING_DATE", "MISSING_MID", "SUBJ_ALL_CAPS", "HTML_ONLY", "LINK_TEXT_MISMATCH", "URL_NUMERIC_IP"])
        #expect(abs(report.score - names.reduce(0) { $0 + SpamScorer.weights[$1]! }) < 0.05)
        #expect(f.text.contains("Click https://www.bank.example/login"))
        let clean = MessageFeatures(message: Array("From: a@b.example\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@b>\r\nSubject: Lunch\r\n\r\nSee you at noon.\r\n".utf8))
        #expect(SpamScorer.score(clean, bayes: nil, now: Date()).hits.isEmpty)
        #expect(clean.tokens.contains("s:lunch") && clean.tokens.contains("noon") && clean.tokens.contains("fd:b.example"))
    }
}

/// Fits the rule and Bayesian-band points on the training two thirds only (never the held-out third), as
/// SpamAssassin fits its scores: each training message gets a Bayesian probability from a classifier trained on the
/// other training folds (so that it is not scored by what it taught), then the points are moved to minimise a hinge
/// loss around the 5.0 threshold, with a false positive costing `hamCost` times a missed spam and a pull towards the
/// hand-set points for rules that fire rarely. Run with TERN_CORPUS_FIT=1; it prints the points to copy into
/// SpamScorer.weights.
@Suite struct CorpusFit {
    static let folds = 10
    /// The rules that are fitted, with their points as first set by hand.
    static let handSet: [String: Double] = [
        "MISSING_FROM": 1.5, "MISSING_DATE": 1.0, "INVALID_DATE": 1.0, "DATE_IN_FUTURE": 1.5, "DATE_TZ_ABSURD": 1.5, "DATE_IN_PAST": 1.0,
        "HEADER_8BIT": 1.0, "MISSING_MID": 0.5, "SUBJ_ALL_CAPS": 1.5, "EMPTY_SUBJECT": 0.5, "MISSING_SUBJECT": 0.5,
        "HTML_ONLY": 1.0, "LINK_TEXT_MISMATCH": 2.0, "URL_NUMERIC_IP": 1.5,
        "BULK_REMOVE": 1.0, "CLAIMS_NOT_SPAM": 1.0, "CLAIMS_OPT_IN": 1.0, "MONEY_AMOUNTS": 1.0, "MILLIONS": 1.0,
        "ADVANCE_FEE": 1.0, "CLICK_HERE": 0.5, "ACT_NOW": 1.0, "GUARANTEED": 1.0, "FREE_OFFER": 1.0,
        "MONEY_FROM_HOME": 1.0, "TOLL_FREE": 0.5, "OPT_OUT_WORDING": 1.0, "DEAR_SOMEONE": 1.0, "LOANS": 1.0, "SUBJ_EXCLAIM": 0.5, "SUBJ_CAPS_WORDS": 0.5,
        "BAYES_99": 5.5, "BAYES_95": 5.0, "BAYES_90": 3.5, "BAYES_80": 3.5, "BAYES_60": 2.0, "BAYES_40": 0,
        "BAYES_20": -0.5, "BAYES_05": -1.0, "BAYES_01": -2.0, "BAYES_00": -3.0,
    ]

    @Test(.enabled(if: ProcessInfo.processInfo.environment["TERN_CORPUS_FIT"] != nil))
    func fitWeights() async throws {
        let training = await CorpusTests.labelled(includeHeldOut: false).map { ($0.sample, $0.spam) }
        // Cross-validated probabilities: ten folds inside the training set, so that each is scored by a classifier
        // trained on nearly as much as the real one.
        var probability = [Double?](repeating: nil, count: training.count)
        for fold in 0..<Self.folds {
            var bayes = BayesMemory()
            for (i, (s, spam)) in training.enumerated() where i % Self.folds != fold { bayes.train(s.features.tokens, spam: spam) }
            for (i, (s, _)) in training.enumerated() where i % Self.folds == fold { probability[i] = bayes.probability(s.features.tokens) }
            await Task.yield()
        }
        let unit = Dictionary(uniqueKeysWithValues: SpamScorer.weights.keys.map { ($0, 1.0) })
        let rows: [([String], Bool)] = training.enumerated().map { i, t in
            (SpamScorer.score(t.0.features, bayes: probability[i], now: t.0.received, weights: unit).hits.map(\.name), t.1)
        }
        // Start from, and pull rarely firing rules towards, the hand-set points; the rules that are not fitted keep theirs.
        var prior = SpamScorer.weights
        for (name, points) in Self.handSet { prior[name] = points }
        var w = prior
        let threshold = 5.0, margin = 1.0, hamCost = 8.0, pull = 0.002, rate = 0.002
        for _ in 0..<8000 {
            var gradient: [String: Double] = [:]
            for (names, spam) in rows {
                let s = names.reduce(0) { $0 + w[$1]! }
                if spam, s < threshold + margin { for n in names { gradient[n, default: 0] -= 1 } }
                if !spam, s > threshold - margin { for n in names { gradient[n, default: 0] += hamCost } }
            }
            for n in Self.handSet.keys {
                w[n]! -= rate * (gradient[n, default: 0] / Double(rows.count) * 100 + pull * (w[n]! - prior[n]!) * 100)
                if !n.hasPrefix("BAYES_") { w[n] = max(0, w[n]!) }
            }
            // Bands stay in order: a higher probability never scores less.
            let bands = SpamScorer.bayesBands.map(\.name).reversed()
            var previous = -Double.infinity
            for b in bands {
                w[b] = max(w[b]!, previous)
                previous = w[b]!
            }
        }
        var fp = 0, caught = 0, hams = 0, spams = 0
        for (names, spam) in rows {
            let s = names.reduce(0) { $0 + w[$1]! }
            if spam { spams += 1; if s >= threshold { caught += 1 } } else { hams += 1; if s >= threshold { fp += 1 } }
        }
        print("fitted on \(hams) ham + \(spams) spam: training false positives \(fp), recall \(caught)/\(spams)")
        if ProcessInfo.processInfo.environment["TERN_CORPUS_DEBUG"] != nil {
            for (i, (names, spam)) in rows.enumerated() {
                let s = names.reduce(0) { $0 + w[$1]! }
                if spam ? s < threshold : s >= threshold - 1 {
                    print("\(spam ? "missed spam" : "high ham") \(training[i].0.name): \(String(format: "%.1f", s)) \(names) \(training[i].0.features.subject ?? "")")
                }
            }
        }
        #expect(Double(fp) / Double(hams) < 0.005)
        for n in Self.handSet.keys.sorted() { print(String(format: "  \"%@\": %.1f,", n as NSString, (w[n]! * 10).rounded() / 10)) }
    }
}
