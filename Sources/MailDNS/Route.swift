import MailCore

/// Where mail for a domain goes, chosen as RFC 5321 §5.1 says.
public enum MailRoute: Sendable, Equatable {
    /// Hosts to try in this order, each with its addresses (also in order).
    case hosts([RouteHost])
    /// The domain publishes a null MX (RFC 7505): it accepts no mail. Bounce at once.
    case nullMX
    /// The domain does not exist, or has neither MX nor address records: bounce.
    case noRoute(String)
    /// DNS failed temporarily: try again later.
    case temporaryFailure(String)
}

public struct RouteHost: Sendable, Equatable {
    public var name: String
    /// The MX preference; 0 for the implicit MX (the domain's own address records).
    public var preference: Int
    public var addresses: [String]
    public init(name: String, preference: Int, addresses: [String]) {
        self.name = name
        self.preference = preference
        self.addresses = addresses
    }
}

extension RouteHost {
    /// Whether this is the implicit MX of `domain` (RFC 5321 §5.1: no MX records, so the domain's own addresses).
    public func isImplicitMX(of domain: String) -> Bool { preference == 0 && name == domain.lowercased() }
}

/// Which address families outbound mail uses, and which comes first.
public enum AddressPreference: String, Sendable, CaseIterable {
    /// Both, IPv6 first and the families alternating (RFC 8305 §4): a host whose first IPv6 address fails gets its
    /// IPv4 address next, not its second IPv6 one.
    case ipv6
    /// Both, alternating, IPv4 first.
    case ipv4
    case ipv6Only = "ipv6-only"
    case ipv4Only = "ipv4-only"

    /// A host's addresses in the order they are tried.
    public func order(v4: [String], v6: [String]) -> [String] {
        switch self {
        case .ipv6Only: return v6
        case .ipv4Only: return v4
        case .ipv6: return Self.interleave(v6, v4)
        case .ipv4: return Self.interleave(v4, v6)
        }
    }

    static func interleave(_ first: [String], _ second: [String]) -> [String] {
        var out: [String] = []
        for i in 0..<max(first.count, second.count) {
            if i < first.count { out.append(first[i]) }
            if i < second.count { out.append(second[i]) }
        }
        return out
    }
}

public enum RouteSelection {
    /// Chooses the route for mail to `domain` (an A-label domain name).
    ///
    /// - MX records in preference order; equal preferences in random order (RFC 5321 §5.1).
    /// - A single MX with the root name "." as exchange is a null MX (RFC 7505 §3): no mail.
    /// - No MX records at all (NODATA): the domain itself, from its A/AAAA records ("implicit MX").
    /// - Each host's addresses in the order `addresses` gives (by default IPv6 and IPv4 alternating, IPv6 first); a host
    ///   without addresses is skipped.
    ///   When every host failed temporarily the whole route is temporary; when none has addresses, there is no route.
    /// RFC 7505: an MX whose exchange is the root name.
    public static func isNullMX(_ records: [MXRecord]) -> Bool {
        records.contains { $0.exchange == "" || $0.exchange == "." }
    }

    public static func route(for domain: String, resolver: some DNSResolver, addresses families: AddressPreference = .ipv6,
                             random: inout some RandomNumberGenerator) async -> MailRoute {
        let name = domain.lowercased()
        let records: [MXRecord]
        do {
            records = try await resolver.mx(name)
        } catch {
            switch error {
            case .nxdomain: return .noRoute("\(name) does not exist (NXDOMAIN)")
            case .temporary: return .temporaryFailure("MX lookup for \(name) failed temporarily")
            case .permanent: return .temporaryFailure("MX lookup for \(name) failed")
            case .noData: records = []
            }
        }
        if isNullMX(records) {
            // RFC 7505 §3: a null MX is the only MX; with other records beside it the domain is misconfigured, and
            // the RFC's intent (no mail) is the safer reading.
            return .nullMX
        }
        var candidates: [(String, Int)]
        if records.isEmpty {
            candidates = [(name, 0)]
        } else {
            candidates = []
            let grouped = Dictionary(grouping: records, by: \.preference)
            for preference in grouped.keys.sorted() {
                var names = Array(Set(grouped[preference]!.map(\.exchange))).sorted()
                names.shuffle(using: &random)
                candidates += names.map { ($0, preference) }
            }
        }
        var hosts: [RouteHost] = []
        var temporary = 0
        for (host, preference) in candidates {
            var v4: [String] = [], v6: [String] = []
            var failures = 0
            if families != .ipv6Only {
                do { v4 = try await resolver.a(host) } catch { if error.isTemporary { failures += 1 } }
            }
            if families != .ipv4Only {
                do { v6 = try await resolver.aaaa(host) } catch { if error.isTemporary { failures += 1 } }
            }
            let addresses = families.order(v4: v4, v6: v6)
            if addresses.isEmpty {
                if failures > 0 { temporary += 1 }
                continue
            }
            hosts.append(RouteHost(name: host, preference: preference, addresses: addresses))
        }
        if hosts.isEmpty {
            if temporary > 0 { return .temporaryFailure("address lookups for the mail exchangers of \(name) failed temporarily") }
            return .noRoute(records.isEmpty ? "\(name) has no MX and no address records" : "no mail exchanger of \(name) has an address")
        }
        return .hosts(hosts)
    }
}

/// A resolver made of plain data, for tests (STYLE.md §3): names map to records; `failing` names time out.
public struct StaticResolver: DNSResolver {
    public var mx: [String: [MXRecord]] = [:]
    public var a: [String: [String]] = [:]
    public var aaaa: [String: [String]] = [:]
    public var txt: [String: [String]] = [:]
    public var ptr: [String: [String]] = [:]
    /// Names whose every lookup fails temporarily.
    public var failing: Set<String> = []
    /// Names whose answers are DNSSEC-validated (all types); every other answer is not.
    public var authentic: Set<String> = []

    public init() {}

    private func lookup<T>(_ table: [String: [T]], _ name: String) throws(DNSError) -> [T] {
        let key = name.lowercased()
        if failing.contains(key) { throw .temporary(key) }
        if let records = table[key], !records.isEmpty { return records }
        let exists = mx[key] != nil || a[key] != nil || aaaa[key] != nil || txt[key] != nil || ptr[key] != nil
        throw exists ? .noData(key) : .nxdomain(key)
    }

    public func mx(_ name: String) async throws(DNSError) -> [MXRecord] { try lookup(mx, name) }
    public func a(_ name: String) async throws(DNSError) -> [String] { try lookup(a, name) }
    public func aaaa(_ name: String) async throws(DNSError) -> [String] { try lookup(aaaa, name) }
    public func txt(_ name: String) async throws(DNSError) -> [String] { try lookup(txt, name) }
    public func ptr(_ address: String) async throws(DNSError) -> [String] { try lookup(ptr, address) }
    public func isAuthentic(_ name: String, _ type: DNSRecordType) async -> Bool {
        let key = name.lowercased()
        return authentic.contains(key) && !failing.contains(key)
    }
}
