import MailDelivery
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
enum SMTPService: Sendable {
    /// Port 25: mail from other servers, for local recipients only.
    case mx
    /// Ports 587/465 (RFC 6409, RFC 8314): users' mail programs, after AUTH, to anywhere.
    case submission
}

/// Where an accepted recipient's copy goes.
enum RecipientRoute: Sendable {
    case local([AccountID])
    case remote
    /// The mail tester (check@): the sender gets a report, nothing is stored.
    case tester
    /// The tester's report for this recipient is on its way.
    case reported

    var isTester: Bool { if case .tester = self { return true } else { return false } }
    var isTesterOrReported: Bool { switch self { case .tester, .reported: return true; default: return false } }
}

/// The receiving SMTP service (port 25): drives `SMTPServerStateMachine` with the bytes of one connection,
/// answers its policy questions from the store, and stores accepted messages.
///
/// While a question is out (a recipient lookup, a delivery) the handler reads no further commands: pipelined
/// input waits in `inbound`, so replies keep their order (RFC 2920).
final class SMTPSessionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer


    private let server: ServerContext
    private let smtp: SMTPShared
    private var slot: ConnectionSlot
    private var machine: SMTPServerStateMachine
    private var framer: SMTPFramer
    private var inbound = ByteBuffer()
    private var busy = false
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
    /// Port 25 client in `relay.networks`: it may send to other domains without AUTH, and its mail is treated as
    /// submitted (prepared and signed, not checked).
    private var isRelayClient = false
    /// Mail handled as submitted mail (Message-ID, Date, DKIM signatures; no Return-Path): submission, or a relay client.
    private var takesSubmittedMail: Bool { service == .submission || isRelayClient }
    /// The account that authenticated (submission): the sender must be one of its addresses.
    private var account: AccountID?
    private var timeout: Scheduled<Void>?
    private var logger: Logger
    private var transactionID = ""
    /// Port 25 with checks on: what was learnt about the client at connect, and the SPF result of this transaction.
    private var client: ClientFacts?
    private var spf: SenderSPF?
    /// Length of the Return-Path line at the start of the message (the Authentication-Results go below it).
    private var returnPathLength = 0

    init(server: ServerContext, smtp: SMTPShared, limiter: ConnectionLimiter, isTLS: Bool, service: SMTPService = .mx) {
        self.smtp = smtp
        self.server = server
        self.service = service
        slot = ConnectionSlot(limiter: limiter)
        let limits = server.config.limits
        machine = SMTPServerStateMachine(configuration: .init(
            hostname: server.config.hostname, maxMessageSize: limits.maxMessageSize, maxRecipients: limits.maxRecipients,
            maxErrors: limits.maxErrors, startTLSAvailable: server.tls != nil,
            authMechanisms: service == .submission ? SASLMechanismName.allCases.map(\.rawValue) : [],
            submission: service == .submission), isTLS: isTLS)
        framer = SMTPFramer(maxTextLine: limits.maxLineLength)
        logger = server.logger
        logger[metadataKey: "conn"] = .string(SessionID.make())
    }

    // MARK: channel events

    func channelActive(context: ChannelHandlerContext) {
        let verdict = slot.open(context)
        logger[metadataKey: "remote"] = .string(slot.remoteAddress)
        if slot.isLoopback { machine.configuration.authRequiresTLS = false }
        if service == .mx, smtp.relayNetworks.contains(where: { $0.contains(slot.remoteAddress) }) { isRelayClient = true }
        switch verdict {
        case .accepted where service == .mx && smtp.inbound != nil:
            // Reverse DNS and DNS lists are looked up before the greeting, so that MAIL FROM can be answered at once.
            logger.debug("connected")
            armTimeout(context: context)
            let inbound = smtp.inbound!, address = slot.remoteAddress
            runAsync(context: context, { await inbound.connect(address) }) { handler, result, context in
                guard case .success(let facts) = result else { return }
                handler.client = facts
                if let listing = facts.blocklisted { handler.logger.notice("client blocklisted", metadata: ["zone": "\(listing.zone)"]) }
                handler.write(handler.machine.greeting, context: context)
            }
        case .accepted:
            logger.debug("connected")
            write(machine.greeting, context: context)
            flush(context: context)
            armTimeout(context: context)
        case .tooManyFromAddress:
            logger.notice("refused: too many connections from this address")
            replyAndClose(SMTPReply(421, "4.7.0", "\(server.config.hostname) Too many connections from your address, try again later"), context: context)
        case .tooManyTotal:
            logger.notice("refused: too many connections")
            replyAndClose(SMTPReply(421, "4.3.2", "\(server.config.hostname) Too many connections, try again later"), context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        timeout?.cancel()
        sink?.discard()
        sink = nil
        slot.release()
        logger.debug("disconnected")
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        inbound.writeBuffer(&bytes)
        armTimeout(context: context)
        process(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        logConnectionError(error, logger)
        closed = true
        context.close(promise: nil)
    }

    // MARK: processing

    private func process(context: ChannelHandlerContext) {
        while !busy && !closed, let event = framer.next(&inbound) {
            handle(event, context: context)
        }
        if inbound.readerIndex > 65536 { inbound.discardReadBytes() }
        backpressure.update(busy: busy, buffered: inbound.readableBytes, channel: context.channel)
        flush(context: context)
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
                    resolved = []
                    spf = nil
                    if service == .submission, account != nil, machine.state == .ready {
                        return checkSender(path, command: command, context: context)
                    }
                    if service == .mx, let inbound = smtp.inbound, let client, machine.state == .ready, machine.heloName != nil {
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
            let (reply, txn) = machine.bdatChunkEnded(last: last)
            if let reply { write(reply, context: context) }
            if let txn {
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
            if let tls = server.tls {
                do {
                    try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
                } catch {
                    logger.error("cannot start TLS", metadata: ["error": "\(error)"])
                    context.close(promise: nil)
                }
            }
        case .checkRecipient(let recipient, _):
            checkRecipient(recipient, context: context)
        case .startData(let reply):
            sink = makeSink()
            write(reply, context: context)
            framer.startData()
        case .readBDATChunk(let size, let last, let accept):
            framer.startBDAT(size: size)
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
        guard !server.loginThrottle.isBlocked(slot.remoteAddress, now: server.clock.now) else {
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

    private func saslResponse(_ line: [UInt8], context: ChannelHandlerContext) {
        let text = String(decoding: line, as: UTF8.self)
        if text == "*" {
            sasl = nil
            return perform(machine.countError(SMTPReply(501, "5.7.0", "Authentication cancelled")), context: context)
        }
        guard let data = Data(base64Encoded: text) else {
            sasl = nil
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
            if let (account, address) = PasswordCheck.cached(server, remoteAddress: slot.remoteAddress, user: user, password: password) {
                self.account = account
                return saslStep(sasl!.passwordChecked(true).withUser(address.canonical), context: context)
            }
            runAsync(context: context, { [server, slot] in
                try await PasswordCheck.check(server, service: "SMTP", remoteAddress: slot.remoteAddress, user: user, password: password)
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
        case .needCredentials(let user):
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
            server.loginThrottle.recordSuccess(slot.remoteAddress)
            let canonical = (try? EmailAddress.parse(user))?.canonical ?? user
            machine.authenticated(as: canonical)
            logger[metadataKey: "user"] = .string(canonical)
            logger.info("authenticated")
            write(SMTPReply(235, "2.7.0", "Authentication successful"), context: context)
        case .failure(let malformed):
            let scram = sasl?.mechanism == .scramSHA256
            sasl = nil
            account = nil
            if malformed {
                return perform(machine.countError(SMTPReply(501, "5.5.2", "Invalid SASL response")), context: context)
            }
            let reply = SMTPReply(535, "5.7.8", "Authentication credentials invalid")
            // PLAIN and LOGIN failures were recorded and delayed by the password check; SCRAM's are done here.
            if scram {
                server.loginThrottle.recordFailure(slot.remoteAddress, now: server.clock.now)
                logger.notice("SMTP login failed (SCRAM)")
                runAsync(context: context, { try await Task.sleep(for: .seconds(1)) }) { handler, _, context in
                    handler.perform(handler.machine.countError(reply), context: context)
                }
            } else {
                perform(machine.countError(reply), context: context)
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

    private func checkRecipient(_ recipient: AcceptedRecipient, context: ChannelHandlerContext) {
        let store = server.store
        let address = recipient.address
        let quota = Int64(server.config.limits.quota)
        // The common case: the directory cache answers at once, on the event loop (with no quota to check).
        if quota == 0, let cached = store.cachedResolution(address), !(recipient.forwardPath == .postmaster && cached == .notOurDomain) {
            recipientChecked(.success(cached), address: address, context: context)
            return
        }
        let isPostmaster = recipient.forwardPath == .postmaster
        runAsync(context: context, { () async throws -> RecipientResolution in
            var resolution = try await store.resolve(address)
            // <Postmaster> without a domain (RFC 5321 §4.5.1): the postmaster of the first domain served here.
            if isPostmaster, resolution == .notOurDomain, let first = try await store.domains().first {
                resolution = try await store.resolve(EmailAddress(localPart: "postmaster", domain: first.name))
            }
            if quota > 0, case .local(let accounts) = resolution {
                for account in accounts where try await store.usage(account: account) >= quota { throw MailboxFull() }
            }
            return resolution
        }) { handler, result, context in
            handler.recipientChecked(result, address: address, context: context)
        }
    }

    private func recipientChecked(_ result: Result<RecipientResolution, Error>, address: EmailAddress, context: ChannelHandlerContext) {
        switch result {
        case .success(.local(let accounts)):
            if let inbound = smtp.inbound, let client, service == .mx, case .transaction(let txn)? = machine.state.transactionState,
               let reply = inbound.recipient(client: client, sender: txn.reversePath.address?.description ?? "", recipient: address.description) {
                logger.info("recipient greylisted", metadata: ["rcpt": "\(address)"])
                return perform(machine.recipientRejected(reply), context: context)
            }
            if let reply = machine.recipientAccepted() {
                resolved.append(.local(accounts))
                write(reply, context: context)
            }
        case .success(.notOurDomain) where (service == .submission && machine.authenticatedAs != nil) || isRelayClient:
            if let reply = machine.recipientAccepted() {
                resolved.append(.remote)
                write(reply, context: context)
            }
        case .success(.unknownUser) where smtp.inbound != nil && smtp.tester.isTester(address):
            if let reply = machine.recipientAccepted() {
                resolved.append(.tester)
                write(reply, context: context)
            }
        case .success(.unknownUser):
            logger.info("recipient rejected: unknown user", metadata: ["rcpt": "\(address)"])
            perform(machine.recipientRejected(SMTPReply(550, "5.1.1", "<\(address)>: Recipient address rejected: User unknown")), context: context)
        case .success(.notOurDomain):
            logger.info("recipient rejected: relay denied", metadata: ["rcpt": "\(address)"])
            perform(machine.recipientRejected(SMTPReply(550, "5.7.1", "<\(address)>: Relay access denied")), context: context)
        case .failure(is MailboxFull):
            logger.info("recipient refused: mailbox full", metadata: ["rcpt": "\(address)"])
            // RFC 3463 4.2.2: a temporary failure, so the sender retries once space is freed.
            perform(machine.recipientRejected(SMTPReply(452, "4.2.2", "<\(address)>: Mailbox full", isClientFault: false)), context: context)
        case .failure(let error):
            logger.error("recipient lookup failed", metadata: ["error": "\(error)"])
            perform(machine.recipientRejected(SMTPReply(451, "4.3.0", "Temporary lookup failure, try again later", isClientFault: false)), context: context)
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
        let received = TraceHeaders.received(heloName: machine.heloName ?? "unknown", clientAddress: slot.remoteAddress, reverseName: nil,
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
            problem = SMTPReply(554, "5.6.0", "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)")
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
        if resolved.contains(where: \.isTester), let inbound = smtp.inbound { return test(txn, sink: sink, inbound: inbound, context: context) }
        self.sink = nil
        busy = true
        var targets: [DeliveryTarget] = []
        var remote: [StoredEnvelope.Recipient] = []
        for (i, route) in resolved.enumerated() {
            switch route {
            case .local(let accounts):
                for a in accounts where !targets.contains(where: { $0.account == a }) { targets.append(DeliveryTarget(account: a)) }
            case .remote:
                remote.append(envelopeRecipient(txn.recipients[i]))
            case .tester, .reported:
                continue
            }
        }
        let envelope = StoredEnvelope(
            mailFrom: txn.reversePath.address?.description ?? "",
            recipients: txn.recipients.indices.filter { !resolved[$0].isTesterOrReported }.map { envelopeRecipient(txn.recipients[$0]) },
            envelopeID: txn.parameters.envelopeID, dsnReturn: txn.parameters.dsnReturn?.rawValue,
            body: txn.parameters.body?.rawValue, smtputf8: txn.parameters.smtputf8)
        let server = self.server
        let store = server.store
        let id = transactionID
        let loop = context.eventLoop
        // The time of arrival: INTERNALDATE, the delivery log's lines, and the Date/Message-ID submission adds.
        let now = server.clock.now
        // The delivery log: what arrived from whom, and where it went (written in the delivery's own commit).
        let logging = server.config.keepsDeliveryLog
        let received = logging ? receivedDetail(txn, size: sink.size) : ""
        let localAddresses = resolved.indices.filter { if case .local = resolved[$0] { return true } else { return false } }
            .map { txn.recipients[$0].address.description }
        let remoteAddresses = remote.map(\.address)
        let events: @Sendable (String?, String?, Bool) -> [DeliveryEvent] = { messageID, checked, junk in
            guard logging else { return [] }
            return DeliveryLogEvents.receipt(id: id, messageID: messageID, received: received, checked: checked,
                                             local: localAddresses, remote: remoteAddresses, junk: junk, at: now)
        }
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        let recipients = txn.recipients.count
        let finish: @Sendable (Result<(DeliveryReceipt, Int), Error>) -> Void = { result in
            loop.execute {
                let (handler, context) = bound.value
                handler.delivered(result, id: id, from: envelope.mailFrom, recipients: recipients, context: context)
            }
        }
        let finalTargets = targets, remoteRecipients = remote
        let commitTo: @Sendable (MessageContent, [DeliveryTarget], [DeliveryEvent]) -> Void = { content, targets, log in
            store.deliver(Delivery(content: content, envelope: envelope, targets: targets, internalDate: now,
                                   remoteRecipients: remoteRecipients, queueID: id, log: log)) { result in
                if case .failure = result, case .blob(let key, _) = content {
                    // Nothing references the file: remove it so a failed delivery leaves nothing behind.
                    server.blobs.remove(key)
                }
                finish(result.map { ($0, content.size) })
            }
        }
        let commit: @Sendable (MessageContent, String?) -> Void = { commitTo($0, finalTargets, events($1, nil, false)) }
        if service == .mx, !isRelayClient, let inbound = smtp.inbound, let client, !client.exempt {
            // Port 25 with checks: DKIM, DMARC and the spam score decide, then the header is rewritten and stored.
            let unsafeSink = UnsafeTransfer(sink)
            let spf = self.spf, helo = machine.heloName ?? "", logger = self.logger, returnPathLength = self.returnPathLength
            let threadPool = server.threadPool
            Task {
                do {
                    let read = try await threadPool.runIfActive { try inbound.read(unsafeSink.value) }
                    var dkim = read.dkim
                    let verdict = await inbound.content(client: client, spf: spf, helo: helo, mailFrom: envelope.mailFrom,
                                                        head: read.head, fields: read.fields, dkim: &dkim, features: read.features,
                                                        store: store,
                                                        owner: finalTargets.count == 1 ? finalTargets[0].account : nil,
                                                        now: inbound.clock.now)
                    logger.info("checked", metadata: ["msg": "\(id)", "result": "\(verdict.summary)"])
                    var targets = finalTargets, isJunk = false
                    let messageID = logging ? DeliveryLogEvents.messageID(read.fields.map(\.field)) : nil
                    switch verdict.action {
                    case .reject(let reply):
                        unsafeSink.value.discard()
                        if logging {
                            // received and checked (no recipient got it), then the refusal.
                            let log = DeliveryLogEvents.receipt(id: id, messageID: messageID, received: received, checked: verdict.summary,
                                                                local: [], remote: [], junk: false, at: now)
                                + [DeliveryEvent(at: now, queueID: id, kind: .refused, detail: reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))]
                            do { try await store.log(log) } catch { logger.error("cannot write the delivery log", metadata: ["error": "\(error)"]) }
                        }
                        return finish(.failure(reply))
                    case .junk:
                        targets = targets.map { DeliveryTarget(account: $0.account, specialUse: .junk) }
                        isJunk = true
                    case .accept:
                        break
                    }
                    let edits = verdict.removals.map { MessageEdit(range: $0, replacement: []) }
                        + [MessageEdit(range: returnPathLength..<returnPathLength, replacement: Array(verdict.header.utf8))]
                    let content = try await threadPool.runIfActive { try unsafeSink.value.finish(editing: edits) }
                    commitTo(content, targets, events(messageID, verdict.summary, isJunk))
                } catch {
                    unsafeSink.value.discard()
                    finish(.failure(error))
                }
            }
        } else if takesSubmittedMail {
            // Message-ID, Date and DKIM signatures are added off the event loop (signing and file copies block).
            let keyring = smtp.keyring, hostname = server.config.hostname, logger = self.logger
            let unsafeSink = UnsafeTransfer(sink)
            let mailFrom = envelope.mailFrom
            Task {
                let keys = await keyring.current()
                server.threadPool.submit { state in
                    guard state == .active else { return finish(.failure(ChannelError.ioOnClosedChannel)) }
                    do {
                        let prepared = try SubmissionPreparation.finish(unsafeSink.value, keys: keys, hostname: hostname, queueID: id,
                                                                        mailFrom: mailFrom, now: now, logger: logger)
                        commit(prepared.content, prepared.messageID)
                    } catch {
                        unsafeSink.value.discard()
                        finish(.failure(error))
                    }
                }
            }
        } else if sink.isInMemory {
            // Small messages go straight to the writer thread: no file, no thread-pool hop.
            do {
                let messageID = logging ? DeliveryLogEvents.messageID(head: try sink.head(max: 64 * 1024)) : nil
                commit(try sink.finish(), messageID)
            } catch { finish(.failure(error)) }
        } else {
            // The spool file's fsync and rename are blocking: they run on the thread pool.
            let unsafeSink = UnsafeTransfer(sink)
            server.threadPool.submit { state in
                guard state == .active else { return finish(.failure(ChannelError.ioOnClosedChannel)) }
                do {
                    let messageID = logging ? DeliveryLogEvents.messageID(head: try unsafeSink.value.head(max: 64 * 1024)) : nil
                    commit(try unsafeSink.value.finish(), messageID)
                } catch { finish(.failure(error)) }
            }
        }
    }

    /// The delivery log's "received" line: who sent it, how, and for how many.
    private func receivedDetail(_ txn: SMTPTransaction, size: Int) -> String {
        let proto = TraceHeaders.protocolName(extended: machine.isExtended, tls: machine.isTLS,
                                               authenticated: machine.authenticatedAs != nil, utf8: txn.parameters.smtputf8)
        let helo = machine.heloName ?? "unknown", literal = "[\(slot.remoteAddress)]"
        var text = "from \(helo == literal || helo == "[IPv6:\(slot.remoteAddress)]" ? literal : helo + " " + literal) over \(service == .mx ? "SMTP" : "submission") (\(proto))"
        if isRelayClient { text += ", relay network" }
        if let user = machine.authenticatedAs { text += ", authenticated as \(user)" }
        let sender = txn.reversePath.address?.description ?? ""
        text += ", MAIL FROM <\(sender)>, \(txn.recipients.count) recipient\(txn.recipients.count == 1 ? "" : "s"), \(size) octets"
        return text
    }

    /// A message for the mail tester: the report goes to the sender (committed before the reply to DATA), then the
    /// message goes on to its other recipients, if any, as usual.
    private func test(_ txn: SMTPTransaction, sink: MessageSink, inbound: InboundChecks, context: ChannelHandlerContext) {
        busy = true
        self.sink = nil
        let server = self.server, tester = smtp.tester, keyring = smtp.keyring, store = server.store, logger = self.logger, id = transactionID
        let mailFrom = txn.reversePath.address?.description ?? "", client = slot.remoteAddress, helo = machine.heloName ?? ""
        let testerAddress = txn.recipients[resolved.firstIndex(where: \.isTester)!].address.description
        let isSubmission = takesSubmittedMail
        let received = server.config.keepsDeliveryLog ? receivedDetail(txn, size: sink.size) : nil
        let unsafeSink = UnsafeTransfer(sink)
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        Task {
            let outcome: Result<String, Error>
            do {
                let keys = await keyring.current()
                var bytes = try await server.threadPool.runIfActive { try unsafeSink.value.head(max: Int.max) }
                if isSubmission {
                    // Judged as it would leave: with the Message-ID, Date and DKIM signatures submission adds.
                    let prefix = try await server.threadPool.runIfActive {
                        try SubmissionPreparation.prefix(unsafeSink.value, keys: keys, hostname: server.config.hostname, queueID: id,
                                                         mailFrom: mailFrom, now: server.clock.now, logger: logger).prefix
                    }
                    bytes = prefix + bytes
                }
                outcome = .success(try await tester.respond(to: bytes, testerAddress: testerAddress, mailFrom: mailFrom, client: client,
                                                            helo: helo, queueID: id, received: received, inbound: inbound,
                                                            store: store, keys: keys, logger: logger))
            } catch {
                outcome = .failure(error)
            }
            loop.execute {
                let (handler, context) = bound.value
                handler.tested(outcome, txn, sink: unsafeSink.value, context: context)
            }
        }
    }

    private func tested(_ outcome: Result<String, Error>, _ txn: SMTPTransaction, sink: MessageSink, context: ChannelHandlerContext) {
        busy = false
        switch outcome {
        case .success(let text):
            resolved = resolved.map { $0.isTester ? .reported : $0 }
            if resolved.allSatisfy(\.isTesterOrReported) {
                sink.discard()
                machine.deliveryFinished()
                resolved = []
                if !closed { write(SMTPReply(250, "2.0.0", "Ok: \(text)"), context: context) }
            } else {
                self.sink = sink
                return deliver(txn, context: context)
            }
        case .failure(let error):
            logger.error("mail tester failed", metadata: ["error": "\(error)"])
            sink.discard()
            machine.deliveryFinished()
            resolved = []
            if !closed { write(SMTPReply(451, "4.3.0", "Temporary failure, try again later", isClientFault: false), context: context) }
        }
        if !closed { process(context: context) }
    }

    private func envelopeRecipient(_ r: AcceptedRecipient) -> StoredEnvelope.Recipient {
        var notify: [String]?
        if let n = r.parameters.notify {
            notify = r.parameters.notifyNever ? ["NEVER"]
                : [(DSNNotify.success, "SUCCESS"), (.failure, "FAILURE"), (.delay, "DELAY")].filter { n.contains($0.0) }.map(\.1)
        }
        return StoredEnvelope.Recipient(address: r.address.description, notify: notify, originalRecipient: r.parameters.originalRecipient)
    }

    private func delivered(_ result: Result<(DeliveryReceipt, Int), Error>, id: String, from: String, recipients: Int,
                           context: ChannelHandlerContext) {
        busy = false
        machine.deliveryFinished()
        defer { resolved = [] }
        switch result {
        case .success(let (receipt, size)):
            logger.info("delivered", metadata: ["msg": "\(id)", "from": "\(from)", "rcpts": "\(recipients)", "size": "\(size)",
                                                "stored": "\(receipt.messageID)"])
            if !closed {
                let queued = resolved.contains { if case .remote = $0 { return true } else { return false } }
                write(SMTPReply(250, "2.0.0", queued ? "Ok: queued as \(id)" : "Ok: stored as \(id)"), context: context)
            }
        case .failure(let refusal as SMTPReply):
            // Refused by the checks (DMARC policy, spam score).
            logger.notice("message refused", metadata: ["msg": "\(id)", "from": "\(from)", "reply": "\(refusal)"])
            if !closed { write(refusal, context: context) }
        case .failure(let error):
            logger.error("delivery failed", metadata: ["msg": "\(id)", "error": "\(error)"])
            let reply: SMTPReply
            if let posix = error as? FileSystemError, posix.code == ENOSPC || posix.code == EDQUOT {
                reply = SMTPReply(452, "4.3.1", "Insufficient system storage", isClientFault: false)
            } else {
                reply = SMTPReply(451, "4.3.0", "Temporary failure storing the message, try again later", isClientFault: false)
            }
            if !closed { write(reply, context: context) }
        }
        if !closed { process(context: context) }
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

    private func armTimeout(context: ChannelHandlerContext) {
        timeout?.cancel()
        let limits = server.config.limits
        let duration = framer.mode == .command ? limits.commandTimeout : limits.dataTimeout
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: duration.timeAmount) {
            let (handler, context) = bound.value
            guard !handler.closed else { return }
            if handler.busy { handler.armTimeout(context: context); return }
            handler.logger.info("timeout")
            // RFC 5321 §4.5.3.2: on timeout the server closes with 421.
            handler.replyAndClose(SMTPReply(421, "4.4.2", "\(handler.server.config.hostname) Error: timeout exceeded"), context: context)
        }
    }
}

struct MailboxFull: Error {}

extension SASLStep {
    /// The same success under the account's canonical address.
    func withUser(_ user: String) -> SASLStep {
        if case .success = self { return .success(user: user) }
        return self
    }
}

/// Hands a non-Sendable value to exactly one other thread; the handler never touches it meanwhile.
struct UnsafeTransfer<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
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
