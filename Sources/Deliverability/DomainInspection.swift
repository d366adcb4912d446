import DKIM
import MailAuth
import MailCore
import MailDNS

/// One line of `tern check domain`: what was looked at, what was found, and whether it is good.
public struct DomainFinding: Sendable, Equatable, Encodable {
    public enum Verdict: String, Sendable, Encodable {
        case ok, info, warning, problem
    }
    public var group: String
    public var item: String
    public var verdict: Verdict
    public var detail: String
}

public struct DomainReport: Sendable, Encodable {
    public var domain: String
    public var findings: [DomainFinding] = []

    public var problems: Int { findings.filter { $0.verdict == .problem }.count }
    public var warnings: Int { findings.filter { $0.verdict == .warning }.count }
}

/// Looks at what a domain publishes for mail, the way senders and receivers will see it: NS, MX (with null MX),
/// the mail hosts' addresses, reverse DNS and blocklist listings, SPF (evaluated, with its DNS-lookup count), DKIM keys
/// at given selectors, DMARC (with the organisational domain), MTA-STS and TLS-RPT records.
public struct DomainInspector: Sendable {
    public let resolver: any DNSResolver
    public var suffixes: PublicSuffixList
    public var blocklists: [String]
    public var selectors: [String]
    /// Opens an SMTP session with a mail host (name, address) as a sender would; nil: no probing.
    public var probe: (@Sendable (_ host: String, _ address: String) async -> SMTPProbeResult)?
    /// The time SPF is evaluated at (%{t}).
    public let clock: any WallClock

    public init(resolver: any DNSResolver, suffixes: PublicSuffixList = .builtIn, blocklists: [String] = [], selectors: [String] = [],
                probe: (@Sendable (_ host: String, _ address: String) async -> SMTPProbeResult)? = nil, clock: any WallClock) {
        self.probe = probe
        self.clock = clock
        self.resolver = resolver
        self.suffixes = suffixes
        self.blocklists = blocklists
        self.selectors = selectors
    }

