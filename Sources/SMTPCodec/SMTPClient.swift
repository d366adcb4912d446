import MailCore

/// Reads SMTP replies from a server (RFC 5321 §4.2): `250-first` ... `250 last`. Pure: feed it lines, it returns a
/// whole reply when the last line arrives.
public struct SMTPReplyParser: Sendable {
    /// RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; servers send longer ones, so allow more but bound it.
    public static let maxLineLength = 4096
    /// A reply longer than this many lines (a hostile or broken server) is an error.
    public static let maxLines = 256

    public enum Failure: Error, Equatable, Sendable {
        case malformed(String)
        case tooLong
    }

    private var code: Int?
    private var lines: [String] = []

    public init() {}

    /// One line without its CRLF. Returns the reply when `line` was its last.
    public mutating func feed(_ line: [UInt8]) throws(Failure) -> SMTPReply? {
        guard line.count <= Self.maxLineLength else { throw .tooLong }
        guard line.count >= 3, line[0...2].allSatisfy({ (48...57).contains($0) }),
              let value = Int(String(decoding: line[0...2], as: UTF8.self)), (200...599).contains(value) else {
            throw .malformed(String(decoding: line.prefix(40), as: UTF8.self))
        }
        if let code, code != value { throw .malformed("reply code changed within a reply") }
        code = value
        let separator = line.count > 3 ? line[3] : 32
        guard separator == 32 || separator == UInt8(ascii: "-") else { throw .malformed("no separator after the code") }
        lines.append(line.count > 4 ? String(decoding: line[4...], as: UTF8.self) : "")
        guard lines.count <= Self.maxLines else { throw .tooLong }
        guard separator == 32 else { return nil }
        defer { self.code = nil; lines = [] }
        // RFC 2034: an enhanced status code may start each line's text.
        var enhanced: EnhancedStatusCode?
        var texts = lines
        if let first = texts.first, let space = first.firstIndex(of: " ").map({ first[..<$0] }) ?? Optional(first[...]),
           let e = EnhancedStatusCode(String(space)), e.klass == value / 100 {
            enhanced = e
            texts = texts.map { t in
                t.hasPrefix(e.description) ? String(t.dropFirst(e.description.count).drop(while: { $0 == " " })) : t
            }
        }
        return SMTPReply(value, enhanced, texts, isClientFault: false)
    }
}

/// What a server offers in its EHLO reply (RFC 5321 §4.1.1.1 and the extensions' RFCs).
public struct EHLOCapabilities: Sendable, Equatable {
    public var startTLS = false
    public var pipelining = false
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var enhancedStatusCodes = false
    public var chunking = false
    public var dsn = false
    /// SIZE's limit; 0 when SIZE was announced without one; nil when not announced.
    public var size: Int?
    public var auth: [String] = []

    public init() {}

    /// From the lines after the greeting line of a 250 EHLO reply.
    public init(_ reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(separator: " ").map { $0.uppercased() }
            guard let keyword = words.first else { continue }
            switch keyword {
            case "STARTTLS": startTLS = true
            case "PIPELINING": pipelining = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "CHUNKING": chunking = true
            case "DSN": dsn = true
            case "SIZE": size = words.count > 1 ? Int(words[1]) ?? 0 : 0
            case "AUTH": auth = Array(words.dropFirst())
            default: break
            }
        }
    }
}

/// One outgoing SMTP transaction as a state machine (RFC 5321 §3.3, PIPELINING of RFC 2920): it says which commands
/// to send and what each reply means, and does no I/O. The courier that owns the connection performs the actions.
///
/// Flow: greeting → EHLO (→ HELO if EHLO is refused) → STARTTLS and EHLO again when offered and not yet done →
/// MAIL FROM → RCPT TO for each recipient → DATA → content → final reply. With PIPELINING, MAIL and all RCPTs go in one
/// write, and DATA after them when at least one recipient may be accepted (RFC 2920 §3.1).
public struct SMTPClientTransaction: Sendable {
    public struct Message: Sendable {
        public var mailFrom: String
        public var recipients: [String]
        public var size: Int
        /// The content has octets above 127 (8BITMIME needed, RFC 6152).
        public var eightBit: Bool
        /// The envelope or headers need SMTPUTF8 (RFC 6531).
        public var needsSMTPUTF8: Bool
        /// The sender's DSN request (RFC 3461), passed on when the server offers DSN.
        public var dsn: DSNRequest?
        public init(mailFrom: String, recipients: [String], size: Int, eightBit: Bool, needsSMTPUTF8: Bool, dsn: DSNRequest? = nil) {
            self.dsn = dsn
            self.mailFrom = mailFrom
            self.recipients = recipients
            self.size = size
            self.eightBit = eightBit
            self.needsSMTPUTF8 = needsSMTPUTF8
        }
    }

