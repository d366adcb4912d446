
import DKIM
import Deliverability
import Intake
import Foundation
import Logging
import MailAuth
import MailCore
import MailDNS
import MailMessage
import MailStore
import TernConfig

/// Makes a new DKIM key pair of each algorithm for a domain (RSA-2048 and Ed25519), selectors named by date.
public enum DKIMKeys {
    public static func selectorDate(_ date: Date) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d%02d%02d", c.year!, c.month!, c.day!)
    }

    /// Selectors `tYYYYMMDDr` (RSA) and `tYYYYMMDDe` (Ed25519); a second generation on one day gets a suffix.
    public static func generate(store: any MailStore, domain: String) async throws -> [DKIMKey] {
        let now = store.clock.now
        let existing = Set(try await store.dkimKeys(domain: domain).map(\.selector))
        var made: [DKIMKey] = []
        for algorithm in DKIMKey.Algorithm.allCases {
            let base = "t\(selectorDate(now))\(algorithm == .rsaSHA256 ? "r" : "e")"
            var selector = base
            var n = 2
            while existing.contains(selector) { selector = "\(base)\(n)"; n += 1 }
            let (key, pem) = try DKIMKey.generate(domain: domain, selector: selector, algorithm: algorithm)
            try await store.addDKIMKey(DKIMKeyRecord(domain: domain, selector: selector, algorithm: algorithm.rawValue, privateKey: pem, created: now))
            made.append(key)
        }
        return made
    }

    /// The keys that sign the domain's mail.
    public static func active(store: any MailStore, domain: String) async throws -> [DKIMKey] {
        try DKIMKeyring.signingKeys(try await store.dkimKeys(domain: domain)) { _, error in throw error }[domain] ?? []
    }
}

/// Zone-file lines.
public enum ZoneRecords {
    /// A TXT record; values longer than 255 octets are split into several strings (RFC 1035 §3.3.14, RFC 7208 §3.3).
    public static func txt(_ name: String, _ value: String) -> String {
        var parts: [String] = []
        var rest = Substring(value)
        while !rest.isEmpty { parts.append(String(rest.prefix(255))); rest = rest.dropFirst(255) }
        let quoted = parts.map { "\"\($0)\"" }
        if quoted.count == 1 { return "\(name)\t3600\tIN\tTXT\t\(quoted[0])" }
        return "\(name)\t3600\tIN\tTXT\t( " + quoted.joined(separator: "\n\t\t\t\t  ") + " )"
    }
}

public enum DNSRecords {
    public static func zone(domain: String, host: String, ipv4: String?, ipv6: String?, keys: [DKIMKey], now: Date) -> String {
        let d = domain + "."
        let h = host + "."
        var out = "; DNS records for \(domain), served by \(host). Publish them in the zone of \(domain)"
        out += host.hasSuffix("." + domain) || host == domain ? ".\n" : " (and the host's records in its own zone).\n"
        out += "\n; Mail for \(domain) goes to \(host)\n"
        out += "\(d)\t3600\tIN\tMX\t10 \(h)\n"
        out += "\n; The mail server's addresses\n"
        out += ipv4.map { "\(h)\t3600\tIN\tA\t\($0)\n" } ?? "; \(h)\t3600\tIN\tA\t<the server's IPv4 address: pass --ipv4>\n"
        out += ipv6.map { "\(h)\t3600\tIN\tAAAA\t\($0)\n" } ?? "; \(h)\t3600\tIN\tAAAA\t<the server's IPv6 address, if any: --ipv6>\n"
        out += "\n; SPF (RFC 7208): only the domain's MX hosts send its mail; everything else fails\n"
        out += ZoneRecords.txt(d, "v=spf1 mx -all") + "\n"
        out += "\n; DKIM (RFC 6376, RFC 8463): the keys that sign its outgoing mail\n"
        if keys.isEmpty { out += "; no DKIM keys yet: run `tern dkim generate \(domain)`\n" }
        for k in keys { out += ZoneRecords.txt("\(k.selector)._domainkey.\(d)", k.dnsRecord) + "\n" }
        out += "\n; DMARC (RFC 7489): start with p=none and the reports; move to quarantine, then reject\n"
        out += ZoneRecords.txt("_dmarc.\(d)", "v=DMARC1; p=none; rua=mailto:postmaster@\(domain); adkim=s; aspf=s") + "\n"
        out += "\n; MTA-STS (RFC 8461): the policy itself is served at https://mta-sts.\(domain)/.well-known/mta-sts.txt\n"
        out += ";   version: STSv1\\n mode: testing\\n mx: \(host)\\n max_age: 604800\n"
        out += ZoneRecords.txt("_mta-sts.\(d)", "v=STSv1; id=\(DKIMKeys.selectorDate(now))01") + "\n"
        out += "\n; TLS-RPT (RFC 8460): where other servers report TLS problems reaching \(domain)\n"
        out += ZoneRecords.txt("_smtp._tls.\(d)", "v=TLSRPTv1; rua=mailto:postmaster@\(domain)") + "\n"
        out += "\n; Reverse DNS: set by whoever owns the address (your hosting provider), not in this zone\n"
        if let ipv4, let rev = ReverseDNS.name(for: ipv4) {
            out += "\(rev).\t3600\tIN\tPTR\t\(h)\n"
        } else {
            out += "; <reversed IPv4>.in-addr.arpa.\t3600\tIN\tPTR\t\(h)\n"
        }
        if let ipv6, let rev = ReverseDNS.name(for: ipv6) {
            out += "\(rev).\t3600\tIN\tPTR\t\(h)\n"
        }
        return out
    }
}
