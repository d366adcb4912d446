import Foundation
import MailDNS

/// A DMARC policy record (RFC 7489 §6.3).
public struct DMARCRecord: Sendable, Equatable {
    public enum Policy: String, Sendable, Comparable {
        case none, quarantine, reject
        public static func < (a: Policy, b: Policy) -> Bool { a.rank < b.rank }
        var rank: Int { self == .none ? 0 : self == .quarantine ? 1 : 2 }
        /// The policy one step gentler (for messages left out by pct=, §6.6.4).
        var gentler: Policy { self == .reject ? .quarantine : .none }
    }
    public enum Alignment: String, Sendable { case relaxed = "r", strict = "s" }

    public var policy: Policy
    public var subdomainPolicy: Policy?
    public var dkimAlignment: Alignment = .relaxed
    public var spfAlignment: Alignment = .relaxed
    public var percent: Int = 100
    public var aggregateReports: [String] = []
    public var failureReports: [String] = []

    /// Parses a TXT record; nil when it is not a DMARC record at all (it must start with `v=DMARC1`).
    /// A record with a bad or missing p= but an rua= counts as p=none (§6.6.3).
    public static func parse(_ text: String) -> DMARCRecord? {
        var tags: [(String, String)] = []
        for part in text.split(separator: ";") {
            let t = part.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.isEmpty { continue }
            guard let eq = t.firstIndex(of: "=") else { return nil }
            tags.append((t[..<eq].trimmingCharacters(in: .whitespaces).lowercased(), t[t.index(after: eq)...].trimmingCharacters(in: .whitespaces)))
        }
        guard let first = tags.first, first.0 == "v", first.1 == "DMARC1" else { return nil }
        var dict: [String: String] = [:]
        for (k, v) in tags where dict[k] == nil { dict[k] = v }
        let rua = dict["rua"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        var record: DMARCRecord
        if let p = dict["p"].flatMap({ Policy(rawValue: $0.lowercased()) }) {
            record = DMARCRecord(policy: p)
        } else if !rua.isEmpty {
            record = DMARCRecord(policy: .none)
        } else {
            return nil
        }
        record.aggregateReports = rua
        record.failureReports = dict["ruf"].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        record.subdomainPolicy = dict["sp"].flatMap { Policy(rawValue: $0.lowercased()) }
        if let a = dict["adkim"].flatMap({ Alignment(rawValue: $0.lowercased()) }) { record.dkimAlignment = a }
        if let a = dict["aspf"].flatMap({ Alignment(rawValue: $0.lowercased()) }) { record.spfAlignment = a }
        if let pct = dict["pct"].flatMap({ Int($0) }), (0...100).contains(pct) { record.percent = pct }
        return record
    }

    public init(policy: Policy) { self.policy = policy }
}

public enum DMARCResult: String, Sendable, Equatable {
    case none, pass, fail, temperror, permerror
}

/// What DMARC says about one message.
public struct DMARCOutcome: Sendable, Equatable {
    public var result: DMARCResult
    /// The RFC5322.From domain (header.from).
    public var fromDomain: String
    public var organizationalDomain: String
    /// The record that applied and where it was found.
    public var record: DMARCRecord?
    public var recordDomain: String?
    /// The policy the domain asks for this message (p= or sp=), before pct=.
    public var requestedPolicy: DMARCRecord.Policy
    /// The policy to apply after pct= sampling: what the receiver should do on `fail`.
    public var disposition: DMARCRecord.Policy
    /// Which authenticated identifiers were aligned.
    public var dkimAligned: Bool
    public var spfAligned: Bool
    public var reason: String

    /// How strict the outcome is, for choosing among a message's From domains: a failure with a harder disposition
    /// first, then a lookup that could not be made, then no policy, then a pass.
    var strictness: Int {
        switch result {
        case .fail: 4 + disposition.rank
        case .temperror: 3
        case .permerror: 2
        case .none: 1
        case .pass: 0
        }
    }
}

/// DMARC evaluation (RFC 7489 §6.6): policy discovery at the From domain, then its organizational domain, and
/// identifier alignment with the SPF and DKIM results.
public struct DMARCChecker: Sendable {
    public let resolver: any DNSResolver
    public let suffixes: PublicSuffixList

    public init(resolver: any DNSResolver, suffixes: PublicSuffixList = .builtIn) {
        self.resolver = resolver
        self.suffixes = suffixes
    }

