import Logging
import MailStore
import SpamFilter

/// Teaches the Bayesian filter from what users do: a message moved or copied into the Junk mailbox is spam, one moved
/// out of Junk (anywhere but Trash) is ham. Each is trained for the user and for the global counts; training the same
/// message again the same way changes nothing, the other way moves its counts over.
public enum SpamTraining {
    /// At most this many messages are trained per command (a user emptying a huge Junk folder into INBOX trains on the
    /// first ones only); the octets read per message are capped like the filter's.
    public static let maxPerCommand = 500

    /// What a copy or move from `source` to `target` teaches, if anything: true spam, false ham.
    public static func lesson(source: SpecialUse?, target: SpecialUse?) -> Bool? {
        if target == .junk && source != .junk { return true }
        if source == .junk && target != .junk && target != .trash { return false }
        return nil
    }

    public static func train(store: any MailStore, account: AccountID, messages: [MessageID], spam: Bool, logger: Logger) async {
        var trained = 0
        for id in messages.prefix(maxPerCommand) {
            do {
                let content = try await store.content(of: id)
                let tokens = MessageFeatures(message: Array(content.prefix(1 << 20))).tokens.map(BayesClassifier.id)
                let key = "m:\(id)"
                if try await store.trainBayes(owner: account, key: key, tokens: tokens, spam: spam) { trained += 1 }
                _ = try await store.trainBayes(owner: nil, key: key, tokens: tokens, spam: spam)
            } catch {
                logger.warning("spam training failed", metadata: ["message": "\(id)", "error": "\(error)"])
            }
        }
        if trained > 0 { logger.info("spam filter trained", metadata: ["messages": "\(trained)", "as": "\(spam ? "spam" : "ham")"]) }
    }

    /// The filter's probability for a message's tokens with `owner`'s counts plus the global ones (nil while too little
    /// has been trained, or when the counts cannot be read).
    public static func probability(store: any MailStore, owner: AccountID?, tokens: Set<String>) async -> Double? {
        let ids = tokens.map(BayesClassifier.id)
        guard let counts = try? await store.bayesCounts(owner: owner, tokens: ids) else { return nil }
        var table: [Int64: TokenCounts] = [:]
        for (t, c) in counts.tokens { table[t] = TokenCounts(spam: c.spam, ham: c.ham) }
        return BayesClassifier.probability(tokens: ids, counts: table, trainedSpam: counts.spamMessages, trainedHam: counts.hamMessages)
    }
}
