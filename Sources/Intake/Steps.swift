import Foundation
import MailCore
import MailStore

// The intake pipeline's steps as values. Every message Tern takes in goes through the same five:
//
//   recipients (RecipientPolicy) -> routing (RoutingPlan) -> preparation (Prepared: submission's fields and
//   signatures, or the port-25 verdict) -> one durable commit (IntakeCommit) -> the reply (IntakeOutcome.reply)
//
// Each step's result is plain data, so a test builds one, runs a step and looks at what came out, with no server.

/// Where a message came in: decides who may send where, and how the message is prepared.
public enum IntakeSource: Sendable, Hashable {
    /// Port 25, from another server: local recipients only; checked (SPF, DKIM, DMARC, spam) when checks are on.
    case mx
    /// Port 25 from a client in `relay.networks`: may relay, and its mail is treated as submitted.
    case relayClient
    /// Submission (587/465) after AUTH as this account.
    case submission(AccountID)
    /// A program on this host (`tern sendmail`), named for the Received field and the delivery log.
    case sendmail(origin: String)

    /// Prepared as submitted mail (Message-ID, Date, DKIM signatures; no Return-Path) rather than checked.
    public var takesSubmittedMail: Bool {
        if case .mx = self { return false }
        return true
    }

    /// May name recipients at domains Tern does not serve.
    public var mayRelay: Bool { takesSubmittedMail }
}

/// Where one accepted recipient's copy goes.
public enum RecipientRoute: Sendable, Hashable {
    /// Into these accounts' mailboxes.
    case local([AccountID])
    /// Into the outbound queue.
    case remote
    /// The mail tester (check@): the sender gets a report, nothing is stored for this recipient.
    case tester
    /// The tester's report for this recipient is committed.
    case reported

    public var isTester: Bool { self == .tester }
    public var isTesterOrReported: Bool { self == .tester || self == .reported }
}

/// The answer to one recipient: where it goes, or the reply that refuses it.
public enum RecipientDecision: Sendable, Equatable {
    case accept(RecipientRoute)
    case refuse(SMTPReply)
}

/// Step 1, recipients: what a resolution means for a message from a given source (pure).
public struct RecipientPolicy: Sendable {
    /// Recipients at other domains are taken (authenticated submission, relay networks, local programs).
    public var mayRelay: Bool
    /// The mail tester's local part at every local domain; nil: no tester on this path.
    public var testerLocalPart: String?

    public init(mayRelay: Bool, testerLocalPart: String? = nil) {
        self.mayRelay = mayRelay
        self.testerLocalPart = testerLocalPart.flatMap { $0.isEmpty ? nil : $0.lowercased() }
    }

    /// The decision for `address` given what the directory said (or the error it gave).
    public func decide(_ address: EmailAddress, _ resolution: Result<RecipientResolution, Error>) -> RecipientDecision {
        switch resolution {
        case .success(.local(let accounts)):
            return .accept(.local(accounts))
        case .success(.notOurDomain) where mayRelay:
            return .accept(.remote)
        case .success(.unknownUser) where testerLocalPart != nil && address.localPart.lowercased() == testerLocalPart:
            return .accept(.tester)
        case .success(.unknownUser):
            return .refuse(SMTPReply(550, "5.1.1", "<\(address)>: Recipient address rejected: User unknown"))
        case .success(.notOurDomain):
            return .refuse(SMTPReply(550, "5.7.1", "<\(address)>: Relay access denied"))
        case .failure(is MailboxFull):
            // RFC 3463 4.2.2: a temporary failure, so the sender retries once space is freed.
            return .refuse(SMTPReply(452, "4.2.2", "<\(address)>: Mailbox full", isClientFault: false))
        case .failure:
            return .refuse(SMTPReply(451, "4.3.0", "Temporary lookup failure, try again later", isClientFault: false))
        }
    }
}

/// A recipient's account is over its quota.
public struct MailboxFull: Error {}

/// The envelope as the client gave it (reverse path, recipients with their DSN parameters, ENVID, RET, BODY,
/// SMTPUTF8): the same plain data the store keeps with the message.
public typealias IntakeEnvelope = StoredEnvelope

/// Step 2, routing: from the accepted recipients' routes to the mailboxes a commit writes and the recipients it queues
/// (pure). A recipient reaching an account twice (an alias and the address itself) stores one copy.
public struct RoutingPlan: Sendable, Hashable {
    /// One per account, in the order recipients named them.
    public var targets: [DeliveryTarget]
    /// Recipients for the outbound queue, with their DSN parameters.
    public var remote: [StoredEnvelope.Recipient]
    /// Local recipients that asked for NOTIFY=SUCCESS (and a sender to tell): the commit queues their "delivered"
    /// notice (RFC 3461 §5.2.1).
    public var deliveredNotices: [StoredEnvelope.Recipient]
    /// The envelope kept with the message: every recipient but the tester's.
    public var envelope: StoredEnvelope
    /// For the delivery log: the addresses stored here and those queued.
    public var localAddresses: [String]
    /// The accounts each of `localAddresses` reaches.
    public var localAccounts: [[AccountID]]
    public var remoteAddresses: [String] { remote.map(\.address) }
    /// The first recipient that is the mail tester, if any.
    public var testerAddress: String?
    /// Recipients that are not the tester (or whose tester report is done).
    public var hasOtherRecipients: Bool

