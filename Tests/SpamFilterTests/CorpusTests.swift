import Foundation
import MailMessage
import SpamFilter
import Testing

/// The filter on the SpamAssassin public corpus (../shared/testdata/spam): two thirds of each folder train the
/// classifier, the other third (every third file by name, never seen in training) is scored with the default
/// threshold. The figures are printed and written up in docs/spam-filter.md.
@Suite struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/testdata/spam").standardized

    static func files(_ folder: String) -> [URL] {
        let dir = corpus.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && $0 != "cmds" }.sorted().map { dir.appendingPathComponent($0) }
    }

    static func features(_ url: URL) -> MessageFeatures? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        var bytes = Array(data)
        // The corpus files start with an mbox "From " line; it is not part of the message.
        if bytes.starts(with: Array("From ".utf8)), let nl = bytes.firstIndex(of: 10) { bytes.removeSubrange(...nl) }
        return MessageFeatures(message: bytes)
    }

    /// Async, and yielding every few messages: this is seconds of CPU work, and Swift Testing runs it on the
    /// cooperative thread pool (as wide as the machine has cores) that the in-process servers of other suites need too.
    @Test func spamAssassinCorpus() async throws {
        let ham = Self.files("easy_ham") + Self.files("hard_ham")
        let spam = Self.files("spam")
        try #require(ham.count > 2000 && spam.count > 400, "corpus not found at \(Self.corpus.path)")
        var bayes = BayesMemory()
        var testHam: [MessageFeatures] = [], testSpam: [MessageFeatures] = []
        for (i, url) in ham.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            guard let f = Self.features(url) else { continue }
            if i % 3 == 2 { testHam.append(f) } else { bayes.train(f.tokens, spam: false) }
        }
        for (i, url) in spam.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            guard let f = Self.features(url) else { continue }
            if i % 3 == 2 { testSpam.append(f) } else { bayes.train(f.tokens, spam: true) }
        }
        let threshold = 5.0
        func flagged(_ f: MessageFeatures) -> Bool {
            SpamScorer.score(f, bayes: bayes.probability(f.tokens), now: nil).score >= threshold
        }
        var falsePositives = 0, caught = 0
        for (i, f) in testHam.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            if flagged(f) { falsePositives += 1 }
        }
        for (i, f) in testSpam.enumerated() {
            if i % 20 == 0 { await Task.yield() }
            if flagged(f) { caught += 1 }
        }
        let fpRate = Double(falsePositives) / Double(testHam.count)
        let recall = Double(caught) / Double(testSpam.count)
        let precision = Double(caught) / Double(max(1, caught + falsePositives))
        print("SpamAssassin corpus: trained \(bayes.hamMessages) ham + \(bayes.spamMessages) spam; tested \(testHam.count) ham, \(testSpam.count) spam")
        print(String(format: "  false positives %d (%.2f%%), spam caught %d (recall %.2f%%), precision %.2f%%",
                     falsePositives, fpRate * 100, caught, recall * 100, precision * 100))
        if ProcessInfo.processInfo.environment["TERN_CORPUS_DEBUG"] != nil {
            for f in testSpam where !flagged(f) {
                let r = SpamScorer.score(f, bayes: bayes.probability(f.tokens), now: nil)
                print("missed spam: \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(f.subject ?? "")")
            }
            for f in testHam {
                let r = SpamScorer.score(f, bayes: bayes.probability(f.tokens), now: nil)
                if r.score >= 2 { print("high ham: \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(f.subject ?? "")") }
            }
        }
        // Goals (issue 6): false positives under 0.5% (met) and recall over 95% (not yet: 91.6% when this was written,
        // before per-user training and more rules; the baseline keeps it from slipping back).
        #expect(fpRate < 0.005)
        #expect(recall >= 0.90)
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
        #expect(report.score == 7.5)
        #expect(f.text.contains("Click https://www.bank.example/login"))
        let clean = MessageFeatures(message: Array("From: a@b.example\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@b>\r\nSubject: Lunch\r\n\r\nSee you at noon.\r\n".utf8))
        #expect(SpamScorer.score(clean, bayes: nil, now: Date()).hits.isEmpty)
        #expect(clean.tokens.contains("s:lunch") && clean.tokens.contains("noon") && clean.tokens.contains("fd:b.example"))
    }
}
