import DKIM
import Foundation
import Logging
import MailCore
import MailMessage
import MailStore
import SieveDelivery
import Synchronization
import TernConfig

/// The SMTP client a message came from, as the port-25 checks and the mail tester need it.
public struct IntakeClient: Sendable {
    public var address: String
    public var helo: String
    /// What was learnt at connect (port 25 with checks on); nil: not checked.
    public var facts: ClientFacts?
    /// The SPF results of this transaction.
    public var spf: SenderSPF?

    public init(address: String, helo: String, facts: ClientFacts? = nil, spf: SenderSPF? = nil) {
        self.address = address
        self.helo = helo
        self.facts = facts
        self.spf = spf
    }
}

/// One received message on its way into the store: who sent it, the envelope, each recipient's route (step 1 done).
public struct IncomingMessage: Sendable {
    public var source: IntakeSource
    public var envelope: IntakeEnvelope
    /// One per envelope recipient, as `Intake.recipient` decided.
    public var routes: [RecipientRoute]
    public var queueID: String
    /// The time of arrival: INTERNALDATE, the delivery log's lines, the Date and Message-ID submission adds.
    public var arrived: Date
    public var client: IntakeClient?
    /// The delivery log's "received" line (who sent it, how); nil when the log is off.
    public var received: String?
    /// Octets of the Return-Path field at the start of the message (the checks' fields go below it).
    public var returnPathLength: Int
    public var logger: Logger

    public init(source: IntakeSource, envelope: IntakeEnvelope, routes: [RecipientRoute], queueID: String, arrived: Date,
                client: IntakeClient? = nil, received: String?, returnPathLength: Int = 0, logger: Logger) {
        self.source = source
        self.envelope = envelope
        self.routes = routes
        self.queueID = queueID
        self.arrived = arrived
        self.client = client
        self.received = received
        self.returnPathLength = returnPathLength
        self.logger = logger
    }
}

/// The intake pipeline: every message Tern takes in (SMTP on 25, submission, `tern sendmail`, the mail tester) goes
/// through `recipient` for each recipient and `receive` for the content, and so through the same checks, routing,
/// preparation and single commit. It does no network I/O and no blocking work on the caller's thread: file work and
/// signing run on `work`.
public final class Intake: Sendable {
    public let store: any MailStore
    public let config: TernConfiguration
    public let keyring: DKIMKeyring
    /// The port-25 checks (SPF, DKIM, DMARC, blocklists…); nil: none (the command line, tests of the bare protocol).
    public let checks: InboundChecks?
    /// The mail tester (check@ at every local domain), answered when `checks` is set.
    public let tester: MailTester
    public let work: any BlockingWork
    /// Each domain's postmaster fallback, with when it was looked up.
    private let postmasters = Mutex<[String: (AccountID?, Date)]>([:])
    /// Sieve scripts parsed once, by their text.
    let compiledScripts = CompiledScripts()
    /// The administrator's scripts around the users' (`sieve.scripts`, read at start), and why they could not be read.
    public let adminScripts: SieveAdminScripts
    public let adminScriptsProblem: (any Error)?

    public init(store: any MailStore, config: TernConfiguration, checks: InboundChecks?, work: any BlockingWork, logger: Logger) {
        self.store = store
        self.config = config
        self.checks = checks
        self.work = work
        keyring = DKIMKeyring(store: store, logger: logger)
        tester = MailTester(config: config)
        do {
            adminScripts = try SieveAdminScripts.load(config.sieveScripts)
            adminScriptsProblem = nil
        } catch {
            // `tern serve` refuses to start on this; elsewhere the scripts are left out, loudly.
            logger.error("cannot use the administrator's Sieve scripts", metadata: ["error": "\(error)"])
            adminScripts = SieveAdminScripts()
            adminScriptsProblem = error
        }
    }

    /// The recipient policy for messages from `source`.
    public func policy(for source: IntakeSource) -> RecipientPolicy {
        RecipientPolicy(mayRelay: source.mayRelay, testerLocalPart: checks != nil ? tester.localPart : nil)
    }

    // MARK: step 1, recipients

