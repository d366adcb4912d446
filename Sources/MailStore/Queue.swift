import Foundation

/// One recipient of a queued message and where its delivery stands.
public struct QueuedRecipient: Sendable, Hashable {
    public enum Status: Int, Sendable, Codable {
        case pending = 0, delivered = 1, failed = 2
    }
    public var id: Int64
    public var address: String
    /// The lower-case domain, the unit of routing: recipients of one domain travel in one SMTP transaction.
    public var domain: String
    /// RFC 3461 NOTIFY values (nil: the default, FAILURE only).
    public var notify: [String]?
    public var originalRecipient: String?
    public var status: Status
    public var attempts: Int
    public var nextAttempt: Date
    public var lastAttempt: Date?
    /// The last reply from a remote server, or why no server could be reached.
    public var lastReply: String?
    public var remoteHost: String?

    public init(id: Int64, address: String, domain: String, notify: [String]?, originalRecipient: String?, status: Status, attempts: Int,
                nextAttempt: Date, lastAttempt: Date?, lastReply: String?, remoteHost: String?) {
        self.id = id
        self.address = address
        self.domain = domain
        self.notify = notify
        self.originalRecipient = originalRecipient
        self.status = status
        self.attempts = attempts
        self.nextAttempt = nextAttempt
        self.lastAttempt = lastAttempt
        self.lastReply = lastReply
        self.remoteHost = remoteHost
    }
}

/// A message in the outbound queue: its content is a stored message, shared with any local copies.
public struct QueuedMessage: Sendable {
    public var id: Int64
    /// The id shown in logs, Received headers and `tern queue`.
    public var queueID: String
    public var messageID: MessageID
    public var size: Int
    public var envelope: StoredEnvelope
    public var created: Date
    public var delayNotified: Bool
    public var recipients: [QueuedRecipient]
    /// The content, when the store had it at hand (small messages): saves a read per delivery.
    public var content: [UInt8]?

    public init(id: Int64, queueID: String, messageID: MessageID, size: Int, envelope: StoredEnvelope, created: Date,
                delayNotified: Bool, recipients: [QueuedRecipient], content: [UInt8]? = nil) {
        self.content = content
        self.id = id
        self.queueID = queueID
        self.messageID = messageID
        self.size = size
        self.envelope = envelope
        self.created = created
        self.delayNotified = delayNotified
        self.recipients = recipients
    }

    public var pending: [QueuedRecipient] { recipients.filter { $0.status == .pending } }
    public var isFinished: Bool { !recipients.contains { $0.status == .pending } }
}

/// What one delivery attempt came to for one recipient.
public struct DeliveryAttempt: Sendable {
    public enum Outcome: Sendable, Equatable {
        case delivered
        case failed
        /// Try again at this time.
        case deferred(until: Date)

        /// The recipient's status after this outcome, and when it is next due (`now` for a final result).
        public func recorded(now: Double) -> (status: QueuedRecipient.Status, next: Double) {
            switch self {
            case .delivered: (.delivered, now)
            case .failed: (.failed, now)
            case .deferred(let until): (.pending, until.timeIntervalSince1970)
            }
        }
    }

    public var recipientID: Int64
    public var outcome: Outcome
    public var reply: String
    public var remoteHost: String?
    /// The delivery-log line for this attempt, written with its result.
    public var event: DeliveryEvent?
    /// The next hop took the recipient with its DSN request (it offered DSN, RFC 3461 §5.2.2): notices about it are
    /// that server's to send from now on, so its NOTIFY is cleared here.
    public var notifyPassedOn: Bool
    public init(recipientID: Int64, outcome: Outcome, reply: String, remoteHost: String?, event: DeliveryEvent? = nil,
                notifyPassedOn: Bool = false) {
        self.event = event
        self.notifyPassedOn = notifyPassedOn
        self.recipientID = recipientID
        self.outcome = outcome
        self.reply = reply
        self.remoteHost = remoteHost
    }
}

