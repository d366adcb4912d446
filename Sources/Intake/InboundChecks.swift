

import Deliverability
import Foundation
import MailAuth
import MailCore
import MailDNS
import MailMessage
import MailStore
import SpamFilter
import Synchronization
import TernConfig

/// What is known about a client once it has connected to port 25.
public struct ClientFacts: Sendable {
    public var address: String
    /// In `checks.exempt_networks`: nothing is checked.
    public var exempt = false
    public var iprev: IPRevOutcome?
    public var blocklisted: DNSListCheck.Listing?
    public var allowlisted: DNSListCheck.Listing?

    public init(address: String, exempt: Bool = false) {
        self.address = address
        self.exempt = exempt
    }
}

/// What the checks decided about one message at the end of DATA.
struct ContentVerdict: Sendable {
    enum Action: Sendable, Equatable {
        case accept
        case junk
        case reject(SMTPReply)
    }
    var action: Action
    /// Header fields to add (Authentication-Results, X-Spam), with CRLFs.
    var header: String
    /// Byte ranges of header fields from outside that are removed (Authentication-Results, X-Spam*).
    var removals: [Range<Int>]
    /// One line for the log.
    var summary: String
    /// Everything found, as the header says it.
    var results: AuthenticationResults
    var spam: SpamReport?
}

/// The SPF results of one transaction: MAIL FROM (or HELO for a null sender) and the HELO name on its own.
public struct SenderSPF: Sendable {
    public var mailFrom: SPFOutcome?
    public var helo: SPFOutcome?

    /// A HELO worth an SPF check: a domain name with a dot, not an address literal.
    static func isDomainName(_ helo: String) -> Bool {
        helo.contains(".") && !helo.hasPrefix("[") && helo.split(separator: ".").last?.contains(where: \.isLetter) == true
    }
}

/// The port-25 checks (issue 6): at connect (reverse DNS, DNS block/allowlists), at MAIL FROM (SPF, rate limits),
/// at RCPT (greylisting) and at the end of DATA (DKIM, DMARC, spam score). Pure policy over a DNS resolver and the
/// store's policy state (rate counters and greylisting: in memory for SQLite, shared by every node on PostgreSQL); the
/// SMTP handler calls it and turns its answers into replies.
public final class InboundChecks: Sendable {
    let settings: TernConfiguration.Checks
    let resolver: any DNSResolver
    let suffixes: PublicSuffixList
    let hostname: String
    let exempt: [IPNetwork]
    /// Rate counters and greylisting triplets.
    let state: any PolicyStateStore
    let greylistRule: GreylistRule
    /// The time rate limits, greylisting, DKIM expiry, SPF's %{t} and the date rules are judged at.
    let clock: any WallClock

    public init(config: TernConfiguration, resolver: any DNSResolver, suffixes: PublicSuffixList = .builtIn, clock: any WallClock,
                state: any PolicyStateStore = MemoryPolicyState()) {
        settings = config.checks
        self.clock = clock
        self.resolver = resolver
        self.suffixes = suffixes
        hostname = config.hostname
        // A relay network's clients send as this site's own programs do: their mail is not checked either.
        exempt = (config.checks.exemptNetworks + config.relayNetworks).compactMap(IPNetwork.init)
        self.state = state
        greylistRule = Self.greylistRule(config.checks)
    }

    // MARK: connect

    /// The facts of a client in `checks.exempt_networks` (or `relay.networks`), known without a lookup; nil for any
    /// other client.
    public func exemptFacts(_ address: String) -> ClientFacts? {
        exempt.contains(where: { $0.contains(address) }) ? ClientFacts(address: address, exempt: true) : nil
    }

