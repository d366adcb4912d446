import Foundation
import MailCore
import MailDNS
import TOMLKit

/// Every config key with its type, default and documentation. Validation, defaults and `tern config example`
/// all come from this one table, so the documentation cannot drift from the code.
public enum ConfigSchema {
    public enum Kind: Sendable {
        case string, hostname, path, int(ClosedRange<Int>), size, duration, durationList, listenList, stringList, bool, number(ClosedRange<Double>),
             choice([String])
    }

    public struct Field: Sendable {
        public var path: String
        public var kind: Kind
        /// The default as a TOML literal.
        public var defaultValue: String
        public var doc: String
    }

    public static let tables: Set<String> = ["listen", "tls", "limits", "dns", "delivery", "relay", "proxy", "checks", "greylisting", "spam", "tester", "sieve", "log"]

    public static let fields: [Field] = [
        Field(path: "hostname", kind: .hostname, defaultValue: "\"localhost\"",
              doc: "The server's own host name: greeting, Received headers, HELO when sending. Should have an A/AAAA record and match the PTR of the server's address."),
        Field(path: "data", kind: .path, defaultValue: "\"tern-data\"",
              doc: "Folder for the database, message files, TLS material and the queue. Relative paths are taken from the config file's folder."),
        Field(path: "store", kind: .string, defaultValue: "\"\"",
              doc: "Where mail and accounts are kept. Empty: the embedded store in the data folder (SQLite and files). \"postgres://USER@HOST:PORT/DATABASE\" (?sslmode=disable|prefer|require, ?host=/run/postgresql for a Unix socket): a PostgreSQL database, which several tern nodes may share. The password goes in store_password_file or the environment variable TERN_STORE_PASSWORD rather than here."),
        Field(path: "store_password_file", kind: .path, defaultValue: "\"\"",
              doc: "A file holding the password of the store's database user (its first line). Empty: TERN_STORE_PASSWORD from the environment, or the password in the store URL, or none."),
        Field(path: "postmaster", kind: .string, defaultValue: "\"\"",
              doc: "A local address that receives mail for postmaster@ every served domain that has no account or alias of that name, and for the bare <Postmaster> (RFC 5321 §4.5.1 requires that mail be taken). Empty: the domain's oldest account."),
        Field(path: "user", kind: .string, defaultValue: "\"\"",
              doc: "Started as root, tern binds its ports, gives the data folder to this system user and drops root before it reads any network input (admin commands run as root drop to it too). Empty: tern stays the user it was started as (and warns when that is root)."),
        Field(path: "group", kind: .string, defaultValue: "\"\"", doc: "The group for `user`. Empty: the user's own group."),
        Field(path: "listen.smtp", kind: .listenList, defaultValue: "[\"127.0.0.1:2525\"]",
              doc: "Incoming mail from other servers (MTA). In production: [\"0.0.0.0:25\", \"[::]:25\"]."),
        Field(path: "listen.submission", kind: .listenList, defaultValue: "[\"127.0.0.1:1587\"]",
              doc: "Mail submission from users' mail programs with STARTTLS and AUTH (RFC 6409); AUTH only after STARTTLS except from loopback. In production: [\"0.0.0.0:587\", \"[::]:587\"]."),
        Field(path: "listen.submissions", kind: .listenList, defaultValue: "[\"127.0.0.1:1465\"]",
              doc: "Mail submission with implicit TLS (RFC 8314). In production: [\"0.0.0.0:465\", \"[::]:465\"]."),
        Field(path: "listen.imap", kind: .listenList, defaultValue: "[\"127.0.0.1:1143\"]",
              doc: "IMAP with STARTTLS; LOGIN and AUTHENTICATE only after TLS except from loopback. In production: [\"0.0.0.0:143\", \"[::]:143\"]."),
        Field(path: "listen.imaps", kind: .listenList, defaultValue: "[\"127.0.0.1:1993\"]",
              doc: "IMAP with implicit TLS (RFC 8314). In production: [\"0.0.0.0:993\", \"[::]:993\"]."),
        Field(path: "listen.pop3", kind: .listenList, defaultValue: "[\"127.0.0.1:1110\"]", doc: "POP3 with STLS (110)."),
        Field(path: "listen.pop3s", kind: .listenList, defaultValue: "[\"127.0.0.1:1995\"]", doc: "POP3 with implicit TLS (995)."),
        Field(path: "listen.managesieve", kind: .listenList, defaultValue: "[\"127.0.0.1:4190\"]",
              doc: "ManageSieve (RFC 5804): users' mail filters from their mail programs, with STARTTLS; login only after TLS except from loopback. In production: [\"0.0.0.0:4190\", \"[::]:4190\"]."),
        Field(path: "tls.certificate", kind: .path, defaultValue: "\"\"",
              doc: "PEM certificate chain. Empty: a self-signed certificate for `hostname` is made at first start (in <data>/tls)."),
        Field(path: "tls.key", kind: .path, defaultValue: "\"\"", doc: "PEM private key for the certificate."),
        Field(path: "limits.max_message_size", kind: .size, defaultValue: "\"50M\"",
              doc: "Largest message accepted, in octets (suffixes K, M, G). Announced as SIZE (RFC 1870); larger ones get 552 5.3.4."),
        Field(path: "limits.quota", kind: .size, defaultValue: "\"0\"",
              doc: "Storage per account, in octets (K, M, G suffixes); \"0\" for none. Reported by IMAP QUOTA (RFC 9208); a full mailbox refuses new mail (SMTP 452 4.2.2, IMAP NO [OVERQUOTA])."),
        Field(path: "limits.max_recipients", kind: .int(1...100_000), defaultValue: "100",
              doc: "Recipients per message; more get 452 4.5.3 (RFC 5321 §4.5.3.1.10) and the client sends them in another transaction."),
        Field(path: "limits.max_line_length", kind: .int(1000...1_000_000), defaultValue: "1000",
              doc: "Longest line of message content, in octets with CRLF (RFC 5321 §4.5.3.1.6 sets 1000). Longer lines get 554 5.6.0."),
        Field(path: "limits.max_connections", kind: .int(1...1_000_000), defaultValue: "2000",
              doc: "Simultaneous connections per service; more are answered 421 and closed."),
        Field(path: "limits.max_connections_per_address", kind: .int(1...100_000), defaultValue: "50",
              doc: "Simultaneous connections from one client IP address; more are answered 421 4.7.0."),
        Field(path: "limits.max_connections_per_user", kind: .int(1...100_000), defaultValue: "50",
              doc: "Simultaneous IMAP sessions logged in to one account (Thunderbird opens up to 5, mbsync one per channel); a login beyond it gets * BYE [LIMIT] (RFC 5530)."),
        Field(path: "limits.max_errors", kind: .int(1...1000), defaultValue: "10",
              doc: "Client errors in one SMTP session before it is ended with 421."),
        Field(path: "limits.max_login_failures", kind: .int(1...100_000), defaultValue: "10",
              doc: "Failed logins from one client address (IPv6: its /64) within 15 minutes after which its logins are refused unchecked until the 15 minutes have passed (three times as many, at least 30, for one account from anywhere). Checks under way count with the failures (further attempts wait for them); a success forgives only its own account's failures."),
        Field(path: "limits.command_timeout", kind: .duration, defaultValue: "\"5m\"",
              doc: "How long to wait for the next SMTP command (RFC 5321 §4.5.3.2.7 asks for at least 5 minutes), and the most one command line may take from its first octet to its end, however slowly its octets come (Postfix's smtpd_per_record_deadline)."),
        Field(path: "limits.data_timeout", kind: .duration, defaultValue: "\"10m\"",
              doc: "How long to wait for the next piece of message content (RFC 5321 §4.5.3.2.5: at least 3 minutes between blocks), and the most one line of content may take from its first octet to its end."),
        Field(path: "limits.shutdown_grace", kind: .duration, defaultValue: "\"30s\"",
              doc: "At SIGTERM or SIGINT Tern stops taking connections and ends the open ones between commands (SMTP 421, IMAP BYE, POP3 -ERR); a command in progress, such as a message being stored, gets its reply first. Sessions still busy after this long are closed."),
        Field(path: "dns.nameservers", kind: .stringList, defaultValue: "[]",
              doc: "Up to three resolvers as IPv4 \"address\" or \"address:port\", tried in order. Empty: the system's (/etc/resolv.conf)."),
        Field(path: "delivery.remote_port", kind: .int(1...65535), defaultValue: "25",
              doc: "The port dialled on remote MX hosts (tests may change it)."),
        Field(path: "delivery.retry", kind: .durationList, defaultValue: "[\"1m\", \"5m\", \"15m\", \"30m\", \"1h\", \"2h\", \"4h\", \"8h\"]",
              doc: "Delays between delivery attempts; the last one repeats."),
        Field(path: "delivery.give_up_after", kind: .duration, defaultValue: "\"5d\"",
              doc: "A message not delivered after this long is bounced to its sender."),
        Field(path: "delivery.connections_per_domain", kind: .int(1...1000), defaultValue: "20",
              doc: "Simultaneous connections to one destination domain (Postfix's default is also 20); each carries message after message."),
        Field(path: "delivery.lease", kind: .duration, defaultValue: "\"15m\"",
              doc: "How long a node holds the queued recipients it has taken for delivery (it renews what it still holds every third of this). Nodes sharing a PostgreSQL store send each message once; when a node dies mid-delivery, another takes its recipients over after this."),
        Field(path: "delivery.delay_notice", kind: .duration, defaultValue: "\"0\"",
              doc: "Tell the sender once when a message is still undelivered after this long (\"4h\" is usual); \"0\" never."),
        Field(path: "delivery.address_preference", kind: .string, defaultValue: "\"ipv6\"",
              doc: "Outbound connections: \"ipv6\" tries each mail exchanger's IPv6 and IPv4 addresses alternating, IPv6 first (RFC 8305); \"ipv4\" the same with IPv4 first; \"ipv4-only\" or \"ipv6-only\" one family (as Postfix's inet_protocols), for a host whose IPv6 has no reverse DNS, say."),
        Field(path: "relay.networks", kind: .stringList, defaultValue: "[]",
              doc: "Client addresses (CIDR ranges) that may send mail to other domains through port 25 without AUTH, as Postfix's mynetworks: your own servers and devices (web applications, printers). Their mail skips the checks and is handled as submitted mail (Message-ID and Date added when missing, DKIM-signed for a local From domain). Empty: relaying needs AUTH on 587/465."),
        Field(path: "proxy.services", kind: .stringList, defaultValue: "[]",
              doc: "Services behind a load balancer that sends the PROXY protocol header (HAProxy's send-proxy or send-proxy-v2), such as [\"smtp\", \"imaps\"]: their listeners take connections only from proxy.trusted_networks, each starting with the header, and see the client it names (limits, checks, logs, Received). Empty: none."),
        Field(path: "proxy.trusted_networks", kind: .stringList, defaultValue: "[]",
              doc: "Addresses (CIDR ranges) of the load balancers allowed to send PROXY headers."),
        Field(path: "checks.spf", kind: .bool, defaultValue: "true",
              doc: "Check SPF (RFC 7208) of MAIL FROM and HELO on port 25; recorded in Authentication-Results, used by DMARC and the spam score."),
        Field(path: "checks.dkim", kind: .bool, defaultValue: "true",
              doc: "Verify every DKIM signature (RFC 6376, Ed25519 RFC 8463) of incoming messages."),
        Field(path: "checks.dmarc", kind: .bool, defaultValue: "true",
              doc: "Apply the From domain's DMARC policy (RFC 7489): p=quarantine delivers to Junk, p=reject as dmarc_reject says."),
        Field(path: "checks.dmarc_reject", kind: .choice(["reject", "junk"]), defaultValue: "\"reject\"",
              doc: "What a DMARC failure under p=reject does: \"reject\" refuses the message at the end of DATA (550 5.7.1), \"junk\" delivers it to Junk."),
        Field(path: "checks.exempt_networks", kind: .stringList, defaultValue: "[\"127.0.0.1/32\", \"::1/128\"]",
              doc: "Client addresses (CIDR ranges) that skip every check: this host's own programs. Not a relay permission: relaying needs AUTH or relay.networks."),
        Field(path: "checks.require_reverse_dns", kind: .bool, defaultValue: "false",
              doc: "Refuse mail from clients whose address has no PTR name that resolves back to it (forward-confirmed reverse DNS): 550 5.7.25, or 450 4.7.25 when DNS fails. Always recorded as iprev in Authentication-Results."),
        Field(path: "checks.blocklists", kind: .stringList, defaultValue: "[]",
              doc: "DNS blocklist zones checked for each client address at connect, such as [\"zen.spamhaus.org\"]. A listed client gets 554 5.7.1 to MAIL FROM."),
        Field(path: "checks.allowlists", kind: .stringList, defaultValue: "[]",
              doc: "DNS allowlist zones, such as [\"list.dnswl.org\"]. A listed client skips the blocklists and greylisting and gets a lower spam score."),
        Field(path: "checks.rate_per_client", kind: .int(0...10_000_000), defaultValue: "0",
              doc: "Messages per hour accepted from one client address (IPv6: its /64); more get 451 4.7.1. 0: no limit."),
        Field(path: "checks.rate_per_sender", kind: .int(0...10_000_000), defaultValue: "0",
              doc: "Messages per hour accepted from one envelope sender address; more get 451 4.7.1. 0: no limit."),
        Field(path: "tester.address", kind: .string, defaultValue: "\"check\"",
              doc: "The mail tester's local part: mail to this address at any local domain is not stored; the sender gets a reply with the `tern check message` report of what arrived (an account or alias of that name takes precedence). Empty: no tester."),
        Field(path: "tester.replies_per_hour", kind: .int(1...10000), defaultValue: "10",
              doc: "Reports sent per hour to one sender address, and per client address; further test messages are accepted and dropped."),
        Field(path: "greylisting.enabled", kind: .bool, defaultValue: "false",
              doc: "Greylisting: the first attempt of an unknown (client network, sender, recipient) triplet gets 451 4.7.1; a retry after `delay` and within `window` is accepted, and the triplet is then remembered."),
        Field(path: "greylisting.delay", kind: .duration, defaultValue: "\"5m\"", doc: "How long a new triplet must wait before its retry is accepted."),
        Field(path: "greylisting.window", kind: .duration, defaultValue: "\"4h\"", doc: "How long after the first attempt a retry is still accepted; later ones start again."),
        Field(path: "greylisting.remember", kind: .duration, defaultValue: "\"35d\"", doc: "How long a triplet that passed stays known (renewed by each message)."),
        Field(path: "spam.enabled", kind: .bool, defaultValue: "true",
              doc: "Score each incoming message (rules and the Bayesian filter) and add an X-Spam header with the score."),
        Field(path: "spam.junk_score", kind: .number(-100...1000), defaultValue: "5.0",
              doc: "Messages scoring at least this much are delivered to the Junk mailbox."),
        Field(path: "spam.reject_score", kind: .number(-100...1000), defaultValue: "12.0",
              doc: "Messages scoring at least this much are refused at the end of DATA (550 5.7.1)."),
        Field(path: "sieve.scripts", kind: .path, defaultValue: "\"\"",
              doc: "A folder of the administrator's Sieve scripts run around each user's own: before.sieve and after.sieve for every domain, <domain>/before.sieve and <domain>/after.sieve for one (see docs/filters.md). Read and checked at start. Empty: none, and spam goes to Junk."),
        Field(path: "log.level", kind: .string, defaultValue: "\"info\"", doc: "trace, debug, info, notice, warning, error or critical."),
        Field(path: "log.delivery_retention", kind: .duration, defaultValue: "\"30d\"",
              doc: "How long the delivery log keeps what happened to each message (received, checks, stored, queued, every delivery attempt, bounced), which `tern trace` shows. \"0\": no delivery log."),
    ]

