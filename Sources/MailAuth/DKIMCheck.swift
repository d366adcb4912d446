import DKIM
import Foundation
import MailDNS
import MailMessage

/// The verdict on one DKIM-Signature of a message (RFC 6376 §6), as Authentication-Results reports it.
public struct DKIMOutcome: Sendable, Equatable {
    public var result: DKIMResult
    /// `d=`, `s=`, `i=` and `a=` as the signature gave them (empty when it could not be parsed that far).
    public var domain: String
    public var selector: String
    public var identity: String
    public var algorithm: String
    /// The first characters of `b=` (RFC 6008 header.b).
    public var shortSignature: String
    /// Why it did not pass.
    public var reason: String?
    /// The key said `t=y` (testing).
    public var testing: Bool
    /// The key's size in bits (RSA).
    public var keyBits: Int?
    /// `l=` left part of the body unsigned.
    public var unsignedBodyOctets: Int = 0

    public init(result: DKIMResult, domain: String, selector: String, identity: String, algorithm: String, shortSignature: String,
                reason: String?, testing: Bool, keyBits: Int? = nil) {
        self.result = result
        self.domain = domain
        self.selector = selector
        self.identity = identity
        self.algorithm = algorithm
        self.shortSignature = shortSignature
        self.reason = reason
        self.testing = testing
        self.keyBits = keyBits
    }
}

/// DKIM verification of a whole message in three steps, so that body bytes can be fed from wherever the message is
/// (memory, a spool file) while DNS lookups stay async:
/// `var check = DKIMCheck(headerFields:)`; `check.update(bodyChunk)`…; `await check.finish(resolver:)`.
public struct DKIMCheck: Sendable {
    /// Signatures beyond this many are reported as `policy` without DNS lookups (bounds the work per message).
    public static let maxSignatures = 8

    private let fields: [RawHeaderField]
    private var parsed: [Result<DKIMSignature, DKIMFailure>] = []
    private var hashes: DKIMBodyHashes
    /// Signatures beyond `maxSignatures`.
    private var skipped = 0

    public init(headerFields: [RawHeaderField], now: Date) {
        fields = headerFields
        let signatureFields = headerFields.filter { $0.name.caseInsensitiveCompare("DKIM-Signature") == .orderedSame }
        skipped = max(0, signatureFields.count - DKIMCheck.maxSignatures)
        parsed = signatureFields.prefix(DKIMCheck.maxSignatures).map { DKIMSignature.parse($0, now: now) }
        hashes = DKIMBodyHashes(parsed.compactMap { try? $0.get().bodyHashKey })
    }

    /// The message has DKIM-Signature fields.
    public var hasSignatures: Bool { !parsed.isEmpty }

    /// Feeds the next piece of the body (everything after the header's empty line).
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        if !hashes.isEmpty { hashes.update(bytes) }
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Looks up each signature's key and verifies it. Results are in the order of the fields, top first.
    public mutating func finish(resolver: any DNSResolver) async -> [DKIMOutcome] {
        hashes.finalize()
        var keys: [String: Result<DKIMPublicKey, DKIMFailure>] = [:]
        var out: [DKIMOutcome] = []
        for p in parsed {
            switch p {
            case .failure(let failure):
                out.append(DKIMOutcome(result: failure.result, domain: "", selector: "", identity: "", algorithm: "", shortSignature: "",
                                       reason: failure.description, testing: false))
            case .success(let sig):
                var outcome = DKIMOutcome(result: .pass, domain: sig.domain, selector: sig.selector, identity: sig.identity,
                                          algorithm: sig.algorithm.rawValue, shortSignature: sig.shortSignature, reason: nil, testing: false)
                let key: Result<DKIMPublicKey, DKIMFailure>
                if let known = keys[sig.keyName] {
                    key = known
                } else {
                    key = await DKIMCheck.lookupKey(sig.keyName, resolver: resolver)
                    keys[sig.keyName] = key
                }
                switch key {
                case .failure(let failure):
                    outcome.result = failure.result
                    outcome.reason = failure.description
                case .success(let publicKey):
                    outcome.testing = publicKey.testing
                    outcome.keyBits = publicKey.bits
                    let body = hashes.result(for: sig.bodyHashKey) ?? ([], 0)
                    if let l = sig.bodyLength { outcome.unsignedBodyOctets = max(0, body.length - l) }
                    if let failure = DKIMVerifier.verify(sig, key: publicKey, headerFields: fields, bodyHash: body.hash,
                                                         canonicalBodyLength: body.length) {
                        outcome.result = failure.result
                        outcome.reason = failure.description
                    }
                }
                out.append(outcome)
            }
        }
        for _ in 0..<skipped {
            out.append(DKIMOutcome(result: .policy, domain: "", selector: "", identity: "", algorithm: "", shortSignature: "",
                                   reason: "more than \(DKIMCheck.maxSignatures) signatures", testing: false))
        }
        return out
    }

    /// The key record at `selector._domainkey.domain`: the first TXT record that reads as a key.
    static func lookupKey(_ name: String, resolver: any DNSResolver) async -> Result<DKIMPublicKey, DKIMFailure> {
        let records: [String]
        do {
            records = try await resolver.txt(name)
        } catch {
            return error.isTemporary ? .failure(.keyLookupFailed) : .failure(.noKey)
        }
        var firstFailure: DKIMFailure = .noKey
        for (i, r) in records.enumerated() {
            switch DKIMPublicKey.parse(r) {
            case .success(let key): return .success(key)
            case .failure(let f): if i == 0 { firstFailure = f }
            }
        }
        return .failure(firstFailure)
    }
}

extension DKIMCheck {
    /// Verifies a message held in memory.
    public static func verify(message: [UInt8], resolver: any DNSResolver, now: Date) async -> [DKIMOutcome] {
        let end = RawHeader.end(message)
        var check = DKIMCheck(headerFields: RawHeader.fields(message[..<end]), now: now)
        message.withUnsafeBytes { check.update(UnsafeRawBufferPointer(rebasing: $0[end...])) }
        return await check.finish(resolver: resolver)
    }
}