    /// The decision from the directory cache alone, when it has the answer and no quota must be read: answered on
    /// the caller's thread (greylisting, an in-memory table, included).
    public func cachedRecipient(_ address: EmailAddress, isPostmaster: Bool, policy: RecipientPolicy,
                                greylist: (client: ClientFacts, sender: String)? = nil) -> RecipientDecision? {
        guard config.limits.quota == 0, let cached = store.cachedResolution(address),
              !(isPostmaster && cached == .notOurDomain),
              !(cached == .unknownUser && address.localPart.lowercased() == "postmaster") else { return nil }
        let decision = policy.decide(address, .success(cached))
        guard case .accept(.local) = decision, let checks, let greylist else { return decision }
        guard let answer = checks.recipientWithoutWaiting(client: greylist.client, sender: greylist.sender,
                                                          recipient: address.description) else { return nil }
        return answer.refusal.map { .refuse($0) } ?? decision
    }

    private func greylisted(_ address: EmailAddress, _ decision: RecipientDecision,
                            _ greylist: (client: ClientFacts, sender: String)?) async -> RecipientDecision {
        if case .accept(.local) = decision, let checks, let greylist,
           let reply = await checks.recipient(client: greylist.client, sender: greylist.sender, recipient: address.description) {
            return .refuse(reply)
        }
        return decision
    }

    /// Resolves one recipient: the directory (aliases, catch-all, sub-addressing), `<Postmaster>` without a domain,
    /// the quota, then greylisting for port 25 (`client` with the sender).
    public func recipient(_ given: EmailAddress, isPostmaster: Bool, policy: RecipientPolicy,
                          greylist: (client: ClientFacts, sender: String)? = nil) async -> RecipientDecision {
        // "Postmaster" in any case is the postmaster (RFC 5321 §4.5.1), whatever case the directory keeps.
        let address = given.localPart.lowercased() == "postmaster" ? EmailAddress(localPart: "postmaster", domain: given.domain) : given
        let store = self.store, quota = Int64(config.limits.quota)
        let resolution: Result<RecipientResolution, Error>
        do {
            var r = try await store.resolve(address)
            var domain = address.domain
            // <Postmaster> without a domain (RFC 5321 §4.5.1): the postmaster of the first domain served here.
            if isPostmaster, r == .notOurDomain, let first = try await store.domains().first {
                domain = first.name
                r = try await store.resolve(EmailAddress(localPart: "postmaster", domain: first.name))
            }
            // RFC 5321 §4.5.1: postmaster@ every served domain takes mail, with or without an account of that name.
            if r == .unknownUser, address.localPart.lowercased() == "postmaster" { r = try await postmaster(of: domain) }
            if quota > 0, case .local(let accounts) = r {
                for account in accounts where try await store.usage(account: account) >= quota { throw MailboxFull() }
            }
            resolution = .success(r)
        } catch {
            resolution = .failure(error)
        }
        return await greylisted(address, policy.decide(address, resolution), greylist)
    }

    /// Where postmaster@`domain` goes when the domain has no account or alias of that name: the config's
    /// `postmaster`, or else the domain's oldest account (remembered for a minute: the lookup lists the accounts).
    private func postmaster(of domain: String) async throws -> RecipientResolution {
        if let configured = config.postmaster, case .local(let accounts) = try await store.resolve(configured) { return .local(accounts) }
        let now = store.clock.now
        if let (account, at) = postmasters.withLock({ $0[domain.lowercased()] }), now.timeIntervalSince(at) < 60 {
            return account.map { .local([$0]) } ?? .unknownUser
        }
        let oldest = try await store.accounts(domain: domain).min { ($0.created, $0.id) < ($1.created, $1.id) }?.id
        postmasters.withLock { table in
            if table.count > 10_000 { table.removeAll() }
            table[domain.lowercased()] = (oldest, now)
        }
        return oldest.map { .local([$0]) } ?? .unknownUser
    }

    // MARK: steps 2 to 5, the message

    enum IntakeFault: Error { case routesMismatch }

    /// More Received fields than this, and a message is refused as a loop.
    public static let maxHops = 100