    public func connect(_ address: String, honourExemptions: Bool = true) async -> ClientFacts {
        var facts = ClientFacts(address: address)
        if honourExemptions, exempt.contains(where: { $0.contains(address) }) {
            facts.exempt = true
            return facts
        }
        let lists = DNSListCheck(resolver: resolver)
        async let iprev = IPRevCheck(resolver: resolver).check(address)
        async let allow = settings.allowlists.isEmpty ? nil : lists.firstListing(address, zones: settings.allowlists)
        facts.allowlisted = await allow
        if facts.allowlisted == nil, !settings.blocklists.isEmpty {
            facts.blocklisted = await lists.firstListing(address, zones: settings.blocklists)
        }
        facts.iprev = await iprev
        return facts
    }

    // MARK: MAIL FROM

    /// SPF of the sender and of the HELO name, and a refusal when the client may not send (blocklisted, no reverse
    /// DNS, over its rate).
    public func mailFrom(client: ClientFacts, helo: String, sender: String, countRates: Bool = true) async -> (spf: SenderSPF?, refusal: SMTPReply?) {
        guard !client.exempt else { return (nil, nil) }
        if let listing = client.blocklisted {
            let why = listing.reason.map { ": \(Self.printable($0))" } ?? ""
            return (nil, SMTPReply(554, "5.7.1", "Service unavailable; client [\(client.address)] blocked using \(listing.zone)\(why)"))
        }
        if settings.requireReverseDNS, let iprev = client.iprev, iprev.result != .pass {
            if iprev.result == .temperror {
                return (nil, SMTPReply(450, "4.7.25", "Reverse DNS of [\(client.address)] could not be checked, try again later", isClientFault: false))
            }
            return (nil, SMTPReply(550, "5.7.25", "Reverse DNS validation failed for [\(client.address)]: \(iprev.reason)"))
        }
        if countRates, settings.ratePerClient > 0, await !take("c:" + Self.clientKey(client.address), limit: settings.ratePerClient) {
            return (nil, SMTPReply(451, "4.7.1", "Too many messages from [\(client.address)], try again later", isClientFault: false))
        }
        if countRates, settings.ratePerSender > 0, !sender.isEmpty, await !take("s:" + sender.lowercased(), limit: settings.ratePerSender) {
            return (nil, SMTPReply(451, "4.7.1", "Too many messages from <\(sender)>, try again later", isClientFault: false))
        }
        guard settings.spf else { return (nil, nil) }
        let checker = SPFChecker(resolver: resolver, receiver: hostname, clock: clock)
        // The HELO identity on its own as well (RFC 7208 §2.3), in parallel; for a null sender the MAIL FROM check
        // already is the HELO check.
        async let heloOutcome: SPFOutcome? = !sender.isEmpty && SenderSPF.isDomainName(helo)
            ? checker.checkHELO(ip: client.address, helo: helo) : nil
        let outcome = await checker.check(ip: client.address, mailFrom: sender, helo: helo)
        return (SenderSPF(mailFrom: outcome, helo: await heloOutcome), nil)
    }

    // MARK: RCPT TO

    /// Greylisting: a temporary refusal for a triplet not seen (long enough) before. When the state cannot be read
    /// (the database is unreachable) the recipient is not greylisted: the delivery itself then fails temporarily.
    func recipient(client: ClientFacts, sender: String, recipient: String) async -> SMTPReply? {
        guard greylistingApplies(client) else { return nil }
        let verdict = (try? await state.greylist(Self.triplet(client, sender, recipient), rule: greylistRule, now: clock.now)) ?? .pass
        return Self.reply(verdict)
    }

    /// Greylisting's answer without waiting, when it does not apply or its state is in this process's memory; nil
    /// when it must be asked of the store (`recipient`, async).
    func recipientWithoutWaiting(client: ClientFacts, sender: String, recipient: String) -> ImmediateCheck? {
        guard greylistingApplies(client) else { return ImmediateCheck(refusal: nil) }
        guard let memory = state.memoryPolicyState else { return nil }
        return ImmediateCheck(refusal: Self.reply(memory.greylistNow(Self.triplet(client, sender, recipient), rule: greylistRule, now: clock.now)))
    }

    private func greylistingApplies(_ client: ClientFacts) -> Bool {
        settings.greylisting && !client.exempt && client.allowlisted == nil
    }

