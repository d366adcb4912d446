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
    /// `leavingOut`: the message itself was trained (true as spam, false as ham) and its own counts are taken back out,
    /// so that it is judged as if the filter had never seen it (`tern spam evaluate`).
    public static func probability(store: any MailStore, owner: AccountID?, tokens: Set<String>, leavingOut: Bool? = nil) async -> Double? {
        let ids = tokens.map(BayesClassifier.id)
        guard let counts = try? await store.bayesCounts(owner: owner, tokens: ids) else { return nil }
        var table: [Int64: TokenCounts] = [:]
        let spamBack = leavingOut == true ? 1 : 0, hamBack = leavingOut == false ? 1 : 0
        for (t, c) in counts.tokens { table[t] = TokenCounts(spam: max(0, c.spam - spamBack), ham: max(0, c.ham - hamBack)) }
        return BayesClassifier.probability(tokens: ids, counts: table, trainedSpam: counts.spamMessages - spamBack,
                                           trainedHam: counts.hamMessages - hamBack)
    }

    /// The key a saved message (a file, or one message of an mbox) is trained under: its size and a hash of its
    /// content, so that the same message trains once however often it is given.
    public static func fileKey(_ message: [UInt8]) -> String {
        "f:\(message.count):\(BayesClassifier.id(String(decoding: message, as: UTF8.self)))"
    }
}