    public func inspect(_ input: String) async -> DomainReport {
        let domain = Domain.canonical(input.hasSuffix(".") ? String(input.dropLast()) : input)
        var report = DomainReport(domain: domain)
        func add(_ group: String, _ item: String, _ verdict: DomainFinding.Verdict, _ detail: String) {
            report.findings.append(DomainFinding(group: group, item: item, verdict: verdict, detail: detail))
        }
        // NS
        do {
            let ns = try await resolver.ns(domain)
            add("DNS", "NS", ns.count >= 2 ? .ok : .warning,
                ns.sorted().joined(separator: ", ") + (ns.count >= 2 ? "" : " (RFC 1034 asks for at least two name servers)"))
        } catch {
            switch error {
            case .nxdomain:
                add("DNS", "NS", .problem, "\(domain) does not exist (NXDOMAIN)")
                return report
            case .noData: add("DNS", "NS", .info, "no NS records at \(domain) (not a zone apex)")
            default: add("DNS", "NS", .warning, "lookup failed: \(error)")
            }
        }
        // MX
        var hosts: [(String, Int)] = []
        do {
            let mx = try await resolver.mx(domain)
            if RouteSelection.isNullMX(mx) {
                add("MX", "MX", mx.count == 1 ? .info : .problem,
                    mx.count == 1 ? "null MX (RFC 7505): the domain says it receives no mail"
                        : "a null MX beside other MX records: senders will treat the domain as receiving no mail")
            } else {
                hosts = mx.sorted { ($0.preference, $0.exchange) < ($1.preference, $1.exchange) }.map { ($0.exchange, $0.preference) }
                add("MX", "MX", .ok, hosts.map { "\($0.1) \($0.0)" }.joined(separator: ", "))
            }
        } catch {
            if case .noData = error {
                hosts = [(domain, 0)]
                add("MX", "MX", .warning, "no MX records: senders fall back to \(domain)'s own addresses (RFC 5321 §5.1)")
            } else {
                add("MX", "MX", .problem, "lookup failed: \(error)")
            }
        }
        // Each mail host: addresses, reverse DNS, blocklists.
        let iprev = IPRevCheck(resolver: resolver), lists = DNSListCheck(resolver: resolver)
        var mailHosts: [(host: String, address: String)] = []
        for (host, _) in hosts {
            var addresses: [String] = []
            if let v4 = try? await resolver.a(host) { addresses += v4 }
            if let v6 = try? await resolver.aaaa(host) { addresses += v6 }
            if addresses.isEmpty {
                add("MX", host, .problem, "no A or AAAA records: mail for \(domain) cannot reach this host")
                continue
            }
            add("MX", host, .ok, addresses.joined(separator: ", "))
            mailHosts += addresses.map { (host, $0) }
            for address in addresses {
                let r = await iprev.check(address)
                switch r.result {
                case .pass: add("Reverse DNS", address, .ok, "\(r.name ?? "") (forward-confirmed)")
                case .fail: add("Reverse DNS", address, .warning, r.reason + "; many receivers distrust mail from such hosts")
                default: add("Reverse DNS", address, .warning, r.reason)
                }
                if !blocklists.isEmpty {
                    if let listing = await lists.firstListing(address, zones: blocklists) {
                        add("Blocklists", address, .problem, "listed in \(listing.zone) (\(listing.codes.joined(separator: ", ")))"
                            + (listing.reason.map { ": \($0)" } ?? ""))
                    } else {
                        add("Blocklists", address, .ok, "not listed in \(blocklists.joined(separator: ", "))")
                    }
                }
            }
        }
        // Each mail host's SMTP service, all at once (a host that does not answer costs its timeout, not everyone's).
        if let probe, !mailHosts.isEmpty {
            let results = await withTaskGroup(of: (Int, SMTPProbeResult).self) { group in
                for (i, m) in mailHosts.prefix(16).enumerated() { group.addTask { (i, await probe(m.host, m.address)) } }
                var out: [(Int, SMTPProbeResult)] = []
                for await r in group { out.append(r) }
                return out.sorted { $0.0 < $1.0 }.map(\.1)
            }
            for r in results {
                let (verdict, detail) = r.finding
                let address = r.address.contains(":") ? "[\(r.address)]" : r.address
                add("SMTP", "\(r.host) \(address):\(r.port)", verdict, detail)
            }
        }
        await spf(domain, add)
        await dkim(domain, add)
        await dmarc(domain, add)
        await policyRecord(domain, add)
        return report
    }

    func txt(_ name: String) async -> Result<[String], DNSError> {
        do { return .success(try await resolver.txt(name)) } catch { return .failure(error) }
    }

    func spf(_ domain: String, _ add: (String, String, DomainFinding.Verdict, String) -> Void) async {
        let records: [String]
        switch await txt(domain) {
        case .success(let all): records = SPFChecker.spfRecords(all)
        case .failure(.temporary), .failure(.permanent):
            add("SPF", domain, .warning, "lookup failed")
            return
        case .failure: records = []
        }
        guard records.count == 1, let record = records.first else {
            if records.isEmpty { add("SPF", domain, .warning, "no SPF record: receivers cannot tell which hosts may send for \(domain)") }
            else { add("SPF", domain, .problem, "\(records.count) SPF records: RFC 7208 §4.5 makes that a permerror for every message") }
            return
        }
        // Evaluated for an address no record should name (TEST-NET-1), so every mechanism is looked at and counted.
        let outcome = await SPFChecker(resolver: resolver, clock: clock).checkHost(ip: "192.0.2.1", domain: domain, sender: "postmaster@\(domain)", helo: domain)
        let terms = record.lowercased().split(separator: " ")
        if outcome.result == .permerror {
            add("SPF", record, .problem, "permerror: \(outcome.reason)")
        } else if outcome.result == .temperror {
            add("SPF", record, .warning, "temperror: \(outcome.reason)")
        } else if terms.contains("+all") || terms.contains("all") {
            add("SPF", record, .problem, "+all lets every host on the internet send as \(domain)")
        } else {
            let all = terms.first { $0.hasSuffix("all") && $0.count <= 4 }
            let verdict: DomainFinding.Verdict = all == "-all" || all == "~all" ? .ok : .warning
            var detail = "\(outcome.lookups) of 10 DNS lookups"
            if all == nil && !record.lowercased().contains("redirect=") { detail += "; no \"all\" at the end: other hosts get neutral" }
            if all == "?all" { detail += "; ?all: other hosts get neutral" }
            add("SPF", record, verdict, detail)
        }
    }

