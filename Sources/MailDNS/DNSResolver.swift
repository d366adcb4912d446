import MailCore

/// Record types Tern asks for.
public enum DNSRecordType: Int, Sendable, Hashable, CustomStringConvertible {
    case a = 1
    case ptr = 12
    case mx = 15
    case txt = 16
    case aaaa = 28

    public var description: String {
        switch self {
        case .a: return "A"
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
}
