import Foundation
import Intake
import MailMessage
import MailStore
import SpamFilter
import TernConfig

/// Saved messages for `tern spam train` and `tern spam evaluate`: files, or folders of them (Maildir included), each
/// file one message or an mbox of several.
public enum SpamCorpus {
    /// The octets of a message the filter reads, at most (as the server's filter).
    static let maxMessage = 1 << 20

    /// The files under `paths` (folders walked, hidden files left out), in path order.
    public static func files(_ paths: [String]) throws -> [URL] {
        var files: [URL] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { throw CommandFailure("\(p) does not exist") }
            guard isDir.boolValue else { files.append(URL(fileURLWithPath: p)); continue }
            let walker = FileManager.default.enumerator(at: URL(fileURLWithPath: p), includingPropertiesForKeys: [.isRegularFileKey])
            while let u = walker?.nextObject() as? URL {
                if (try? u.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true, !u.lastPathComponent.hasPrefix(".") {
                    files.append(u)
                }
            }
        }
        return files.sorted { $0.path < $1.path }
    }

    /// The messages of one file (see MessageText.messages), each cut to what the filter reads.
    public static func messages(in url: URL) -> [[UInt8]] {
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        return MessageText.messages(in: Array(data)).map { Array($0.prefix(maxMessage)) }
    }

    /// Trains every message under `ham` and `spam` into `owner`'s counts (nil: the global ones); returns how many
    /// changed the counts and how many were read.
    public static func train(store: any MailStore, owner: AccountID?, ham: [String], spam: [String]) async throws -> (trained: Int, read: Int) {
        let sets = [(false, try files(ham)), (true, try files(spam))]
        let progress = Progress(total: sets.reduce(0) { $0 + $1.1.count }, label: "training")
        var trained = 0, read = 0, done = 0
        for (isSpam, list) in sets {
            for url in list {
                for message in messages(in: url) {
                    read += 1
                    let tokens = MessageFeatures(message: message).tokens.map(BayesClassifier.id)
                    if try await store.trainBayes(owner: owner, key: SpamTraining.fileKey(message), tokens: tokens, spam: isSpam) { trained += 1 }
                }
                done += 1
                progress.update(done)
            }
        }
        progress.finish()
        return (trained, read)
    }

    public struct Evaluation: Sendable {
        public var spam = 0, spamCaught = 0, ham = 0, hamMarked = 0
        /// Messages the counts had been trained on, scored with their own counts taken out.
        public var leftOut = 0
        /// Messages scored without the classifier (it had too little training).
        public var rulesOnly = 0

        public var summary: String {
            func percent(_ n: Int, _ of: Int) -> String { of == 0 ? "-" : String(format: "%.1f%%", Double(n) / Double(of) * 100) }
            return "spam caught \(spamCaught) of \(spam) (\(percent(spamCaught, spam))), ham marked spam \(hamMarked) of \(ham) (\(percent(hamMarked, ham)))"
        }
    }

    /// Scores every message as port 25 would (the rules and the installation's global counts, through the same
    /// functions), with the junk threshold of the config. No message is judged by counts it taught: one that was
    /// trained is scored with its own counts taken back out. The time the date rules compare with is when the message
    /// was received (its newest Received field), else its Date.
    public static func evaluate(store: any MailStore, config: TernConfiguration, ham: [String], spam: [String],
                                each: ((String, Bool, SpamReport) -> Void)? = nil) async throws -> Evaluation {
        let sets = [(false, try files(ham)), (true, try files(spam))]
        let progress = Progress(total: sets.reduce(0) { $0 + $1.1.count }, label: "scoring")
        var result = Evaluation(), done = 0
        for (isSpam, list) in sets {
            for url in list {
                for message in messages(in: url) {
                    let corpus = CorpusMessage(fileContents: message)
                    let trained = try await store.bayesTraining(owner: nil, key: SpamTraining.fileKey(message))
                    if trained != nil { result.leftOut += 1 }
                    let bayes = await SpamTraining.probability(store: store, owner: nil, tokens: corpus.features.tokens, leavingOut: trained)
                    if bayes == nil { result.rulesOnly += 1 }
                    let report = SpamScorer.score(corpus.features, bayes: bayes, now: corpus.received ?? corpus.features.date)
                    let marked = report.score >= config.checks.junkScore
                    if isSpam {
                        result.spam += 1
                        if marked { result.spamCaught += 1 }
                    } else {
                        result.ham += 1
                        if marked { result.hamMarked += 1 }
                    }
                    each?(url.path, isSpam, report)
                }
                done += 1
                progress.update(done)
            }
        }
        progress.finish()
        return result
    }
}
