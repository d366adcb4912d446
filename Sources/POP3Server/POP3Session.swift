import ServerCore
import Foundation
import MailCore
import MailStore
import POP3Codec
import Synchronization

/// What a POP3 command produced for the wire, and what the connection must do next.
struct POP3Output {
    var bytes: [UInt8] = []
    var startTLS = false
    var close = false
    /// The next line is the client's SASL response (AUTH PLAIN without an initial response).
    var saslContinuation = false
    var stream: ResponseStream?

    mutating func ok(_ text: String) { line("+OK \(text)") }
    mutating func err(_ text: String) { line("-ERR \(text)") }
    mutating func line(_ s: String) { bytes.append(contentsOf: s.utf8); bytes.append(13); bytes.append(10) }

    /// See `ResponseStream.sendIfLarge` (a 10 MB RETR holds about one chunk in memory beside the message).
    mutating func flushIfLarge() async throws {
        try await stream?.sendIfLarge(&bytes)
    }
}

/// One POP3 session (RFC 1939): AUTHORIZATION, then TRANSACTION on a snapshot of the INBOX taken at login, then
/// UPDATE at QUIT, the only moment deletions take effect. A dropped connection deletes nothing.
final class POP3Session: @unchecked Sendable {
    enum State {
        case authorization(user: String?)
        case transaction(Maildrop)
        case update
    }

    struct Maildrop {
        var account: AccountID
        var mailbox: MailboxID
        var uidValidity: UIDValidity
        var messages: [StoredMessage]
        var deleted: Set<Int> = []
    }

    let server: ServerContext
    let isLoopback: Bool
    var isTLS: Bool
    let remoteAddress: String
    var state: State = .authorization(user: nil)
    var stream: ResponseStream?
    var failedLogins = 0
    /// Contents read ahead: clients RETR one message after another, so the next ones come in one store round trip.
    var readAhead: [MessageID: [UInt8]] = [:]
    static let readAheadMessages = 32
    static let readAheadBytes = 4 << 20

    init(server: ServerContext, isTLS: Bool, isLoopback: Bool, remoteAddress: String) {
        self.server = server
        self.isTLS = isTLS
        self.isLoopback = isLoopback
        self.remoteAddress = remoteAddress
    }

    /// Plaintext passwords only over TLS, or on loopback (RFC 2595 §2.1's advice; as for IMAP).
    var loginAllowed: Bool { isTLS || isLoopback }

    var greeting: String { "+OK \(server.config.hostname) Tern POP3 ready" }

