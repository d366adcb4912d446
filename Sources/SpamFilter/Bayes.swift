import Foundation

/// How often a token was seen in messages trained as spam and as ham.
public struct TokenCounts: Sendable, Hashable {
    public var spam: Int
    public var ham: Int
    public init(spam: Int, ham: Int) {
        self.spam = spam
        self.ham = ham
    }
}

/// The Bayesian classifier: Gary Robinson's per-token probabilities with Fisher's chi-square combining, as SpamBayes
/// and SpamAssassin use them. Tokens are stored by a 64-bit hash.
public enum BayesClassifier {
    /// Below this many trained messages of either kind the classifier abstains (SpamAssassin waits for 200).
    public static let minimumTrained = 100
    /// Robinson's strength of the prior (s) and the prior itself (x).
    static let strength = 0.45, prior = 0.5
    /// Tokens whose probability is this close to 0.5 say nothing and are left out; at most `maxTokens` of the most
    /// telling ones count.
    static let minDeviation = 0.1, maxTokens = 150

    /// The stored key of a token (FNV-1a, 64 bits, as a signed integer for SQLite).
    public static func id(_ token: String) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in token.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return Int64(bitPattern: h)
    }

    /// The spam probability (0…1) of a message with these tokens, or nil while too little has been trained.
    public static func probability(tokens: [Int64], counts: [Int64: TokenCounts], trainedSpam: Int, trainedHam: Int) -> Double? {
        guard trainedSpam >= minimumTrained, trainedHam >= minimumTrained else { return nil }
        var clues: [Double] = []
        for t in tokens {
            guard let c = counts[t], c.spam + c.ham > 0 else { continue }
            let spamRatio = Double(c.spam) / Double(trainedSpam), hamRatio = Double(c.ham) / Double(trainedHam)
            let p = spamRatio / (spamRatio + hamRatio)
            let n = Double(c.spam + c.ham)
            let f = (strength * prior + n * p) / (strength + n)
            if abs(f - 0.5) >= minDeviation { clues.append(f) }
        }
        guard !clues.isEmpty else { return 0.5 }
        clues.sort { abs($0 - 0.5) > abs($1 - 0.5) }
        let used = clues.prefix(maxTokens).map { min(max($0, 0.0001), 0.9999) }
        let n = used.count
        let spamminess = 1 - chi2Q(-2 * used.reduce(0) { $0 + log(1 - $1) }, 2 * n)
        let hamminess = 1 - chi2Q(-2 * used.reduce(0) { $0 + log($1) }, 2 * n)
        return (spamminess - hamminess + 1) / 2
    }

    /// The probability that a chi-square variable with `v` (even) degrees of freedom is at least `x2`.
    static func chi2Q(_ x2: Double, _ v: Int) -> Double {
        let m = x2 / 2
        var term = exp(-m), sum = term
        if v >= 4 {
            for i in 1..<(v / 2) {
                term *= m / Double(i)
                sum += term
            }
        }
        return min(sum, 1)
    }
}

/// Token counts held in memory: the corpus evaluation and `tern spam train` build one, the store keeps the same in
/// tables.
public struct BayesMemory: Sendable {
    public private(set) var counts: [Int64: TokenCounts] = [:]
    public private(set) var spamMessages = 0
    public private(set) var hamMessages = 0

    public init() {}

    public mutating func train(_ tokens: Set<String>, spam: Bool) {
        for t in tokens {
            var c = counts[BayesClassifier.id(t)] ?? TokenCounts(spam: 0, ham: 0)
            if spam { c.spam += 1 } else { c.ham += 1 }
            counts[BayesClassifier.id(t)] = c
        }
        if spam { spamMessages += 1 } else { hamMessages += 1 }
    }

    public func probability(_ tokens: Set<String>) -> Double? {
        BayesClassifier.probability(tokens: tokens.map(BayesClassifier.id), counts: counts, trainedSpam: spamMessages, trainedHam: hamMessages)
    }
}
