import MailDNS

/// An address range such as `127.0.0.0/8` or `2001:db8::/32` (a bare address is the range of that one address).
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    let base: IPAddress
    public let prefix: Int

    public init?(_ text: String) {
        var addr = Substring(text)
        var prefix: Int?
        if let slash = text.firstIndex(of: "/") {
            guard let p = Int(text[text.index(after: slash)...]) else { return nil }
            prefix = p
            addr = text[..<slash]
        }
        guard let a = IPAddress(String(addr)) else { return nil }
        let bits = a.bytes.count * 8
        // An IPv4-mapped form was read as IPv4: its prefix counts from the IPv4 part.
        if let p = prefix, text.contains(":"), a.isV4 { prefix = p - 96 }
        guard (0...bits).contains(prefix ?? bits) else { return nil }
        base = a
        self.prefix = prefix ?? bits
    }

    public func contains(_ address: String) -> Bool {
        guard let a = IPAddress(address) else { return false }
        return a.matches(base, prefix: prefix)
    }

    public var description: String { "\(base.readable)/\(prefix)" }
}

/// Whether an address is on a DNS blocklist or allowlist zone (RFC 5782): an A record for the reversed address under
/// the zone means "listed"; its TXT record, when there is one, says why.
public struct DNSListCheck: Sendable {
    public let resolver: any DNSResolver
    public init(resolver: any DNSResolver) { self.resolver = resolver }

    public struct Listing: Sendable, Equatable {
        public var zone: String
        /// The A records returned (127.0.0.x codes).
        public var codes: [String]
        public var reason: String?
    }

    /// The query name of `address` under `zone`: `4.3.2.1.zone`, or 32 nibbles for IPv6.
    public static func queryName(_ address: String, zone: String) -> String? {
        guard let reverse = ReverseDNS.name(for: address) else { return nil }
        let stem = reverse.hasSuffix(".in-addr.arpa") ? reverse.dropLast(".in-addr.arpa".count) : reverse.dropLast(".ip6.arpa".count)
        return stem + "." + zone
    }

    /// The first zone listing `address`, checking the zones one after another. Answers outside 127.0.0.0/8, and
    /// 127.255.255.x (Spamhaus and others use those to say the query itself was refused), do not count as listings.
    public func firstListing(_ address: String, zones: [String]) async -> Listing? {
        for zone in zones {
            guard let name = DNSListCheck.queryName(address, zone: zone) else { return nil }
            guard let answers = try? await resolver.a(name) else { continue }
            let codes = answers.filter { $0.hasPrefix("127.") && !$0.hasPrefix("127.255.255.") }
            if codes.isEmpty { continue }
            let reason = (try? await resolver.txt(name))?.first
            return Listing(zone: zone, codes: codes, reason: reason)
        }
        return nil
    }
}

/// Reverse DNS of the client, forward-confirmed ("iprev", RFC 8601 §3): a PTR name whose A/AAAA records include the
/// address.
public struct IPRevOutcome: Sendable, Equatable {
    public enum Result: String, Sendable { case pass, fail, temperror, permerror }
    public var result: Result
    /// The confirmed name (pass), or the first PTR name that did not confirm.
    public var name: String?
    public var reason: String
}

public struct IPRevCheck: Sendable {
    public let resolver: any DNSResolver
    /// PTR names tried, at most (RFC 7208 §4.6.4 uses the same bound for its PTR mechanism).
    public static let maxNames = 10
    public init(resolver: any DNSResolver) { self.resolver = resolver }

    public func check(_ address: String) async -> IPRevOutcome {
        let names: [String]
        do {
            names = try await resolver.ptr(address)
        } catch {
            if error.isTemporary { return IPRevOutcome(result: .temperror, name: nil, reason: "PTR lookup failed temporarily") }
            return IPRevOutcome(result: .fail, name: nil, reason: "no PTR record for \(address)")
        }
        guard let target = IPAddress(address) else { return IPRevOutcome(result: .permerror, name: nil, reason: "bad address") }
        var temporary = false
        for name in names.prefix(IPRevCheck.maxNames) {
            let host = name.hasSuffix(".") ? String(name.dropLast()) : name
            do {
                let addresses = target.isV4 ? try await resolver.a(host) : try await resolver.aaaa(host)
                if addresses.contains(where: { IPAddress($0) == target }) {
                    return IPRevOutcome(result: .pass, name: host.lowercased(), reason: "\(host) confirms \(address)")
                }
            } catch {
                if error.isTemporary { temporary = true }
            }
        }
        if temporary { return IPRevOutcome(result: .temperror, name: names.first, reason: "forward lookup failed temporarily") }
        return IPRevOutcome(result: .fail, name: names.first, reason: "\(names.first ?? "?") does not resolve back to \(address)")
    }
}