    /// RET and ENVID of MAIL, NOTIFY and ORCPT of each RCPT (in the order of `recipients`), as the client gave them.
    public struct DSNRequest: Sendable {
        public struct Recipient: Sendable {
            /// NEVER, or some of SUCCESS, FAILURE, DELAY; nil: none given.
            public var notify: [String]?
            /// `addr-type;address`, decoded.
            public var originalRecipient: String?
            public init(notify: [String]?, originalRecipient: String?) {
                self.notify = notify
                self.originalRecipient = originalRecipient
            }
        }
        public var envelopeID: String?
        /// FULL or HDRS.
        public var ret: String?
        public var recipients: [Recipient]
        public init(envelopeID: String?, ret: String?, recipients: [Recipient]) {
            self.envelopeID = envelopeID
            self.ret = ret
            self.recipients = recipients
        }
    }

    public enum Action: Sendable, Equatable {
        /// Write these command lines (each ends in CRLF), then wait for as many replies.
        case send([String])
        /// Upgrade the connection to TLS, then call `tlsEstablished()`.
        case startTLS
        /// Write the message content (dot-stuffed, ending in CRLF . CRLF), then wait for one reply.
        case sendContent
        /// The transaction is over: each recipient's outcome, then QUIT may be sent (or the connection reused).
        case finished([RecipientResult])
        /// The whole attempt failed before any recipient had an answer: every recipient gets `reply`.
        case failed(SMTPReply, permanent: Bool)
    }

    public struct RecipientResult: Sendable, Equatable {
        public var recipient: String
        public var reply: SMTPReply
        public var delivered: Bool { reply.code.isPositive }
        public var permanent: Bool { reply.code.isPermanent }
    }

    enum State: Sendable {
        case greeting, ehlo, helo, startTLS, ehloAfterTLS, mail, rcpt(Int), data, content, emptyContent, reset, done
    }

    public private(set) var message: Message
    public let heloName: String
    /// Use STARTTLS when the server offers it (opportunistic TLS, RFC 3207).
    public let useTLS: Bool
    public private(set) var capabilities = EHLOCapabilities()
    public private(set) var tlsActive = false
    var state: State = .greeting
    var rcptReplies: [SMTPReply] = []
    var mailReply: SMTPReply?

    /// The session is open with no transaction in progress: another message may follow (`nextMessage`).
    public private(set) var reusable = false
    /// The server may still hold a transaction (MAIL accepted but no content): RSET before the next one.
    var needsReset = false

    public init(message: Message, heloName: String, useTLS: Bool = true) {
        self.message = message
        self.heloName = heloName
        self.useTLS = useTLS
    }

    /// The connection was upgraded: say EHLO again (RFC 3207 §4.2: the server forgets what it knew).
    public mutating func tlsEstablished() -> Action {
        tlsActive = true
        state = .ehloAfterTLS
        return .send(["EHLO \(heloName)"])
    }

    /// Starts another message on the same connection (after `.finished`), RSET first when the last transaction
    /// may still be open on the server.
    public mutating func nextMessage(_ next: Message) -> Action {
        message = next
        rcptReplies = []
        mailReply = nil
        reusable = false
        if needsReset {
            state = .reset
            return .send(["RSET"])
        }
        return beginTransaction()
    }

    /// Feeds one server reply; returns the next action, or nil while more replies of a pipelined group are due.
    public mutating func receive(_ reply: SMTPReply) -> Action? {
        switch state {
        case .greeting:
            guard reply.code.rawValue == 220 else { return fail(reply) }
            state = .ehlo
            return .send(["EHLO \(heloName)"])
        case .ehlo, .ehloAfterTLS:
            if reply.code.rawValue != 250 {
                if case .ehlo = state, reply.code.isPermanent {
                    state = .helo
                    return .send(["HELO \(heloName)"])
                }
                return fail(reply)
            }
            capabilities = EHLOCapabilities(reply)
            if case .ehlo = state, useTLS, capabilities.startTLS, !tlsActive {
                state = .startTLS
                return .send(["STARTTLS"])
            }
            return beginTransaction()
        case .helo:
            guard reply.code.rawValue == 250 else { return fail(reply) }
            capabilities = EHLOCapabilities()
            return beginTransaction()
        case .startTLS:
            // A refused STARTTLS: carry on in plain text (opportunistic TLS), as Postfix's "may" level does.
            guard reply.code.rawValue == 220 else { return beginTransaction() }
            return .startTLS
        case .mail:
            mailReply = reply
            if capabilities.pipelining {
                state = .rcpt(0)
                return nil
            }
            guard reply.code.isPositive else { return fail(reply, inTransaction: true) }
            state = .rcpt(0)
            return .send([rcptCommand(0)])
        case .rcpt(let i):
            rcptReplies.append(reply)
            let next = i + 1
            if capabilities.pipelining {
                if next < message.recipients.count { state = .rcpt(next); return nil }
                // The pipelined group: MAIL, every RCPT, and DATA.
                state = .data
                return nil
            }
            if next < message.recipients.count {
                state = .rcpt(next)
                return .send([rcptCommand(next)])
            }
            guard rcptReplies.contains(where: { $0.code.isPositive }) else { return finish(contentReply: nil) }
            state = .data
            return .send(["DATA"])
        case .data:
            if let mailReply, !mailReply.code.isPositive { return fail(mailReply, inTransaction: true) }
            guard rcptReplies.contains(where: { $0.code.isPositive }) else {
                // RFC 2920 §3.1: DATA went out pipelined though no recipient was accepted. A server that still says
                // 354 waits for content: end it at once with the lone dot, and expect it to refuse the empty message.
                if reply.code.rawValue == 354 {
                    state = .emptyContent
                    return .send(["."])
                }
                return finish(contentReply: nil)
            }
            guard reply.code.rawValue == 354 else { return finish(contentReply: reply) }
            state = .content
            return .sendContent
        case .content:
            return finish(contentReply: reply)
        case .emptyContent:
            return finish(contentReply: nil)
        case .reset:
            guard reply.code.rawValue == 250 else { return fail(reply) }
            needsReset = false
            return beginTransaction()
        case .done:
            return nil
        }
    }

