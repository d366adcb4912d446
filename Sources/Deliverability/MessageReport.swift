

import Foundation
import MailAuth
import MailCore
import MailMessage

/// Everything `tern check message` (and the check@ mail tester) says about one message: the path it took, its header's
/// problems, the receiving checks, and a deliverability score out of 10 with what to fix first.
public struct MessageReport: Sendable {
    public var checks: CheckReport
    /// Oldest first.
    public var hops: [ReceivedHop]
    public var problems: [HeaderProblem]
    public var deductions: [Deduction]

    public struct Deduction: Sendable, Equatable {
        public var points: Double
        public var what: String
        public var fix: String
    }

    /// 10 less the deductions, not below 0.
    public var score: Double { max(0, 10 - deductions.reduce(0) { $0 + $1.points }) }

    public init(checks: CheckReport, message: [UInt8]) {
        self.checks = checks
        let fields = RawHeader.fields(message[..<RawHeader.end(message)])
        let date = fields.first(named: "Date").flatMap { RFC5322Date.parse($0.unfoldedValue) }
        hops = ReceivedPath.hops(fields, messageDate: date)
        problems = HeaderLint.problems(message)
        deductions = Self.deductions(checks, problems)
    }

    /// What costs the message its place in the inbox, largest first. The points follow how much each failure weighs
    /// with the big mailbox providers: authentication and listings most, the spam score by how close it is to the
    /// line, header defects a little each.
    static func deductions(_ r: CheckReport, _ problems: [HeaderProblem]) -> [Deduction] {
        var out: [Deduction] = []
        func add(_ points: Double, _ what: String, _ fix: String) { out.append(Deduction(points: points, what: what, fix: fix)) }
        let sender = r.mailFrom.isEmpty ? "the HELO name \(r.helo)" : (r.mailFrom.split(separator: "@").last.map(String.init) ?? r.mailFrom)
        if let l = r.blocklisted {
            add(3, "the sending address \(r.clientAddress) is listed in \(l.zone)",
                "find out why at the list's web site, stop the cause (an infected host, an open relay, a compromised account) and ask for delisting")
        }
        if let spf = r.spf {
            switch spf.result {
            case .pass: break
            case .fail: add(3, "SPF fails: \(sender) does not allow \(r.clientAddress) to send for it",
                            "add the sending server to \(sender)'s SPF record (ip4:/ip6:/a/mx/include:)")
            case .softfail: add(2, "SPF soft-fails (~all): \(sender) does not list \(r.clientAddress)",
                                "add the sending server to \(sender)'s SPF record")
            case .neutral: add(1, "SPF is neutral (?all) for \(r.clientAddress)", "list the sending servers in \(sender)'s SPF record and end it with -all or ~all")
            case .none: add(1.5, "\(sender) publishes no SPF record", "publish one: tern dns-records prints it for Tern's domains")
            case .permerror: add(2, "\(sender)'s SPF record is broken: \(spf.reason)", "fix the record (one v=spf1 record, at most 10 DNS-querying terms); tern check domain shows the count")
            case .temperror: add(0.5, "SPF could not be checked (DNS error): \(spf.reason)", "make sure \(sender)'s name servers answer")
            }
        }
        let passing = r.dkim.filter { $0.result == .pass }
        if r.dkim.isEmpty {
            add(1.5, "the message carries no DKIM signature", "sign outgoing mail with DKIM (Tern signs mail submitted for its domains; publish the key from tern dns-records)")
        } else if passing.isEmpty {
            let first = r.dkim[0]
            add(2, "the DKIM signature of d=\(first.domain) does not verify: \(first.reason ?? first.result.rawValue)",
                "check that the published key at \(first.selector)._domainkey.\(first.domain) matches the signing key, and that nothing alters the message after signing (footers, rewriting)")
        }
        if let d = r.dmarc {
            switch d.result {
            case .pass: break
            case .fail: add(2.5, "DMARC fails for \(d.fromDomain): neither SPF nor DKIM passes for a domain aligned with From",
                            "sign with DKIM as \(d.fromDomain) (or a subdomain), or send with a MAIL FROM in \(d.fromDomain) that SPF allows")
            case .none: add(1, "\(d.fromDomain.isEmpty ? "the From domain" : d.fromDomain) publishes no DMARC record",
                            "publish _dmarc.\(d.organizationalDomain.isEmpty ? "DOMAIN" : d.organizationalDomain) TXT \"v=DMARC1; p=none; rua=mailto:…\" and tighten to quarantine/reject once reports are clean")
            case .permerror: add(1.5, "the DMARC record is broken: \(d.reason)", "fix the record at _dmarc.\(d.recordDomain ?? d.organizationalDomain)")
            case .temperror: add(0.5, "DMARC could not be checked (DNS error)", "make sure the From domain's name servers answer")
            }
        }
        if let i = r.iprev, i.result == .fail || i.result == .permerror {
            add(1, "the sending address \(r.clientAddress) has no forward-confirmed reverse DNS: \(i.reason)",
                "ask whoever runs the address (hosting provider, ISP) for a PTR record naming the server, whose A/AAAA leads back to it")
        }
        if let spam = r.spam {
            let top = spam.hits.sorted { $0.score > $1.score }.prefix(3).filter { $0.score > 0 }.map(\.name).joined(separator: ", ")
            let why = top.isEmpty ? "" : " (mostly \(top))"
            if spam.score >= r.rejectScore {
                add(5, "spam score \(String(format: "%.1f", spam.score)) would be refused here (from \(r.rejectScore))\(why)", "rewrite the content: the rules that fired are listed above")
            } else if spam.score >= r.junkScore {
                add(3, "spam score \(String(format: "%.1f", spam.score)) goes to Junk here (from \(r.junkScore))\(why)", "rewrite the content: the rules that fired are listed above")
            } else if spam.score >= r.junkScore / 2 {
                add(1, "spam score \(String(format: "%.1f", spam.score)) is close to the Junk line (\(r.junkScore))\(why)", "look at the rules that fired above")
            }
        }
        let errors = problems.filter { $0.severity == .error }, warnings = problems.filter { $0.severity == .warning }
        if !errors.isEmpty {
            add(min(3, Double(errors.count)), "\(errors.count) RFC 5322 error(s) in the header, first: \(errors[0].field): \(errors[0].problem)",
                "fix the software that writes the message (see the header problems above)")
        }
        if !warnings.isEmpty {
            add(min(1, 0.3 * Double(warnings.count)), "\(warnings.count) header warning(s), first: \(warnings[0].field): \(warnings[0].problem)",
                "see the header problems above")
        }
        return out.enumerated().sorted { ($0.element.points, -$0.offset) > ($1.element.points, -$1.offset) }.map(\.element)
    }

