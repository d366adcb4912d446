import Foundation
import MailMessage
import SpamFilter

// The spam filter measured on a labelled corpus (the SpamAssassin public corpus's layout: folders easy_ham/, hard_ham/
// and spam/ of raw messages), as it meets mail on a server: trained on the past, scoring what comes later. Each class
// is put in the order its messages were received (the newest Received field); the older two thirds train the Bayesian
// classifier and the newest third, never seen in training, is scored with the default threshold, each message as of
// the time it was received (the "now" the date rules would have seen). Prints what was caught and the false positives,
// trained and untrained (the rules alone, as on a fresh install).
//
//   swift run -c release spam-corpus CORPUS_FOLDER [--fit] [--debug]
//
// --fit refits the rule and Bayesian-band points on the training two thirds only (never the held-out third) and
// prints them to copy into SpamScorer.weights; --debug lists the missed spam and the high-scoring ham.

/// One message of the corpus: its features, when it was received, and its file name (for the debug listing).
struct Sample {
    var features: MessageFeatures
    var received: Date?
    var name: String
}

func files(_ corpus: URL, _ folder: String) -> [URL] {
    let dir = corpus.appendingPathComponent(folder)
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { !$0.hasPrefix(".") && $0 != "cmds" }.sorted().map { dir.appendingPathComponent($0) }
}

func sample(_ url: URL) -> Sample? {
    guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
    let message = CorpusMessage(fileContents: Array(data))
    return Sample(features: message.features, received: message.received, name: url.lastPathComponent)
}

/// Every message with its label and whether it is held out: the newest third of its class by time received (a message
/// without a readable Received date goes by its Date, else counts as old; ties keep the file order).
func labelled(_ corpus: URL, includeHeldOut: Bool = true) -> [(sample: Sample, spam: Bool, heldOut: Bool)] {
    var out: [(Sample, Bool, Bool)] = []
    for (isSpam, list) in [(false, files(corpus, "easy_ham") + files(corpus, "hard_ham")), (true, files(corpus, "spam"))] {
        let samples = list.compactMap(sample).enumerated().sorted { a, b in
            let (x, y) = (a.element.received ?? a.element.features.date ?? .distantPast, b.element.received ?? b.element.features.date ?? .distantPast)
            return x != y ? x < y : a.offset < b.offset
        }.map(\.element)
        let firstHeldOut = samples.count - samples.count / 3
        for (i, s) in samples.enumerated() where includeHeldOut || i < firstHeldOut { out.append((s, isSpam, i >= firstHeldOut)) }
    }
    return out
}

