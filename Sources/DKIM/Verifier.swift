import Crypto
import _CryptoExtras
import Foundation
import MailMessage

/// A DKIM tag list (RFC 6376 §3.2): `name=value` pairs split by `;`, whitespace around names and values ignored.
/// A repeated tag name makes the list invalid.
public enum DKIMTagList {
    public static func parse(_ text: String) -> [String: String]? {
        var tags: [String: String] = [:]
        for part in text.split(separator: ";", omittingEmptySubsequences: false) {
            let trimmed = part.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }  // a trailing ";" is allowed
            guard let eq = trimmed.firstIndex(of: "=") else { return nil }
            let name = trimmed[..<eq].trimmingCharacters(in: .whitespacesAndNewlines)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }),
                  tags[name] == nil else { return nil }
            tags[name] = value
        }
        return tags
    }

    /// A base64 value with the folding whitespace the tag list allows inside it removed.
    static func base64(_ value: String) -> [UInt8]? {
        let compact = value.filter { !$0.isWhitespace }
        guard let data = Data(base64Encoded: compact) else { return nil }
        return Array(data)
    }
}

/// Why a signature did not verify, in words for Authentication-Results and `tern check message`.
public enum DKIMResult: String, Sendable, Equatable {
    /// RFC 8601 §2.7.1 result names.
    case pass, fail, neutral, policy, temperror, permerror
}

/// One parsed DKIM-Signature field (RFC 6376 §3.5).
public struct DKIMSignature: Sendable {
    public var algorithm: DKIMKey.Algorithm
    public var signature: [UInt8]
    public var bodyHash: [UInt8]
    public var headerCanonicalization: DKIMCanonicalization
    public var bodyCanonicalization: DKIMCanonicalization
    /// `d=`, lower-cased: the signing domain (SDID).
    public var domain: String
    public var selector: String
    /// `h=`: the signed header field names, in order.
    public var signedHeaders: [String]
    /// `i=`, or `@d` when absent (the AUID).
    public var identity: String
    /// `l=`: how many body octets are covered, when not all.
    public var bodyLength: Int?
    public var timestamp: Int?
    public var expiration: Int?
    /// The first characters of `b=` (RFC 6008 header.b), to tell signatures apart.
    public var shortSignature: String
    /// The field as it arrived.
    public var field: RawHeaderField