    private static func triplet(_ client: ClientFacts, _ sender: String, _ recipient: String) -> String {
        "\(clientKey(client.address))|\(sender.lowercased())|\(recipient.lowercased())"
    }

    private static func reply(_ verdict: GreylistVerdict) -> SMTPReply? {
        switch verdict {
        case .pass: return nil
        case .wait(let seconds):
            return SMTPReply(451, "4.7.1", "Greylisted, please try again in \(seconds) seconds", isClientFault: false)
        }
    }

    /// Counts a message against a rate limit; a store that cannot be read lets it through.
    private func take(_ key: String, limit: Int) async -> Bool {
        (try? await state.takeRate(key, limit: limit, now: clock.now)) ?? true
    }

    public static func greylistRule(_ checks: TernConfiguration.Checks) -> GreylistRule {
        GreylistRule(delay: TimeInterval(checks.greylistDelay.components.seconds), window: TimeInterval(checks.greylistWindow.components.seconds),
                     remember: TimeInterval(checks.greylistRemember.components.seconds))
    }

    /// The client part of a key: the address, or its /64 for IPv6 (one host usually has a whole /64).
    static func clientKey(_ address: String) -> String {
        guard address.contains(":") else { return address }
        guard let net = IPNetwork(address + "/64") else { return address }
        return net.description
    }

    // MARK: end of DATA

    /// The content checks, given the start of the message (at most `ReceivedContent.maxHead` octets), its header
    /// fields (with their offsets) and a DKIM check already fed with the body.
    /// `store` and `owner` give the Bayesian filter its counts (the owner's, when the message goes to one account, plus
    /// the global ones).
    func content(client: ClientFacts, spf senderSPF: SenderSPF?, helo: String, mailFrom: String, head: [UInt8],
                 fields: [(field: RawHeaderField, offset: Int)], dkim: inout DKIMCheck,
                 features precomputed: MessageFeatures? = nil,
                 store: (any MailStore)? = nil, owner: AccountID? = nil, now: Date) async -> ContentVerdict {
        var removals: [Range<Int>] = []
        for (f, offset) in fields {
            let name = f.name.lowercased()
            if name == "authentication-results" || name.hasPrefix("x-spam") {
                removals.append(offset..<(offset + f.raw.count))
            }
        }
        var results = AuthenticationResults(authservID: hostname)
        if let iprev = client.iprev { results.iprev = (iprev, client.address) }
        let spf = senderSPF?.mailFrom
        if let spf { results.spf = (spf, mailFrom, helo) }
        if let h = senderSPF?.helo { results.spfHelo = (h, helo) }
        let plainFields = fields.map(\.field)
        if settings.dkim { results.dkim = await dkim.finish(resolver: resolver) }
        var action = ContentVerdict.Action.accept
        if settings.dmarc {
            let from = Self.fromDomains(plainFields)
            let spfDomain = mailFrom.isEmpty ? helo : String(mailFrom[mailFrom.index(after: mailFrom.lastIndex(of: "@") ?? mailFrom.startIndex)...])
            let dmarc = await DMARCChecker(resolver: resolver, suffixes: suffixes)
                .check(fromDomains: from, spf: spf.map { ($0.result, spfDomain) }, dkim: results.dkim)
            results.dmarc = dmarc
            if dmarc.result == .fail {
                switch dmarc.disposition {
                case .reject where settings.dmarcReject == .reject:
                    action = .reject(SMTPReply(550, "5.7.1", "Message rejected by the DMARC policy of \(dmarc.fromDomain): \(dmarc.reason)"))
                case .reject, .quarantine:
                    action = .junk
                case .none:
                    break
                }
            }
        }
        var summary = "spf=\(spf?.result.rawValue ?? "-") dkim=\(results.dkim.map(\.result.rawValue).joined(separator: ",")) dmarc=\(results.dmarc?.result.rawValue ?? "-")"
        if let iprev = client.iprev { summary += " iprev=\(iprev.result.rawValue)" }
        var header = results.field
        var spam: SpamReport?
        if settings.spamFilter {
            var facts = AuthenticationFacts()
            facts.spf = spf?.result.rawValue
            facts.spfHelo = senderSPF?.helo?.result.rawValue
            facts.dkimPassed = results.dkim.contains { $0.result == .pass }
            facts.dkimFailed = results.dkim.contains { $0.result == .fail }
            facts.dmarc = results.dmarc?.result.rawValue
            facts.iprev = client.iprev?.result.rawValue
            facts.allowlisted = client.allowlisted != nil
            // Parsing and tokenizing is CPU work: the SMTP path does it on the thread pool beforehand (precomputed).
            let features = precomputed ?? MessageFeatures(message: head)
            var bayes: Double?
            if let store { bayes = await SpamTraining.probability(store: store, owner: owner, tokens: features.tokens) }
            let report = SpamScorer.score(features, facts: facts, bayes: bayes, now: now)
            spam = report
            header += report.field(junkScore: settings.junkScore)
            summary += " spam=\(report.score)"
            if report.score >= settings.rejectScore, action == .accept || action == .junk {
                action = .reject(SMTPReply(550, "5.7.1", "Message refused as spam (score \(report.score), limit \(settings.rejectScore))"))
            } else if report.score >= settings.junkScore, action == .accept {
                action = .junk
            }
        }
        return ContentVerdict(action: action, header: header, removals: removals, summary: summary, results: results, spam: spam)
    }

