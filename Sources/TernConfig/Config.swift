import Foundation
import MailCore
import MailDNS
import TOMLKit

/// An address and port to listen on, such as `0.0.0.0:25` or `[::1]:587`.
public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        let host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (0...65535).contains(p) else { return nil }
        self.host = String(host)
        self.port = p
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The whole configuration of a Tern server. Every field has a default; see `ConfigSchema` for the documentation
/// of each key (the same text `tern config example` prints).
public struct TernConfiguration: Sendable {
    public var hostname: String
    public var dataDirectory: URL
    public var listen: [Service: [ListenAddress]]
    public var tlsCertificate: URL?
    public var tlsKey: URL?
    public var limits: Limits
    public var nameservers: [String]
    public var delivery: Delivery
    public var logLevel: String
    public var checks = Checks()
    public var tester = Tester()
    /// Clients that may relay through port 25 without AUTH (Postfix's mynetworks); their mail is treated as submitted.
    public var relayNetworks: [String] = []
    /// Where mail for postmaster@ a served domain goes when the domain has no account or alias of that name (RFC 5321
    /// §4.5.1 requires it to be taken); nil: the domain's oldest account.
    public var postmaster: EmailAddress?
    /// The folder of the administrator's Sieve scripts run around the users' (`sieve.scripts`); nil: none.
    public var sieveScripts: URL?
    /// A PostgreSQL database's URL (`store`), or nil for the embedded store in the data folder.
    public var store: String?
    /// The file with the store's database password (`store_password_file`).
    public var storePasswordFile: URL?
    /// The system user (and group) `tern serve` and the admin commands run as when started as root: the ports are
    /// bound, the data folder given to this user, then root is dropped. nil: stay as started.
    public var runAs: (user: String, group: String?)?
    /// Load balancers in front of Tern that send the PROXY protocol header (HAProxy's v1 or v2).
    public var proxy = Proxy()
    /// At SIGTERM: how long open sessions may take to finish the command they are in before they are closed.
    public var shutdownGrace: Duration = .seconds(30)
    /// How long delivery-log events are kept; nil: no delivery log.
    public var deliveryLogRetention: Duration? = .seconds(30 * 86400)
    public var keepsDeliveryLog: Bool { deliveryLogRetention != nil }

    public struct Proxy: Sendable {
        /// Services whose listeners expect a PROXY header on every connection.
        public var services: Set<Service> = []
        /// The balancers' addresses (CIDR ranges): the only clients those listeners take.
        public var trustedNetworks: [String] = []
        public init(services: Set<Service> = [], trustedNetworks: [String] = []) {
            self.services = services
            self.trustedNetworks = trustedNetworks
        }
    }

    /// The mail tester (check@): mail to it gets a report back instead of being stored.
    public struct Tester: Sendable {
        /// Empty: no tester.
        public var localPart = "check"
        public var repliesPerHour = 10
        public init(localPart: String = "check", repliesPerHour: Int = 10) {
            self.localPart = localPart
            self.repliesPerHour = repliesPerHour
        }
    }

    public enum Service: String, CaseIterable, Sendable {
        case smtp, submission, submissions, imap, imaps, pop3, pop3s, managesieve

        /// The port the service has on the Internet (RFC 5321, 6409, 8314, 9051, 1939).
        public var standardPort: Int {
            switch self {
            case .smtp: 25
            case .submission: 587
            case .submissions: 465
            case .imap: 143
            case .imaps: 993
            case .pop3: 110
            case .pop3s: 995
            case .managesieve: 4190
            }
        }
    }

    /// Every listener of every service moved to `base` + the service's standard port, on the same addresses
    /// (`tern serve --ports BASE`): a second installation beside another mail server, ports out of the way.
    public mutating func movePorts(to base: Int) {
        for (service, addresses) in listen {
            listen[service] = addresses.map { ListenAddress(host: $0.host, port: base + service.standardPort) }
        }
    }

    public struct Limits: Sendable {
        public var maxMessageSize: Int
        /// Octets per account; 0: no quota.
        public var quota: Int
        public var maxRecipients: Int
        public var maxLineLength: Int
        public var maxConnections: Int
        public var maxConnectionsPerAddress: Int
        /// Simultaneous IMAP sessions logged in to one account.
        public var maxConnectionsPerUser: Int
        public var maxErrors: Int
        public var maxLoginFailures: Int
        public var commandTimeout: Duration
        public var dataTimeout: Duration
    }

