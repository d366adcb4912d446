import Glibc
import MailCore

/// Record types Tern asks for.
public enum DNSRecordType: Int, Sendable, Hashable, CustomStringConvertible {
    case a = 1
    case ns = 2
    case ptr = 12
    case mx = 15
    case txt = 16
    case aaaa = 28

    public var description: String {
        switch self {
        case .a: return "A"
        case .ns: return "NS"
        case .ptr: return "PTR"
        case .mx: return "MX"
        case .txt: return "TXT"
        case .aaaa: return "AAAA"
        }
    }
}

/// An MX record (RFC 1035 §3.3.9): the exchange's name without the final dot, lower-cased.
public struct MXRecord: Sendable, Hashable {
    public var preference: Int
    public var exchange: String
    public init(preference: Int, exchange: String) {
        self.preference = preference
        self.exchange = exchange
    }
}

/// Why a lookup has no answer. `nxdomain` and `noData` are answers (permanent); `temporary` is not.
public enum DNSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The name does not exist (NXDOMAIN).
    case nxdomain(String)
    /// The name exists but has no records of this type.
    case noData(String)
    /// Timeout, SERVFAIL, no nameserver reachable: try again later.
    case temporary(String)
    /// The query was refused or the answer malformed.
    case permanent(String)

    public var description: String {
        switch self {
        case .nxdomain(let n): return "\(n): no such domain (NXDOMAIN)"
        case .noData(let n): return "\(n): no records of that type"
        case .temporary(let n): return "\(n): DNS lookup failed temporarily"
        case .permanent(let n): return "\(n): DNS lookup failed"
        }
    }

    public var isTemporary: Bool { if case .temporary = self { return true } else { return false } }
}

/// DNS lookups, as plain data: the live resolver (glibc's libresolv) and the tests' fake both implement it.
public protocol DNSResolver: Sendable {
    func mx(_ name: String) async throws(DNSError) -> [MXRecord]
    /// IPv4 addresses in dotted form.
    func a(_ name: String) async throws(DNSError) -> [String]
    /// IPv6 addresses in their RFC 5952 text form.
    func aaaa(_ name: String) async throws(DNSError) -> [String]
    /// Each TXT record's strings joined (RFC 7208 §3.3 reads SPF that way, DKIM too).
    func txt(_ name: String) async throws(DNSError) -> [String]
    /// Names for an address (reverse DNS).
    func ptr(_ address: String) async throws(DNSError) -> [String]
    /// The name servers of a zone (for `tern check domain`).
    func ns(_ name: String) async throws(DNSError) -> [String]
    /// Whether DNSSEC validated the answer for `name` and `type` (RFC 4035 §3.2.3: the AD bit of a validating
    /// resolver that /etc/resolv.conf trusts with `options trust-ad`, such as one on this host). DANE (RFC 7672 §2.2)
    /// may act on TLSA records, and on the MX names that lead to them, only when this is true. Asked after the lookup
    /// itself (a live resolver answers it from the same cached response); false when nothing is known.
    func isAuthentic(_ name: String, _ type: DNSRecordType) async -> Bool
}

extension DNSResolver {
    /// Resolvers that cannot tell (no validation on the path) never call an answer authentic.
    public func isAuthentic(_ name: String, _ type: DNSRecordType) async -> Bool { false }

    /// Resolvers that have no NS data (the tests' fakes) answer "no records".
    public func ns(_ name: String) async throws(DNSError) -> [String] { throw .noData(name) }
}

/// The PTR query name of an address: `1.2.3.4` → `4.3.2.1.in-addr.arpa`; IPv6 → its 32 nibbles, last first, under
/// `ip6.arpa` (RFC 3596 §2.5).
public enum ReverseDNS {
    public static func name(for address: String) -> String? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return address.split(separator: ".").reversed().joined(separator: ".") + ".in-addr.arpa"
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        let nibbles = bytes.flatMap { [$0 >> 4, $0 & 0xF] }.reversed().map { String($0, radix: 16) }
        return nibbles.joined(separator: ".") + ".ip6.arpa"
    }
}