    /// Runs every check on a message as if `clientAddress` had just sent it (exempt networks do not apply; rate limits
    /// and greylisting, which depend on history, are left out).
    public func evaluate(message: [UInt8], clientAddress: String, helo: String, mailFrom: String,
                         store: (any MailStore)? = nil) async -> CheckReport {
        let client = await connect(clientAddress, honourExemptions: false)
        var report = CheckReport(clientAddress: clientAddress, helo: helo, mailFrom: mailFrom, iprev: client.iprev,
                                 blocklisted: client.blocklisted, allowlisted: client.allowlisted, spf: nil, spfHelo: nil, dkim: [], dmarc: nil,
                                 spam: nil, junkScore: settings.junkScore, rejectScore: settings.rejectScore,
                                 authenticationResults: "", action: "accept")
        let (spf, refusal) = await self.mailFrom(client: client, helo: helo, sender: mailFrom, countRates: false)
        report.spf = spf?.mailFrom
        report.spfHelo = spf?.helo
        // A saved message is judged as of when it arrived (its newest Received field), so that its Date is not "old".
        let fields = RawHeader.fields(message[..<RawHeader.end(message)])
        let arrived = fields.first(named: "Received").flatMap { ReceivedPath.parse($0.unfoldedValue).date } ?? clock.now
        var read = ReceivedContent(head: Array(message.prefix(ReceivedContent.maxHead)), prefixLength: 0, settings: settings, now: arrived) { from, chunk in
            message.withUnsafeBytes { chunk(UnsafeRawBufferPointer(rebasing: $0[min(from, $0.count)...])) }
        }
        let verdict = await content(client: client, spf: spf, helo: helo, mailFrom: mailFrom, head: read.head, fields: read.fields,
                                    dkim: &read.dkim, features: read.features, store: store, now: arrived)
        report.dkim = verdict.results.dkim
        report.spam = verdict.spam
        report.dmarc = verdict.results.dmarc
        report.authenticationResults = verdict.header
        if let refusal {
            report.action = "refused at MAIL FROM: \(refusal.encoded().trimmingCharacters(in: .whitespacesAndNewlines))"
        } else {
            switch verdict.action {
            case .accept: report.action = "accept"
            case .junk: report.action = "deliver to Junk"
            case .reject(let reply): report.action = "refused at end of DATA: \(reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))"
            }
        }
        return report
    }

    enum IPv4Literal {
        /// Four decimal numbers of 0 to 255, dotted.
        static func isValid(_ s: String) -> Bool {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts.allSatisfy { p in p.count <= 3 && !p.isEmpty && p.allSatisfy(\.isASCII) && Int(p).map { $0 <= 255 } == true }
        }
    }

