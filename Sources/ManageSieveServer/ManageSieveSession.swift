import Foundation
import MailCore
import MailStore
import SASL
import ServerCore
import Sieve

/// What a ManageSieve command produced for the wire, and what the connection must do next.
struct ManageSieveOutput {
    var text = ""
    var startTLS = false
    var close = false
}

/// One ManageSieve session (RFC 5804): capabilities, STARTTLS, SASL (PLAIN, SCRAM-SHA-256), then the user's scripts
/// through the store, each checked by the Sieve module before it is stored (an error comes back with its line and
/// column), within a quota of scripts and octets.
final class ManageSieveSession: @unchecked Sendable {
    let server: ServerContext
    let isLoopback: Bool
    var isTLS: Bool
    let remoteAddress: String
    var user: (account: AccountID, name: String)?
    /// A SASL exchange waiting for the client's next string.
    var sasl: SASLServer?
    var saslAccount: AccountID?
    var failedLogins = 0
    /// The user a SCRAM exchange under way counts against (the login throttle).
    var scramUser: String?

    /// The quota: scripts per user, and octets per script.
    static let maxScripts = 64
    static let maxScriptSize = 1 << 20

    init(server: ServerContext, isTLS: Bool, isLoopback: Bool, remoteAddress: String) {
        self.server = server
        self.isTLS = isTLS
        self.isLoopback = isLoopback
        self.remoteAddress = remoteAddress
    }

    /// Passwords only over TLS, or on loopback (as for IMAP and POP3).
    var loginAllowed: Bool { isTLS || isLoopback }

    /// RFC 5804 §1.7: the capability response, which is also the greeting.
    var capabilities: String {
        var lines = [
            "\"IMPLEMENTATION\" \"Tern\"",
            "\"SIEVE\" \(ManageSieveWire.string(SieveValidator.capabilities.sorted().joined(separator: " ")))",
            "\"SASL\" \"\(loginAllowed ? "PLAIN SCRAM-SHA-256" : "")\"",
            "\"MAXREDIRECTS\" \"\(SieveRunLimits().redirects)\"",
            "\"VERSION\" \"1.0\"",
        ]
        if server.tls != nil && !isTLS && user == nil { lines.append("\"STARTTLS\"") }
        if let user { lines.append("\"OWNER\" \(ManageSieveWire.string(user.name))") }
        return lines.joined(separator: "\r\n") + "\r\n" + ManageSieveWire.response("OK", "\(server.config.hostname) Tern ManageSieve ready")
    }

    struct Failure: Error {
        var code: String?
        var text: String
        init(_ text: String) {
            self.text = text
        }
        init(_ code: String, _ text: String) {
            self.code = code
            self.text = text
        }
    }

    func handle(_ tokens: [ManageSieveToken]) async -> ManageSieveOutput {
        var out = ManageSieveOutput()
        do {
            if sasl != nil {
                try await saslResponse(tokens, &out)
            } else {
                try await dispatch(tokens, &out)
            }
        } catch let f as Failure {
            out.text += ManageSieveWire.response("NO", code: f.code, f.text)
        } catch {
            server.logger.error("ManageSieve command failed", metadata: ["error": "\(error)"])
            out.text += ManageSieveWire.response("NO", code: "TRYLATER", "Internal error, try again later")
        }
        return out
    }

    /// The command's string arguments, exactly `count` of them.
    private func strings(_ args: ArraySlice<ManageSieveToken>, _ count: Int, _ name: String) throws -> [String] {
        let texts = args.compactMap(\.text)
        guard texts.count == args.count, texts.count == count else {
            throw Failure("\(name) takes \(count) string argument\(count == 1 ? "" : "s") in UTF-8")
        }
        return texts
    }

    private func account() throws -> AccountID {
        guard let user else { throw Failure("Authenticate first") }
        return user.account
    }