    var capabilities: [String] {
        var caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "IMPLEMENTATION Tern"]
        if case .authorization = state {
            if loginAllowed { caps += ["USER", "SASL PLAIN"] }
            if server.tls != nil && !isTLS { caps.append("STLS") }
        }
        return caps
    }

    /// The session's account while in TRANSACTION, so the connection can release the lock when it ends.
    var lockedAccount: AccountID? {
        if case .transaction(let drop) = state { return drop.account }
        return nil
    }

    func handle(_ command: POP3Command) async -> POP3Output {
        var out = POP3Output()
        out.stream = stream
        do {
            try await dispatch(command, &out)
        } catch let error as POP3Failure {
            out.err(error.text)
        } catch {
            server.logger.error("POP3 command failed", metadata: ["cmd": "\(command.name)", "error": "\(error)"])
            out.err("[SYS/TEMP] Internal error, try again later")
        }
        return out
    }

    struct POP3Failure: Error {
        var text: String
        init(_ text: String) { self.text = text }
    }

    /// Commands answered from memory, without the store (the connection runs them on its event loop, with no task
    /// hop): false when the command needs the async path.
    func answerAtOnce(_ command: POP3Command, _ out: inout POP3Output) throws -> Bool {
        switch (command, state) {
        case (.retr(let n), .transaction(let drop)):
            let i = try index(n, drop)
            guard let content = readAhead.removeValue(forKey: drop.messages[i].messageID) else { return false }
            out.ok("\(drop.messages[i].size) octets")
            POP3Encoding.appendMultiline(content[...], to: &out.bytes)
        case (.capa, _):
            out.ok("Capability list follows")
            for c in capabilities { out.line(c) }
            out.line(".")
        case (.noop, .transaction):
            out.ok("")
        case (.stat, .transaction(let drop)):
            let live = drop.messages.indices.filter { !drop.deleted.contains($0) }
            out.ok("\(live.count) \(live.reduce(0) { $0 + drop.messages[$1].size })")
        case (.list(nil), .transaction(let drop)):
            out.ok("Scan list follows")
            for (i, m) in drop.messages.enumerated() where !drop.deleted.contains(i) { out.line("\(i + 1) \(m.size)") }
            out.line(".")
        case (.list(let n?), .transaction(let drop)):
            let i = try index(n, drop)
            out.ok("\(n) \(drop.messages[i].size)")
        case (.uidl(nil), .transaction(let drop)):
            out.ok("Unique-id list follows")
            for (i, m) in drop.messages.enumerated() where !drop.deleted.contains(i) {
                out.line("\(i + 1) \(POP3Encoding.uniqueID(uid: m.uid.rawValue, uidValidity: drop.uidValidity.rawValue))")
            }
            out.line(".")
        case (.uidl(let n?), .transaction(let drop)):
            let i = try index(n, drop)
            out.ok("\(n) \(POP3Encoding.uniqueID(uid: drop.messages[i].uid.rawValue, uidValidity: drop.uidValidity.rawValue))")
        case (.dele(let n), .transaction(var drop)):
            let i = try index(n, drop)
            drop.deleted.insert(i)
            state = .transaction(drop)
            out.ok("Message \(n) deleted")
        case (.rset, .transaction(var drop)):
            drop.deleted.removeAll()
            state = .transaction(drop)
            out.ok("Maildrop has \(drop.messages.count) messages")
        default:
            return false
        }
        return true
    }

    func dispatch(_ command: POP3Command, _ out: inout POP3Output) async throws {
        if try answerAtOnce(command, &out) { return }
        switch (command, state) {
        case (.quit, .transaction(let drop)):
            try await quit(drop, &out)
        case (.quit, _):
            out.ok("\(server.config.hostname) Tern POP3 signing off")
            out.close = true
        case (.stls, .authorization):
            guard server.tls != nil else { throw POP3Failure("TLS is not available") }
            guard !isTLS else { throw POP3Failure("TLS is already active") }
            out.ok("Begin TLS negotiation")
            out.startTLS = true
        case (.user(let name), .authorization):
            guard loginAllowed else { throw POP3Failure("[AUTH] Plaintext login is disabled until STLS") }
            state = .authorization(user: name)
            out.ok("Send your password")
        case (.pass(let password), .authorization(let user)):
            guard let user else { throw POP3Failure("USER first") }
            state = .authorization(user: nil)
            try await login(user: user, password: password, &out)
        case (.auth(nil, _), .authorization):
            out.ok("Mechanisms follow")
            if loginAllowed { out.line("PLAIN") }
            out.line(".")
        case (.auth(let mechanism?, let initial), .authorization):
            guard mechanism == "PLAIN" else { throw POP3Failure("Unsupported mechanism \(mechanism)") }
            guard loginAllowed else { throw POP3Failure("[AUTH] Authentication is disabled until STLS") }
            if let initial {
                try await saslPlain(initial, &out)
            } else {
                out.line("+ ")
                out.saslContinuation = true
            }
        case (.retr(let n), .transaction(let drop)):
            try await retrieve(try index(n, drop), drop, &out)
        case (.top(let n, let lines), .transaction(let drop)):
            let i = try index(n, drop)
            guard drop.messages[i].size > ContentPieces.streamAbove else {
                let top = POP3Encoding.top(try await load(i, drop)[...], lines: lines)
                out.ok("Top of message follows")
                return POP3Encoding.appendMultiline(top, to: &out.bytes)
            }
            try await streamTop(i, lines: lines, drop, &out)
        case (_, .authorization):
            throw POP3Failure("Log in first")
        case (_, .transaction):
            throw POP3Failure("Not allowed now")
        case (_, .update):
            throw POP3Failure("Session is ending")
        }
    }

    /// RETR: the message, dot-stuffed a chunk at a time, so that the wire copy of a large message never exists whole
    /// beside it.
    func retrieve(_ i: Int, _ drop: Maildrop, _ out: inout POP3Output) async throws {
        if drop.messages[i].size > ContentPieces.streamAbove {
            let reader = try await open(i, drop)
            out.ok("\(drop.messages[i].size) octets")
            return await stream(reader, "RETR", &out)
        }
        let content = try await load(i, drop)
        out.ok("\(drop.messages[i].size) octets")
        var stuffer = POP3Encoding.DotStuffer()
        var offset = 0
        while offset < content.count {
            let end = min(offset + ResponseStream.chunk, content.count)
            stuffer.append(content[offset..<end], to: &out.bytes)
            try await out.flushIfLarge()
            offset = end
        }
        stuffer.finish(&out.bytes)
    }

    /// A message number that exists and is not marked deleted, as an index.
    func index(_ n: Int, _ drop: Maildrop) throws -> Int {
        guard n >= 1, n <= drop.messages.count else { throw POP3Failure("No such message") }
        guard !drop.deleted.contains(n - 1) else { throw POP3Failure("Message \(n) is deleted") }
        return n - 1
    }

    /// TOP of a large message: sent as RETR sends, up to where the cut falls (found in the same pass, each octet
    /// looked at once).
    func streamTop(_ i: Int, lines: Int, _ drop: Maildrop, _ out: inout POP3Output) async throws {
        let reader = try await open(i, drop)
        out.ok("Top of message follows")
        await stream(reader, "TOP", &out, cut: POP3Encoding.TopCut(lines: lines))
    }

    /// A large message dot-stuffed a piece at a time as it is read, never whole: all of it, or up to `cut`.
    private func stream(_ reader: any ContentReader, _ command: String, _ out: inout POP3Output, cut: POP3Encoding.TopCut? = nil) async {
        var cut = cut
        var stuffer = POP3Encoding.DotStuffer()
        var at = 0
        do {
            while at < reader.size {
                let piece = try await reader.read(at..<min(at + ContentPieces.size, reader.size))
                guard !piece.isEmpty else { throw StoreError.notFound("content ends at \(at) of \(reader.size)") }
                if let end = cut?.feed(piece[...]) {
                    stuffer.append(piece[..<(end - at)], to: &out.bytes)
                    break
                }
                stuffer.append(piece[...], to: &out.bytes)
                try await out.flushIfLarge()
                at += piece.count
            }
        } catch {
            // Part of the message is on the wire: nothing can follow it but the end of the connection.
            server.logger.warning("POP3 \(command) broken off", metadata: ["error": "\(error)"])
            out.close = true
            return
        }
        stuffer.finish(&out.bytes)
    }

    func open(_ i: Int, _ drop: Maildrop) async throws -> any ContentReader {
        do {
            return try await server.store.openContent(of: drop.messages[i].messageID)
        } catch StoreError.notFound {
            throw POP3Failure("Message was removed by another session")
        }
    }

    /// A message's content, with the messages after it read ahead in the same store round trip.
    func load(_ index: Int, _ drop: Maildrop) async throws -> [UInt8] {
        let id = drop.messages[index].messageID
        if let content = readAhead.removeValue(forKey: id) { return content }
        var ids: [MessageID] = [id]
        var bytes = drop.messages[index].size
        var next = index + 1
        while next < drop.messages.count && ids.count < Self.readAheadMessages {
            let m = drop.messages[next]
            next += 1
            guard !drop.deleted.contains(next - 1), m.size <= ContentPieces.streamAbove else { continue }
            bytes += m.size
            if bytes > Self.readAheadBytes { break }
            ids.append(m.messageID)
        }
        var loaded = try await server.store.contents(of: ids)
        guard let content = loaded.removeValue(forKey: id) else {
            throw POP3Failure("Message was removed by another session")
        }
        readAhead = loaded
        return content
    }

    // MARK: authentication

    func saslPlain(_ base64: String, _ out: inout POP3Output) async throws {
        guard base64 != "*" else { throw POP3Failure("Authentication cancelled") }
        // RFC 4616: [authzid] NUL authcid NUL passwd; "=" is an empty initial response (RFC 5034 §4).
        guard let data = Data(base64Encoded: base64 == "=" ? "" : base64) else { throw POP3Failure("Invalid base64") }
        let parts = Array(data).split(separator: 0, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw POP3Failure("[AUTH] Invalid PLAIN response") }
        let authz = String(decoding: parts[0], as: UTF8.self), user = String(decoding: parts[1], as: UTF8.self)
        guard authz.isEmpty || authz.lowercased() == user.lowercased() else { throw POP3Failure("[AUTH] Cannot act as another user") }
        try await login(user: user, password: String(decoding: parts[2], as: UTF8.self), &out)
    }

    func login(user: String, password: String, _ out: inout POP3Output) async throws {
        let account: AccountID
        switch try await PasswordCheck.check(server, service: "POP3", remoteAddress: remoteAddress, user: user, password: password) {
        case .blocked:
            throw POP3Failure("[AUTH] Too many failed logins from your address; try again later")
        case .failed:
            // Each failure has cost the client a second; three end the session.
            failedLogins += 1
            if failedLogins >= 3 { out.close = true }
            throw POP3Failure("[AUTH] Invalid credentials")
        case .success(let id, _):
            account = id
        }
        guard let (inbox, current) = try await server.store.mailboxState(account: account, name: "INBOX") else {
            throw POP3Failure("[SYS/PERM] The account has no INBOX")
        }
        guard server.pop3Locks.acquire(account) else {
            throw POP3Failure("[IN-USE] Another POP3 session is using this maildrop")
        }
        do {
            let snapshot = try await server.mailboxes.snapshot(inbox, current: current)
            state = .transaction(Maildrop(account: account, mailbox: inbox, uidValidity: snapshot.uidValidity, messages: snapshot.messages))
            out.ok("Logged in, \(snapshot.messages.count) messages")
        } catch {
            server.pop3Locks.release(account)
            throw POP3Failure("[SYS/TEMP] Cannot open the maildrop, try again later")
        }
    }

    // MARK: update

    func quit(_ drop: Maildrop, _ out: inout POP3Output) async throws {
        state = .update
        out.close = true
        defer { server.pop3Locks.release(drop.account) }
        let uids = drop.deleted.sorted().map { drop.messages[$0].uid }
        do {
            _ = try await server.store.expunge(mailbox: drop.mailbox, uids: uids)
        } catch {
            server.logger.error("POP3 update failed", metadata: ["error": "\(error)"])
            out.err("[SYS/TEMP] Deleted messages were not removed, try again later")
            return
        }
        out.ok("\(server.config.hostname) Tern POP3 signing off (\(uids.count) messages deleted)")
    }
}