    /// The domains of the addresses in the From fields (normally one field with one address; RFC 7489 §6.6.1 checks
    /// each of several), each once, lowercased and in ASCII form where it converts. Address literals name no domain.
    /// A domain that is no valid DNS name is kept as written: DMARC then finds the policy of its organizational
    /// domain, so that a malformed From of a domain with a policy is not let through unchecked.
    static func fromDomains(_ fields: [RawHeaderField]) -> [String] {
        var domains: [String] = []
        for field in fields where field.name.caseInsensitiveCompare("From") == .orderedSame {
            guard let colon = field.raw.firstIndex(of: 58) else { continue }
            // Unfolded first: a folded From value still names its address.
            let unfolded = String(decoding: field.raw[(colon + 1)...], as: UTF8.self).replacingOccurrences(of: "\r\n", with: "")
            for case .mailbox(_, _, var domain?) in AddressList.parse(unfolded) where !domain.isEmpty {
                if domain.hasPrefix("[") && domain.hasSuffix("]") {
                    // An address literal names no domain; brackets around anything else are only a way of writing one.
                    let inner = String(domain.dropFirst().dropLast())
                    if inner.lowercased().hasPrefix("ipv6:") || IPv4Literal.isValid(inner) { continue }
                    domain = inner
                }
                let name = (IDNA.toASCII(domain) ?? domain).lowercased()
                if !name.isEmpty, !domains.contains(name) { domains.append(name) }
            }
        }
        return domains
    }
}

/// The part of a received message the end-of-DATA checks read: the start of it, its header fields as they arrived
/// (with their offsets), a DKIM check fed with the body, and what the spam filter reads. Building it is CPU and file
/// work: the SMTP path does it on the thread pool.
struct ReceivedContent: Sendable {
    /// How much of the message is read: the header (a longer one is checked as far as this) and the start of the body.
    static let maxHead = 1 << 20
    var head: [UInt8]
    var fields: [(field: RawHeaderField, offset: Int)]
    var dkim: DKIMCheck
    var features: MessageFeatures?

    /// `head`: the message's first octets, of which the first `prefixLength` are trace fields Tern added itself (not
    /// part of what arrived). `body(offset, consumer)` passes the message from `offset` to the end in pieces; it is
    /// called only when the message has signatures to verify.
    init(head: [UInt8], prefixLength: Int, settings: TernConfiguration.Checks, now: Date,
         body: (Int, (UnsafeRawBufferPointer) -> Void) throws -> Void) rethrows {
        self.head = head
        let end = RawHeader.end(head)
        var fields: [(field: RawHeaderField, offset: Int)] = []
        var offset = 0
        for f in RawHeader.fields(head[..<end]) {
            if offset >= prefixLength { fields.append((f, offset)) }
            offset += f.raw.count
        }
        self.fields = fields
        dkim = DKIMCheck(headerFields: fields.map(\.field), now: now)
        if settings.dkim && dkim.hasSignatures {
            var check = dkim
            try body(end) { check.update($0) }
            dkim = check
        }
        features = settings.spamFilter ? MessageFeatures(message: head) : nil
    }
}

extension InboundChecks {
    /// Reads a received message back from its sink (blocking file reads when it was spooled).
    func read(_ sink: MessageSink) throws -> ReceivedContent {
        try ReceivedContent(head: sink.head(max: ReceivedContent.maxHead), prefixLength: sink.prefixLength, settings: settings, now: clock.now) {
            try sink.forEachChunk(from: $0, $1)
        }
    }
}

extension InboundChecks {
    /// DNS-provided text made safe for a reply line.
    static func printable(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.value >= 32 && $0.value < 127 }.prefix(200).map(Character.init))
    }
}

/// An answer given without waiting; `refusal` nil: no objection.
struct ImmediateCheck {
    var refusal: SMTPReply?
}
