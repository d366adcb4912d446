import Intake
import ServerCore
import Foundation
import Logging
import MailAuth
import MailCore
import MailMessage
import MailStore
import NIOCore
import NIOPosix
import NIOSSL
import SASL
import SMTPCodec
import SpamFilter
import TernConfig

/// Which SMTP service a connection came in on.
public enum SMTPService: Sendable {
    /// Port 25: mail from other servers, for local recipients only.
    case mx
    /// Ports 587/465 (RFC 6409, RFC 8314): users' mail programs, after AUTH, to anywhere.
    case submission
}

/// The receiving SMTP service (port 25): drives `SMTPServerStateMachine` with the bytes of one connection,
/// answers its policy questions from the store, and stores accepted messages.
///
/// While a question is out (a recipient lookup, a delivery) the handler reads no further commands: pipelined
/// input waits in `inbound`, so replies keep their order (RFC 2920).
public final class SMTPSessionHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer


    private let server: ServerContext
    private let smtp: SMTPShared
    private let connection: Connection
    private var machine: SMTPServerStateMachine
    private var framer: SMTPFramer
    private var inbound = ByteBuffer()
    /// A command is being answered (kept on the connection, where its lifecycle reads it).
    private var busy: Bool {
        get { connection.busy }
        set { connection.busy = newValue }
    }
    private var backpressure = ReadBackpressure(limit: 1 << 20)
    private var closed = false
    private var needsFlush = false
    private var sink: MessageSink?
    private var bdatChunk: (last: Bool, accept: Bool)?
    /// Where each accepted recipient of the current transaction goes, in RCPT order.
    private var resolved: [RecipientRoute] = []
    let service: SMTPService
    /// The SASL exchange in progress (lines are its responses, not commands).
    private var sasl: SASLServer?
    /// The account a SCRAM exchange names, counted by the login throttle until it succeeds.
    private var scramUser: String?
    /// Port 25 client in `relay.networks`: it may send to other domains without AUTH, and its mail is treated as
    /// submitted (prepared and signed, not checked).
    private var isRelayClient = false
    /// Mail handled as submitted mail (Message-ID, Date, DKIM signatures; no Return-Path): submission, or a relay client.
    private var takesSubmittedMail: Bool { source.takesSubmittedMail }
    /// The account that authenticated (submission): the sender must be one of its addresses.
    private var account: AccountID?
    private var logger: Logger
    private var transactionID = ""
    /// Port 25 with checks on: what was learnt about the client at connect, and the SPF result of this transaction.
    private var client: ClientFacts?
    private var spf: SenderSPF?
    /// Length of the Return-Path line at the start of the message (the Authentication-Results go below it).
    private var returnPathLength = 0

    public init(server: ServerContext, smtp: SMTPShared, connection: Connection, isTLS: Bool, service: SMTPService = .mx) {
        self.smtp = smtp
        self.server = server
        self.service = service
        self.connection = connection
        let limits = server.config.limits
        machine = SMTPServerStateMachine(configuration: .init(
            hostname: server.config.hostname, maxMessageSize: limits.maxMessageSize, maxRecipients: limits.maxRecipients,
            maxErrors: limits.maxErrors, startTLSAvailable: server.tls != nil,
            authMechanisms: service == .submission ? SASLMechanismName.allCases.map(\.rawValue) : [],
            submission: service == .submission), isTLS: isTLS)
        framer = SMTPFramer(maxTextLine: limits.maxLineLength)
        logger = connection.logger
    }

    // MARK: channel events

    public func channelActive(context: ChannelHandlerContext) {
        logger = connection.logger
        if connection.isLoopback { machine.configuration.authRequiresTLS = false }
        if service == .mx, smtp.relayNetworks.contains(where: { $0.contains(connection.remoteAddress) }) { isRelayClient = true }
        logger.debug("connected")
        guard service == .mx, let inbound = smtp.intake.checks else {
            write(machine.greeting, context: context)
            return flush(context: context)
        }
        let address = connection.remoteAddress
        if let exempt = inbound.exemptFacts(address) {
            // This site's own programs: nothing to look up.
            client = exempt
            write(machine.greeting, context: context)
            return flush(context: context)
        }
        // Reverse DNS and DNS lists are looked up before the greeting, so that MAIL FROM can be answered at once.
        runAsync(context: context, { await inbound.connect(address) }) { handler, result, context in
            guard case .success(let facts) = result else { return }
            handler.client = facts
            if let listing = facts.blocklisted { handler.logger.notice("client blocklisted", metadata: ["zone": "\(listing.zone)"]) }
            handler.write(handler.machine.greeting, context: context)
        }
    }

    /// What the connection's lifecycle says for SMTP (RFC 5321 §3.8, §4.5.3.2: 421 and close).
    public static func farewells(hostname: String) -> Farewells {
        Farewells(tooManyFromAddress: "421 4.7.0 \(hostname) Too many connections from your address, try again later",
                  tooManyTotal: "421 4.3.2 \(hostname) Too many connections, try again later",
                  timeout: "421 4.4.2 \(hostname) Error: timeout exceeded",
                  shuttingDown: "421 4.3.2 \(hostname) Service shutting down, try again later")
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closed = true
        sink?.discard()
        sink = nil
        endScram(success: false)   // an exchange the client walked away from
        logger.debug("disconnected")
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        inbound.writeBuffer(&bytes)
        // A batch waiting for its turn takes these bytes along: a flood gets one batch a turn, however much it sends.
        if processScheduled {
            return backpressure.update(busy: true, buffered: inbound.readableBytes, channel: context.channel)
        }
        process(context: context)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        logConnectionError(error, logger)
        closed = true
        context.close(promise: nil)
    }

    // MARK: processing

    /// RFC 5321 §2.3.8: CR and LF only as CRLF, in DATA and BDAT alike. Accepting bare ones opens the door to SMTP
    /// smuggling.
    static let bareLineEnd = SMTPReply(554, "5.6.0", "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)")

    /// Pipelined command lines handled in one turn of the event loop before the other connections get theirs.
    static let commandsPerTurn = 32

    private func process(context: ChannelHandlerContext) {
        var commands = 0
        while !busy && !closed {
            // A client that does not read its replies gets no more of them: the work one connection queues is
            // bounded by the channel's write buffer (resumed in channelWritabilityChanged).
            guard context.channel.isWritable else { break }
            if commands >= Self.commandsPerTurn {
                processLater(context: context)
                break
            }
            guard let event = framer.next(&inbound) else { break }
            if case .line = event { commands += 1 }
            handle(event, context: context)
        }
        if inbound.readerIndex > 65536 { inbound.discardReadBytes() }
        backpressure.update(busy: busy || processScheduled || !context.channel.isWritable, buffered: inbound.readableBytes,
                            channel: context.channel)
        flush(context: context)
        // RFC 5321 §4.5.3.2: a command may take 5 minutes to come, a piece of content 3 (both configurable).
        let limits = server.config.limits
        let timeout = (framer.mode == .command ? limits.commandTimeout : limits.dataTimeout).timeAmount
        connection.idleTimeout = timeout
        // Each command line and each line of content within that time too, however slowly its octets come.
        connection.recordDeadline = timeout
        connection.records = framer.records
        // Logged in (submission), or a transaction under way (port 25): not the first to go when the listener is full.
        connection.trusted = machine.authenticatedAs != nil || machine.state.transactionState != nil
    }

    private var processScheduled = false

    /// The rest of a pipelined batch, after the event loop has served the other connections.
    private func processLater(context: ChannelHandlerContext) {
        guard !processScheduled else { return }
        processScheduled = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        // A timer, not `execute`: the event loop runs tasks queued by running tasks in the same pass (thousands of
        // them before it looks at the sockets again), while a timer waits for the next pass, after the other
        // connections' input.
        context.eventLoop.scheduleTask(in: .microseconds(20)) {
            let (handler, context) = bound.value
            handler.processScheduled = false
            if !handler.closed { handler.process(context: context) }
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && !closed && !processScheduled { process(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func handle(_ event: SMTPFramer.Event, context: ChannelHandlerContext) {
        switch event {
        case .line(let bytes):
            if sasl != nil { return saslResponse(bytes, context: context) }
            let action: SMTPServerStateMachine.Action
            do {
                let command = try SMTPCommandParser.parse(bytes)
                logger.trace("command", metadata: ["verb": "\(command.verb)"])
                if case .mail(let path, _) = command {
                    // Only a MAIL that can start a transaction clears the last one's routes and SPF result: one refused
                    // with 503 inside a transaction leaves that transaction whole (its recipients keep their routes).
                    if machine.state == .ready {
                        resolved = []
                        spf = nil
                    }
                    if service == .submission, account != nil, machine.state == .ready {
                        return checkSender(path, command: command, context: context)
                    }
                    if service == .mx, let inbound = smtp.intake.checks, let client, !client.exempt, machine.state == .ready,
                       machine.heloName != nil {
                        return checkClient(path, command: command, inbound: inbound, client: client, context: context)
                    }
                }
                action = machine.receive(command)
            } catch {
                action = machine.syntaxError(error)
            }
            perform(action, context: context)
        case .lineTooLong:
            perform(machine.lineTooLong(), context: context)
        case .dataChunk(let chunk):
            sink?.append(chunk)
        case .dataEnd:
            finishData(context: context)
        case .bdatChunk(let chunk):
            if bdatChunk?.accept == true { sink?.append(chunk) }
        case .bdatEnd:
            let last = bdatChunk?.last ?? true
            bdatChunk = nil
            if last { framer.finishBDATMessage() }
            let (reply, txn) = machine.bdatChunkEnded(last: last)
            if let reply { write(reply, context: context) }
            if let txn, framer.dataProblems.contains(.bareCR) || framer.dataProblems.contains(.bareLF) {
                // RFC 5321 §2.3.8, as for DATA: a message with a bare CR or LF is refused, never relayed or signed.
                machine.deliveryFinished()
                dropSink()
                logger.info("message refused", metadata: ["reply": "554"])
                write(Self.bareLineEnd, context: context)
            } else if let txn {
                deliver(txn, context: context)
            } else if !machine.state.isReceivingContent {
                dropSink()
            }
        }
    }

    private func perform(_ action: SMTPServerStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .reply(let reply):
            write(reply, context: context)
            if sink != nil && !machine.state.isReceivingContent { dropSink() }
        case .replyAndClose(let reply):
            replyAndClose(reply, context: context)
        case .startTLS(let reply):
            write(reply, context: context)
            flush(context: context)
            // RFC 3207 §4.2 and CVE-2011-0411: anything the client pipelined after STARTTLS was sent in the
            // clear and must not be taken as coming over TLS.
            inbound.clear()
            // What was learnt before TLS is forgotten (RFC 3207 §4.2), a login included (a transaction's routes and SPF
            // result go with the next MAIL, which needs a new EHLO first).
            account = nil
            scramUser = nil
            if let tls = server.tls { _ = connection.startTLS(tls) }
        case .checkRecipient(let recipient, _):
            checkRecipient(recipient, context: context)
        case .startData(let reply):
            sink = makeSink()
            write(reply, context: context)
            framer.startData()
        case .readBDATChunk(let size, let last, let accept):
            framer.startBDAT(size: size, first: sink == nil)
            bdatChunk = (last, accept)
            if accept {
                if sink == nil { sink = makeSink() }
            } else {
                dropSink()
            }
        case .authenticate(let mechanism, let initial):
            startAuthentication(mechanism, initial, context: context)
        }
    }

    // MARK: authentication (RFC 4954)

    private func startAuthentication(_ mechanism: String, _ initial: String?, context: ChannelHandlerContext) {
        guard let name = SASLMechanismName(rawValue: mechanism) else {
            return perform(machine.countError(SMTPReply(504, "5.5.4", "Unrecognized authentication mechanism")), context: context)
        }
        guard !server.loginThrottle.isBlocked(connection.remoteAddress, now: server.clock.now) else {
            logger.notice("AUTH refused: too many failures from this address")
            return write(SMTPReply(454, "4.7.0", "Too many failed logins from your address, try again later", isClientFault: false), context: context)
        }
        var response: [UInt8]?
        if let initial {
            // RFC 4954 §4: "=" is an empty initial response.
            guard initial == "=" || Data(base64Encoded: initial) != nil else {
                return perform(machine.countError(SMTPReply(501, "5.5.2", "Invalid base64 in the initial response")), context: context)
            }
            response = initial == "=" ? [] : Array(Data(base64Encoded: initial)!)
        }
        var exchange = SASLServer(mechanism: name, fakeSaltKey: server.saslSecret)
        let step = exchange.start(initialResponse: response)
        sasl = exchange
        saslStep(step, context: context)
    }

    /// A SCRAM attempt the login throttle counted is over.
    private func endScram(success: Bool) {
        guard let name = scramUser else { return }
        scramUser = nil
        server.loginThrottle.finished(connection.remoteAddress, user: name, success: success, now: server.clock.now)
    }

    private func saslResponse(_ line: [UInt8], context: ChannelHandlerContext) {
        let text = String(decoding: line, as: UTF8.self)
        if text == "*" {
            sasl = nil
            endScram(success: false)
            return perform(machine.countError(SMTPReply(501, "5.7.0", "Authentication cancelled")), context: context)
        }
        guard let data = Data(base64Encoded: text) else {
            sasl = nil
            endScram(success: false)
            return perform(machine.countError(SMTPReply(501, "5.5.2", "Invalid base64 in the response")), context: context)
        }
        let step = sasl!.respond(Array(data))
        saslStep(step, context: context)
    }

    private func saslStep(_ step: SASLStep, context: ChannelHandlerContext) {
        switch step {
        case .challenge(let bytes):
            write(SMTPReply(334, nil, [Data(bytes).base64EncodedString()]), context: context)
        case .checkPassword(let user, let password):
            checkPassword(user: user, password: password, context: context)
        case .needCredentials(let user):
            // SCRAM: the attempt counts from here (PLAIN and LOGIN count theirs in the password check).
            let name = (try? EmailAddress.parse(user))?.canonical ?? user
            guard server.loginThrottle.begin(connection.remoteAddress, user: name, now: server.clock.now) == .proceed else {
                sasl = nil
                logger.notice("AUTH refused: too many failures", metadata: ["user": "\(loggable(user))"])
                return write(SMTPReply(454, "4.7.0", "Too many failed logins, try again later", isClientFault: false), context: context)
            }
            scramUser = name
            runAsync(context: context, { [server] () async throws -> (AccountID, PasswordHash, String)? in
                guard let address = try? EmailAddress.parse(user) else { return nil }
                return try await server.store.credentials(address).map { ($0.0, $0.1, address.canonical) }
            }) { handler, result, context in
                let found = (try? result.get()) ?? nil
                handler.account = found?.0
                let credentials = found.map { SCRAMCredentials(iterations: $0.1.iterations, salt: $0.1.salt, storedKey: $0.1.storedKey, serverKey: $0.1.serverKey) }
                handler.saslStep(handler.sasl!.credentials(credentials), context: context)
            }
        case .success(let user):
            sasl = nil
            endScram(success: true)
            let canonical = (try? EmailAddress.parse(user))?.canonical ?? user
            machine.authenticated(as: canonical)
            logger[metadataKey: "user"] = .string(canonical)
            logger.info("authenticated")
            write(SMTPReply(235, "2.7.0", "Authentication successful"), context: context)
        case .failure(let malformed):
            let scram = sasl?.mechanism == .scramSHA256
            let scramName = scramUser
            endScram(success: false)
            sasl = nil
            account = nil
            if malformed {
                return perform(machine.countError(SMTPReply(501, "5.5.2", "Invalid SASL response")), context: context)
            }
            let reply = SMTPReply(535, "5.7.8", "Authentication credentials invalid")
            // PLAIN and LOGIN failures were recorded and delayed by the password check; SCRAM's are done here.
            if scram {
                logger.notice("SMTP login failed (SCRAM)", metadata: ["user": "\(loggable(scramName ?? ""))"])
                runAsync(context: context, { try await Task.sleep(for: .seconds(1)) }) { handler, _, context in
                    handler.perform(handler.machine.countError(reply), context: context)
                }
            } else {
                perform(machine.countError(reply), context: context)
            }
        }
    }

    /// PLAIN and LOGIN: the password, from the verified-login cache at once or checked off the loop (with the login
    /// throttle's delay after a failure).
    private func checkPassword(user: String, password: String, context: ChannelHandlerContext) {
        if let (account, address) = PasswordCheck.cached(server, remoteAddress: connection.remoteAddress, user: user, password: password) {
            self.account = account
            return saslStep(sasl!.passwordChecked(true).withUser(address.canonical), context: context)
        }
        let remoteAddress = connection.remoteAddress
        runAsync(context: context, { [server] in
            try await PasswordCheck.check(server, service: "SMTP", remoteAddress: remoteAddress, user: user, password: password)
        }) { handler, result, context in
            switch result {
            case .success(.success(let account, let address)):
                handler.account = account
                handler.saslStep(handler.sasl!.passwordChecked(true).withUser(address.canonical), context: context)
            case .success(.blocked):
                handler.sasl = nil
                handler.write(SMTPReply(454, "4.7.0", "Too many failed logins from your address, try again later", isClientFault: false), context: context)
            default:
                handler.saslStep(handler.sasl!.passwordChecked(false), context: context)
            }
        }
    }

    /// Runs `work` off the event loop with the session paused (no further input is read), then `done` on the loop.
    private func runAsync<T: Sendable>(context: ChannelHandlerContext, _ work: @escaping @Sendable () async throws -> T,
                                       _ done: @escaping (SMTPSessionHandler, Result<T, Error>, ChannelHandlerContext) -> Void) {
        busy = true
        context.runOffLoop({ () async -> Result<T, Error> in
            do { return .success(try await work()) } catch { return .failure(error) }
        }, then: { result in
            self.busy = false
            guard !self.closed else { return }
            done(self, result, context)
            self.process(context: context)
        })
    }

    // MARK: senders (submission)

    /// RFC 6409 §6.1: an authenticated user sends as one of their own addresses (their account, its aliases, `+tags`).
    private func checkSender(_ path: ReversePath, command: SMTPCommand, context: ChannelHandlerContext) {
        guard let address = path.address else {
            return perform(machine.countError(SMTPReply(553, "5.7.1", "Sender address must be one of your own addresses")), context: context)
        }
        let account = self.account
        runAsync(context: context, { [server] in try await server.store.resolve(address) }) { handler, result, context in
            if case .success(.local(let accounts)) = result, let account, accounts.contains(account) {
                handler.perform(handler.machine.receive(command), context: context)
            } else if case .failure(let error) = result {
                handler.logger.error("sender lookup failed", metadata: ["error": "\(error)"])
                handler.write(SMTPReply(451, "4.3.0", "Temporary lookup failure, try again later", isClientFault: false), context: context)
            } else {
                handler.logger.notice("sender refused: not the user's address", metadata: ["from": "\(address)"])
                handler.perform(handler.machine.countError(SMTPReply(553, "5.7.1", "<\(address)>: Sender address rejected: not owned by user \(handler.machine.authenticatedAs ?? "?")")),
                                context: context)
            }
        }
    }

    // MARK: port-25 checks

    /// At MAIL FROM: blocklists, reverse DNS, rate limits, then SPF (RFC 7208 §2.4: checked at MAIL FROM).
    private func checkClient(_ path: ReversePath, command: SMTPCommand, inbound: InboundChecks, client: ClientFacts,
                             context: ChannelHandlerContext) {
        let helo = machine.heloName ?? ""
        let sender = path.address?.description ?? ""
        runAsync(context: context, { await inbound.mailFrom(client: client, helo: helo, sender: sender) }) { handler, result, context in
            guard case .success(let (spf, refusal)) = result else { return }
            if let refusal {
                handler.logger.notice("sender refused", metadata: ["from": "\(sender)", "reply": "\(refusal)"])
                if refusal.code.isPermanent {
                    handler.perform(handler.machine.countError(refusal), context: context)
                } else {
                    handler.write(refusal, context: context)
                }
                return
            }
            handler.spf = spf
            handler.perform(handler.machine.receive(command), context: context)
        }
    }

    // MARK: recipients

    /// Where this session's messages come from, for the intake pipeline's policy and preparation.
    private var source: IntakeSource {
        if service == .submission, let account { return .submission(account) }
        return isRelayClient ? .relayClient : .mx
    }

    private func checkRecipient(_ recipient: AcceptedRecipient, context: ChannelHandlerContext) {
        let intake = smtp.intake, address = recipient.address, isPostmaster = recipient.forwardPath == .postmaster
        let policy = intake.policy(for: source)
        var greylist: (client: ClientFacts, sender: String)?
        if service == .mx, intake.checks != nil, let client, case .transaction(let txn)? = machine.state.transactionState {
            greylist = (client, txn.reversePath.address?.description ?? "")
        }
        // The common case: the directory cache answers at once, on the event loop.
        if let decision = intake.cachedRecipient(address, isPostmaster: isPostmaster, policy: policy, greylist: greylist) {
            return recipientChecked(decision, address: address, context: context)
        }
        runAsync(context: context, { [greylist] in
            await intake.recipient(address, isPostmaster: isPostmaster, policy: policy, greylist: greylist)
        }) { handler, result, context in
            guard case .success(let decision) = result else { return }
            handler.recipientChecked(decision, address: address, context: context)
        }
    }

    private func recipientChecked(_ decision: RecipientDecision, address: EmailAddress, context: ChannelHandlerContext) {
        switch decision {
        case .accept(let route):
            if let reply = machine.recipientAccepted() {
                resolved.append(route)
                write(reply, context: context)
            }
        case .refuse(let reply):
            logger.info("recipient refused", metadata: ["rcpt": "\(address)", "reply": "\(reply.code)"])
            perform(machine.recipientRejected(reply), context: context)
        }
    }

    // MARK: content

    private func makeSink() -> MessageSink {
        transactionID = SessionID.make()
        guard case .transaction(let txn) = machine.state.transactionState else {
            return MessageSink(blobs: server.blobs, inlineLimit: server.inlineLimit, maxSize: server.config.limits.maxMessageSize, prefix: "")
        }
        let prefix = traceHeaders(txn)
        return MessageSink(blobs: server.blobs, inlineLimit: server.inlineLimit,
                           maxSize: server.config.limits.maxMessageSize + prefix.utf8.count, prefix: prefix)
    }

    private func traceHeaders(_ txn: SMTPTransaction) -> String {
        let proto = TraceHeaders.protocolName(extended: machine.isExtended, tls: machine.isTLS,
                                               authenticated: machine.authenticatedAs != nil, utf8: txn.parameters.smtputf8)
        let single = txn.recipients.count == 1 ? txn.recipients[0].address.description : nil
        let received = TraceHeaders.received(heloName: machine.heloName ?? "unknown", clientAddress: connection.remoteAddress, reverseName: nil,
                                             hostname: server.config.hostname, protocolName: proto, id: transactionID,
                                             tls: nil, singleRecipient: single, date: server.clock.now)
        let reversePath: String
        switch txn.reversePath {
        case .null: reversePath = ""
        case .mailbox(let a): reversePath = a.description
        }
        // Return-Path belongs to the final delivery (RFC 5321 §4.4); a submitted message travels on without one.
        if takesSubmittedMail { returnPathLength = 0; return received }
        let returnPath = TraceHeaders.returnPath(reversePath)
        returnPathLength = returnPath.utf8.count
        return returnPath + received
    }

    private func finishData(context: ChannelHandlerContext) {
        let problems = framer.dataProblems
        var problem: SMTPReply?
        if sink?.tooLarge ?? false {
            problem = SMTPReply(552, "5.3.4", "Message size exceeds fixed maximum message size of \(server.config.limits.maxMessageSize) octets")
        } else if problems.contains(.bareLF) || problems.contains(.bareCR) {
            // RFC 5321 §2.3.8: CR and LF only as CRLF. Accepting bare ones opens the door to SMTP smuggling.
            problem = Self.bareLineEnd
        } else if problems.contains(.nul) {
            problem = SMTPReply(554, "5.6.0", "Message contains NUL characters")
        } else if problems.contains(.longLine) {
            problem = SMTPReply(554, "5.6.0", "Message has a line longer than \(server.config.limits.maxLineLength) octets (RFC 5321 section 4.5.3.1.6)")
        }
        if let problem {
            _ = machine.dataEnded(problem: problem)
            dropSink()
            logger.info("message refused", metadata: ["reply": "\(problem.code)"])
            write(problem, context: context)
            return
        }
        guard let txn = machine.dataEnded(problem: nil) else { return }
        deliver(txn, context: context)
    }

    private func deliver(_ txn: SMTPTransaction, context: ChannelHandlerContext) {
        guard let sink else {
            machine.deliveryFinished()
            write(SMTPReply(451, "4.3.0", "Internal error", isClientFault: false), context: context)
            return
        }
        self.sink = nil
        busy = true
        let envelope = IntakeEnvelope(
            mailFrom: txn.reversePath.address?.description ?? "", recipients: txn.recipients.map(envelopeRecipient),
            envelopeID: txn.parameters.envelopeID, dsnReturn: txn.parameters.dsnReturn?.rawValue,
            body: txn.parameters.body?.rawValue, smtputf8: txn.parameters.smtputf8)
        let client = IntakeClient(address: connection.remoteAddress, helo: machine.heloName ?? "", facts: client, spf: spf)
        let message = IncomingMessage(
            source: source, envelope: envelope, routes: resolved, queueID: transactionID, arrived: server.clock.now, client: client,
            received: server.config.keepsDeliveryLog ? receivedDetail(txn, size: sink.size) : nil,
            returnPathLength: returnPathLength, logger: logger)
        let loop = context.eventLoop, bound = NIOLoopBound((self, context), eventLoop: loop)
        smtp.intake.receive(message, sink: sink) { outcome in
            loop.execute {
                let (handler, context) = bound.value
                handler.delivered(outcome, message, context: context)
            }
        }
    }


    /// The delivery log's "received" line: who sent it, how, and for how many.
    private func receivedDetail(_ txn: SMTPTransaction, size: Int) -> String {
        let proto = TraceHeaders.protocolName(extended: machine.isExtended, tls: machine.isTLS,
                                               authenticated: machine.authenticatedAs != nil, utf8: txn.parameters.smtputf8)
        let helo = machine.heloName ?? "unknown", literal = "[\(connection.remoteAddress)]"
        var text = "from \(helo == literal || helo == "[IPv6:\(connection.remoteAddress)]" ? literal : helo + " " + literal) over \(service == .mx ? "SMTP" : "submission") (\(proto))"
        if isRelayClient { text += ", relay network" }
        if let user = machine.authenticatedAs { text += ", authenticated as \(user)" }
        let sender = txn.reversePath.address?.description ?? ""
        text += ", MAIL FROM <\(sender)>, \(txn.recipients.count) recipient\(txn.recipients.count == 1 ? "" : "s"), \(size) octets"
        return text
    }

    private func envelopeRecipient(_ r: AcceptedRecipient) -> IntakeEnvelope.Recipient {
        var notify: [String]?
        if let n = r.parameters.notify {
            notify = r.parameters.notifyNever ? ["NEVER"]
                : [(DSNNotify.success, "SUCCESS"), (.failure, "FAILURE"), (.delay, "DELAY")].filter { n.contains($0.0) }.map(\.1)
        }
        return IntakeEnvelope.Recipient(address: r.address.description, notify: notify, originalRecipient: r.parameters.originalRecipient)
    }

    private func delivered(_ outcome: IntakeOutcome, _ message: IncomingMessage, context: ChannelHandlerContext) {
        busy = false
        machine.deliveryFinished()
        resolved = []
        let id = message.queueID, from = message.envelope.mailFrom
        switch outcome {
        case .committed(let receipt, _, let size, _):
            machine.messageDelivered()
            logger.info("delivered", metadata: ["msg": "\(id)", "from": "\(from)", "rcpts": "\(message.envelope.recipients.count)",
                                                "size": "\(size)", "stored": "\(receipt.messageID)"])
        case .tested:
            break
        case .refused(let refusal):
            // Refused by the checks (DMARC policy, spam score).
            logger.notice("message refused", metadata: ["msg": "\(id)", "from": "\(from)", "reply": "\(refusal)"])
        case .failed(let error):
            logger.error("delivery failed", metadata: ["msg": "\(id)", "error": "\(error)"])
        }
        guard !closed else { return }
        write(outcome.reply, context: context)
        process(context: context)
    }


    private func dropSink() {
        sink?.discard()
        sink = nil
    }

    // MARK: output and timeouts

    private func write(_ reply: SMTPReply, context: ChannelHandlerContext) {
        let buffer = context.channel.allocator.buffer(string: reply.encoded())
        context.write(wrapOutboundOut(buffer), promise: nil)
        needsFlush = true
    }

    private func flush(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
    }

    private func replyAndClose(_ reply: SMTPReply, context: ChannelHandlerContext) {
        closed = true
        let buffer = context.channel.allocator.buffer(string: reply.encoded())
        needsFlush = false
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}

extension SASLStep {
    /// The same success under the account's canonical address.
    func withUser(_ user: String) -> SASLStep {
        if case .success = self { return .success(user: user) }
        return self
    }
}

extension SMTPServerStateMachine.State {
    /// Message content is being received or stored.
    var isReceivingContent: Bool {
        switch self {
        case .data, .bdat, .delivering: return true
        default: return false
        }
    }

    /// The open transaction, as a `.transaction` state, whatever phase it is in.
    var transactionState: Self? {
        switch self {
        case .transaction(let t), .checkingRecipient(let t, _), .data(let t), .bdat(let t, _, _), .delivering(let t):
            return .transaction(t)
        default:
            return nil
        }
    }
}