func evaluate(_ corpus: URL, debug: Bool) -> Bool {
    var bayes = BayesMemory()
    var testHam: [Sample] = [], testSpam: [Sample] = []
    for (sample, isSpam, heldOut) in labelled(corpus) {
        if !heldOut {
            bayes.train(sample.features.tokens, spam: isSpam)
        } else if isSpam {
            testSpam.append(sample)
        } else {
            testHam.append(sample)
        }
    }
    guard !testHam.isEmpty, !testSpam.isEmpty else {
        print("no messages found under \(corpus.path) (expected easy_ham/, hard_ham/ and spam/)")
        return false
    }
    let threshold = 5.0
    func report(_ s: Sample) -> SpamReport {
        SpamScorer.score(s.features, bayes: bayes.probability(s.features.tokens), now: s.received)
    }
    // Untrained: the rules alone, as a fresh install scores.
    let rulesOnlyFP = testHam.filter { SpamScorer.score($0.features, bayes: nil, now: $0.received).score >= threshold }.count
    let rulesOnlyCaught = testSpam.filter { SpamScorer.score($0.features, bayes: nil, now: $0.received).score >= threshold }.count
    let falsePositives = testHam.filter { report($0).score >= threshold }.count
    let caught = testSpam.filter { report($0).score >= threshold }.count
    let fpRate = Double(falsePositives) / Double(testHam.count)
    let recall = Double(caught) / Double(testSpam.count)
    let precision = Double(caught) / Double(max(1, caught + falsePositives))
    print("corpus \(corpus.path): trained \(bayes.hamMessages) ham + \(bayes.spamMessages) spam; tested \(testHam.count) ham, \(testSpam.count) spam")
    print(String(format: "  untrained (rules only): spam caught %d of %d (%.1f%%), ham marked spam %d of %d (%.2f%%)",
                 rulesOnlyCaught, testSpam.count, Double(rulesOnlyCaught) / Double(testSpam.count) * 100,
                 rulesOnlyFP, testHam.count, Double(rulesOnlyFP) / Double(testHam.count) * 100))
    print(String(format: "  trained: spam caught %d of %d (%.1f%%), ham marked spam %d of %d (%.2f%%), precision %.2f%%",
                 caught, testSpam.count, recall * 100, falsePositives, testHam.count, fpRate * 100, precision * 100))
    if debug {
        for s in testSpam {
            let r = report(s)
            if r.score < threshold { print("missed spam \(s.name): \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(s.features.subject ?? "")") }
        }
        for s in testHam {
            let r = report(s)
            if r.score >= 2 { print("high ham \(s.name): \(r.score) \(r.bayes ?? -1) \(r.hits.map(\.name)) \(s.features.subject ?? "")") }
        }
    }
    // Goals (issue 20): on later mail, at least 95% of spam caught with at most 0.1% of ham marked spam; untrained, at
    // least 60% caught.
    let rulesRecall = Double(rulesOnlyCaught) / Double(testSpam.count)
    let met = fpRate <= 0.001 && recall >= 0.95 && rulesRecall >= 0.6
    print(met ? "  goals met (trained >= 95% caught, <= 0.1% ham; untrained >= 60%)"
              : "  goals NOT met (trained >= 95% caught, <= 0.1% ham; untrained >= 60%)")
    return met
}

/// The rules that are fitted, with their points as first set by hand (the pull of the fit goes towards these).
let handSet: [String: Double] = {
    var set: [String: Double] = [
        "MISSING_FROM": 1.5, "MISSING_DATE": 1.0, "INVALID_DATE": 1.0, "DATE_IN_FUTURE": 1.5, "DATE_TZ_ABSURD": 1.5, "DATE_IN_PAST": 1.0,
        "HEADER_8BIT": 1.0, "MISSING_MID": 0.5, "SUBJ_ALL_CAPS": 1.5, "EMPTY_SUBJECT": 0.5, "MISSING_SUBJECT": 0.5,
        "HTML_ONLY": 1.0, "LINK_TEXT_MISMATCH": 2.0, "URL_NUMERIC_IP": 1.5, "MONEY_AMOUNTS": 1.0, "SUBJ_EXCLAIM": 0.5, "SUBJ_CAPS_WORDS": 0.5,
        "BAYES_99": 5.5, "BAYES_95": 5.0, "BAYES_90": 3.5, "BAYES_80": 3.5, "BAYES_60": 2.0, "BAYES_40": 0,
        "BAYES_20": -0.5, "BAYES_05": -1.0, "BAYES_01": -2.0, "BAYES_00": -3.0,
    ]
    for rule in SpamScorer.phraseRules where set[rule.name] == nil { set[rule.name] = 1.0 }
    for rule in SpamScorer.structureRules { set[rule.name] = 1.0 }
    return set
}()

