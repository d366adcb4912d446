import Crypto
import MailMessage

/// DKIM canonicalization (RFC 6376 §3.4). Pure byte work, shared by signing and (later) verification.
public enum DKIMCanonicalization: String, Sendable {
    case simple, relaxed
}

public enum DKIMHeaders {
    /// Relaxed header canonicalization (RFC 6376 §3.4.2): lower-case name, unfolded value, runs of WSP made one SP,
    /// WSP around the colon and at the end removed; ends in CRLF.
    public static func relaxed(_ field: RawHeaderField) -> [UInt8] {
        let raw = field.raw
        guard let colon = raw.firstIndex(of: 58) else { return Array(field.name.lowercased().utf8) + [58, 13, 10] }
        var out = Array(field.name.lowercased().utf8)
        out.append(58)
        var pendingSpace = false
        var started = false
        for b in raw[(colon + 1)...] {
            switch b {
            case 13, 10: continue
            case 32, 9: pendingSpace = true
            default:
                if pendingSpace && started { out.append(32) }
                pendingSpace = false
                started = true
                out.append(b)
            }
        }
        out.append(13)
        out.append(10)
        return out
    }

    /// Simple header canonicalization (§3.4.1): the field unchanged.
    public static func simple(_ field: RawHeaderField) -> [UInt8] { field.raw }

    /// The fields named in `names` as a signature covers them (§5.4.2): for each name the last instance not yet used,
    /// so a repeated name in `names` takes the next one up; a name with no instance left contributes nothing.
    public static func select(_ names: [String], from fields: [RawHeaderField]) -> [RawHeaderField] {
        var used = Set<Int>()
        var out: [RawHeaderField] = []
        for name in names {
            let lower = name.lowercased()
            if let i = fields.indices.reversed().first(where: { !used.contains($0) && fields[$0].name.lowercased() == lower }) {
                used.insert(i)
                out.append(fields[i])
            }
        }
        return out
    }
}

/// Relaxed or simple body canonicalization (RFC 6376 §3.4.3, §3.4.4) fed in chunks, with SHA-256 over the result, so
/// that a large message is hashed from its file without being held in memory. Trailing empty lines are held back
/// until content follows them.
public struct DKIMBodyHasher: Sendable {
    public let canonicalization: DKIMCanonicalization
    /// `l=`: hash at most this many canonical octets (nil: all).
    public let limit: Int?
    private var hash = SHA256()
    private var pendingCRLFs = 0
    private var pendingSpace = false
    private var lineHasContent = false
    private var sawCR = false
    private var emittedAnything = false
    public private(set) var canonicalLength = 0
    private var out: [UInt8] = []

    public init(canonicalization: DKIMCanonicalization, limit: Int? = nil) {
        self.canonicalization = canonicalization
        self.limit = limit
        out.reserveCapacity(8192)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        for b in bytes { feed(b) }
        flushOut()
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    @inline(__always) private mutating func feed(_ b: UInt8) {
        if sawCR {
            sawCR = false
            if b == 10 { endLine(); return }
            content(13)
        }
        switch b {
        case 13: sawCR = true
        case 32 where canonicalization == .relaxed, 9 where canonicalization == .relaxed: pendingSpace = true
        case 10: content(10)  // a bare LF is content (SMTP refuses them before this point)
        default: content(b)
        }
    }

    @inline(__always) private mutating func content(_ b: UInt8) {
        while pendingCRLFs > 0 { out.append(13); out.append(10); pendingCRLFs -= 1 }
        if pendingSpace { out.append(32); pendingSpace = false }
        out.append(b)
        lineHasContent = true
        emittedAnything = true
        if out.count >= 8192 { flushOut() }
    }

    private mutating func endLine() {
        pendingSpace = false
        pendingCRLFs += 1
        lineHasContent = false
    }

    private mutating func flushOut() {
        guard !out.isEmpty else { return }
        var chunk = out[...]
        if let limit {
            let room = max(0, limit - canonicalLength)
            chunk = chunk.prefix(room)
        }
        canonicalLength += out.count
        hash.update(data: chunk)
        out.removeAll(keepingCapacity: true)
    }

    /// The hash of the canonical body (the `bh=` value).
    public mutating func finalize() -> [UInt8] {
        if sawCR { sawCR = false; content(13) }
        pendingSpace = false
        if emittedAnything || lineHasContent {
            out.append(13); out.append(10)
        } else if canonicalization == .simple {
            // §3.4.3: an empty body is one CRLF under simple canonicalization.
            out.append(13); out.append(10)
        }
        flushOut()
        return Array(hash.finalize())
    }
}
