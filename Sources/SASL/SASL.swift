import Crypto
import Foundation

/// The server side of the SASL mechanisms Tern offers (RFC 4422): PLAIN (RFC 4616), LOGIN (the de-facto
/// draft-murchison-sasl-login) and SCRAM-SHA-256 (RFC 5802, RFC 7677). Pure state machines over decoded bytes:
/// the protocol layer (SMTP AUTH, IMAP AUTHENTICATE) does base64 and I/O, and the store answers the questions.
public enum SASLMechanismName: String, CaseIterable, Sendable {
    case plain = "PLAIN"
    case login = "LOGIN"
    case scramSHA256 = "SCRAM-SHA-256"
}

/// What the exchange needs next.
public enum SASLStep: Sendable, Equatable {
    /// Send this challenge (the protocol base64-encodes it) and feed back the client's response.
    case challenge([UInt8])
    /// Check this user's password; then call `passwordChecked`.
    case checkPassword(user: String, password: String)
    /// Look up this user's SCRAM credentials (nil when unknown); then call `credentials`.
    case needCredentials(user: String)
    /// Authenticated as `user`.
    case success(user: String)
    /// The exchange failed; `malformed` when the client broke the protocol rather than gave wrong credentials.
    case failure(malformed: Bool)
}

/// SCRAM keys as stored (RFC 5802 §3): never the password itself.
public struct SCRAMCredentials: Sendable, Equatable {
    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]
    public init(iterations: Int, salt: [UInt8], storedKey: [UInt8], serverKey: [UInt8]) {
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }
}

public struct SASLServer: Sendable {
    enum State: Sendable {
        case start
        case loginUser
        case loginPassword(user: String)
        case waitingForPassword(user: String)
        case waitingForCredentials(user: String, clientFirstBare: String, gs2Header: String, clientNonce: String)
        case scramFinal(user: String, credentials: SCRAMCredentials?, authMessagePrefix: String, gs2Header: String, nonce: String)
        case scramAcknowledge(user: String)
        case done
    }

    public let mechanism: SASLMechanismName
    var state: State = .start
    /// The server's part of the SCRAM nonce (random unless a test sets it).
    let serverNonce: String
    /// Salts the fake credentials of unknown users so that SCRAM does not tell which users exist.
    let fakeSaltKey: [UInt8]

    public init(mechanism: SASLMechanismName, serverNonce: String? = nil, fakeSaltKey: [UInt8] = []) {
        self.mechanism = mechanism
        self.serverNonce = serverNonce ?? SASLServer.randomNonce()
        self.fakeSaltKey = fakeSaltKey
    }

    /// Starts the exchange with the initial response, if the client sent one (nil: none; empty: an empty one).
    public mutating func start(initialResponse: [UInt8]?) -> SASLStep {
        switch mechanism {
        case .plain:
            guard let initialResponse else { state = .start; return .challenge([]) }
            return plain(initialResponse)
        case .login:
            if let initialResponse, !initialResponse.isEmpty {
                // Some clients send the user name as an initial response.
                state = .loginPassword(user: String(decoding: initialResponse, as: UTF8.self))
                return .challenge(Array("Password:".utf8))
            }
            state = .loginUser
            return .challenge(Array("Username:".utf8))
        case .scramSHA256:
            guard let initialResponse, !initialResponse.isEmpty else { state = .start; return .challenge([]) }
            return scramClientFirst(initialResponse)
        }
    }

    /// Feeds the client's (decoded) response to the last challenge.
    public mutating func respond(_ response: [UInt8]) -> SASLStep {
        switch (mechanism, state) {
        case (.plain, .start):
            return plain(response)
        case (.login, .loginUser):
            state = .loginPassword(user: String(decoding: response, as: UTF8.self))
            return .challenge(Array("Password:".utf8))
        case (.login, .loginPassword(let user)):
            state = .waitingForPassword(user: user)
            return .checkPassword(user: user, password: String(decoding: response, as: UTF8.self))
        case (.scramSHA256, .start):
            return scramClientFirst(response)
        case (.scramSHA256, .scramFinal(let user, let credentials, let prefix, let gs2, let nonce)):
            return scramClientFinal(response, user: user, credentials: credentials, authMessagePrefix: prefix, gs2Header: gs2, nonce: nonce)
        case (.scramSHA256, .scramAcknowledge(let user)):
            // RFC 5802 §5.1 in SMTP/IMAP: the server-final message went out as a challenge; the client answers empty.
            state = .done
            return response.isEmpty ? .success(user: user) : .failure(malformed: true)
        default:
            state = .done
            return .failure(malformed: true)
        }
    }

    /// The answer to `.checkPassword`.
    public mutating func passwordChecked(_ ok: Bool) -> SASLStep {
        guard case .waitingForPassword(let user) = state else { state = .done; return .failure(malformed: true) }
        state = .done
        return ok ? .success(user: user) : .failure(malformed: false)
    }