    public init(envelope e: IntakeEnvelope, routes: [RecipientRoute]) {
        precondition(e.recipients.count == routes.count, "one route per recipient")
        var targets: [DeliveryTarget] = [], remote: [StoredEnvelope.Recipient] = [], local: [String] = []
        var localAccounts: [[AccountID]] = []
        var notices: [StoredEnvelope.Recipient] = []
        var tester: String?
        for (r, route) in zip(e.recipients, routes) {
            switch route {
            case .local(let accounts):
                local.append(r.address)
                localAccounts.append(accounts)
                if !e.mailFrom.isEmpty, r.notify?.contains("SUCCESS") == true { notices.append(r) }
                for a in accounts where !targets.contains(where: { $0.account == a }) { targets.append(DeliveryTarget(account: a)) }
            case .remote:
                remote.append(r)
            case .tester:
                if tester == nil { tester = r.address }
            case .reported:
                continue
            }
        }
        self.targets = targets
        self.remote = remote
        deliveredNotices = notices
        localAddresses = local
        self.localAccounts = localAccounts
        testerAddress = tester
        hasOtherRecipients = routes.contains { !$0.isTesterOrReported }
        envelope = StoredEnvelope(mailFrom: e.mailFrom,
                                  recipients: zip(e.recipients, routes).filter { !$0.1.isTesterOrReported }.map(\.0),
                                  envelopeID: e.envelopeID, dsnReturn: e.dsnReturn, body: e.body, smtputf8: e.smtputf8)
    }

    /// Every copy goes to the account's Junk mailbox instead of INBOX (the checks' verdict).
    public func intoJunk() -> RoutingPlan {
        var plan = self
        plan.targets = targets.map { DeliveryTarget(account: $0.account, specialUse: .junk) }
        return plan
    }
}

/// Step 3, preparation: the content as it will be stored, and what the checks found.
public struct Prepared: Sendable {
    public var content: MessageContent
    /// The Message-ID field's value, for the delivery log (nil when not logging or when there is none).
    public var messageID: String?
    /// The checks' one-line summary (port 25 with checks), for the delivery log.
    public var checked: String?
    /// The checks sent it to Junk.
    public var junk: Bool
    /// The spam score as a percentage (the junk threshold is 50), for Sieve's spamtest; nil: not scored.
    public var spamPercent: Int?

    public init(content: MessageContent, messageID: String?, checked: String? = nil, junk: Bool = false) {
        self.content = content
        self.messageID = messageID
        self.checked = checked
        self.junk = junk
    }
}

/// Step 4, the commit: one `Delivery` (stored for local recipients, queued for the others, the delivery log's lines),
/// written in one transaction (pure: running it is `MailStore.deliver`).
public enum IntakeCommit {
    /// `received`: the delivery log's "received" line; nil when the log is off.
    public static func delivery(plan: RoutingPlan, prepared: Prepared, queueID: String, now: Date, received: String?) -> Delivery {
        let targets = prepared.junk ? plan.intoJunk().targets : plan.targets
        let log = received.map {
            DeliveryLogEvents.receipt(id: queueID, messageID: prepared.messageID, received: $0, checked: prepared.checked,
                                      local: plan.localAddresses, remote: plan.remoteAddresses, junk: prepared.junk, at: now)
        } ?? []
        var delivery = Delivery(content: prepared.content, envelope: plan.envelope, targets: targets, internalDate: now,
                                remoteRecipients: plan.remote, queueID: queueID, log: log)
        delivery.deliveredNotices = plan.deliveredNotices
        return delivery
    }
}

/// Step 5, what came of it, and the reply that says so.
public enum IntakeOutcome: Sendable {
    /// Committed: stored for the local recipients, queued for the others.
    case committed(DeliveryReceipt, queueID: String, size: Int, queued: Bool)
    /// Only the mail tester was named: its report is committed; `text` says what was done.
    case tested(String)
    /// Refused by the checks (DMARC policy, spam score): nothing stored.
    case refused(SMTPReply)
    /// Not stored: the sender should try again.
    case failed(Error)

    /// RFC 5321's reply for it. A 250 is only ever given for a committed message (or a committed tester report).
    public var reply: SMTPReply {
        switch self {
        case .committed(_, let id, _, let queued):
            return SMTPReply(250, "2.0.0", queued ? "Ok: queued as \(id)" : "Ok: stored as \(id)")
        case .tested(let text):
            return SMTPReply(250, "2.0.0", "Ok: \(text)")
        case .refused(let reply):
            return reply
        case .failed(let error):
            if let e = error as? FileSystemError, e.code == ENOSPC || e.code == EDQUOT {
                return SMTPReply(452, "4.3.1", "Insufficient system storage", isClientFault: false)
            }
            return SMTPReply(451, "4.3.0", "Temporary failure storing the message, try again later", isClientFault: false)
        }
    }
}

/// Where the pipeline runs its blocking work (file reads and fsyncs, signing): a thread pool in the server, the
/// calling thread in a command-line tool.
public protocol BlockingWork: Sendable {
    /// Runs `body` on a worker; `body` gets false when the pool is shutting down (it must then not do the work).
    func submit(_ body: @escaping @Sendable (_ active: Bool) -> Void)
}

extension BlockingWork {
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { active in
                guard active else { return continuation.resume(throwing: CancellationError()) }
                continuation.resume(with: Result { try body() })
            }
        }
    }
}

/// Runs blocking work right away on the calling thread (command-line tools, tests).
public struct InlineWork: BlockingWork {
    public init() {}
    public func submit(_ body: @escaping @Sendable (Bool) -> Void) { body(true) }
}
