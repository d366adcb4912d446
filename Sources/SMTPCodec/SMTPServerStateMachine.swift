import MailCore

/// One mail transaction: the envelope built by MAIL and RCPT (RFC 5321 §3.3).
public struct SMTPTransaction: Sendable, Hashable {
    public var reversePath: ReversePath
    public var parameters: MailParameters
    public var recipients: [AcceptedRecipient] = []

    public init(reversePath: ReversePath, parameters: MailParameters) {
        self.reversePath = reversePath
        self.parameters = parameters
    }
}

/// A recipient the server accepted, with what the policy layer resolved it to.
public struct AcceptedRecipient: Sendable, Hashable {
    public var forwardPath: ForwardPath
    public var parameters: RecipientParameters
    /// The address as the client gave it (for `for <…>` in Received and for DSN ORCPT).
    public var address: EmailAddress
    public init(forwardPath: ForwardPath, parameters: RecipientParameters, address: EmailAddress) {
        self.forwardPath = forwardPath
        self.parameters = parameters
        self.address = address
    }
}

/// The server side of an SMTP session as a state machine (RFC 5321 §4.1.4 command order).
///
/// It answers "is this command legal now?" and returns what the session must do; it performs no I/O.
/// Policy questions (is this recipient ours?) go out as actions and come back through the
/// `recipientAccepted` / `recipientRejected` methods; the session does the storing.
public struct SMTPServerStateMachine: Sendable {
    public struct Configuration: Sendable {
        public var hostname: String
        /// SIZE (RFC 1870), in octets.
        public var maxMessageSize: Int
        public var maxRecipients: Int
        /// Client errors (5xx caused by the client) after which the session ends with 421.
        public var maxErrors: Int
        /// A TLS certificate is available for STARTTLS.
        public var startTLSAvailable: Bool
        /// SASL mechanisms offered (empty: no AUTH).
        public var authMechanisms: [String]
        /// AUTH only over TLS (offered and accepted after STARTTLS); off for loopback clients.
        public var authRequiresTLS: Bool
        /// The submission service (RFC 6409): MAIL only after AUTH.
        public var submission: Bool
        /// Commands that move nothing forward (NOOP, RSET, VRFY, HELP, EHLO, HELO) a session may send before each one
        /// more counts as an error, as Postfix's smtpd_junk_command_limit: a client cannot hold a connection for ever
        /// with them. The count starts again after each message delivered.
        public var junkCommandLimit = 100

        public init(hostname: String, maxMessageSize: Int = 50 * 1024 * 1024, maxRecipients: Int = Limits.defaultMaxRecipients,
                    maxErrors: Int = 10, startTLSAvailable: Bool = false, authMechanisms: [String] = [], authRequiresTLS: Bool = true,
                    submission: Bool = false) {
            self.authRequiresTLS = authRequiresTLS
            self.submission = submission
            self.hostname = hostname
            self.maxMessageSize = maxMessageSize
            self.maxRecipients = maxRecipients
            self.maxErrors = maxErrors
            self.startTLSAvailable = startTLSAvailable
            self.authMechanisms = authMechanisms
        }
    }

    public enum State: Sendable, Hashable {
        /// Before EHLO/HELO.
        case connected
        /// After EHLO/HELO, no transaction.
        case ready
        /// MAIL accepted; RCPTs being collected.
        case transaction(SMTPTransaction)
        /// A RCPT is being checked by the policy layer.
        case checkingRecipient(SMTPTransaction, AcceptedRecipient)
        /// 354 sent; the message content is arriving.
        case data(SMTPTransaction)
        /// Between BDAT chunks; `failed` holds the reply owed at LAST when the transaction cannot succeed.
        case bdat(SMTPTransaction, received: Int, failed: SMTPReply?)
        /// The message is being delivered; the session owes the final reply.
        case delivering(SMTPTransaction)
        /// QUIT or a fatal error: nothing more is read.
        case closed
    }

