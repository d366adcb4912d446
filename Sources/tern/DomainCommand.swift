import TernAdmin
import MailDelivery
import ArgumentParser
import Deliverability
import DNSResolverLive
import Foundation
import MailAuth
import MailCore
import StoreFactory
import NIOPosix

/// `tern check domain DOMAIN`: what the domain publishes for mail, grouped, with a verdict per item.
struct CheckDomain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "domain",
        abstract: "Check a domain's mail DNS: NS, MX, mail hosts (addresses, reverse DNS, blocklists), SPF, DKIM, DMARC, MTA-STS, TLS-RPT.",
        discussion: """
            DNS is asked through the configured nameservers. DKIM keys are looked up at the selectors given with \
            --selector and at those Tern holds keys for; blocklists are checks.blocklists of the config unless \
            --blocklist is given. Each mail host address is asked over SMTP (at delivery.remote_port, normally 25) as a \
            sender would: greeting, EHLO, STARTTLS, and the certificate verified for the host name against the \
            system's trusted roots (or --ca-file); no mail is sent. Where outbound port 25 is blocked (many home and \
            cloud networks), every host will time out: use --no-smtp there. Exits 1 when a problem was found.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The domain.") var domain: String
    @Option(name: .customLong("selector"), help: "A DKIM selector to look up (repeatable).") var selectors: [String] = []
    @Option(name: .customLong("blocklist"), help: "A DNS blocklist zone to check the mail hosts in (repeatable).") var blocklists: [String] = []
    @Flag(name: .customLong("smtp"), inversion: .prefixedNo, help: "Probe each mail host over SMTP with STARTTLS.") var smtp = true
    @Option(name: .customLong("ca-file"), help: "Trust the CA certificates in this PEM file instead of the system's.") var caFile: String?
    @Option(help: "Seconds to wait for each mail host to connect and to answer.") var timeout: Int = 20
    @Flag(help: "Print JSON instead of text.") var json = false
    @Flag(inversion: .prefixedNo, help: "Colour the verdicts (default: when standard output is a terminal).") var color: Bool?

    func run() async throws {
        let config = try options.load()
        var selectors = self.selectors
        // Tern's own selectors for the domain, when this machine runs Tern for it.
        if FileManager.default.fileExists(atPath: config.dataDirectory.appendingPathComponent("tern.db").path),
           let store = try? await options.openStore().1,
           let keys = try? await store.dkimKeys(domain: domain.lowercased()) {
            selectors += keys.map(\.selector).filter { !selectors.contains($0) }
        }
        let resolver = LiveResolver(config: config)
        var probe: (@Sendable (String, String) async -> SMTPProbeResult)?
        if smtp {
            var courier = try SMTPCourier(group: MultiThreadedEventLoopGroup.singleton, heloName: config.hostname)
            courier.connectTimeout = .seconds(Int64(timeout))
            courier.replyTimeout = .seconds(Int64(timeout))
            probe = try courier.prober(port: config.delivery.remotePort, caFile: caFile, clock: SystemClock())
        }
        let inspector = DomainInspector(resolver: resolver, suffixes: SuffixListFile.load(dataDirectory: config.dataDirectory),
                                        blocklists: blocklists.isEmpty ? config.checks.blocklists : blocklists,
                                        selectors: selectors, probe: probe, clock: SystemClock())
        let report = await inspector.inspect(domain)
        if json {
            try printJSON(report)
        } else {
            print(Self.render(report, color: color ?? (isatty(1) == 1)))
        }
        if report.problems > 0 { throw ExitCode(1) }
    }

    static func render(_ report: DomainReport, color: Bool) -> String {
        func paint(_ text: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }
        var out = paint(report.domain, "1") + "\n"
        var group = ""
        for f in report.findings {
            if f.group != group {
                group = f.group
                out += "\n" + paint(group, "1") + "\n"
            }
            let mark: String
            switch f.verdict {
            case .ok: mark = paint("ok     ", "32")
            case .info: mark = paint("info   ", "36")
            case .warning: mark = paint("WARN   ", "33")
            case .problem: mark = paint("PROBLEM", "31")
            }
            out += "  \(mark)  \(f.item)\n           \(f.detail)\n"
        }
        let verdict = report.problems > 0 ? paint("\(report.problems) problem(s)", "31") : paint("no problems", "32")
        out += "\n\(verdict), \(report.warnings) warning(s)"
        return out
    }
}