    mutating func beginTransaction() -> Action {
        if message.needsSMTPUTF8 && !capabilities.smtpUTF8 {
            // RFC 6531 §3.2: without SMTPUTF8 the message cannot be sent as it is.
            return fail(SMTPReply(550, "5.6.7", "The remote server does not support SMTPUTF8, which this message needs"), permanent: true,
                        inTransaction: true)
        }
        if let limit = capabilities.size, limit > 0, message.size > limit {
            return fail(SMTPReply(552, "5.3.4", "Message too large for the remote server (its limit: \(limit) octets)"), permanent: true,
                        inTransaction: true)
        }
        // A control character in an envelope address would end the command line early (a CR LF in a quoted local part
        // is a command of its own): such an address is never sent.
        if ([message.mailFrom] + message.recipients).contains(where: { $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) {
            return fail(SMTPReply(553, "5.1.3", "Envelope address with a control character, not sent"), permanent: true, inTransaction: true)
        }
        var params = ""
        if capabilities.size != nil { params += " SIZE=\(message.size)" }
        if message.eightBit && capabilities.eightBitMIME { params += " BODY=8BITMIME" }
        if message.needsSMTPUTF8 { params += " SMTPUTF8" }
        if capabilities.dsn, let dsn = message.dsn {
            if let ret = dsn.ret { params += " RET=\(ret)" }
            if let id = dsn.envelopeID { params += " ENVID=\(XText.encode(id))" }
        }
        let mail = "MAIL FROM:<\(message.mailFrom)>\(params)"
        state = .mail
        if capabilities.pipelining {
            return .send([mail] + message.recipients.indices.map(rcptCommand) + ["DATA"])
        }
        return .send([mail])
    }

    /// RCPT TO for the i-th recipient, with its NOTIFY and ORCPT when the server offers DSN (RFC 3461 §4).
    func rcptCommand(_ i: Int) -> String {
        var line = "RCPT TO:<\(message.recipients[i])>"
        guard capabilities.dsn, let dsn = message.dsn, i < dsn.recipients.count else { return line }
        let r = dsn.recipients[i]
        if let notify = r.notify, !notify.isEmpty { line += " NOTIFY=\(notify.joined(separator: ","))" }
        if let o = r.originalRecipient, let semi = o.firstIndex(of: ";") {
            line += " ORCPT=\(o[..<semi]);\(XText.encode(String(o[o.index(after: semi)...])))"
        }
        return line
    }

    /// `inTransaction`: the failure concerns this message only; unless the server is closing (421) the session may carry
    /// another one after RSET.
    mutating func fail(_ reply: SMTPReply, permanent: Bool? = nil, inTransaction: Bool = false) -> Action {
        state = .done
        reusable = inTransaction && reply.code.rawValue != 421
        needsReset = true
        return .failed(reply, permanent: permanent ?? reply.code.isPermanent)
    }

    /// Each recipient's result: its RCPT reply when that refused it, else the reply to the content (or to DATA).
    mutating func finish(contentReply: SMTPReply?) -> Action {
        state = .done
        // With a reply to the content the transaction is over on both sides; without one (every RCPT refused) MAIL
        // may still be open there.
        reusable = true
        needsReset = contentReply == nil
        var results: [RecipientResult] = []
        for (i, r) in message.recipients.enumerated() {
            let rcpt = i < rcptReplies.count ? rcptReplies[i] : SMTPReply(451, "4.4.0", "No reply to RCPT", isClientFault: false)
            if !rcpt.code.isPositive {
                results.append(RecipientResult(recipient: r, reply: rcpt))
            } else if let contentReply {
                results.append(RecipientResult(recipient: r, reply: contentReply))
            } else {
                results.append(RecipientResult(recipient: r, reply: SMTPReply(451, "4.4.0", "The message was not sent", isClientFault: false)))
            }
        }
        return .finished(results)
    }
}