    func dkim(_ domain: String, _ add: (String, String, DomainFinding.Verdict, String) -> Void) async {
        if selectors.isEmpty {
            add("DKIM", "selectors", .info, "none known or given (tern check domain --selector NAME)")
            return
        }
        for selector in selectors {
            let name = "\(selector)._domainkey.\(domain)"
            switch await txt(name) {
            case .success(let records) where !records.isEmpty:
                switch DKIMPublicKey.parse(records.joined()) {
                case .success(let key):
                    add("DKIM", name, key.testing ? .warning : .ok,
                        "\(key.keyType)\(key.bits.map { " \($0)-bit" } ?? "") key" + (key.testing ? " in testing mode (t=y)" : ""))
                case .failure(let why):
                    add("DKIM", name, .problem, "the key record cannot be used: \(why)")
                }
            case .failure(.temporary), .failure(.permanent):
                add("DKIM", name, .warning, "lookup failed")
            default:
                add("DKIM", name, .problem, "no key published: signatures with s=\(selector) fail")
            }
        }
    }

    func dmarc(_ domain: String, _ add: (String, String, DomainFinding.Verdict, String) -> Void) async {
        let outcome = await DMARCChecker(resolver: resolver, suffixes: suffixes).check(fromDomain: domain, spf: nil, dkim: [])
        let org = outcome.organizationalDomain
        guard let record = outcome.record else {
            if outcome.result == .temperror { add("DMARC", "_dmarc.\(domain)", .warning, "lookup failed") }
            else { add("DMARC", "_dmarc.\(domain)", .warning, "no DMARC record here or at the organizational domain \(org): receivers apply no policy, and big mailbox providers expect one from bulk senders") }
            return
        }
        var detail = "p=\(record.policy.rawValue)"
        if let sp = record.subdomainPolicy { detail += " sp=\(sp.rawValue)" }
        if record.percent < 100 { detail += " pct=\(record.percent)" }
        detail += ", alignment dkim=\(record.dkimAlignment == .strict ? "strict" : "relaxed") spf=\(record.spfAlignment == .strict ? "strict" : "relaxed")"
        detail += record.aggregateReports.isEmpty ? ", no rua= (no aggregate reports)" : ", reports to \(record.aggregateReports.joined(separator: ", "))"
        detail += " (organizational domain \(org))"
        add("DMARC", "_dmarc.\(outcome.recordDomain ?? domain)", record.policy == .none ? .info : .ok, detail)
    }

    func policyRecord(_ domain: String, _ add: (String, String, DomainFinding.Verdict, String) -> Void) async {
        for (group, name, version, hint) in [("MTA-STS", "_mta-sts.\(domain)", "v=stsv1", "no MTA-STS: senders may deliver without TLS when an attacker strips STARTTLS (RFC 8461)"),
                                            ("TLS-RPT", "_smtp._tls.\(domain)", "v=tlsrptv1", "no TLS-RPT: senders cannot report TLS failures to you (RFC 8460)")] {
            let records: [String]
            switch await txt(name) {
            case .success(let r): records = r.filter { $0.lowercased().replacingOccurrences(of: " ", with: "").hasPrefix(version) }
            case .failure(.temporary), .failure(.permanent):
                add(group, name, .warning, "lookup failed")
                continue
            case .failure: records = []
            }
            if records.isEmpty { add(group, name, .info, hint) }
            else if records.count > 1 { add(group, name, .problem, "\(records.count) records: senders ignore them all") }
            else { add(group, name, .ok, records[0]) }
        }
    }
}