/// How long a queue runner holds the recipients it took for delivery (`QueueStore.queuedMessages(dueBy:...)`): longer
/// than any delivery attempt may take (RFC 5321 §4.5.3.2 allows 10 minutes for the end of DATA alone). The default;
/// a store is opened with the config's `delivery.lease`.
public enum QueueLease {
    public static let duration: TimeInterval = 15 * 60

    /// A scanned message as its scanner may see it: due are only the recipients this scan leased (`mine`); any other
    /// pending recipient due by `dueBy` is held elsewhere and shows its lease's end (known, or a full lease from now).
    public static func showing(_ message: QueuedMessage, dueBy: Date, mine: Set<Int64>, elsewhere: [Int64: Double],
                               duration: TimeInterval) -> QueuedMessage {
        var m = message
        for i in m.recipients.indices where m.recipients[i].status == .pending && m.recipients[i].nextAttempt <= dueBy
            && !mine.contains(m.recipients[i].id) {
            m.recipients[i].nextAttempt = elsewhere[m.recipients[i].id].map { Date(timeIntervalSince1970: $0) } ?? dueBy.addingTimeInterval(duration)
        }
        return m
    }
}

/// The outbound queue: messages accepted for remote recipients, kept until each recipient has a final result.
/// Messages enter it through `deliver` (a `Delivery` with remote recipients), in the same commit as any local copies.
public protocol QueueStore: Sendable {
    /// Queued messages (row id above `after`) with a pending recipient due by `dueBy`, or with no pending recipient left
    /// (finished but not yet removed, as after a crash), with small contents at hand for delivery; every queued message
    /// (without contents: a listing) when `dueBy` is nil. In row order.
    ///
    /// With `dueBy`, the due recipients returned are leased to the caller until `dueBy` + the store's lease: no
    /// other call (another queue runner, another node) gets them until then, or until `recordAttempts` records their
    /// result. In what other calls get, a recipient leased elsewhere shows its lease's end as its next attempt. A
    /// runner that dies mid-delivery leaves its lease to expire, and then another runner takes the recipient over.
    func queuedMessages(dueBy: Date?, after: Int64, limit: Int) async throws -> [QueuedMessage]
    func queuedMessage(queueID: String) async throws -> QueuedMessage?
    /// Records attempts' results (attempt counts, last reply, next try or final status) for recipients of one queued
    /// message. When that leaves the message with no pending recipient: if all were delivered it is removed in the same
    /// transaction and nil returned; if some failed it is returned, for `completeQueued` with a bounce.
    func recordAttempts(_ attempts: [DeliveryAttempt], completing message: Int64) async throws -> QueuedMessage?
    /// Removes a message whose recipients all have a final result; `notification` (a bounce) is stored in the same
    /// transaction, so a crash leaves either the queued message or the bounce, never neither (and never both: the
    /// notification is stored only if the message was still queued).
    func completeQueued(id: Int64, notification: Delivery?) async throws
    /// Stores a delay notice and marks the message as notified, in one transaction.
    func noteDelay(id: Int64, notification: Delivery) async throws
    /// Makes pending recipients due now (all messages when `queueID` is nil); returns how many messages.
    func retryQueued(queueID: String?) async throws -> Int
    /// Drops a queued message without notifying anyone; false when there is none.
    func deleteQueued(queueID: String) async throws -> Bool
    /// Gives back leased recipients the caller took but will not try now (they are due again at once for any runner).
    func releaseLeases(_ recipientIDs: [Int64]) async throws
    /// Holds the caller's leased recipients until `until` (a runner whose work outlasts a lease keeps what it took);
    /// returns those still its own (not finished, not taken over by another runner after the lease ran out).
    func renewLeases(_ recipientIDs: [Int64], until: Date) async throws -> [Int64]
    /// How long a scan holds the recipients it takes (`delivery.lease`).
    var queueLease: TimeInterval { get }
    /// When the earliest pending recipient is due (for a leased one: when its lease ends).
    func nextQueueAttempt() async throws -> Date?
    /// Called after a commit that added to the queue (in this process).
    func observeQueue(_ observer: @escaping @Sendable () -> Void)
}