    func dispatch(_ tokens: [ManageSieveToken], _ out: inout ManageSieveOutput) async throws {
        guard case .atom(let word)? = tokens.first else { throw Failure("Expected a command name") }
        let name = word.uppercased(), args = tokens.dropFirst()
        switch name {
        case "CAPABILITY":
            out.text += capabilities
        case "LOGOUT":
            out.text += ManageSieveWire.response("OK", "Bye")
            out.close = true
        case "NOOP":
            // RFC 5804 §2.11: a string argument comes back as the TAG response code.
            if let tag = args.first?.text {
                out.text += ManageSieveWire.response("OK", code: "TAG \(ManageSieveWire.string(tag))", "Done")
            } else {
                out.text += ManageSieveWire.response("OK", "Done")
            }
        case "STARTTLS":
            guard server.tls != nil, !isTLS else { throw Failure("TLS is not available now") }
            out.text += ManageSieveWire.response("OK", "Begin TLS negotiation now")
            out.startTLS = true
        case "AUTHENTICATE":
            try await authenticate(args, &out)
        case "UNAUTHENTICATE":
            // RFC 5804 §2.14.1.
            guard user != nil else { throw Failure("Not authenticated") }
            user = nil
            out.text += ManageSieveWire.response("OK", "Unauthenticated")
        case "HAVESPACE":
            let account = try account()
            let parts = Array(args)
            guard parts.count == 2, let script = parts[0].text, let size = parts[1].number else {
                throw Failure("HAVESPACE takes a script name and a size")
            }
            try await checkSpace(account, name: script, size: size)
            out.text += ManageSieveWire.response("OK", "Putting the script would succeed")
        case "PUTSCRIPT", "CHECKSCRIPT":
            let account = try account()
            let parts = try strings(args, name == "PUTSCRIPT" ? 2 : 1, name)
            let content = parts.last!
            if name == "PUTSCRIPT" {
                guard ManageSieveWire.validName(parts[0]) else { throw Failure("That is not a valid script name") }
                try await checkSpace(account, name: parts[0], size: content.utf8.count)
            }
            if let e = Self.scriptError(content) { throw Failure("line \(e.position.line), column \(e.position.column): \(e.message)") }
            if name == "PUTSCRIPT" {
                do {
                    try await server.store.putScript(account: account, name: parts[0], content: content, maxScripts: Self.maxScripts)
                } catch is ScriptLimitReached {
                    // Another session stored a new script since checkSpace counted.
                    throw Failure("QUOTA/MAXSCRIPTS", "At most \(Self.maxScripts) scripts")
                }
            }
            out.text += ManageSieveWire.response("OK", name == "PUTSCRIPT" ? "Stored" : "The script is valid")
        case "LISTSCRIPTS":
            for s in try await server.store.scripts(account: try account()) {
                out.text += ManageSieveWire.string(s.name) + (s.active ? " ACTIVE" : "") + "\r\n"
            }
            out.text += ManageSieveWire.response("OK", "Listed")
        case "SETACTIVE":
            let account = try account()
            let script = try strings(args, 1, name)[0]
            do {
                try await server.store.activateScript(account: account, name: script.isEmpty ? nil : script)
            } catch StoreError.notFound {
                throw Failure("NONEXISTENT", "There is no script of that name")
            }
            out.text += ManageSieveWire.response("OK", script.isEmpty ? "No script is active" : "Active")
        case "GETSCRIPT":
            let script = try strings(args, 1, name)[0]
            guard let text = try await server.store.script(account: try account(), name: script) else {
                throw Failure("NONEXISTENT", "There is no script of that name")
            }
            out.text += "{\(text.utf8.count)}\r\n\(text)\r\n" + ManageSieveWire.response("OK", "Got it")
        case "DELETESCRIPT":
            let account = try account()
            let script = try strings(args, 1, name)[0]
            do {
                try await server.store.deleteScript(account: account, name: script)
            } catch StoreError.notFound {
                throw Failure("NONEXISTENT", "There is no script of that name")
            } catch StoreError.invalid {
                throw Failure("ACTIVE", "The active script cannot be deleted")
            }
            out.text += ManageSieveWire.response("OK", "Deleted")
        case "RENAMESCRIPT":
            let account = try account()
            let parts = try strings(args, 2, name)
            guard ManageSieveWire.validName(parts[1]) else { throw Failure("That is not a valid script name") }
            do {
                try await server.store.renameScript(account: account, from: parts[0], to: parts[1])
            } catch StoreError.notFound {
                throw Failure("NONEXISTENT", "There is no script of that name")
            } catch StoreError.alreadyExists {
                throw Failure("ALREADYEXISTS", "A script of the new name exists")
            }
            out.text += ManageSieveWire.response("OK", "Renamed")
        default:
            throw Failure("Unknown command \(word)")
        }
    }

    /// What is wrong with a script (nil: nothing), as PUTSCRIPT and CHECKSCRIPT report it.
    static func scriptError(_ text: String) -> SieveError? {
        do throws(SieveError) {
            _ = try SieveScript.compile(text)
            return nil
        } catch {
            return error
        }
    }

    /// RFC 5804 §2.3: whether a script of `size` octets may be stored under `name`.
    func checkSpace(_ account: AccountID, name: String, size: Int) async throws {
        guard size <= Self.maxScriptSize else { throw Failure("QUOTA/MAXSIZE", "Scripts are at most \(Self.maxScriptSize) octets") }
        let scripts = try await server.store.scripts(account: account)
        if !scripts.contains(where: { $0.name == name }), scripts.count >= Self.maxScripts {
            throw Failure("QUOTA/MAXSCRIPTS", "At most \(Self.maxScripts) scripts")
        }
    }

    // MARK: SASL

