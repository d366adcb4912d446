import Crypto
import _CryptoExtras
import Foundation
import MailMessage

/// A DKIM private key with its selector (RFC 6376 RSA-SHA256, RFC 8463 Ed25519-SHA256).
public struct DKIMKey: Sendable {
    public enum Algorithm: String, Sendable, CaseIterable {
        case rsaSHA256 = "rsa-sha256"
        case ed25519SHA256 = "ed25519-sha256"
        /// The `k=` tag of the DNS record.
        public var keyType: String { self == .rsaSHA256 ? "rsa" : "ed25519" }
    }

    enum Material: @unchecked Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)
    }

    public let domain: String
    public let selector: String
    public let algorithm: Algorithm
    let material: Material

    /// Reads a key as stored: PEM (PKCS#8 or PKCS#1) for RSA, PEM PKCS#8 or the raw 32-byte seed in base64 for Ed25519.
    public init(domain: String, selector: String, algorithm: Algorithm, privateKey: String) throws {
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        switch algorithm {
        case .rsaSHA256:
            material = .rsa(try _RSA.Signing.PrivateKey(pemRepresentation: privateKey))
        case .ed25519SHA256:
            if privateKey.contains("-----BEGIN") {
                material = .ed25519(try Curve25519.Signing.PrivateKey(pemRepresentation: privateKey))
            } else {
                guard let seed = Data(base64Encoded: privateKey.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw DKIMError.badKey("Ed25519 key is neither PEM nor base64")
                }
                material = .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
            }
        }
    }

    /// A new key: RSA-2048 or Ed25519. Returns the key and its private part as stored (PEM).
    public static func generate(domain: String, selector: String, algorithm: Algorithm) throws -> (DKIMKey, String) {
        let pem: String
        switch algorithm {
        case .rsaSHA256: pem = try _RSA.Signing.PrivateKey(keySize: .bits2048).pemRepresentation
        case .ed25519SHA256: pem = Curve25519.Signing.PrivateKey().pemRepresentation
        }
        return (try DKIMKey(domain: domain, selector: selector, algorithm: algorithm, privateKey: pem), pem)
    }

    /// The `p=` value: the SubjectPublicKeyInfo (RSA) or the raw 32-byte public key (Ed25519, RFC 8463 §4.2), base64.
    public var publicKeyBase64: String {
        switch material {
        case .rsa(let k): return k.publicKey.derRepresentation.base64EncodedString()
        case .ed25519(let k): return k.publicKey.rawRepresentation.base64EncodedString()
        }
    }

    /// The TXT record content to publish at `<selector>._domainkey.<domain>`.
    public var dnsRecord: String {
        "v=DKIM1; k=\(algorithm.keyType); p=\(publicKeyBase64)"
    }

    /// The signature over `data` as DKIM makes it (the hash is taken here): for b= values built by hand.
    public func sign(_ data: [UInt8]) throws -> [UInt8] {
        switch material {
        case .rsa(let k):
            return Array(try k.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation)
        case .ed25519(let k):
            // RFC 8463 §3: PureEdDSA over the SHA-256 hash of the data.
            return Array(try k.signature(for: Array(SHA256.hash(data: data))))
        }
    }
}

public enum DKIMError: Error, CustomStringConvertible {
    case badKey(String)
    public var description: String {
        switch self {
        case .badKey(let s): return "DKIM key: \(s)"
        }
    }
}

/// Makes DKIM-Signature header fields (RFC 6376 §5) with relaxed/relaxed canonicalization.
public enum DKIMSigner {
    /// The header fields signed when present. From is signed once more than it occurs ("oversigned") so that no
    /// From can be added above the signed one without breaking the signature.
    public static let signedHeaders = ["From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References",
                                       "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe",
                                       "List-Unsubscribe-Post"]

    /// The names for `h=`: each signed field present, as often as it occurs, and "from" once more.
    public static func headerList(for fields: [RawHeaderField]) -> [String] {
        var names: [String] = []
        for name in signedHeaders {
            let count = fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.count
            names.append(contentsOf: Array(repeating: name.lowercased(), count: count))
        }
        names.append("from")
        return names
    }

    /// One DKIM-Signature field (with CRLF) per key, to put above the message's header. `bodyHash` is the SHA-256 of the
    /// relaxed-canonical body (`DKIMBodyHasher`).
    public static func sign(headerFields: [RawHeaderField], bodyHash: [UInt8], keys: [DKIMKey], time: Date) throws -> [UInt8] {
        let names = headerList(for: headerFields)
        var canonicalHeaders: [UInt8] = []
        for f in DKIMHeaders.select(names, from: headerFields) { canonicalHeaders += DKIMHeaders.relaxed(f) }
        var out: [UInt8] = []
        for key in keys {
            var tags = "v=1; a=\(key.algorithm.rawValue); c=relaxed/relaxed; d=\(key.domain); s=\(key.selector);\r\n"
            tags += "\tt=\(Int(time.timeIntervalSince1970)); h=" + foldList(names) + ";\r\n"
            tags += "\tbh=\(Data(bodyHash).base64EncodedString());\r\n\tb="
            let unsigned = "DKIM-Signature: " + tags
            // §3.7: the signature field itself is hashed last, canonicalized, with an empty b= and no final CRLF.
            var canonicalSelf = DKIMHeaders.relaxed(RawHeaderField(name: "DKIM-Signature", raw: Array(unsigned.utf8)))
            canonicalSelf.removeLast(2)
            let signature = try key.sign(canonicalHeaders + canonicalSelf)
            out += Array(unsigned.utf8) + Array(fold(Data(signature).base64EncodedString()).utf8) + [13, 10]
        }
        return out
    }

    /// `a:b:c` broken into lines under 78 columns.
    static func foldList(_ names: [String]) -> String {
        var out = ""
        var line = 10
        for (i, n) in names.enumerated() {
            let piece = (i == 0 ? "" : ":") + n
            if line + piece.count > 72 { out += "\r\n\t "; line = 2 }
            out += piece
            line += piece.count
        }
        return out
    }

    static func fold(_ base64: String) -> String {
        var out = ""
        var rest = Substring(base64)
        var first = true
        while !rest.isEmpty {
            if !first { out += "\r\n\t " }
            out += rest.prefix(first ? 68 : 72)
            rest = rest.dropFirst(first ? 68 : 72)
            first = false
        }
        return out
    }
}