    /// The report for people: sections for the path, the header, the checks and the score.
    /// The report as text for a terminal or a mail body. Everything in it that came from the message (fields, names in
    /// the Received path) has its control characters written as `\xNN`: a crafted header must not rewrite the
    /// admin's terminal (ESC sequences) or forge lines of the report (CR, bare LF).
    public func render() -> String {
        var out = "Received path (oldest first)\n"
        if hops.isEmpty {
            out += "  no Received fields (the message was not sent yet, or they were removed)\n"
        } else {
            func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
            out += "  hop  " + pad("from", 34) + pad("by", 26) + pad("with", 9) + pad("time (UTC)", 20) + "delay\n"
            for (i, h) in hops.enumerated() {
                var from = h.from ?? "-"
                if let ip = h.ip, !from.contains(ip) { from += " [\(ip)]" }
                let delay = h.delay.map { ReceivedPath.duration($0) + ($0 < -1 ? " (clocks disagree)" : "") } ?? "-"
                out += "  " + pad("\(i + 1)", 5) + pad(String(from.prefix(33)), 34) + pad(String((h.by ?? "-").prefix(25)), 26)
                    + pad(String((h.with ?? "-").prefix(8)), 9) + pad(h.date.map(ReceivedPath.timestamp) ?? "-", 20) + delay + "\n"
            }
            if let worst = hops.indices.filter({ (hops[$0].delay ?? 0) > 0 }).max(by: { hops[$0].delay! < hops[$1].delay! }) {
                let h = hops[worst]
                let place = worst == 0 ? "before the first hop (from the Date field to \(h.by ?? "the first server"))"
                    : "at hop \(worst + 1) (\(hops[worst - 1].by ?? "?") to \(h.by ?? "?"))"
                out += "  longest delay: \(ReceivedPath.duration(h.delay!)) \(place)\n"
            }
            if let first = hops.first?.date, let last = hops.last?.date {
                out += "  in transit: \(ReceivedPath.duration(last.timeIntervalSince(first))) from the first to the last hop\n"
            }
        }
        out += "\nHeader (RFC 5322)\n"
        if problems.isEmpty { out += "  no problems\n" }
        for p in problems { out += "  \(p.severity == .error ? "ERROR  " : "warning") \(p.field): \(p.problem)\n" }
        out += "\nChecks\n" + Self.render(checks).split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        out += "\n\nDeliverability score: \(String(format: "%.1f", score))/10\n"
        if deductions.isEmpty {
            out += "  nothing to fix\n"
        } else {
            out += "  what to fix first:\n"
            for d in deductions {
                out += "  \(String(format: "-%.1f", d.points))  \(d.what)\n        fix: \(d.fix)\n"
            }
        }
        return out.escapingControls(keeping: [0x0A, 0x09])
    }