    public static func field(_ path: String) -> Field? { fields.first { $0.path == path } }

    /// The annotated example config (`tern config example`).
    public static func example() -> String {
        var out = "# Tern configuration. Every setting is shown with its default.\n"
        var table = ""
        for f in fields {
            let parts = f.path.split(separator: ".")
            let t = parts.count > 1 ? String(parts[0]) : ""
            if t != table {
                table = t
                out += "\n[\(t)]\n"
            }
            for line in wrap(f.doc, width: 110) { out += "# \(line)\n" }
            out += "\(parts.last!) = \(f.defaultValue)\n"
        }
        return out
    }

    static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = [], current = ""
        for word in text.split(separator: " ") {
            if !current.isEmpty && current.count + word.count + 1 > width { lines.append(current); current = "" }
            current += current.isEmpty ? String(word) : " \(word)"
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    // MARK: building

    /// Every field's default as a TOML value, parsed once (TOMLKit keeps a small allocation of each parse for ever).
    nonisolated(unsafe) static let defaultValues: [String: TOMLValueConvertible] = {
        let table = try! TOMLTable(string: fields.map { "\"\($0.path)\" = \($0.defaultValue)" }.joined(separator: "\n"))
        return Dictionary(uniqueKeysWithValues: fields.map { ($0.path, table[$0.path]!) })
    }()

    static func build(values: [String: TOMLValueConvertible], locate: (String) -> Int?, file: String, baseDirectory: URL,
                      overrideData: URL? = nil) throws(ConfigErrors) -> TernConfiguration {
        var issues: [ConfigIssue] = []
        let defaultsTable = defaultValues
        func value(_ path: String) -> TOMLValueConvertible { values[path] ?? defaultsTable[path]! }
        func fail(_ path: String, _ message: String) {
            issues.append(ConfigIssue(file: file, line: locate(path), message: "\(path): \(message)"))
        }
        func string(_ path: String) -> String {
            guard let s = value(path).string else { fail(path, "must be a string"); return "" }
            return s
        }
        func int(_ path: String) -> Int {
            guard case .int(let range) = field(path)!.kind else { return 0 }
            guard let n = value(path).int else { fail(path, "must be a whole number"); return range.lowerBound }
            guard range.contains(n) else { fail(path, "must be between \(range.lowerBound) and \(range.upperBound), not \(n)"); return range.lowerBound }
            return n
        }
        func size(_ path: String) -> Int {
            let v = value(path)
            if path == "limits.quota", v.string == "0" || v.int == 0 { return 0 }
            if let n = v.int, n > 0 { return n }
            if let s = v.string, let n = parseSize(s) { return n }
            fail(path, "must be a size in octets such as 52428800 or \"50M\""); return 1
        }
        func duration(_ path: String) -> Duration {
            if let s = value(path).string, let d = parseDuration(s) { return d }
            fail(path, "must be a duration such as \"30s\", \"5m\", \"2h\" or \"5d\""); return .seconds(1)
        }
        func bool(_ path: String) -> Bool {
            guard let b = value(path).bool else { fail(path, "must be true or false"); return false }
            return b
        }
        func number(_ path: String) -> Double {
            guard case .number(let range) = field(path)!.kind else { return 0 }
            let v = value(path)
            guard let n = v.double ?? v.int.map(Double.init) else { fail(path, "must be a number"); return range.lowerBound }
            guard range.contains(n) else { fail(path, "must be between \(range.lowerBound) and \(range.upperBound), not \(n)"); return range.lowerBound }
            return n
        }
        func choice(_ path: String) -> String {
            guard case .choice(let options) = field(path)!.kind else { return "" }
            let s = string(path)
            guard options.contains(s) else { fail(path, "must be one of \(options.joined(separator: ", ")), not \"\(s)\""); return options[0] }
            return s
        }
        func strings(_ path: String) -> [String] {
            guard let array = value(path).array else { fail(path, "must be a list of strings"); return [] }
            var out: [String] = []
            for item in array {
                guard let s = item.string else { fail(path, "must be a list of strings"); return [] }
                out.append(s)
            }
            return out
        }
        func path(_ key: String) -> URL? {
            let s = string(key)
            if s.isEmpty { return nil }
            return s.hasPrefix("/") ? URL(fileURLWithPath: s) : baseDirectory.appendingPathComponent(s)
        }

        let hostname = string("hostname")
        do { _ = try Domain.validate(hostname, allowUTF8: false) } catch { fail("hostname", "\"\(hostname)\" is not a valid host name: \(error)") }
        var listen: [TernConfiguration.Service: [ListenAddress]] = [:]
        var seen: [ListenAddress: String] = [:]
        for service in TernConfiguration.Service.allCases {
            let key = "listen.\(service.rawValue)"
            listen[service] = strings(key).compactMap { text in
                guard let a = ListenAddress(text) else {
                    fail(key, "\"\(text)\" is not address:port (for example \"0.0.0.0:25\" or \"[::]:25\")"); return nil
                }
                if a.port != 0, let other = seen[a] { fail(key, "\(a) is also used by \(other)") }
                seen[a] = key
                return a
            }
        }
        let certificate = path("tls.certificate"), key = path("tls.key")
        if (certificate == nil) != (key == nil) { fail(certificate == nil ? "tls.key" : "tls.certificate", "tls.certificate and tls.key go together: set both or neither") }
        for (k, url) in [("tls.certificate", certificate), ("tls.key", key)] {
            if let url, !FileManager.default.isReadableFile(atPath: url.path) { fail(k, "cannot read \(url.path)") }
        }
        let limits = TernConfiguration.Limits(
            maxMessageSize: size("limits.max_message_size"), quota: size("limits.quota"), maxRecipients: int("limits.max_recipients"),
            maxLineLength: int("limits.max_line_length"), maxConnections: int("limits.max_connections"),
            maxConnectionsPerAddress: int("limits.max_connections_per_address"),
            maxConnectionsPerUser: int("limits.max_connections_per_user"), maxErrors: int("limits.max_errors"),
            maxLoginFailures: int("limits.max_login_failures"),
            commandTimeout: duration("limits.command_timeout"), dataTimeout: duration("limits.data_timeout"))
        let nameservers = strings("dns.nameservers")
        for ns in nameservers {
            let address = ListenAddress(ns) ?? ListenAddress("\(ns):53")
            if address.map({ !AddressLiteral.isIPv4($0.host) || $0.port == 0 }) ?? true {
                fail("dns.nameservers", "\"\(ns)\" is not an IPv4 address or address:port (the resolver library takes IPv4 servers)")
            }
        }
        if nameservers.count > 3 { fail("dns.nameservers", "at most three nameservers are used (libresolv's limit); \(nameservers.count) given") }
        var retry: [Duration] = []
        for s in strings("delivery.retry") {
            if let d = parseDuration(s) { retry.append(d) } else { fail("delivery.retry", "\"\(s)\" is not a duration") }
        }
        if retry.isEmpty { fail("delivery.retry", "needs at least one delay") }
        let notice = duration("delivery.delay_notice")
        var delivery = TernConfiguration.Delivery(remotePort: int("delivery.remote_port"), retry: retry,
                                                  giveUpAfter: duration("delivery.give_up_after"),
                                                  connectionsPerDomain: int("delivery.connections_per_domain"),
                                                  delayNotice: notice == .zero ? nil : notice)
        delivery.lease = duration("delivery.lease")
        if delivery.lease < .seconds(5) { fail("delivery.lease", "must be at least 5s") }
        let preference = string("delivery.address_preference")
        if let p = AddressPreference(rawValue: preference) { delivery.addresses = p } else {
            fail("delivery.address_preference", "\"\(preference)\" is not one of \(AddressPreference.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let level = string("log.level")
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) {
            fail("log.level", "\"\(level)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        var checks = TernConfiguration.Checks()
        checks.spf = bool("checks.spf")
        checks.dkim = bool("checks.dkim")
        checks.dmarc = bool("checks.dmarc")
        checks.dmarcReject = TernConfiguration.Checks.Action(rawValue: choice("checks.dmarc_reject")) ?? .reject
        checks.exemptNetworks = strings("checks.exempt_networks")
        for n in checks.exemptNetworks where !ConfigSchema.isNetwork(n) {
            fail("checks.exempt_networks", "\"\(n)\" is not an address or CIDR range such as \"192.0.2.0/24\"")
        }
        let relayNetworks = strings("relay.networks")
        for n in relayNetworks {
            if !ConfigSchema.isNetwork(n) {
                fail("relay.networks", "\"\(n)\" is not an address or CIDR range such as \"192.0.2.0/24\"")
            } else if let p = n.split(separator: "/").dropFirst().first.flatMap({ Int($0) }), p < (n.contains(":") ? 7 : 8) {
                // A range this wide takes in much of the Internet: an open relay.
                fail("relay.networks", "\"\(n)\" is wider than /\(n.contains(":") ? 7 : 8): that would make an open relay")
            }
        }
        var proxyServices: [TernConfiguration.Service] = []
        for name in strings("proxy.services") {
            if let service = TernConfiguration.Service(rawValue: name) { proxyServices.append(service) } else {
                fail("proxy.services", "\"\(name)\" is not a service (\(TernConfiguration.Service.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        let proxyNetworks = strings("proxy.trusted_networks")
        for n in proxyNetworks where !ConfigSchema.isNetwork(n) {
            fail("proxy.trusted_networks", "\"\(n)\" is not an address or CIDR range such as \"10.0.0.5/32\"")
        }
        if !proxyServices.isEmpty && proxyNetworks.isEmpty {
            fail("proxy.trusted_networks", "proxy.services needs the balancers' addresses here; without them no connection would be taken")
        }
        checks.requireReverseDNS = bool("checks.require_reverse_dns")
        checks.blocklists = strings("checks.blocklists")
        checks.allowlists = strings("checks.allowlists")
        for (key, zones) in [("checks.blocklists", checks.blocklists), ("checks.allowlists", checks.allowlists)] {
            for z in zones where (try? Domain.validate(z, allowUTF8: false)) == nil { fail(key, "\"\(z)\" is not a DNS zone name") }
        }
        checks.ratePerClient = int("checks.rate_per_client")
        checks.ratePerSender = int("checks.rate_per_sender")
        checks.greylisting = bool("greylisting.enabled")
        checks.greylistDelay = duration("greylisting.delay")
        checks.greylistWindow = duration("greylisting.window")
        checks.greylistRemember = duration("greylisting.remember")
        if checks.greylistWindow <= checks.greylistDelay { fail("greylisting.window", "must be longer than greylisting.delay") }
        checks.spamFilter = bool("spam.enabled")
        checks.junkScore = number("spam.junk_score")
        checks.rejectScore = number("spam.reject_score")
        if checks.rejectScore <= checks.junkScore { fail("spam.reject_score", "must be above spam.junk_score") }
        let testerAddress = string("tester.address").lowercased()
        if !testerAddress.isEmpty && (try? EmailAddress.parse("\(testerAddress)@example.com")) == nil {
            fail("tester.address", "\"\(testerAddress)\" is not a local part")
        }
        let postmasterText = string("postmaster")
        var postmaster: EmailAddress?
        if !postmasterText.isEmpty {
            if let a = try? EmailAddress.parse(postmasterText) { postmaster = a } else { fail("postmaster", "\"\(postmasterText)\" is not an address") }
        }
        let runAsUser = string("user"), runAsGroup = string("group")
        if runAsUser.isEmpty && !runAsGroup.isEmpty { fail("group", "group goes with user: set user too") }
        let data = overrideData ?? path("data") ?? baseDirectory.appendingPathComponent("tern-data")
        let store = string("store")
        if !store.isEmpty && !(store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")) {
            fail("store", "\"\(store)\" is not a postgres:// URL (leave it empty for the embedded store)")
        }
        if !issues.isEmpty { throw ConfigErrors(issues: issues) }
        var configuration = TernConfiguration(hostname: hostname, dataDirectory: data, listen: listen, tlsCertificate: certificate,
                                              tlsKey: key, limits: limits, nameservers: nameservers, delivery: delivery, logLevel: level)
        configuration.checks = checks
        configuration.relayNetworks = relayNetworks
        configuration.postmaster = postmaster
        configuration.store = store.isEmpty ? nil : store
        configuration.storePasswordFile = path("store_password_file")
        configuration.sieveScripts = path("sieve.scripts")
        if !runAsUser.isEmpty { configuration.runAs = (runAsUser, runAsGroup.isEmpty ? nil : runAsGroup) }
        configuration.proxy = TernConfiguration.Proxy(services: Set(proxyServices), trustedNetworks: proxyNetworks)
        configuration.shutdownGrace = duration("limits.shutdown_grace")
        let retention = duration("log.delivery_retention")
        configuration.deliveryLogRetention = retention == .zero ? nil : retention
        configuration.tester = TernConfiguration.Tester(localPart: testerAddress, repliesPerHour: int("tester.replies_per_hour"))
        return configuration
    }

    /// An IPv4 or IPv6 address, optionally with a /prefix in range.
    static func isNetwork(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }
        let address = String(parts[0])
        let bits = AddressLiteral.isIPv4(address) ? 32 : AddressLiteral.isIPv6(address) ? 128 : 0
        guard bits > 0 else { return false }
        if parts.count == 2 { guard let p = Int(parts[1]), (0...bits).contains(p) else { return false } }
        return true
    }

    /// `"30s"`, `"5m"`, `"2h"`, `"5d"`, or a number of seconds.
    public static func parseDuration(_ s: String) -> Duration? {
        let t = s.trimmingCharacters(in: .whitespaces).lowercased()
        guard let unit = t.last else { return nil }
        let factor: Int
        var number = String(t.dropLast())
        switch unit {
        case "s": factor = 1
        case "m": factor = 60
        case "h": factor = 3600
        case "d": factor = 86400
        default:
            guard unit.isNumber else { return nil }
            factor = 1; number = t
        }
        if number.hasSuffix("m"), unit == "s" { // "500ms"
            guard let n = Int(number.dropLast()), n >= 0 else { return nil }
            return .milliseconds(n)
        }
        // Too large to count is not a duration (found by the config fuzz target: "99999999999999999d" overflowed).
        guard let n = Int(number), n >= 0, case let (seconds, false) = n.multipliedReportingOverflow(by: factor) else { return nil }
        return .seconds(seconds)
    }

    /// `"50M"`, `"512K"`, `"1G"` or a plain number, in octets (binary multiples).
    public static func parseSize(_ s: String) -> Int? {
        let t = s.trimmingCharacters(in: .whitespaces).uppercased().replacingOccurrences(of: "B", with: "")
        guard let unit = t.last else { return nil }
        let multipliers: [Character: Int] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
        if let m = multipliers[unit] {
            guard let n = Int(t.dropLast()), n > 0, case let (size, false) = n.multipliedReportingOverflow(by: m) else { return nil }
            return size
        }
        guard let n = Int(t), n > 0 else { return nil }
        return n
    }
}