    /// What the receiving service (port 25) checks before it accepts a message.
    public struct Checks: Sendable {
        public enum Action: String, Sendable { case reject, junk }
        public var spf = true
        public var dkim = true
        public var dmarc = true
        /// What a DMARC failure under p=reject does (p=quarantine always means Junk).
        public var dmarcReject: Action = .reject
        /// Clients in these networks skip every check (the host itself, by default).
        public var exemptNetworks: [String] = ["127.0.0.1/32", "::1/128"]
        /// Refuse clients without forward-confirmed reverse DNS.
        public var requireReverseDNS = false
        public var blocklists: [String] = []
        public var allowlists: [String] = []
        /// Messages per hour from one client address / one envelope sender; 0: no limit.
        public var ratePerClient = 0
        public var ratePerSender = 0
        public var greylisting = false
        public var greylistDelay: Duration = .seconds(300)
        public var greylistWindow: Duration = .seconds(4 * 3600)
        public var greylistRemember: Duration = .seconds(35 * 86400)
        public var spamFilter = true
        public var junkScore = 5.0
        public var rejectScore = 12.0
        public init() {}
    }

    public struct Delivery: Sendable {
        public var remotePort: Int
        public var retry: [Duration]
        public var giveUpAfter: Duration
        /// Simultaneous connections to one destination domain.
        public var connectionsPerDomain: Int
        /// Tell the sender once a message has waited this long (nil: never).
        public var delayNotice: Duration?
        /// The address families of outbound connections and their order.
        public var addresses: AddressPreference = .ipv6
        /// How long a queue runner holds the recipients it took (QueueLease).
        public var lease: Duration = .seconds(15 * 60)
        public init(remotePort: Int = 25, retry: [Duration] = [.seconds(60)], giveUpAfter: Duration = .seconds(5 * 86400),
                    connectionsPerDomain: Int = 10, delayNotice: Duration? = nil) {
            self.remotePort = remotePort
            self.retry = retry
            self.giveUpAfter = giveUpAfter
            self.connectionsPerDomain = connectionsPerDomain
            self.delayNotice = delayNotice
        }
    }
}

/// A problem in a config file, with the line it is on (when the key can be found).
public struct ConfigIssue: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}

public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var issues: [ConfigIssue]
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

extension TernConfiguration {
    /// The embedded default: data in `./tern-data`, unprivileged ports on loopback.
    public static func embeddedDefault(dataDirectory: URL? = nil) -> TernConfiguration {
        try! ConfigSchema.build(values: [:], locate: { _ in nil }, file: "<default>",
                                baseDirectory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                                overrideData: dataDirectory)
    }