/// A stored DKIM private key.
public struct DKIMKeyRecord: Sendable, Hashable {
    public var domain: String
    public var selector: String
    /// `rsa-sha256` or `ed25519-sha256`.
    public var algorithm: String
    /// PEM.
    public var privateKey: String
    public var created: Date
    public init(domain: String, selector: String, algorithm: String, privateKey: String, created: Date) {
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        self.privateKey = privateKey
        self.created = created
    }
}

public protocol DKIMKeyStore: Sendable {
    func addDKIMKey(_ key: DKIMKeyRecord) async throws
    /// Keys of a domain (every domain's when nil), newest first.
    func dkimKeys(domain: String?) async throws -> [DKIMKeyRecord]
    func removeDKIMKey(domain: String, selector: String) async throws
}

/// Token counts of the Bayesian spam filter: one set per account and a global one (owner nil), each with the number of
/// messages trained as spam and as ham. Tokens are 64-bit hashes (the filter's business, not the store's).
public protocol BayesStore: Sendable {
    /// Trains one message's tokens as spam or ham for `owner` (nil: global). `key` names the message (its stored id, or
    /// a hash of a file's content) so that training it twice the same way changes nothing, and training it the other
    /// way moves its counts over. Returns whether anything changed.
    func trainBayes(owner: AccountID?, key: String, tokens: [Int64], spam: Bool) async throws -> Bool
    /// The counts of `tokens` and the trained totals, for `owner` plus the global ones added together.
    func bayesCounts(owner: AccountID?, tokens: [Int64]) async throws -> BayesCounts
    /// How the message `key` was trained for `owner` (nil: global): true spam, false ham, nil not at all.
    func bayesTraining(owner: AccountID?, key: String) async throws -> Bool?
}

public struct BayesCounts: Sendable {
    public var tokens: [Int64: (spam: Int, ham: Int)]
    public var spamMessages: Int
    public var hamMessages: Int
    public init(tokens: [Int64: (spam: Int, ham: Int)] = [:], spamMessages: Int = 0, hamMessages: Int = 0) {
        self.tokens = tokens
        self.spamMessages = spamMessages
        self.hamMessages = hamMessages
    }
}

/// One line of the delivery log: something that happened to a message at this server (received, checked, stored,
/// queued, each delivery attempt, bounced…). Written in the same transaction as the change it records; kept for
/// `log.delivery_retention`; read by `tern trace`.
public struct DeliveryEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case received, checked, refused, stored, queued, tested, delivered, deferred, failed, bounced, delayed, expired, deleted
        /// A success notice (NOTIFY=SUCCESS) was sent to the sender.
        case notified
        /// What a recipient's Sieve script did with the message (filed, redirected, discarded, or its error).
        case filtered
    }
    public var at: Date
    /// The id this server gave the message when it arrived (logs, Received field, queue).
    public var queueID: String
    /// The message's Message-ID field (on the `received` event), without angle brackets.
    public var messageID: String?
    public var kind: Kind
    public var detail: String
    /// For a message this server made about another (a bounce, a delay notice, a tester report): the other's queue id.
    public var related: String?

    public init(at: Date, queueID: String, messageID: String? = nil, kind: Kind, detail: String, related: String? = nil) {
        self.related = related
        self.at = at
        self.queueID = queueID
        self.messageID = messageID
        self.kind = kind
        self.detail = detail
    }
}

/// The delivery log's reading and upkeep (its lines are written with deliveries and attempts).
public protocol DeliveryLogStore: Sendable {
    /// Events on their own, outside any delivery (a message refused at the end of DATA, a tester report).
    func log(_ events: [DeliveryEvent]) async throws
    /// Every event of the messages with this queue id or this Message-ID (brackets optional), and of the messages made
    /// about them (bounces, notices, reports), oldest first.
    func deliveryLog(id: String) async throws -> [DeliveryEvent]
    /// Removes events older than `date`; returns how many.
    func pruneDeliveryLog(before date: Date) async throws -> Int
}