    func authenticate(_ args: ArraySlice<ManageSieveToken>, _ out: inout ManageSieveOutput) async throws {
        guard user == nil else { throw Failure("Already authenticated") }
        guard loginAllowed else { throw Failure("ENCRYPT-NEEDED", "Use STARTTLS first") }
        guard let mechanism = args.first?.text.flatMap({ SASLMechanismName(rawValue: $0.uppercased()) }), mechanism != .login else {
            throw Failure("Unsupported SASL mechanism")
        }
        guard !server.loginThrottle.isBlocked(remoteAddress, now: server.clock.now) else {
            throw Failure("TRYLATER", "Too many failed logins from your address; try again later")
        }
        var initial: [UInt8]?
        if args.count > 1 {
            guard let text = args.dropFirst().first?.text, let data = Data(base64Encoded: text) else { throw Failure("Invalid base64") }
            initial = Array(data)
        }
        var exchange = SASLServer(mechanism: mechanism, fakeSaltKey: server.saslSecret)
        let step = exchange.start(initialResponse: initial)
        sasl = exchange
        try await saslStep(step, &out)
    }

    func saslResponse(_ tokens: [ManageSieveToken], _ out: inout ManageSieveOutput) async throws {
        guard tokens.count == 1, let text = tokens[0].text else {
            sasl = nil
            endScram(success: false)
            throw Failure("Expected the SASL response as a string")
        }
        guard text != "*" else {
            sasl = nil
            endScram(success: false)
            throw Failure("Authentication cancelled")
        }
        guard let data = Data(base64Encoded: text) else {
            sasl = nil
            endScram(success: false)
            throw Failure("Invalid base64")
        }
        try await saslStep(sasl!.respond(Array(data)), &out)
    }

    func saslStep(_ step: SASLStep, _ out: inout ManageSieveOutput) async throws {
        switch step {
        case .challenge(let bytes):
            // SCRAM's last message (the server's proof) goes in the OK's SASL code (RFC 5804 §2.1), not as a challenge.
            if sasl?.mechanism == .scramSHA256, bytes.starts(with: Array("v=".utf8)), case .success(let name)? = sasl?.respond([]) {
                endScram(success: true)
                try await loggedIn(name, code: "SASL \(ManageSieveWire.string(Data(bytes).base64EncodedString()))", &out)
                return
            }
            out.text += ManageSieveWire.string(Data(bytes).base64EncodedString()) + "\r\n"
        case .checkPassword(let name, let password):
            switch try await PasswordCheck.check(server, service: "ManageSieve", remoteAddress: remoteAddress, user: name, password: password) {
            case .success(let account, let address):
                saslAccount = account
                try await saslStep(sasl!.passwordChecked(true).withUser(address.canonical), &out)
            case .blocked:
                sasl = nil
                throw Failure("TRYLATER", "Too many failed logins from your address; try again later")
            case .failed:
                try await saslStep(sasl!.passwordChecked(false), &out)
            }
        case .needCredentials(let name):
            // SCRAM: the attempt counts from here (PLAIN counts its own in the password check).
            let user = (try? EmailAddress.parse(name))?.canonical ?? name
            guard server.loginThrottle.begin(remoteAddress, user: user, now: server.clock.now) == .proceed else {
                sasl = nil
                throw Failure("TRYLATER", "Too many failed logins; try again later")
            }
            scramUser = user
            var found: (AccountID, PasswordHash)?
            do {
                if let address = try? EmailAddress.parse(name) { found = try await server.store.credentials(address) }
            } catch {
                sasl = nil
                endScram(success: false)
                throw error
            }
            saslAccount = found?.0
            try await saslStep(sasl!.credentials(found.map {
                SCRAMCredentials(iterations: $0.1.iterations, salt: $0.1.salt, storedKey: $0.1.storedKey, serverKey: $0.1.serverKey)
            }), &out)
        case .success(let name):
            endScram(success: true)
            try await loggedIn(name, code: nil, &out)
        case .failure:
            endScram(success: false)
            sasl = nil
            saslAccount = nil
            failedLogins += 1
            if failedLogins >= 3 { out.close = true }
            throw Failure("AUTH", "Authentication failed")
        }
    }

    /// The connection ended: an exchange under way is over (a SCRAM attempt counts as failed, as SMTP counts it).
    func abandon() {
        sasl = nil
        endScram(success: false)
    }

    /// A SCRAM attempt the login throttle counted is over.
    private func endScram(success: Bool) {
        guard let user = scramUser else { return }
        scramUser = nil
        server.loginThrottle.finished(remoteAddress, user: user, success: success, now: server.clock.now)
    }

    private func loggedIn(_ name: String, code: String?, _ out: inout ManageSieveOutput) async throws {
        sasl = nil
        let canonical = (try? EmailAddress.parse(name))?.canonical ?? name
        var account = saslAccount
        if account == nil, let address = try? EmailAddress.parse(name) { account = try await server.store.account(address) }
        guard let account else { throw Failure("AUTH", "Authentication failed") }
        user = (account, canonical)
        out.text += ManageSieveWire.response("OK", code: code, "Logged in")
    }
}

extension SASLStep {
    /// A successful step names the canonical user (PLAIN and LOGIN give what the client typed).
    func withUser(_ user: String) -> SASLStep {
        if case .success = self { return .success(user: user) }
        return self
    }
}