    public enum Action: Sendable, Equatable {
        case reply(SMTPReply)
        /// Send the reply, then close the connection.
        case replyAndClose(SMTPReply)
        /// Send 220 and start TLS; plaintext pipelined after STARTTLS must be discarded.
        case startTLS(SMTPReply)
        /// Ask the policy layer whether `recipient` may receive mail in `transaction`.
        case checkRecipient(AcceptedRecipient, SMTPTransaction)
        /// Send 354 and switch the framer to DATA mode.
        case startData(SMTPReply)
        /// Switch the framer to read a BDAT chunk of this many octets; `accept` is false when its content
        /// is to be discarded (the reply is owed when the chunk ends).
        case readBDATChunk(size: Int, last: Bool, accept: Bool)
        /// Start the SASL exchange (the session layer runs it).
        case authenticate(mechanism: String, initialResponse: String?)
    }

    public private(set) var state: State = .connected
    public private(set) var heloName: String?
    public private(set) var isExtended = false
    public private(set) var isTLS: Bool
    public private(set) var errorCount = 0
    public var authenticatedAs: String?
    public var configuration: Configuration

    public init(configuration: Configuration, isTLS: Bool = false) {
        self.configuration = configuration
        self.isTLS = isTLS
    }

    /// The 220 greeting (RFC 5321 §4.2).
    public var greeting: SMTPReply {
        SMTPReply(220, nil, ["\(configuration.hostname) ESMTP Tern"])
    }

    /// The EHLO keywords offered now.
    public var extensions: [String] {
        var ext = ["PIPELINING", "SIZE \(configuration.maxMessageSize)", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                   "CHUNKING", "DSN"]
        if configuration.startTLSAvailable && !isTLS { ext.append("STARTTLS") }
        if !configuration.authMechanisms.isEmpty && authenticatedAs == nil && (isTLS || !configuration.authRequiresTLS) {
            ext.append("AUTH " + configuration.authMechanisms.joined(separator: " "))
        }
        ext.append("HELP")
        return ext
    }

    /// A line the framer could not accept because it was too long.
    public mutating func lineTooLong() -> Action {
        clientError(SMTPReply(500, "5.5.2", "Line too long (RFC 5321 section 4.5.3.1.4)"))
    }

    /// A syntax error from the command parser.
    public mutating func syntaxError(_ reply: SMTPReply) -> Action {
        clientError(reply)
    }

    private var junkCount = 0

    /// The reply to a command that moves nothing forward: an error once the session has sent too many of them.
    private mutating func junk(_ reply: SMTPReply) -> Action {
        junkCount += 1
        return junkCount > configuration.junkCommandLimit ? clientError(reply) : .reply(reply)
    }

    private mutating func clientError(_ reply: SMTPReply) -> Action {
        errorCount += 1
        if errorCount >= configuration.maxErrors {
            state = .closed
            return .replyAndClose(SMTPReply(421, "4.7.0", "\(configuration.hostname) Too many errors, closing connection"))
        }
        return .reply(reply)
    }