    /// - Parameters:
    ///   - fromDomain: the domain of the message's single From address (nil: none could be found, or several).
    ///   - spf: the SPF result and the domain it was checked for (MAIL FROM's, or HELO's for a null sender).
    ///   - dkim: the results of the message's signatures.
    ///   - sample: a number in 0..<100 for pct= sampling (random by default).
    public func check(fromDomain: String?, spf: (result: SPFResult, domain: String)?, dkim: [DKIMOutcome],
                      sample: Int = Int.random(in: 0..<100)) async -> DMARCOutcome {
        guard let raw = fromDomain, !raw.isEmpty else {
            return DMARCOutcome(result: .permerror, fromDomain: "", organizationalDomain: "", record: nil, recordDomain: nil,
                                requestedPolicy: .none, disposition: .none, dkimAligned: false, spfAligned: false,
                                reason: "no single From domain to check")
        }
        let from = raw.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        let org = suffixes.organizationalDomain(of: from)
        var outcome = DMARCOutcome(result: .none, fromDomain: from, organizationalDomain: org, record: nil, recordDomain: nil,
                                   requestedPolicy: .none, disposition: .none, dkimAligned: false, spfAligned: false, reason: "")
        // Policy discovery (§6.6.3): the From domain, then the organizational domain.
        var found: (DMARCRecord, String)?
        for domain in from == org ? [from] : [from, org] {
            switch await lookup(domain) {
            case .found(let r): found = (r, domain)
            case .none: continue
            case .temporary:
                outcome.result = .temperror
                outcome.reason = "DNS lookup of _dmarc.\(domain) failed temporarily"
                return outcome
            }
            if found != nil { break }
        }
        guard let (record, recordDomain) = found else {
            outcome.reason = "no DMARC record for \(from)"
            return outcome
        }
        outcome.record = record
        outcome.recordDomain = recordDomain
        outcome.requestedPolicy = (recordDomain != from ? record.subdomainPolicy : nil) ?? record.policy
        // Identifier alignment (§3.1).
        func aligned(_ domain: String, _ mode: DMARCRecord.Alignment) -> Bool {
            let d = domain.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
            return mode == .strict ? d == from : suffixes.organizationalDomain(of: d) == org
        }
        outcome.dkimAligned = dkim.contains { $0.result == .pass && aligned($0.domain, record.dkimAlignment) }
        if let spf, spf.result == .pass { outcome.spfAligned = aligned(spf.domain, record.spfAlignment) }
        if outcome.dkimAligned || outcome.spfAligned {
            outcome.result = .pass
            outcome.reason = outcome.dkimAligned ? "aligned DKIM signature" : "aligned SPF"
            return outcome
        }
        outcome.result = .fail
        outcome.disposition = sample < record.percent ? outcome.requestedPolicy : outcome.requestedPolicy.gentler
        outcome.reason = "neither DKIM nor SPF passed aligned with \(from)"
        return outcome
    }

    /// At most this many From domains are checked for one message (each costs up to two DNS lookups).
    public static let maxFromDomains = 10

    /// DMARC for a message whose From fields name several domains (§6.6.1: each is checked as the Author Domain, and
    /// the strictest failing policy applies): the strictest outcome. A message that names more than `maxFromDomains`
    /// domains fails unchecked, with the strictest disposition, since no check may be skipped: leaving one out would let
    /// a forged From through behind others.
    public func check(fromDomains: [String], spf: (result: SPFResult, domain: String)?, dkim: [DKIMOutcome],
                      sample: Int = Int.random(in: 0..<100)) async -> DMARCOutcome {
        guard fromDomains.count <= Self.maxFromDomains else {
            return DMARCOutcome(result: .fail, fromDomain: fromDomains[0], organizationalDomain: "", record: nil, recordDomain: nil,
                                requestedPolicy: .reject, disposition: .reject, dkimAligned: false, spfAligned: false,
                                reason: "the From field names \(fromDomains.count) domains, more than \(Self.maxFromDomains) checked")
        }
        guard !fromDomains.isEmpty else { return await check(fromDomain: nil, spf: spf, dkim: dkim, sample: sample) }
        var strictest: DMARCOutcome?
        for domain in fromDomains {
            let outcome = await check(fromDomain: domain, spf: spf, dkim: dkim, sample: sample)
            if strictest.map({ outcome.strictness > $0.strictness }) ?? true { strictest = outcome }
        }
        return strictest!
    }

    enum Lookup { case found(DMARCRecord), none, temporary }

    /// Whether `name` can be asked about: labels of 1 to 63 octets, 253 in all (RFC 1035 §2.3.4). Text in a From domain
    /// that cannot (`a..example`) has no record at its own name; discovery goes on at its organizational domain.
    static func isQueryable(_ name: String) -> Bool {
        let octets = Array(name.utf8)
        guard !octets.isEmpty, octets.count <= 253 else { return false }
        return octets.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { (1...63).contains($0.count) }
    }

    func lookup(_ domain: String) async -> Lookup {
        guard Self.isQueryable("_dmarc." + domain) else { return .none }
        do {
            let records = try await resolver.txt("_dmarc." + domain).compactMap(DMARCRecord.parse)
            // §6.6.3: more than one DMARC record means none applies.
            return records.count == 1 ? .found(records[0]) : .none
        } catch {
            return error.isTemporary ? .temporary : .none
        }
    }
}