    /// The receiving checks, one line each, and the Authentication-Results field the server would add.
    public static func render(_ r: CheckReport) -> String {
        var out = "client     \(r.clientAddress)  helo \(r.helo.isEmpty ? "-" : r.helo)  mail from <\(r.mailFrom)>\n"
        if let i = r.iprev { out += "iprev      \(i.result.rawValue)  \(i.reason)\n" }
        if let l = r.allowlisted { out += "allowlist  listed in \(l.zone) (\(l.codes.joined(separator: ", ")))\n" }
        if let l = r.blocklisted { out += "blocklist  LISTED in \(l.zone) (\(l.codes.joined(separator: ", ")))\(l.reason.map { ": \($0)" } ?? "")\n" }
        if let s = r.spf { out += "spf        \(s.result.rawValue)  \(s.reason) (\(s.lookups) DNS lookups)\n" }
        if let s = r.spfHelo { out += "spf helo   \(s.result.rawValue)  \(s.reason) (\(s.lookups) DNS lookups)\n" }
        if r.dkim.isEmpty { out += "dkim       none  (no signature)\n" }
        for d in r.dkim {
            out += "dkim       \(d.result.rawValue)  d=\(d.domain) s=\(d.selector) a=\(d.algorithm)"
            if let bits = d.keyBits { out += " (\(bits)-bit key)" }
            if let reason = d.reason { out += "  \(reason)" }
            out += "\n"
        }
        if let d = r.dmarc {
            out += "dmarc      \(d.result.rawValue)  from \(d.fromDomain.isEmpty ? "-" : d.fromDomain) (organizational domain \(d.organizationalDomain))"
            if let rec = d.record {
                out += ", policy p=\(rec.policy.rawValue) at _dmarc.\(d.recordDomain ?? "")"
                if rec.percent < 100 { out += " pct=\(rec.percent)" }
                if d.result == .fail { out += ", disposition \(d.disposition.rawValue)" }
            }
            out += "  \(d.reason)\n"
        }
        if let spam = r.spam {
            out += "spam       score \(spam.score) (Junk from \(r.junkScore), refused from \(r.rejectScore))"
            out += spam.hits.isEmpty ? "  no rule fired\n" : "\n"
            for h in spam.hits {
                out += "             \(String(format: "%+5.1f", h.score))  \(h.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(h.description)\n"
            }
        }
        out += "verdict    \(r.action)\n\n"
        out += r.authenticationResults.replacingOccurrences(of: "\r\n", with: "\n")
        return out
    }
}
