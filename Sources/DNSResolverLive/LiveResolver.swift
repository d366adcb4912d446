import CResolv
import Foundation
import MailCore
import MailDNS
import NIOPosix
import Synchronization

/// DNS through glibc's libresolv (`res_nquery`, `ns_parserr`, `dn_expand`), on a thread pool so that no event loop
/// or cooperative thread waits for the network. Answers are cached for their TTL (at least `minimumTTL`, at most
/// `maximumTTL`); NXDOMAIN and NODATA for `negativeTTL`. Temporary failures are not cached.
///
/// Why libresolv rather than a DNS library or our own code: it is on every Debian machine, it reads
/// /etc/resolv.conf as every other program on the host does, it has been parsing hostile DNS answers for decades,
/// and a blocking call on a small pool of threads serves a mail server well (lookups are few beside the SMTP work
/// they precede, and cached). Tests point it at their own DNS server (dnsmasq on loopback) with `nameserver`.
public final class LiveResolver: DNSResolver {
    public struct Nameserver: Sendable, Hashable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int = 53) {
            self.host = host
            self.port = port
        }

        /// `"127.0.0.1:5353"` or `"127.0.0.1"`; IPv4 only (libresolv's per-call server setting takes IPv4).
        public init?(_ text: String) {
            let parts = text.split(separator: ":")
            guard (1...2).contains(parts.count), AddressLiteral.isIPv4(String(parts[0])) else { return nil }
            host = String(parts[0])
            if parts.count == 2 {
                guard let p = Int(parts[1]), (1...65535).contains(p) else { return nil }
                port = p
            } else {
                port = 53
            }
        }
    }

    private struct CacheKey: Hashable {
        var name: String
        var type: DNSRecordType
    }

    private enum CachedAnswer {
        case records([Record], authentic: Bool)
        case failure(DNSError)
    }

    /// One answer record of the type asked for: its TTL and data (addresses and names already in text form).
    struct Record: Sendable {
        var ttl: UInt32
        var mx: MXRecord?
        var text: String
    }

    private let pool: NIOThreadPool
    private let nameservers: [Nameserver]
    private let timeout: Int
    private let attempts: Int
    private let cache = Mutex<[CacheKey: (CachedAnswer, ContinuousClock.Instant)]>([:])
    static let minimumTTL: UInt32 = 5
    static let maximumTTL: UInt32 = 3600
    static let negativeTTL: UInt32 = 60
    static let maxCacheEntries = 100_000

    /// `nameservers` empty: the system's (/etc/resolv.conf); else up to three, tried in order. `timeout` is per try, in seconds.
    public init(nameservers: [Nameserver] = [], timeout: Int = 5, attempts: Int = 2, threads: Int = 4) {
        self.nameservers = nameservers
        self.timeout = timeout
        self.attempts = attempts
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    deinit {
        pool.shutdownGracefully { _ in }
    }

    public func mx(_ name: String) async throws(DNSError) -> [MXRecord] {
        try await lookup(name, .mx).compactMap(\.mx)
    }

    public func a(_ name: String) async throws(DNSError) -> [String] {
        try await lookup(name, .a).map(\.text)
    }

    public func aaaa(_ name: String) async throws(DNSError) -> [String] {
        try await lookup(name, .aaaa).map(\.text)
    }

    public func txt(_ name: String) async throws(DNSError) -> [String] {
        try await lookup(name, .txt).map(\.text)
    }

    public func ns(_ name: String) async throws(DNSError) -> [String] {
        try await lookup(name, .ns).map(\.text)
    }

    public func isAuthentic(_ name: String, _ type: DNSRecordType) async -> Bool {
        let lower = name.lowercased()
        let key = CacheKey(name: lower.hasSuffix(".") ? String(lower.dropLast()) : lower, type: type)
        if cache.withLock({ $0[key] }) == nil { _ = try? await lookup(name, type) }
        guard let (answer, expires) = cache.withLock({ $0[key] }), expires > .now, case .records(_, let authentic) = answer else { return false }
        return authentic
    }

    /// The AD bit of a DNS response (the header's flags), as glibc left it.
    static func isAuthentic(answer: [UInt8]) -> Bool {
        tern_dns_authentic(answer, Int32(answer.count)) == 1
    }

    public func ptr(_ address: String) async throws(DNSError) -> [String] {
        guard let name = ReverseDNS.name(for: address) else { throw .permanent(address) }
        return try await lookup(name, .ptr).map(\.text)
    }

    private func lookup(_ rawName: String, _ type: DNSRecordType) async throws(DNSError) -> [Record] {
        let name = rawName.lowercased().hasSuffix(".") ? String(rawName.lowercased().dropLast()) : rawName.lowercased()
        let key = CacheKey(name: name, type: type)
        if let (answer, expires) = cache.withLock({ $0[key] }), expires > .now {
            switch answer {
            case .records(let r, _): return r
            case .failure(let e): throw e
            }
        }
        let (servers, timeout, attempts) = (self.nameservers, self.timeout, self.attempts)
        let result: Result<(records: [Record], authentic: Bool), DNSError>
        do {
            result = try await pool.runIfActive { Self.query(name, type, servers: servers, timeout: timeout, attempts: attempts) }
        } catch {
            throw .temporary(name)
        }
        switch result {
        case .success(let (records, authentic)):
            let ttl = min(max(records.map(\.ttl).min() ?? Self.negativeTTL, Self.minimumTTL), Self.maximumTTL)
            remember(key, .records(records, authentic: authentic), ttl: ttl)
            return records
        case .failure(let error):
            if !error.isTemporary { remember(key, .failure(error), ttl: Self.negativeTTL) }
            throw error
        }
    }

    private func remember(_ key: CacheKey, _ answer: CachedAnswer, ttl: UInt32) {
        cache.withLock { c in
            if c.count >= Self.maxCacheEntries { c.removeAll(keepingCapacity: true) }
            c[key] = (answer, .now + .seconds(Int(ttl)))
        }
    }

    /// One blocking query and the parse of its answer section (records of the asked type only: a CNAME chain's
    /// intermediate records are skipped, its final records kept).
    static func query(_ name: String, _ type: DNSRecordType, servers: [Nameserver], timeout: Int, attempts: Int)
        -> Result<(records: [Record], authentic: Bool), DNSError> {
        var answer = [UInt8](repeating: 0, count: 65536)
        var status: Int32 = 0
        let used = Array(servers.prefix(3))
        let hosts = used.map { strdup($0.host) }
        defer { hosts.forEach { free($0) } }
        let ports = used.map { Int32($0.port) }
        let length = answer.withUnsafeMutableBufferPointer { buf in
            hosts.map { UnsafePointer($0) }.withUnsafeBufferPointer { h in
                ports.withUnsafeBufferPointer { p in
                    tern_dns_query(name, Int32(type.rawValue), h.baseAddress, p.baseAddress, Int32(used.count), Int32(timeout),
                                   Int32(attempts), buf.baseAddress, Int32(buf.count), &status)
                }
            }
        }
        guard length >= 0 else {
            switch status {
            case 1: return .failure(.nxdomain(name))
            case 2: return .failure(.noData(name))
            case 4: return .failure(.permanent(name))
            default: return .failure(.temporary(name))
            }
        }
        return parse(Array(answer.prefix(Int(length))), type, name: name)
    }

    /// The records of the asked type in a DNS answer message (pure: the network is `query`'s business).
    static func parse(_ answer: [UInt8], _ type: DNSRecordType, name: String) -> Result<(records: [Record], authentic: Bool), DNSError> {
        let length = Int32(answer.count)
        let count = tern_dns_answer_count(answer, length)
        guard count >= 0 else { return .failure(.permanent(name)) }
        let authentic = isAuthentic(answer: answer)
        var records: [Record] = []
        for i in 0..<count {
            var rrType: Int32 = 0, ttl: UInt32 = 0, offset: Int32 = 0, rdLength: Int32 = 0
            guard tern_dns_answer_record(answer, length, i, &rrType, &ttl, &offset, &rdLength) == 0 else { return .failure(.permanent(name)) }
            guard Int(rrType) == type.rawValue else { continue }
            let start = Int(offset), end = Int(offset) + Int(rdLength)
            guard end <= Int(length) else { return .failure(.permanent(name)) }
            let rdata = answer[start..<end]
            switch type {
            case .a:
                guard rdata.count == 4 else { continue }
                records.append(Record(ttl: ttl, mx: nil, text: rdata.map(String.init).joined(separator: ".")))
            case .aaaa:
                guard rdata.count == 16 else { continue }
                var addr = in6_addr()
                withUnsafeMutableBytes(of: &addr) { $0.copyBytes(from: rdata) }
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                guard inet_ntop(AF_INET6, &addr, &text, socklen_t(text.count)) != nil else { continue }
                records.append(Record(ttl: ttl, mx: nil, text: String(cString: text)))
            case .mx:
                guard rdata.count >= 3 else { continue }
                let preference = Int(rdata[start]) << 8 | Int(rdata[start + 1])
                guard let exchange = expand(answer, length, offset + 2) else { continue }
                records.append(Record(ttl: ttl, mx: MXRecord(preference: preference, exchange: exchange), text: exchange))
            case .ptr, .ns:
                guard let target = expand(answer, length, offset) else { continue }
                records.append(Record(ttl: ttl, mx: nil, text: target))
            case .txt:
                // <character-string>s: a length octet and that many octets each (RFC 1035 §3.3.14).
                var text: [UInt8] = []
                var i = start
                while i < end {
                    let n = Int(answer[i])
                    guard i + 1 + n <= end else { break }
                    text += answer[(i + 1)..<(i + 1 + n)]
                    i += 1 + n
                }
                records.append(Record(ttl: ttl, mx: nil, text: String(decoding: text, as: UTF8.self)))
            }
        }
        if records.isEmpty { return .failure(.noData(name)) }
        return .success((records, authentic))
    }

    static func expand(_ answer: [UInt8], _ length: Int32, _ offset: Int32) -> String? {
        var out = [CChar](repeating: 0, count: 1025)
        guard tern_dns_expand(answer, length, offset, &out, Int32(out.count)) >= 0 else { return nil }
        return String(cString: out).lowercased()
    }
}
