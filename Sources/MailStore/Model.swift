import Foundation
import MailCore

public typealias AccountID = Int64
public typealias MailboxID = Int64
public typealias MessageID = Int64

/// A message's place in a mailbox (RFC 9051 §2.3.1.1): strictly ascending, never reused while UIDVALIDITY stands.
public struct UID: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ v: UInt32) { rawValue = v }
    public static func < (a: UID, b: UID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}

/// RFC 9051 §2.3.1.1: a mailbox's UIDVALIDITY; it changes only if UIDs of the mailbox are reassigned.
public struct UIDValidity: RawRepresentable, Hashable, Sendable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

/// RFC 7162 §3.1: a modification sequence, per mailbox, growing with every change.
public struct ModSeq: RawRepresentable, Hashable, Comparable, Sendable, Codable {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public static func < (a: ModSeq, b: ModSeq) -> Bool { a.rawValue < b.rawValue }
}

/// The system flags of RFC 9051 §2.3.2, stored as a bit set; keywords are kept separately.
public struct MessageFlags: OptionSet, Hashable, Sendable, Codable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public static let seen = MessageFlags(rawValue: 1)
    public static let answered = MessageFlags(rawValue: 2)
    public static let flagged = MessageFlags(rawValue: 4)
    public static let deleted = MessageFlags(rawValue: 8)
    public static let draft = MessageFlags(rawValue: 16)
}

/// RFC 6154 special-use roles.
public enum SpecialUse: String, CaseIterable, Sendable, Codable {
    case sent = "\\Sent"
    case drafts = "\\Drafts"
    case trash = "\\Trash"
    case junk = "\\Junk"
    case archive = "\\Archive"

    /// The mailbox name created for each role with a new account.
    public var defaultName: String {
        switch self {
        case .sent: return "Sent"
        case .drafts: return "Drafts"
        case .trash: return "Trash"
        case .junk: return "Junk"
        case .archive: return "Archive"
        }
    }
}

public struct DomainInfo: Sendable, Hashable, Codable {
    public var name: String
    public var created: Date
    public var accounts: Int
    public var aliases: Int
    public init(name: String, created: Date, accounts: Int, aliases: Int) {
        self.name = name
        self.created = created
        self.accounts = accounts
        self.aliases = aliases
    }
}

public struct AccountInfo: Sendable, Hashable, Codable {
    public var id: AccountID
    public var address: String
    public var created: Date
    public var messages: Int
    public var bytes: Int64
    public init(id: AccountID, address: String, created: Date, messages: Int, bytes: Int64) {
        self.id = id
        self.address = address
        self.created = created
        self.messages = messages
        self.bytes = bytes
    }
}

public struct AliasInfo: Sendable, Hashable, Codable {
    /// `local@domain`, or `@domain` for a catch-all.
    public var source: String
    public var targets: [String]
    public init(source: String, targets: [String]) {
        self.source = source
        self.targets = targets
    }
}

public struct MailboxInfo: Sendable, Hashable {
    public var id: MailboxID
    public var name: String
    public var specialUse: SpecialUse?
    public var uidValidity: UIDValidity
    public var uidNext: UID
    public var highestModSeq: ModSeq
    public var messages: Int
    public init(id: MailboxID, name: String, specialUse: SpecialUse?, uidValidity: UIDValidity, uidNext: UID, highestModSeq: ModSeq, messages: Int) {
        self.id = id
        self.name = name
        self.specialUse = specialUse
        self.uidValidity = uidValidity
        self.uidNext = uidNext
        self.highestModSeq = highestModSeq
        self.messages = messages
    }
}

/// Where a recipient address leads.
public enum RecipientResolution: Sendable, Hashable {
    /// Delivered into these accounts' INBOXes.
    case local([AccountID])
    /// The domain is ours but nobody has this address.
    case unknownUser
    /// Tern does not serve this domain.
    case notOurDomain
}

/// The SMTP envelope kept with a stored message (DSN parameters among it, RFC 3461).
public struct StoredEnvelope: Sendable, Hashable, Codable {
    public struct Recipient: Sendable, Hashable, Codable {
        public var address: String
        public var notify: [String]?
        public var originalRecipient: String?
        public init(address: String, notify: [String]? = nil, originalRecipient: String? = nil) {
            self.address = address
            self.notify = notify
            self.originalRecipient = originalRecipient
        }
    }
    public var mailFrom: String
    public var recipients: [Recipient]
    public var envelopeID: String?
    public var dsnReturn: String?
    public var body: String?
    public var smtputf8: Bool
    public init(mailFrom: String, recipients: [Recipient], envelopeID: String? = nil, dsnReturn: String? = nil,
                body: String? = nil, smtputf8: Bool = false) {
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.envelopeID = envelopeID
        self.dsnReturn = dsnReturn
        self.body = body
        self.smtputf8 = smtputf8
    }
}

/// Message content ready to be committed.
public enum MessageContent: Sendable {
    /// Small messages: the bytes themselves, stored inline in the database.
    case inline([UInt8])
    /// Large messages: a file already written and fsync'd by `BlobStore.write`, named by its blob key.
    case blob(key: String, size: Int)