    /// A table header without a name ("[" then the end of the line, or a character no key starts with): toml++ (under
    /// TOMLKit) stops on an assertion for some of these instead of reporting them, so they are caught here first
    /// (found by the config fuzz target).
    static func headerProblem(_ text: String) -> (Int, String)? {
        for (number, line) in Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            var rest = line.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard rest.first == UInt8(ascii: "[") else { continue }
            rest = rest.dropFirst()
            if rest.first == UInt8(ascii: "[") { rest = rest.dropFirst() }
            rest = rest.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            guard let c = rest.first, c < 0x80, Character(Unicode.Scalar(c)).isLetter || Character(Unicode.Scalar(c)).isNumber
                    || "_-\"'".utf8.contains(c) else {
                return (number + 1, "a table header needs a name, such as [listen]")
            }
        }
        return nil
    }

    /// An array with "}" where a value or "]" should come (`x = [1, }`): toml++ stops on an assertion there too
    /// (found by the config fuzz target). Walks the values' brackets, skipping strings and comments.
    static func arrayProblem(_ text: String) -> (Int, String)? {
        let bytes = Array(text.utf8)
        var stack: [UInt8] = []          // "[" of arrays and "{" of inline tables inside a value
        var line = 1, i = 0
        var expectingValue = false       // inside an array, after "[" or ","
        var atLineStart = true
        func skipString(_ quote: UInt8) {
            let triple = i + 2 < bytes.count && bytes[i + 1] == quote && bytes[i + 2] == quote
            i += triple ? 3 : 1
            while i < bytes.count {
                let b = bytes[i]
                if b == UInt8(ascii: "\n") { line += 1; if !triple { return } }
                if quote == UInt8(ascii: "\""), b == UInt8(ascii: "\\") { i += 2; continue }
                if b == quote {
                    if !triple { i += 1; return }
                    if i + 2 < bytes.count, bytes[i + 1] == quote, bytes[i + 2] == quote { i += 3; return }
                }
                i += 1
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\n"):
                line += 1; atLineStart = stack.isEmpty; i += 1; continue
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1; continue
            case UInt8(ascii: "#"):
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                skipString(b); expectingValue = false; atLineStart = false; continue
            default: break
            }
            if atLineStart, b == UInt8(ascii: "[") {
                // A table header: its own line, not a value.
                while i < bytes.count, bytes[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            }
            atLineStart = false
            if expectingValue, b == UInt8(ascii: "}") { return (line, "an array needs a value or \"]\" here, not \"}\"") }
            expectingValue = false
            switch b {
            case UInt8(ascii: "["): stack.append(b); expectingValue = true
            case UInt8(ascii: "{"): stack.append(b)
            case UInt8(ascii: "]"), UInt8(ascii: "}"): _ = stack.popLast()
            case UInt8(ascii: ","): expectingValue = stack.last == UInt8(ascii: "[")
            default: break
            }
            i += 1
        }
        return nil
    }

    /// Loads and validates a TOML config file. All problems are reported together, each with its line.
    public static func load(path: String) throws(ConfigErrors) -> TernConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigErrors(issues: [ConfigIssue(file: path, line: nil, message: "cannot read the file: \(error.localizedDescription)")])
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(text, file: path, baseDirectory: base)
    }

    public static func parse(_ text: String, file: String, baseDirectory: URL) throws(ConfigErrors) -> TernConfiguration {
        if let (line, problem) = headerProblem(text) ?? arrayProblem(text) {
            throw ConfigErrors(issues: [ConfigIssue(file: file, line: line, message: "TOML syntax: \(problem)")])
        }
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigErrors(issues: [ConfigIssue(file: file, line: error.source.begin.line, message: "TOML syntax: \(error.description)")])
        } catch {
            throw ConfigErrors(issues: [ConfigIssue(file: file, line: nil, message: "TOML syntax: \(error)")])
        }
        let locator = SourceLocator(text: text)
        var values: [String: TOMLValueConvertible] = [:]
        var issues: [ConfigIssue] = []
        flatten(table, prefix: "", into: &values, issues: &issues, locator: locator, file: file)
        let result = Result { () throws(ConfigErrors) -> TernConfiguration in
            try ConfigSchema.build(values: values, locate: locator.line(of:), file: file, baseDirectory: baseDirectory)
        }
        switch result {
        case .success(let config) where issues.isEmpty:
            return config
        case .success:
            throw ConfigErrors(issues: issues)
        case .failure(let errors):
            throw ConfigErrors(issues: (issues + errors.issues).sorted { ($0.line ?? 0) < ($1.line ?? 0) })
        }
    }

    static func flatten(_ table: TOMLTable, prefix: String, into values: inout [String: TOMLValueConvertible],
                        issues: inout [ConfigIssue], locator: SourceLocator, file: String) {
        for key in table.keys {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            guard let value = table[key] else { continue }
            if let sub = value.table, ConfigSchema.tables.contains(path) {
                flatten(sub, prefix: path, into: &values, issues: &issues, locator: locator, file: file)
            } else if ConfigSchema.field(path) != nil {
                values[path] = value
            } else {
                let hint = ConfigSchema.tables.contains(path) ? "[\(path)] must be a table" : "unknown setting \"\(path)\""
                issues.append(ConfigIssue(file: file, line: locator.line(of: path), message: hint))
            }
        }
    }
}

/// Finds the line of a key path in TOML text: tracks `[table]` headers and `key =` lines. Good for the
/// plain layout Tern's configs use; a key written in dotted or inline form falls back to its table's line.
struct SourceLocator {
    var lines: [String: Int] = [:]

    init(text: String) {
        // Over the octets: a config is ASCII where it matters (TOML's whitespace is space and tab), and splitting
        // Characters is slow on large files (the config fuzz target spent half its time here).
        func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
            let blank = { (b: UInt8) in b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") }
            guard let first = s.firstIndex(where: { !blank($0) }), let last = s.lastIndex(where: { !blank($0) }) else { return [] }
            return s[first...last]
        }
        var table = ""
        for (n, raw) in Array(text.utf8).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = trimmed(raw)
            if line.first == UInt8(ascii: "["), line.dropFirst().first != UInt8(ascii: "[") {
                table = String(decoding: trimmed(line.dropFirst().prefix { $0 != UInt8(ascii: "]") }), as: UTF8.self)
                lines[table] = lines[table] ?? n + 1
            } else if let eq = line.firstIndex(of: UInt8(ascii: "=")), line.first != UInt8(ascii: "#") {
                let key = String(decoding: trimmed(line[..<eq]).filter { $0 != UInt8(ascii: "\"") }, as: UTF8.self)
                let path = table.isEmpty ? key : "\(table).\(key)"
                lines[path] = lines[path] ?? n + 1
            }
        }
    }

    func line(of path: String) -> Int? {
        if let n = lines[path] { return n }
        if let dot = path.lastIndex(of: ".") { return line(of: String(path[..<dot])) }
        return nil
    }
}
