import Crypto
import _CryptoExtras
import Foundation

/// Stored credentials: SCRAM-SHA-256 keys (RFC 5802, RFC 7677), which are also the salted slow hash used to
/// check a plain password. The password itself is never stored.
///
/// Format: `SCRAM-SHA-256$<iterations>$<salt b64>$<StoredKey b64>$<ServerKey b64>`
public struct PasswordHash: Sendable, Hashable {
    /// PBKDF2 rounds. RFC 7677 §4 asks for at least 4096; Tern uses more, which costs a few milliseconds per login.
    public static let defaultIterations = 10_000
    /// Checked against when there is no such account, so that a name the server does not know costs what a wrong
    /// password does (no timing tells them apart).
    public static let unknownUser = make(password: "no such account", salt: Array("tern-unknown-user".utf8), iterations: defaultIterations)

    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public static func make(password: String, iterations: Int = defaultIterations) -> PasswordHash {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &rng) }
        return make(password: password, salt: salt, iterations: iterations)
    }

    public static func make(password: String, salt: [UInt8], iterations: Int) -> PasswordHash {
        let salted = saltedPassword(password, salt: salt, iterations: iterations)
        let clientKey = hmac(salted, "Client Key")
        let storedKey = Array(SHA256.hash(data: clientKey))
        let serverKey = hmac(salted, "Server Key")
        return PasswordHash(iterations: iterations, salt: salt, storedKey: storedKey, serverKey: serverKey)
    }

    /// SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3). SASLprep is reduced to the identity for
    /// ASCII passwords and NFKC for others, which covers what real clients send.
    public static func saltedPassword(_ password: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        let normalized = password.precomposedStringWithCompatibilityMapping
        let key = try! KDF.Insecure.PBKDF2.deriveKey(from: Array(normalized.utf8), salt: salt, using: .sha256,
                                                     outputByteCount: 32, unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }

    public static func hmac(_ key: [UInt8], _ text: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: key)))
    }

    /// Checks a plain password in constant time with respect to the stored key.
    public func verify(_ password: String) -> Bool {
        let candidate = PasswordHash.make(password: password, salt: salt, iterations: iterations)
        guard candidate.storedKey.count == storedKey.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(candidate.storedKey, storedKey) { diff |= a ^ b }
        return diff == 0
    }

    public var encoded: String {
        "SCRAM-SHA-256$\(iterations)$\(Data(salt).base64EncodedString())$\(Data(storedKey).base64EncodedString())$\(Data(serverKey).base64EncodedString())"
    }

    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    public init?(encoded: String) {
        let parts = encoded.split(separator: "$").map(String.init)
        guard parts.count == 5, parts[0] == "SCRAM-SHA-256", let i = Int(parts[1]), i > 0,
              let salt = Data(base64Encoded: parts[2]), let sk = Data(base64Encoded: parts[3]),
              let svk = Data(base64Encoded: parts[4]) else { return nil }
        self.init(iterations: i, salt: Array(salt), storedKey: Array(sk), serverKey: Array(svk))
    }

    /// A random password for accounts created without one: 20 characters from an unambiguous alphabet.
    public static func generatePassword(length: Int = 20) -> String {
        let alphabet = Array("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        var rng = SystemRandomNumberGenerator()
        return String((0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }
}