    /// The answer to `.needCredentials`: the user's stored SCRAM keys, nil when there is no such user.
    public mutating func credentials(_ credentials: SCRAMCredentials?) -> SASLStep {
        guard case .waitingForCredentials(let user, let bare, let gs2, let clientNonce) = state else {
            state = .done
            return .failure(malformed: true)
        }
        // An unknown user gets a believable salt and count; the proof then cannot match.
        let salt = credentials?.salt ?? Array(HMAC<SHA256>.authenticationCode(for: Array(user.utf8), using: SymmetricKey(data: fakeSaltKey)).prefix(16))
        let iterations = credentials?.iterations ?? 10_000
        let nonce = clientNonce + serverNonce
        let serverFirst = "r=\(nonce),s=\(Data(salt).base64EncodedString()),i=\(iterations)"
        state = .scramFinal(user: user, credentials: credentials, authMessagePrefix: bare + "," + serverFirst, gs2Header: gs2, nonce: nonce)
        return .challenge(Array(serverFirst.utf8))
    }

    // MARK: PLAIN

    mutating func plain(_ response: [UInt8]) -> SASLStep {
        // RFC 4616 §2: [authzid] NUL authcid NUL passwd
        let parts = response.split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3 else { state = .done; return .failure(malformed: true) }
        let authz = String(decoding: parts[0], as: UTF8.self)
        let user = String(decoding: parts[1], as: UTF8.self)
        // Acting as another user (authzid) is not offered.
        guard authz.isEmpty || authz.lowercased() == user.lowercased() else { state = .done; return .failure(malformed: false) }
        state = .waitingForPassword(user: user)
        return .checkPassword(user: user, password: String(decoding: parts[2], as: UTF8.self))
    }

    // MARK: SCRAM-SHA-256

    static func attributes(_ text: Substring) -> [(Character, Substring)]? {
        var out: [(Character, Substring)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard part.count >= 2, let key = part.first, part[part.index(after: part.startIndex)] == "=" else { return nil }
            out.append((key, part.dropFirst(2)))
        }
        return out
    }

    mutating func scramClientFirst(_ response: [UInt8]) -> SASLStep {
        state = .done
        guard let text = String(bytes: response, encoding: .utf8) else { return .failure(malformed: true) }
        // gs2-header: "n,," or "y,," (no channel binding; "p=" would need SCRAM-SHA-256-PLUS, not offered), with an
        // optional authzid "a=…" that must name the user itself.
        let fields = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == "n" || fields[0] == "y" else { return .failure(malformed: true) }
        let gs2 = "\(fields[0]),\(fields[1]),"
        let bare = String(fields[2])
        guard let attrs = SASLServer.attributes(fields[2]), attrs.count >= 2, attrs[0].0 == "n", attrs[1].0 == "r",
              !attrs[1].1.isEmpty else { return .failure(malformed: true) }
        // RFC 5802 §5.1: "=2C" and "=3D" stand for "," and "=" in the user name; no other "=" is allowed.
        guard let user = SASLServer.unescapeName(attrs[0].1) else { return .failure(malformed: true) }
        if fields[1].hasPrefix("a=") {
            guard let authz = SASLServer.unescapeName(fields[1].dropFirst(2)), authz.lowercased() == user.lowercased() else {
                return .failure(malformed: false)
            }
        } else if !fields[1].isEmpty {
            return .failure(malformed: true)
        }
        state = .waitingForCredentials(user: user, clientFirstBare: bare, gs2Header: gs2, clientNonce: String(attrs[1].1))
        return .needCredentials(user: user)
    }

    static func unescapeName(_ s: Substring) -> String? {
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "=" {
                let rest = s[i...]
                if rest.hasPrefix("=2C") { out.append(",") } else if rest.hasPrefix("=3D") { out.append("=") } else { return nil }
                i = s.index(i, offsetBy: 3)
            } else {
                out.append(s[i])
                i = s.index(after: i)
            }
        }
        return out
    }

    mutating func scramClientFinal(_ response: [UInt8], user: String, credentials: SCRAMCredentials?, authMessagePrefix: String,
                                   gs2Header: String, nonce: String) -> SASLStep {
        state = .done
        guard let text = String(bytes: response, encoding: .utf8), let attrs = SASLServer.attributes(text[...]), attrs.count >= 3,
              attrs[0].0 == "c", attrs[1].0 == "r", let last = attrs.last, last.0 == "p" else { return .failure(malformed: true) }
        guard attrs[0].1 == Data(gs2Header.utf8).base64EncodedString(), attrs[1].1 == nonce else { return .failure(malformed: true) }
        guard let proof = Data(base64Encoded: String(last.1)), let credentials, proof.count == credentials.storedKey.count else {
            return .failure(malformed: false)
        }
        let withoutProof = text[..<text.range(of: ",p=", options: .backwards)!.lowerBound]
        let authMessage = Array((authMessagePrefix + "," + withoutProof).utf8)
        let clientSignature = Array(HMAC<SHA256>.authenticationCode(for: authMessage, using: SymmetricKey(data: credentials.storedKey)))
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        let computed = Array(SHA256.hash(data: clientKey))
        var diff: UInt8 = 0
        for (a, b) in zip(computed, credentials.storedKey) { diff |= a ^ b }
        guard diff == 0 else { return .failure(malformed: false) }
        let serverSignature = HMAC<SHA256>.authenticationCode(for: authMessage, using: SymmetricKey(data: credentials.serverKey))
        state = .scramAcknowledge(user: user)
        return .challenge(Array("v=\(Data(serverSignature).base64EncodedString())".utf8))
    }

    static func randomNonce() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 18)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        return Data(bytes).base64EncodedString()
    }
}