    /// Takes the received message in: the tester's report (if check@ is a recipient), routing, preparation, the
    /// commit; `completion` gets the outcome (its `reply` is what the client is told). The sink is the pipeline's
    /// from here on: finished into the store or discarded.
    public func receive(_ message: IncomingMessage, sink: MessageSink, completion: @escaping @Sendable (IntakeOutcome) -> Void) {
        // One route per recipient, or the routing would be wrong: a fault of the caller, answered "try again", never a crash.
        guard message.envelope.recipients.count == message.routes.count else {
            sink.discard()
            message.logger.error("recipients and routes differ", metadata: ["msg": "\(message.queueID)", "recipients": "\(message.envelope.recipients.count)",
                                                                          "routes": "\(message.routes.count)"])
            return completion(.failed(IntakeFault.routesMismatch))
        }
        // RFC 5321 §6.3: counting Received fields finds a mail loop ("at least 100" before rejecting).
        if let head = try? sink.head(max: 64 << 10),
           RawHeader.fields(head[..<RawHeader.end(head)]).lazy.filter({ $0.name.lowercased() == "received" }).count > Self.maxHops {
            sink.discard()
            message.logger.notice("refused: too many hops", metadata: ["msg": "\(message.queueID)"])
            let reply = SMTPReply(554, "5.4.6", "Too many hops (over \(Self.maxHops) Received fields): a mail loop")
            guard message.received != nil else { return completion(.refused(reply)) }
            let store = self.store
            Task {
                try? await store.log([DeliveryEvent(at: message.arrived, queueID: message.queueID, kind: .refused,
                                                    detail: reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))])
                completion(.refused(reply))
            }
            return
        }
        let transfer = SinkTransfer(sink)
        let plan = RoutingPlan(envelope: message.envelope, routes: message.routes)
        guard let testerAddress = plan.testerAddress, let checks else {
            return commit(message, transfer, completion: completion)
        }
        Task {
            let text: String
            do {
                text = try await test(message, transfer, testerAddress: testerAddress, checks: checks)
            } catch {
                message.logger.error("mail tester failed", metadata: ["error": "\(error)"])
                transfer.sink.discard()
                return completion(.failed(error))
            }
            guard plan.hasOtherRecipients else {
                transfer.sink.discard()
                return completion(.tested(text))
            }
            var rest = message
            rest.routes = message.routes.map { $0.isTester ? .reported : $0 }
            commit(rest, transfer, completion: completion)
        }
    }

    /// Steps 2 to 4 for the recipients the message is stored or queued for.
    private func commit(_ m: IncomingMessage, _ transfer: SinkTransfer, completion: @escaping @Sendable (IntakeOutcome) -> Void) {
        let plan = RoutingPlan(envelope: m.envelope, routes: m.routes)
        let store = self.store, logging = m.received != nil
        let write: @Sendable (Prepared) -> Void = { [self] prepared in
            // Step 3b: the recipients' Sieve scripts, when any has one (known from the store's cache, usually).
            let base = prepared.junk ? plan.intoJunk().targets : plan.targets
            if !base.isEmpty, store.cachedActiveScripts(accounts: base.map(\.account))?.isEmpty != true
                || plan.localAddresses.contains(where: { adminScripts.applies(to: $0.split(separator: "@").last.map(String.init) ?? "") }) {
                Task { await commitFiltered(m, plan, prepared, base: base, completion: completion) }
                return
            }
            let delivery = IntakeCommit.delivery(plan: plan, prepared: prepared, queueID: m.queueID, now: m.arrived, received: m.received)
            store.deliver(delivery) { result in
                switch result {
                case .success(let receipt):
                    completion(.committed(receipt, queueID: m.queueID, size: prepared.content.size, queued: !plan.remote.isEmpty))
                case .failure(let error):
                    // Nothing references the file: remove it so a failed delivery leaves nothing behind.
                    if case .blob(let key, _) = prepared.content { store.blobs.remove(key) }
                    completion(.failed(error))
                }
            }
        }
        let failed: @Sendable (Error) -> Void = { error in
            transfer.sink.discard()
            completion(.failed(error))
        }
        if m.source == .mx, let checks, let client = m.client, let facts = client.facts, !facts.exempt {
            Task {
                do {
                    switch try await check(m, transfer, checks: checks, client: client, facts: facts, plan: plan) {
                    case .success(let prepared): write(prepared)
                    case .failure(let refusal): completion(.refused(refusal))
                    }
                } catch { failed(error) }
            }
        } else if m.source.takesSubmittedMail {
            // Message-ID, Date and DKIM signatures are added on the worker (signing and file copies block).
            let keyring = self.keyring, hostname = config.hostname, work = self.work
            Task {
                let keys = await keyring.current()
                work.submit { active in
                    guard active else { return failed(CancellationError()) }
                    do {
                        let p = try SubmissionPreparation.finish(transfer.sink, keys: keys, hostname: hostname, queueID: m.queueID,
                                                                 mailFrom: m.envelope.mailFrom, now: m.arrived, logger: m.logger)
                        write(Prepared(content: p.content, messageID: p.messageID))
                    } catch { failed(error) }
                }
            }
        } else if transfer.sink.isInMemory {
            // Small messages go straight to the store's writer: no file, no hop to a worker.
            do {
                let messageID = logging ? DeliveryLogEvents.messageID(head: try transfer.sink.head(max: 64 * 1024)) : nil
                write(Prepared(content: try transfer.sink.finish(), messageID: messageID))
            } catch { failed(error) }
        } else {
            // The spool file's fsync and rename block: they run on the worker.
            work.submit { active in
                guard active else { return failed(CancellationError()) }
                do {
                    let messageID = logging ? DeliveryLogEvents.messageID(head: try transfer.sink.head(max: 64 * 1024)) : nil
                    write(Prepared(content: try transfer.sink.finish(), messageID: messageID))
                } catch { failed(error) }
            }
        }
    }

    /// Step 3 on port 25 with checks: DKIM, DMARC and the spam score decide; the header is rewritten (fields from
    /// outside that claim results removed, Tern's own added below the Return-Path). A refusal is logged here.
    private func check(_ m: IncomingMessage, _ transfer: SinkTransfer, checks: InboundChecks, client: IntakeClient, facts: ClientFacts,
                       plan: RoutingPlan) async throws -> Result<Prepared, SMTPReply> {
        let read = try await work.run { try checks.read(transfer.sink) }
        var dkim = read.dkim
        let verdict = await checks.content(client: facts, spf: client.spf, helo: client.helo, mailFrom: m.envelope.mailFrom,
                                           head: read.head, fields: read.fields, dkim: &dkim, features: read.features, store: store,
                                           owner: plan.targets.count == 1 ? plan.targets[0].account : nil, now: checks.clock.now)
        m.logger.info("checked", metadata: ["msg": "\(m.queueID)", "result": "\(verdict.summary)"])
        let messageID = m.received != nil ? DeliveryLogEvents.messageID(read.fields.map(\.field)) : nil
        switch verdict.action {
        case .reject(let reply):
            transfer.sink.discard()
            if let received = m.received {
                // Received and checked (no recipient got it), then the refusal.
                let log = DeliveryLogEvents.receipt(id: m.queueID, messageID: messageID, received: received, checked: verdict.summary,
                                                    local: [], remote: [], junk: false, at: m.arrived)
                    + [DeliveryEvent(at: m.arrived, queueID: m.queueID, kind: .refused,
                                     detail: reply.encoded().trimmingCharacters(in: .whitespacesAndNewlines))]
                do { try await store.log(log) } catch { m.logger.error("cannot write the delivery log", metadata: ["error": "\(error)"]) }
            }
            return .failure(reply)
        case .junk, .accept:
            let at = m.returnPathLength
            let edits = verdict.removals.map { MessageEdit(range: $0, replacement: []) }
                + [MessageEdit(range: at..<at, replacement: Array(verdict.header.utf8))]
            let content = try await work.run { try transfer.sink.finish(editing: edits) }
            var prepared = Prepared(content: content, messageID: messageID, checked: verdict.summary, junk: verdict.action == .junk)
            if let spam = verdict.spam, checks.settings.junkScore > 0, spam.score.isFinite {
                prepared.spamPercent = Int((min(max(spam.score / (2 * checks.settings.junkScore), 0), 1) * 100).rounded())
            }
            return .success(prepared)
        }
    }

    /// The mail tester: the report goes to the sender, committed before the reply. Returns the reply's text.
    private func test(_ m: IncomingMessage, _ transfer: SinkTransfer, testerAddress: String, checks: InboundChecks) async throws -> String {
        let keys = await keyring.current()
        let hostname = config.hostname, id = m.queueID, mailFrom = m.envelope.mailFrom, logger = m.logger, now = m.arrived
        var bytes = try await work.run { try transfer.sink.head(max: Int.max) }
        if m.source.takesSubmittedMail {
            // Judged as it would leave: with the Message-ID, Date and DKIM signatures submission adds.
            bytes = try await work.run {
                try SubmissionPreparation.prefix(transfer.sink, keys: keys, hostname: hostname, queueID: id, mailFrom: mailFrom,
                                                 now: now, logger: logger).prefix
            } + bytes
        }
        return try await tester.respond(to: bytes, testerAddress: testerAddress, mailFrom: mailFrom, senderVerified: m.source != .mx,
                                        client: m.client?.address ?? "",
                                        helo: m.client?.helo ?? "", queueID: id, received: m.received, inbound: checks,
                                        store: store, keys: keys, logger: logger)
    }
}

/// A message's sink handed to the pipeline: from then on only the pipeline touches it, one step at a time.
struct SinkTransfer: @unchecked Sendable {
    let sink: MessageSink
    init(_ sink: MessageSink) { self.sink = sink }
}
