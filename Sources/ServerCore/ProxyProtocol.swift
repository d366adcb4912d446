import Glibc

/// The PROXY protocol (HAProxy's specification, versions 1 and 2): a load balancer in front of Tern starts each
/// connection with a header naming the real client, so that limits, checks, logs and Received fields see the client
/// rather than the balancer. Pure: fed the first octets of a connection, it says whether they hold a whole header.
public enum ProxyProtocol {
    /// What a header said.
    public enum Header: Sendable, Equatable {
        /// The connection was relayed for this client (address as text, port).
        case proxied(source: String, sourcePort: Int, destination: String, destinationPort: Int)
        /// The balancer speaks for itself (v1 `UNKNOWN`, v2 `LOCAL`: health checks): the connection's own address holds.
        case local
    }

    public enum Result: Sendable, Equatable {
        /// Not enough octets yet to decide.
        case needMore
        /// A whole header, `length` octets long; what follows is the protocol's.
        case header(Header, length: Int)
        /// Not a PROXY header, or a malformed one: the connection must be closed.
        case invalid(String)
    }

    /// v1 lines are at most 107 octets with CRLF.
    public static let maxV1 = 107
    /// A v2 header with its TLVs (ALPN, authority, TLS details) may be longer; a bound keeps memory small.
    public static let maxV2 = 16 + 2048
    public static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let v1Prefix = Array("PROXY ".utf8)

    public static func parse(_ bytes: some Collection<UInt8>) -> Result {
        let b = Array(bytes.prefix(maxV2))
        // Decide the version from as many octets as have arrived.
        if b.isEmpty { return .needMore }
        if b.starts(with: v2Signature.prefix(b.count)) { return b.count < v2Signature.count ? .needMore : parseV2(b) }
        if b.starts(with: v1Prefix.prefix(b.count)) { return b.count < v1Prefix.count ? .needMore : parseV1(b) }
        return .invalid("no PROXY protocol header")
    }

    static func parseV1(_ b: [UInt8]) -> Result {
        guard let cr = b.prefix(maxV1).firstIndex(of: 0x0D) else {
            if b.prefix(maxV1).contains(0x0A) { return .invalid("PROXY v1 line without CRLF") }
            return b.count >= maxV1 ? .invalid("PROXY v1 line too long") : .needMore
        }
        guard cr + 1 < b.count else { return .needMore }
        guard b[cr + 1] == 0x0A else { return .invalid("PROXY v1 line without CRLF") }
        let fields = String(decoding: b[..<cr], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 2, fields[0] == "PROXY" else { return .invalid("malformed PROXY v1 line") }
        if fields[1] == "UNKNOWN" { return .header(.local, length: cr + 2) }
        guard fields.count == 6, fields[1] == "TCP4" || fields[1] == "TCP6",
              let sport = port(fields[4]), let dport = port(fields[5]) else { return .invalid("malformed PROXY v1 line") }
        let v4 = fields[1] == "TCP4"
        guard let source = canonical(fields[2], v4: v4), let destination = canonical(fields[3], v4: v4) else {
            return .invalid("PROXY v1 address is not an \(v4 ? "IPv4" : "IPv6") address")
        }
        return .header(.proxied(source: source, sourcePort: sport, destination: destination, destinationPort: dport), length: cr + 2)
    }

    static func parseV2(_ b: [UInt8]) -> Result {
        guard b.count >= 16 else { return .needMore }
        let versionCommand = b[12], family = b[13]
        let length = Int(b[14]) << 8 | Int(b[15])
        guard versionCommand >> 4 == 2 else { return .invalid("PROXY v2 header with version \(versionCommand >> 4)") }
        guard 16 + length <= maxV2 else { return .invalid("PROXY v2 header longer than \(maxV2) octets") }
        guard b.count >= 16 + length else { return .needMore }
        let body = Array(b[16..<(16 + length)])
        switch versionCommand & 0x0F {
        case 0: return .header(.local, length: 16 + length)
        case 1: break
        default: return .invalid("PROXY v2 command \(versionCommand & 0x0F)")
        }
        switch family >> 4 {
        case 1:   // AF_INET: 4 + 4 + 2 + 2
            guard body.count >= 12 else { return .invalid("PROXY v2 IPv4 addresses truncated") }
            let source = body[0..<4].map(String.init).joined(separator: "."), destination = body[4..<8].map(String.init).joined(separator: ".")
            return .header(.proxied(source: source, sourcePort: Int(body[8]) << 8 | Int(body[9]),
                                    destination: destination, destinationPort: Int(body[10]) << 8 | Int(body[11])), length: 16 + length)
        case 2:   // AF_INET6: 16 + 16 + 2 + 2
            guard body.count >= 36 else { return .invalid("PROXY v2 IPv6 addresses truncated") }
            return .header(.proxied(source: ipv6(body[0..<16]), sourcePort: Int(body[32]) << 8 | Int(body[33]),
                                    destination: ipv6(body[16..<32]), destinationPort: Int(body[34]) << 8 | Int(body[35])), length: 16 + length)
        case 0:   // AF_UNSPEC: the balancer does not know; keep the connection's own address.
            return .header(.local, length: 16 + length)
        default:
            return .invalid("PROXY v2 address family \(family >> 4) (Unix sockets are not relayed)")
        }
    }

    static func port(_ s: String) -> Int? {
        guard !s.isEmpty, s.count <= 5, s.allSatisfy(\.isASCII), s.allSatisfy(\.isNumber), s == "0" || !s.hasPrefix("0"),
              let n = Int(s), n <= 65535 else { return nil }
        return n
    }

    /// The address as NIO prints it (dotted quad; IPv6 as glibc's inet_ntop writes it, RFC 5952), or nil when it is
    /// not one.
    static func canonical(_ s: String, v4: Bool) -> String? {
        if v4 {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }) else { return nil }
            return parts.map { String(Int($0)!) }.joined(separator: ".")
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        guard s.count <= 45, inet_pton(AF_INET6, s, &bytes) == 1 else { return nil }
        return ipv6(bytes[...])
    }

    /// The text of a 16-octet address, as the socket layer writes peers' addresses.
    static func ipv6(_ b: ArraySlice<UInt8>) -> String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = Array(b)
        return inet_ntop(AF_INET6, bytes, &text, socklen_t(text.count)) != nil ? String(cString: text) : ""
    }
}