    /// Parses the field; on failure returns the reason (a permerror, §6.1.1).
    public static func parse(_ field: RawHeaderField, now: Date) -> Result<DKIMSignature, DKIMFailure> {
        guard let colon = field.raw.firstIndex(of: 58) else { return .failure(.malformed("no colon")) }
        let value = String(decoding: field.raw[(colon + 1)...], as: UTF8.self)
        guard let tags = DKIMTagList.parse(value) else { return .failure(.malformed("bad tag list")) }
        guard tags["v"] == "1" else { return .failure(.malformed("v= is not 1")) }
        for required in ["a", "b", "bh", "d", "h", "s"] where tags[required] == nil {
            return .failure(.malformed("\(required)= missing"))
        }
        let algorithmName = tags["a"]!.lowercased()
        guard let algorithm = DKIMKey.Algorithm(rawValue: algorithmName) else {
            // RFC 8301 §3.1: rsa-sha1 must not be used or accepted.
            return .failure(.unsupported("algorithm \(algorithmName)"))
        }
        guard let b = DKIMTagList.base64(tags["b"]!), !b.isEmpty else { return .failure(.malformed("b= is not base64")) }
        guard let bh = DKIMTagList.base64(tags["bh"]!), bh.count == 32 else { return .failure(.malformed("bh= is not a SHA-256 hash")) }
        var headerC = DKIMCanonicalization.simple, bodyC = DKIMCanonicalization.simple
        if let c = tags["c"] {
            let parts = c.lowercased().split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let h = DKIMCanonicalization(rawValue: String(parts[0])) else {
                return .failure(.malformed("c= \(c)"))
            }
            headerC = h
            if parts.count == 2 {
                guard let bc = DKIMCanonicalization(rawValue: String(parts[1])) else { return .failure(.malformed("c= \(c)")) }
                bodyC = bc
            }
        }
        let domain = tags["d"]!.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        let selector = tags["s"]!.lowercased()
        guard !domain.isEmpty, !selector.isEmpty else { return .failure(.malformed("empty d= or s=")) }
        let headers = tags["h"]!.split(separator: ":").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard headers.contains(where: { $0.lowercased() == "from" }) else { return .failure(.malformed("From is not signed")) }
        var identity = "@" + domain
        if let i = tags["i"] {
            guard let at = i.lastIndex(of: "@") else { return .failure(.malformed("i= has no @")) }
            let idomain = i[i.index(after: at)...].lowercased()
            guard idomain == domain || idomain.hasSuffix("." + domain) else {
                return .failure(.malformed("i= is not within d="))
            }
            identity = i
        }
        var length: Int?
        if let l = tags["l"] {
            guard let n = Int(l), n >= 0 else { return .failure(.malformed("l= \(l)")) }
            length = n
        }
        if let q = tags["q"], !q.lowercased().split(separator: ":").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "dns/txt" }) {
            return .failure(.unsupported("query method \(q)"))
        }
        let t = tags["t"].flatMap { Int($0) }
        let x = tags["x"].flatMap { Int($0) }
        if let x {
            if let t, x < t { return .failure(.malformed("x= is before t=")) }
            if Int(now.timeIntervalSince1970) > x { return .failure(.expired) }
        }
        let short = String(tags["b"]!.filter { !$0.isWhitespace }.prefix(12))
        return .success(DKIMSignature(algorithm: algorithm, signature: b, bodyHash: bh, headerCanonicalization: headerC,
                                      bodyCanonicalization: bodyC, domain: domain, selector: selector, signedHeaders: headers,
                                      identity: identity, bodyLength: length, timestamp: t, expiration: x, shortSignature: short,
                                      field: field))
    }

    /// The name of the key record: `selector._domainkey.domain`.
    public var keyName: String { "\(selector)._domainkey.\(domain)" }

    /// The octets the signature covers (§3.7): the selected header fields, canonicalized, then this field with its
    /// b= value emptied and no final CRLF.
    public func signedData(headerFields: [RawHeaderField]) -> [UInt8] {
        let relaxed = headerCanonicalization == .relaxed
        func canonical(_ f: RawHeaderField) -> [UInt8] { relaxed ? DKIMHeaders.relaxed(f) : DKIMHeaders.simple(f) }
        var data: [UInt8] = []
        for f in DKIMHeaders.select(signedHeaders, from: headerFields) { data += canonical(f) }
        var own = canonical(RawHeaderField(name: field.name, raw: DKIMSignature.emptyingB(field.raw)))
        if own.count >= 2 && own[own.count - 2] == 13 && own[own.count - 1] == 10 { own.removeLast(2) }
        return data + own
    }

    /// The field with the value of its `b=` tag removed (whitespace around it too), everything else as it was.
    static func emptyingB(_ raw: [UInt8]) -> [UInt8] {
        guard let colon = raw.firstIndex(of: 58) else { return raw }
        var end = raw.count
        if end >= 2 && raw[end - 2] == 13 && raw[end - 1] == 10 { end -= 2 }
        var start = colon + 1
        while start < end {
            let semi = raw[start..<end].firstIndex(of: 59) ?? end
            var i = start
            while i < semi, [32, 9, 13, 10].contains(raw[i]) { i += 1 }
            if i < semi, raw[i] == 98 {  // "b"
                var j = i + 1
                while j < semi, [32, 9, 13, 10].contains(raw[j]) { j += 1 }
                if j < semi, raw[j] == 61 {  // "="
                    return Array(raw[...j]) + Array(raw[semi...])
                }
            }
            start = semi + 1
        }
        return raw
    }
}

public enum DKIMFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupported(String)
    case expired
    case noKey
    case keyRevoked
    case badKey(String)
    case keyLookupFailed
    case bodyHashMismatch
    case badSignature
    case bodyShorterThanLength

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed signature: \(s)"
        case .unsupported(let s): return "unsupported \(s)"
        case .expired: return "signature expired"
        case .noKey: return "no key published for the selector"
        case .keyRevoked: return "key revoked"
        case .badKey(let s): return "unusable key: \(s)"
        case .keyLookupFailed: return "key lookup failed temporarily"
        case .bodyHashMismatch: return "body hash did not verify"
        case .badSignature: return "signature did not verify"
        case .bodyShorterThanLength: return "body is shorter than l="
        }
    }

    /// The Authentication-Results result for this failure (RFC 8601 §2.7.1).
    public var result: DKIMResult {
        switch self {
        case .keyLookupFailed: return .temperror
        case .bodyHashMismatch, .badSignature, .bodyShorterThanLength: return .fail
        case .expired: return .neutral
        default: return .permerror
        }
    }
}

/// A public key from DNS (RFC 6376 §3.6.1, RFC 8463 §4.2).
public struct DKIMPublicKey: @unchecked Sendable {
    enum Material {
        case rsa(_RSA.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }
    let material: Material
    /// `t=y`: the domain is testing DKIM.
    public let testing: Bool
    /// `t=s`: `i=` must be in exactly `d=`, not a subdomain.
    public let strict: Bool
    public let keyType: String
    public var bits: Int? { if case .rsa(let k) = material { return k.keySizeInBits } else { return nil } }

