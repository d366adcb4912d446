import TernAdmin
import MailDelivery
import ArgumentParser
import DNSResolverLive
import Deliverability
import Foundation
import MailAuth
import MailCore
import MailStore
import StoreFactory
import NIOCore
import NIOPosix
import TernConfig

/// `tern quickstart DOMAIN`: a new installation in one command, with the checks that tell whether mail will flow.
struct QuickstartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quickstart",
        abstract: "Set up a new server for a domain: checks, config, domain, postmaster account, DKIM keys, the DNS zone, client settings and a systemd unit.",
        discussion: """
            First checks, before anything is written: the host name resolves to this machine, its reverse DNS matches, \
            outbound port 25 is open, and the server's addresses are not on DNS blocklists. Each failed check says what \
            it means and how to fix it; none stops the set-up (a test on loopback fails most of them). Then writes the \
            config, creates the domain with its DKIM keys and postmaster@DOMAIN (the password is printed once), and \
            prints what to publish in DNS, what to enter in mail clients, and a systemd unit.
            """)
    @Argument(help: "The mail domain (the part after @).") var domain: String
    @Option(help: "The server's host name (default: mail.DOMAIN).") var hostname: String?
    @Option(help: "The config file to write.") var config = "tern.toml"
    @Option(help: "The data folder (default: tern-data beside the config).") var data: String?
    @Option(help: "The server's public IPv4 address (default: what the host name resolves to, when that is this machine).") var ipv4: String?
    @Option(help: "The server's public IPv6 address.") var ipv6: String?
    @Option(name: .customLong("nameserver"), help: "A DNS server to use, address or address:port (repeatable; written to the config).") var nameservers: [String] = []
    @Option(name: .customLong("blocklist"), help: "A DNS blocklist zone to check the server's addresses in (repeatable; written to the config).")
    var blocklists: [String] = ["zen.spamhaus.org", "bl.spamcop.net"]
    @Option(name: .customLong("port25-probe"), help: "A mail server to connect to on port 25 to see whether outbound SMTP is open (host or host:port).")
    var port25Probe = "gmail-smtp-in.l.google.com"
    @Flag(help: "Listen on 127.0.0.1 with ports chosen at start (a trial on this machine) instead of the standard ports on every address.")
    var loopback = false
    @Flag(help: "Overwrite an existing config file.") var force = false
    @Option(help: "Run as root: the system user tern serve drops to (created when missing), written to the config as user.")
    var user = "tern"

    struct Finding {
        var ok: Bool
        var title: String
        var detail: String
        var fix: String?
    }

    func run() async throws {
        let domain = Domain.canonical(self.domain)
        guard (try? Domain.validate(domain, allowUTF8: false)) != nil, domain.contains(".") else {
            throw ValidationError("\"\(self.domain)\" is not a domain name")
        }
        let host = Domain.canonical(hostname ?? "mail.\(domain)")
        guard (try? Domain.validate(host, allowUTF8: false)) != nil else { throw ValidationError("\"\(host)\" is not a host name") }
        if let ipv4, !AddressLiteral.isIPv4(ipv4) { throw ValidationError("\(ipv4) is not an IPv4 address") }
        if let ipv6, !AddressLiteral.isIPv6(ipv6) { throw ValidationError("\(ipv6) is not an IPv6 address") }
        let configURL = URL(fileURLWithPath: config).standardizedFileURL
        if FileManager.default.fileExists(atPath: configURL.path) && !force {
            throw ValidationError("\(configURL.path) exists: nothing was changed (--force overwrites the config; use tern domain add for another domain)")
        }
        let dataURL = data.map { URL(fileURLWithPath: $0).standardizedFileURL }
            ?? configURL.deletingLastPathComponent().appendingPathComponent("tern-data")
        if FileManager.default.fileExists(atPath: dataURL.appendingPathComponent("tern.db").path) {
            throw ValidationError("\(dataURL.path) already holds a Tern server: nothing was changed (tern domain add \(domain) adds the domain to it)")
        }

        // 1. Checks, before anything is written.
        let resolver = LiveResolver(nameservers: nameservers.compactMap(LiveResolver.Nameserver.init))
        var findings: [Finding] = []
        let local = Self.localAddresses()
        var resolved: [String] = []
        if let v4 = try? await resolver.a(host) { resolved += v4 }
        if let v6 = try? await resolver.aaaa(host) { resolved += v6 }
        let given = [ipv4, ipv6].compactMap { $0 }
        let mine = resolved.filter { local.contains($0) || given.contains($0) }
        if resolved.isEmpty {
            findings.append(Finding(ok: false, title: "\(host) does not resolve",
                                    detail: "no A or AAAA record: other servers cannot find this one",
                                    fix: "publish \(host) IN A <this server's public address> (the zone below has the line)"))
        } else if mine.isEmpty {
            findings.append(Finding(ok: false, title: "\(host) resolves elsewhere",
                                    detail: "it points to \(resolved.joined(separator: ", ")), and this machine has \(local.filter { !$0.hasPrefix("fe80") }.joined(separator: ", "))",
                                    fix: "point the A/AAAA record at this server, or pass --ipv4/--ipv6 with its public address when it sits behind NAT"))
        } else {
            findings.append(Finding(ok: true, title: "\(host) resolves to this machine", detail: mine.joined(separator: ", "), fix: nil))
        }
        // The addresses the zone names and the checks below use.
        var addresses = given
        if addresses.isEmpty { addresses = mine }
        let zoneV4 = ipv4 ?? addresses.first { AddressLiteral.isIPv4($0) }
        let zoneV6 = ipv6 ?? addresses.first { AddressLiteral.isIPv6($0) }
        let iprev = IPRevCheck(resolver: resolver)
        for address in addresses {
            let r = await iprev.check(address)
            if r.result == .pass, r.name.map(Domain.canonical) == host {
                findings.append(Finding(ok: true, title: "reverse DNS of \(address)", detail: "\(host), forward-confirmed", fix: nil))
            } else {
                let what = r.result == .pass ? "names \(r.name ?? "?"), not \(host)" : r.reason
                findings.append(Finding(ok: false, title: "reverse DNS of \(address)",
                                        detail: "\(what): many receivers refuse or junk mail from addresses without a matching PTR",
                                        fix: "ask whoever runs the address (your hosting provider's panel, usually \"reverse DNS\" or \"PTR\") to set it to \(host)"))
            }
        }
        if addresses.isEmpty {
            findings.append(Finding(ok: false, title: "reverse DNS", detail: "not checked: no address of this server is known",
                                    fix: "pass --ipv4 (and --ipv6) with the server's public addresses"))
        }
        findings.append(await outboundSMTP(resolver: resolver))
        let lists = DNSListCheck(resolver: resolver)
        for address in addresses where !blocklists.isEmpty {
            if let listing = await lists.firstListing(address, zones: blocklists) {
                findings.append(Finding(ok: false, title: "\(address) is listed in \(listing.zone)",
                                        detail: (listing.reason ?? listing.codes.joined(separator: ", ")) + ": many receivers refuse mail from it",
                                        fix: "look the address up on the list's web site and follow its removal procedure; a new server on a listed address is better moved to another address"))
            } else {
                findings.append(Finding(ok: true, title: "\(address) is not on \(blocklists.joined(separator: ", "))", detail: "", fix: nil))
            }
        }

        // 2. The config, the data folder, the domain, its keys and the postmaster.
        try FileManager.default.createDirectory(at: configURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        // As root: a system user for the server, which tern serve drops to after binding its ports.
        let serviceUser = geteuid() == 0 ? try Quickstart.systemUser(user, home: dataURL) : nil
        try Quickstart.configText(host: host, data: dataURL, configDirectory: configURL.deletingLastPathComponent(), loopback: loopback,
                            nameservers: nameservers, blocklists: blocklists, user: serviceUser)
            .write(to: configURL, atomically: true, encoding: .utf8)
        let configuration: TernConfiguration
        do { configuration = try TernConfiguration.load(path: configURL.path) } catch { throw ValidationError("the written config is invalid:\n\(error)") }
        let store = try await ConfigOption.parse(["--config", configURL.path]).openStore().1
        if !(try await store.domains().contains { $0.name == domain }) { try await store.addDomain(domain) }
        var keys = try await DKIMKeys.active(store: store, domain: domain)
        if keys.isEmpty { keys = try await DKIMKeys.generate(store: store, domain: domain) }
        let postmaster = try EmailAddress.parse("postmaster@\(domain)")
        let password = PasswordHash.generatePassword()
        if try await store.account(postmaster) == nil {
            _ = try await store.addAccount(postmaster, password: password)
        } else {
            try await store.setPassword(postmaster, password: password)
        }

        // 3. The report.
        var out = "Checks\n"
        for f in findings {
            out += "  \(f.ok ? "ok  " : "FAIL") \(f.title)\(f.detail.isEmpty ? "" : ": \(f.detail)")\n"
            if let fix = f.fix { out += "       fix: \(fix)\n" }
        }
        let failed = findings.filter { !$0.ok }.count
        out += failed == 0 ? "  all passed\n" : "  \(failed) failed: mail to and from other servers may not work until they are fixed (the set-up went ahead)\n"
        out += "\nWrote \(configURL.path) (data in \(configuration.dataDirectory.path))\n"
        out += "Domain \(domain) with DKIM keys \(keys.map(\.selector).joined(separator: ", "))\n"
        out += "\nPostmaster account (the password is shown only now; change it with tern user password):\n"
        out += "  login     \(postmaster)\n  password  \(password)\n"
        out += "\nDNS: publish these records (tern dns-records \(domain) --config \(configURL.path) prints them again)\n"
        out += DNSRecords.zone(domain: domain, host: host, ipv4: zoneV4, ipv6: zoneV6, keys: keys, now: store.clock.now)
        out += "\nMail clients (Thunderbird, Apple Mail, Outlook, K-9 …)\n"
        if loopback {
            out += "  this trial listens on 127.0.0.1 with ports chosen at start: tern serve prints them\n"
        } else {
            out += "  incoming  IMAP  \(host)  port 993, SSL/TLS   (or 143, STARTTLS)\n"
            out += "            POP3  \(host)  port 995, SSL/TLS   (or 110, STARTTLS)\n"
            out += "  outgoing  SMTP  \(host)  port 465, SSL/TLS   (or 587, STARTTLS)\n"
        }
        out += "  user name the full address (\(postmaster)), password as above, authentication \"normal password\"\n"
        if configuration.tlsCertificate == nil {
            out += "  TLS uses a self-signed certificate until you set tls.certificate and tls.key (for example from certbot);\n"
            out += "  clients warn about it, and senders that check certificates (MTA-STS) will not deliver\n"
        }
        out += "\nsystemd: save as /etc/systemd/system/tern.service, then systemctl daemon-reload && systemctl enable --now tern\n"
        out += Quickstart.systemdUnit(binary: Quickstart.binaryPath(), config: configURL.path, data: configuration.dataDirectory.path)
        out += "\nStart it now with: tern serve --config \(configURL.path)\n"
        out += "Then check what the world sees: tern check domain \(domain) --config \(configURL.path)\n"
        out += "and send a message to check@\(domain) from another account to get a deliverability report back.\n"
        print(out, terminator: "")
    }

    /// Connects to a well-known mail server on port 25: many home and cloud networks block it.
    func outboundSMTP(resolver: LiveResolver) async -> Finding {
        var host = port25Probe, port = 25
        if let colon = port25Probe.lastIndex(of: ":"), let p = Int(port25Probe[port25Probe.index(after: colon)...]) {
            host = String(port25Probe[..<colon])
            port = p
        }
        var address = host
        if !AddressLiteral.isIPv4(host) {
            guard let a = try? await resolver.a(host), let first = a.first else {
                return Finding(ok: false, title: "outbound port 25", detail: "not tested: \(host) does not resolve (no DNS, or no internet?)",
                               fix: "run the check again where DNS works, or test by hand: nc -vz \(host) 25")
            }
            address = first
        }
        do {
            var courier = try SMTPCourier(group: MultiThreadedEventLoopGroup.singleton, heloName: hostname ?? "mail.\(domain)")
            courier.connectTimeout = .seconds(8)
            courier.replyTimeout = .seconds(15)
            let r = await courier.probe(host: host, address: address, port: port, roots: .init(), validationTime: SystemClock().now)
            if let failure = r.failure {
                return Finding(ok: false, title: "outbound port 25", detail: "no SMTP session with \(host) (\(address):\(port)): \(failure)",
                               fix: "many home and cloud providers block outbound port 25: ask yours to open it, or relay outgoing mail through a provider's smarthost")
            }
            return Finding(ok: true, title: "outbound port 25 is open", detail: "\(host) answered: \(r.greeting ?? "")", fix: nil)
        } catch {
            return Finding(ok: false, title: "outbound port 25", detail: "not tested: \(error)", fix: nil)
        }
    }

    /// Every address of this machine's interfaces.
    static func localAddresses() -> [String] {
        guard let devices = try? System.enumerateDevices() else { return [] }
        return devices.compactMap { $0.address?.ipAddress }
    }
}