    public var size: Int {
        switch self {
        case .inline(let b): return b.count
        case .blob(_, let size): return size
        }
    }
}

/// One message for one or more local mailboxes: stored once, referenced by each.
public struct Delivery: Sendable {
    public var content: MessageContent
    public var envelope: StoredEnvelope
    /// Destination mailboxes: each account's INBOX unless a mailbox is named.
    public var targets: [DeliveryTarget]
    public var internalDate: Date
    public var flags: MessageFlags
    public var keywords: [String]
    /// Recipients elsewhere: the message also enters the outbound queue under `queueID`, in the same commit.
    public var remoteRecipients: [StoredEnvelope.Recipient]
    /// Local recipients stored by this commit that asked for NOTIFY=SUCCESS (RFC 3461): they enter the queue as
    /// already delivered, in the same commit, and the queue sends the sender the "delivered" notice.
    public var deliveredNotices: [StoredEnvelope.Recipient] = []
    /// The message enters the outbound queue.
    public var isQueued: Bool { !remoteRecipients.isEmpty || !deliveredNotices.isEmpty }
    public var queueID: String
    /// Delivery-log lines written in the same commit.
    public var log: [DeliveryEvent]

    public init(content: MessageContent, envelope: StoredEnvelope, targets: [DeliveryTarget], internalDate: Date,
                flags: MessageFlags = [], keywords: [String] = [], remoteRecipients: [StoredEnvelope.Recipient] = [], queueID: String = "",
                log: [DeliveryEvent] = []) {
        self.log = log
        self.remoteRecipients = remoteRecipients
        self.queueID = queueID
        self.content = content
        self.envelope = envelope
        self.targets = targets
        self.internalDate = internalDate
        self.flags = flags
        self.keywords = keywords
    }
}

public struct DeliveryTarget: Sendable, Hashable {
    public var account: AccountID
    /// nil: INBOX.
    public var mailbox: String?
    /// When set, the account's mailbox with this special use (RFC 6154), whatever its name; INBOX when it has none.
    public var specialUse: SpecialUse?
    /// The flags and keywords this copy gets; nil: the delivery's (a Sieve script's imap4flags set them per mailbox).
    public var flags: MessageFlags?
    public var keywords: [String]?
    public init(account: AccountID, mailbox: String? = nil, specialUse: SpecialUse? = nil, flags: MessageFlags? = nil,
                keywords: [String]? = nil) {
        self.account = account
        self.mailbox = mailbox
        self.specialUse = specialUse
        self.flags = flags
        self.keywords = keywords
    }
}

public struct DeliveryReceipt: Sendable {
    public var messageID: MessageID
    public var placements: [(mailbox: MailboxID, uid: UID)]
    public init(messageID: MessageID, placements: [(mailbox: MailboxID, uid: UID)]) {
        self.messageID = messageID
        self.placements = placements
    }
}

/// A stored message as read back (for export, POP3, IMAP).
public struct StoredMessage: Sendable {
    public var mailbox: MailboxID
    public var uid: UID
    public var messageID: MessageID
    public var size: Int
    public var internalDate: Date
    public var flags: MessageFlags
    public var keywords: [String]
    public var modSeq: ModSeq
    /// When the message was saved into this mailbox (RFC 8514): delivery, APPEND, COPY or MOVE.
    public var savedDate: Date
    public init(mailbox: MailboxID, uid: UID, messageID: MessageID, size: Int, internalDate: Date, flags: MessageFlags, keywords: [String], modSeq: ModSeq,
                savedDate: Date? = nil) {
        self.savedDate = savedDate ?? internalDate
        self.mailbox = mailbox
        self.uid = uid
        self.messageID = messageID
        self.size = size
        self.internalDate = internalDate
        self.flags = flags
        self.keywords = keywords
        self.modSeq = modSeq
    }
}

public enum StoreError: Error, Equatable, CustomStringConvertible {
    case notFound(String)
    case alreadyExists(String)
    case invalid(String)
    case schemaTooNew(found: Int, supported: Int)

    public var description: String {
        switch self {
        case .notFound(let s): return "\(s) not found"
        case .alreadyExists(let s): return "\(s) already exists"
        case .invalid(let s): return s
        case .schemaTooNew(let found, let supported):
            return "the database has schema version \(found), but this tern supports up to \(supported): upgrade tern"
        }
    }
}

/// A copy that was to take every message it named found some of them expunged meanwhile, and copied nothing.
public struct MessagesExpunged: Error, Equatable {
    public var uids: [UID]
    public init(_ uids: [UID]) { self.uids = uids }
}

/// The store cannot be reached or did not answer in time (a database server down, failing over or overloaded): a
/// passing condition. Protocols answer it as such (SMTP 451 4.3.0, IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP]) and
/// the client tries again later; nothing is accepted that was not stored.
public struct StoreUnavailable: Error, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "the mail store is unavailable: \(reason)" }
}