    public static func parse(_ record: String) -> Result<DKIMPublicKey, DKIMFailure> {
        guard let tags = DKIMTagList.parse(record) else { return .failure(.badKey("bad tag list")) }
        if let v = tags["v"], v != "DKIM1" { return .failure(.badKey("v= \(v)")) }
        if let h = tags["h"], !h.lowercased().split(separator: ":").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "sha256" }) {
            return .failure(.badKey("hash algorithms \(h) exclude sha256"))
        }
        if let s = tags["s"], !s.lowercased().split(separator: ":").contains(where: { ["*", "email"].contains($0.trimmingCharacters(in: .whitespaces)) }) {
            return .failure(.badKey("service type \(s)"))
        }
        guard let p = tags["p"] else { return .failure(.badKey("p= missing")) }
        let compact = p.filter { !$0.isWhitespace }
        if compact.isEmpty { return .failure(.keyRevoked) }
        guard let bytes = DKIMTagList.base64(compact) else { return .failure(.badKey("p= is not base64")) }
        let flags = (tags["t"] ?? "").lowercased().split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
        let k = (tags["k"] ?? "rsa").lowercased()
        let material: Material
        switch k {
        case "rsa":
            // RFC 8301 §3.2: keys of 1024 bits and more (the "unsafe" initializer allows 1024; the default wants 2048).
            guard let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: bytes) else {
                return .failure(.badKey("not an RSA key of at least 1024 bits"))
            }
            material = .rsa(key)
        case "ed25519":
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: bytes) else { return .failure(.badKey("not an Ed25519 key")) }
            material = .ed25519(key)
        default:
            return .failure(.unsupported("key type \(k)"))
        }
        return .success(DKIMPublicKey(material: material, testing: flags.contains("y"), strict: flags.contains("s"), keyType: k))
    }

    /// Checks `signature` over `data` (the hash is taken here).
    public func isValid(signature: [UInt8], over data: [UInt8], algorithm: DKIMKey.Algorithm) -> Bool {
        let digest = SHA256.hash(data: data)
        switch (material, algorithm) {
        case (.rsa(let key), .rsaSHA256):
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: digest, padding: .insecurePKCS1v1_5)
        case (.ed25519(let key), .ed25519SHA256):
            return key.isValidSignature(signature, for: Array(digest))
        default:
            return false
        }
    }
}

/// The verdict on one signature, once its key and body hash are known (§6.1.3).
public enum DKIMVerifier {
    public static func verify(_ signature: DKIMSignature, key: DKIMPublicKey, headerFields: [RawHeaderField],
                              bodyHash: [UInt8], canonicalBodyLength: Int) -> DKIMFailure? {
        guard key.keyType == signature.algorithm.keyType else { return .badKey("key type \(key.keyType) does not match \(signature.algorithm.rawValue)") }
        if key.strict {
            let idomain = signature.identity.split(separator: "@").last.map { $0.lowercased() } ?? ""
            if idomain != signature.domain { return .malformed("key requires i= in exactly d= (t=s)") }
        }
        if let l = signature.bodyLength, l > canonicalBodyLength { return .bodyShorterThanLength }
        guard bodyHash == signature.bodyHash else { return .bodyHashMismatch }
        guard key.isValid(signature: signature.signature, over: signature.signedData(headerFields: headerFields), algorithm: signature.algorithm) else {
            return .badSignature
        }
        return nil
    }
}

/// Body hashes for several signatures at once: one hasher per distinct canonicalization and length, fed in one pass.
public struct DKIMBodyHashes: Sendable {
    public struct Key: Hashable, Sendable {
        public var canonicalization: DKIMCanonicalization
        public var length: Int?
    }
    private var hashers: [Key: DKIMBodyHasher] = [:]
    private var results: [Key: (hash: [UInt8], length: Int)] = [:]

    public init(_ keys: some Sequence<Key>) {
        for k in keys where hashers[k] == nil { hashers[k] = DKIMBodyHasher(canonicalization: k.canonicalization, limit: k.length) }
    }

    public var isEmpty: Bool { hashers.isEmpty }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        for k in hashers.keys { hashers[k]!.update(bytes) }
    }

    public mutating func finalize() {
        for (k, var h) in hashers {
            let hash = h.finalize()
            results[k] = (hash, h.canonicalLength)
        }
        hashers = [:]
    }

    public func result(for key: Key) -> (hash: [UInt8], length: Int)? { results[key] }
}

extension DKIMSignature {
    public var bodyHashKey: DKIMBodyHashes.Key { .init(canonicalization: bodyCanonicalization, length: bodyLength) }
}