    public mutating func receive(_ command: SMTPCommand) -> Action {
        switch (state, command) {
        case (.closed, _), (.checkingRecipient, _), (.data, _), (.delivering, _):
            // The session never feeds commands in these states; treat a violation as fatal.
            state = .closed
            return .replyAndClose(SMTPReply(421, "4.3.0", "Internal state error", isClientFault: false))

        case (_, .quit):
            state = .closed
            return .replyAndClose(SMTPReply(221, "2.0.0", "\(configuration.hostname) closing connection"))

        case (.bdat(let txn, let received, let failed), .bdat(let size, let last)):
            return bdat(txn, received: received, failed: failed, size: size, last: last)
        case (.bdat, .rset):
            state = .ready
            return junk(SMTPReply(250, "2.0.0", "Reset"))
        case (.bdat, .noop):
            return junk(SMTPReply(250, "2.0.0", "OK"))
        case (.bdat, _):
            // RFC 3030 §2: after a BDAT without LAST only BDAT, RSET, NOOP or QUIT may follow.
            state = .ready
            return clientError(SMTPReply(503, "5.5.1", "Only BDAT, RSET, NOOP or QUIT may follow a BDAT chunk; transaction aborted"))

        case (_, .ehlo(let name)):
            heloName = name
            isExtended = true
            state = .ready
            let lines = ["\(configuration.hostname) greets \(name)"] + extensions
            return junk(SMTPReply(250, nil, lines))
        case (_, .helo(let name)):
            heloName = name
            isExtended = false
            state = .ready
            return junk(SMTPReply(250, nil, ["\(configuration.hostname)"]))

        case (_, .noop):
            return junk(SMTPReply(250, "2.0.0", "OK"))
        case (_, .rset):
            if state != .connected { state = .ready }
            return junk(SMTPReply(250, "2.0.0", "Reset"))
        case (_, .vrfy):
            // RFC 5321 §3.5.3: 252 when the server will not verify; Tern never discloses accounts this way.
            return junk(SMTPReply(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery"))
        case (_, .expn):
            return clientError(SMTPReply(502, "5.5.1", "EXPN is not supported"))
        case (_, .help):
            return junk(SMTPReply(214, EnhancedStatusCode(2, 0, 0), ["Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS",
                                                   "See RFC 5321; Tern mail server"]))

        case (.connected, .bdat(let size, _)), (.ready, .bdat(let size, _)):
            // The chunk still follows on the wire and must be read and thrown away.
            errorCount += 1
            return .readBDATChunk(size: size, last: true, accept: false)

        case (.connected, _):
            return clientError(SMTPReply(503, "5.5.1", "Send EHLO or HELO first"))

        case (_, .startTLS):
            guard configuration.startTLSAvailable, isExtended else {
                return clientError(SMTPReply(502, "5.5.1", "STARTTLS not available"))
            }
            guard !isTLS else { return clientError(SMTPReply(503, "5.5.1", "TLS already active")) }
            // RFC 3207 §4.2: after TLS the client must start over with EHLO; all state is discarded.
            isTLS = true
            state = .connected
            heloName = nil
            isExtended = false
            // A login made before TLS is state too (possible on loopback, where AUTH needs no TLS).
            authenticatedAs = nil
            return .startTLS(SMTPReply(220, "2.0.0", "Ready to start TLS"))

        case (_, .auth(let mechanism, let initial)):
            guard !configuration.authMechanisms.isEmpty, isExtended else {
                return clientError(SMTPReply(503, "5.5.1", "AUTH is not available on this service"))
            }
            guard authenticatedAs == nil else { return clientError(SMTPReply(503, "5.5.1", "Already authenticated")) }
            guard isTLS || !configuration.authRequiresTLS else {
                // RFC 4954 §6: the mechanism needs an encrypted connection first.
                return clientError(SMTPReply(538, "5.7.11", "Encryption required for requested authentication mechanism: use STARTTLS first"))
            }
            guard case .ready = state else { return clientError(SMTPReply(503, "5.5.1", "AUTH is not allowed during a transaction")) }
            guard configuration.authMechanisms.contains(mechanism) else {
                return clientError(SMTPReply(504, "5.5.4", "Unrecognized authentication mechanism"))
            }
            return .authenticate(mechanism: mechanism, initialResponse: initial)

        case (.ready, .mail(let path, let params)):
            if configuration.submission && authenticatedAs == nil {
                return clientError(SMTPReply(530, "5.7.0", "Authentication required"))
            }
            if let size = params.size, size > configuration.maxMessageSize {
                return clientError(SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size of \(configuration.maxMessageSize) octets"))
            }
            if !params.smtputf8, let address = path.address, address.needsSMTPUTF8 {
                return clientError(SMTPReply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter"))
            }
            state = .transaction(SMTPTransaction(reversePath: path, parameters: params))
            return .reply(SMTPReply(250, "2.1.0", "Sender \(path) OK"))
        case (.transaction, .mail):
            return clientError(SMTPReply(503, "5.5.1", "Sender already specified"))
        case (_, .mail):
            return clientError(SMTPReply(503, "5.5.1", "Bad sequence of commands"))

        case (.transaction(let txn), .rcpt(let path, let params)):
            guard txn.recipients.count < configuration.maxRecipients else {
                // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client retries the rest later.
                return .reply(SMTPReply(452, "4.5.3", "Too many recipients"))
            }
            let address: EmailAddress
            switch path {
            case .postmaster: address = EmailAddress(localPart: "postmaster", domain: configuration.hostname)
            case .mailbox(let a): address = a
            }
            if !txn.parameters.smtputf8 && address.needsSMTPUTF8 {
                return clientError(SMTPReply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter on MAIL"))
            }
            let recipient = AcceptedRecipient(forwardPath: path, parameters: params, address: address)
            state = .checkingRecipient(txn, recipient)
            return .checkRecipient(recipient, txn)
        case (_, .rcpt):
            return clientError(SMTPReply(503, "5.5.1", "Need MAIL before RCPT"))

        case (.transaction(let txn), .data):
            guard !txn.recipients.isEmpty else {
                // RFC 2920 §3.1: with no valid recipients, DATA gets 554 (or 503).
                return clientError(SMTPReply(554, "5.5.1", "No valid recipients"))
            }
            state = .data(txn)
            return .startData(SMTPReply(354, nil, ["End data with <CR><LF>.<CR><LF>"]))
        case (_, .data):
            return clientError(SMTPReply(503, "5.5.1", "Need MAIL and RCPT before DATA"))

        case (.transaction(let txn), .bdat(let size, let last)):
            return bdat(txn, received: 0, failed: txn.recipients.isEmpty ? SMTPReply(554, "5.5.1", "No valid recipients") : nil,
                        size: size, last: last)
        }
    }

    private mutating func bdat(_ txn: SMTPTransaction, received: Int, failed: SMTPReply?, size: Int, last: Bool) -> Action {
        var failed = failed
        // Counted without overflow: a refused transaction goes on adding up the chunks it reads.
        let (sum, overflow) = received.addingReportingOverflow(size)
        let total = overflow ? Int.max : sum
        if failed == nil && total > configuration.maxMessageSize {
            failed = SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size of \(configuration.maxMessageSize) octets")
        }
        state = .bdat(txn, received: total, failed: failed)
        return .readBDATChunk(size: size, last: last, accept: failed == nil)
    }

    /// The reply owed when a BDAT chunk has been read. For LAST with an accepted transaction, returns nil:
    /// the session delivers and then calls `deliveryFinished`.
    public mutating func bdatChunkEnded(last: Bool) -> (reply: SMTPReply?, deliver: SMTPTransaction?) {
        switch state {
        case .bdat(let txn, let received, let failed):
            if let failed {
                if last { state = .ready }
                // A failed transaction answers every chunk with its error (RFC 3030 §2: the session
                // stays in sync because the chunk was read).
                errorCount += 1
                return (failed, nil)
            }
            if last {
                state = .delivering(txn)
                return (nil, txn)
            }
            return (SMTPReply(250, "2.0.0", "\(received) octets received"), nil)
        case .ready, .connected:
            // A BDAT outside a transaction: its chunk was discarded.
            return (SMTPReply(503, "5.5.1", "Need MAIL and RCPT before BDAT"), nil)
        default:
            return (SMTPReply(503, "5.5.1", "Bad sequence of commands"), nil)
        }
    }

    /// DATA content ended. `problem` is the reply for a message that cannot be accepted (too large,
    /// bare LF…); otherwise the transaction is returned for delivery.
    public mutating func dataEnded(problem: SMTPReply?) -> SMTPTransaction? {
        guard case .data(let txn) = state else { return nil }
        if problem != nil {
            errorCount += 1
            state = .ready
            return nil
        }
        state = .delivering(txn)
        return txn
    }

    /// The store has answered; the transaction is over either way (RFC 5321 §4.1.1.4).
    public mutating func deliveryFinished() {
        if case .delivering = state { state = .ready }
    }

    /// A message was delivered (committed): the count of commands that move nothing forward starts again. A refused
    /// message does not reset it, or a client could go on for ever by sending one now and then.
    public mutating func messageDelivered() {
        junkCount = 0
    }

    public mutating func recipientAccepted() -> SMTPReply? {
        guard case .checkingRecipient(var txn, let r) = state else { return nil }
        txn.recipients.append(r)
        state = .transaction(txn)
        return SMTPReply(250, "2.1.5", "Recipient \(r.forwardPath) OK")
    }

    public mutating func recipientRejected(_ reply: SMTPReply) -> Action {
        guard case .checkingRecipient(let txn, _) = state else { return .reply(reply) }
        state = .transaction(txn)
        return reply.isClientFault ? clientError(reply) : .reply(reply)
    }

    /// AUTH succeeded.
    public mutating func authenticated(as user: String) {
        authenticatedAs = user
    }

    /// A client's reply code counted as an error (failed AUTH and the like).
    public mutating func countError(_ reply: SMTPReply) -> Action {
        clientError(reply)
    }
}