/// Moves the points of `keys` to minimise a hinge loss around the 5.0 threshold over `rows` (the rules each message
/// fired, and whether it is spam): a false positive costs `hamCost` missed spam, and a pull towards the hand-set points
/// keeps rules that seldom fire near them.
func fitPoints(_ rows: [([String], Bool)], keys: [String], hamCost: Double) -> [String: Double] {
    var prior = SpamScorer.weights
    for (name, points) in handSet { prior[name] = points }
    var w = prior
    let env = ProcessInfo.processInfo.environment
    let threshold = 5.0, margin = Double(env["FIT_MARGIN"] ?? "") ?? 0.5, pull = 0.002, rate = 0.002
    for _ in 0..<8000 {
        var gradient: [String: Double] = [:]
        for (names, spam) in rows {
            let s = names.reduce(0) { $0 + w[$1]! }
            if spam, s < threshold + margin { for n in names { gradient[n, default: 0] -= 1 } }
            if !spam, s > threshold - margin { for n in names { gradient[n, default: 0] += hamCost } }
        }
        for n in keys {
            w[n]! -= rate * (gradient[n, default: 0] / Double(rows.count) * 100 + pull * (w[n]! - prior[n]!) * 100)
            if !n.hasPrefix("BAYES_") { w[n] = max(0, w[n]!) }
        }
        // Bands stay in order: a higher probability never scores less.
        var previous = -Double.infinity
        for b in SpamScorer.bayesBands.map(\.name).reversed() where w[b] != nil {
            w[b] = max(w[b]!, previous)
            previous = w[b]!
        }
    }
    return w
}

/// Fits both score sets as SpamAssassin fits its scores, on the training part only: with the classifier (each training
/// message gets a Bayesian probability from a classifier trained on the other training folds, so that it is not
/// scored by what it taught) and without it (the rules alone, as a fresh install scores).
func fit(_ corpus: URL, debug: Bool) {
    let folds = 10
    let training = labelled(corpus, includeHeldOut: false).map { ($0.sample, $0.spam) }
    var probability = [Double?](repeating: nil, count: training.count)
    for fold in 0..<folds {
        var bayes = BayesMemory()
        for (i, (s, spam)) in training.enumerated() where i % folds != fold { bayes.train(s.features.tokens, spam: spam) }
        for (i, (s, _)) in training.enumerated() where i % folds == fold { probability[i] = bayes.probability(s.features.tokens) }
    }
    let unit = Dictionary((Array(SpamScorer.weights.keys) + Array(handSet.keys)).map { ($0, 1.0) }, uniquingKeysWith: { a, _ in a })
    for (label, withBayes) in [("with the classifier (weights)", true), ("rules only (rulesOnlyWeights)", false)] {
        let rows: [([String], Bool)] = training.enumerated().map { i, t in
            (SpamScorer.score(t.0.features, bayes: withBayes ? probability[i] : nil, now: t.0.received, weights: unit).hits.map(\.name), t.1)
        }
        let keys = handSet.keys.filter { withBayes || !$0.hasPrefix("BAYES_") }
        let env = ProcessInfo.processInfo.environment
        let w = fitPoints(rows, keys: keys, hamCost: withBayes ? Double(env["FIT_HAMCOST"] ?? "") ?? 8 : 16)
        var fp = 0, caught = 0, hams = 0, spams = 0
        for (names, spam) in rows {
            let s = names.reduce(0) { $0 + w[$1]! }
            if spam { spams += 1; if s >= 5 { caught += 1 } } else { hams += 1; if s >= 5 { fp += 1 } }
        }
        print("\(label): fitted on \(hams) ham + \(spams) spam: training false positives \(fp), recall \(caught)/\(spams)")
        if debug {
            for (i, (names, spam)) in rows.enumerated() {
                let s = names.reduce(0) { $0 + w[$1]! }
                if spam ? s < 5 : s >= 4 {
                    print("\(spam ? "missed spam" : "high ham") \(training[i].0.name): \(String(format: "%.1f", s)) \(names) \(training[i].0.features.subject ?? "")")
                }
            }
        }
        print("  " + keys.sorted().map { String(format: "\"%@\": %.1f", $0 as NSString, (w[$0]! * 10).rounded() / 10) }.joined(separator: ", "))
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
guard let folder = arguments.first(where: { !$0.hasPrefix("--") }) else {
    print("usage: spam-corpus CORPUS_FOLDER [--fit] [--debug]   (folders easy_ham/, hard_ham/, spam/ of raw messages)")
    exit(64)
}
let corpus = URL(fileURLWithPath: folder)
let debug = arguments.contains("--debug")
if arguments.contains("--fit") {
    fit(corpus, debug: debug)
} else {
    exit(evaluate(corpus, debug: debug) ? 0 : 1)
}
