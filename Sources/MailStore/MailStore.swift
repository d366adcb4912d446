import Foundation
import Glibc
import MailCore

/// Domains, accounts and aliases: who receives mail here.
public protocol Directory: Sendable {
    func addDomain(_ name: String) async throws
    func removeDomain(_ name: String) async throws
    func domains() async throws -> [DomainInfo]

    /// Creates an account with its INBOX and special-use mailboxes.
    func addAccount(_ address: EmailAddress, password: String) async throws -> AccountID
    func removeAccount(_ address: EmailAddress) async throws
    func setPassword(_ address: EmailAddress, password: String) async throws
    func accounts(domain: String?) async throws -> [AccountInfo]
    func account(_ address: EmailAddress) async throws -> AccountID?
    /// Checks a password; nil when the account does not exist or the password is wrong.
    func verifyPassword(_ address: EmailAddress, password: String) async throws -> AccountID?
    /// The stored credentials (for SCRAM); nil when there is no such account.
    func credentials(_ address: EmailAddress) async throws -> (AccountID, PasswordHash)?

    /// `source` is `local@domain` or `@domain` (catch-all).
    func addAlias(_ source: String, targets: [EmailAddress]) async throws
    func removeAlias(_ source: String) async throws
    func aliases(domain: String?) async throws -> [AliasInfo]

    /// Resolves an address through aliases, sub-addressing (`user+tag`) and catch-alls.
    func resolve(_ address: EmailAddress) async throws -> RecipientResolution
    /// The resolution from an in-memory cache that is still valid, or nil (then call `resolve`).
    func cachedResolution(_ address: EmailAddress) -> RecipientResolution?

    /// The account when this password was verified recently and nothing in the directory changed since; nil means
    /// "call `verifyPassword`" (a cheap check that lets a login be answered without a thread hop).
    func cachedLogin(_ address: EmailAddress, password: String) -> AccountID?
}

extension Directory {
    public func cachedResolution(_ address: EmailAddress) -> RecipientResolution? { nil }
    public func cachedLogin(_ address: EmailAddress, password: String) -> AccountID? { nil }
}

extension MessageStore {
    /// The id of an account's mailbox by its name, without counting messages (COPY's target).
    public func mailboxID(account: AccountID, name: String) async throws -> MailboxID? {
        try await mailboxState(account: account, name: name)?.id
    }
}

/// Mailboxes and messages.
public protocol MessageStore: Sendable {
    /// Stores one message in every target mailbox with a single durable commit. Returns after the commit
    /// is on disk: a caller may then acknowledge the message (SMTP 250).
    func deliver(_ delivery: Delivery) async throws -> DeliveryReceipt
    /// Stores several messages in the given order (UIDs ascend in that order), with the same durability.
    func deliver(batch: [Delivery]) async throws -> [DeliveryReceipt]
    /// Stores all the messages or none, in one transaction (IMAP MULTIAPPEND, RFC 3502: "all or none").
    func deliverAll(_ batch: [Delivery]) async throws -> [DeliveryReceipt]
    /// The same as `deliver(_:)` for callers that are not in an async context (NIO handlers): `completion` runs
    /// on a store thread once the message is durable or has failed.
    func deliver(_ delivery: Delivery, completion: @escaping @Sendable (Result<DeliveryReceipt, Error>) -> Void)
    func mailboxes(account: AccountID) async throws -> [MailboxInfo]
    /// Creates a mailbox (no-op when it exists) and returns its id.
    func createMailbox(account: AccountID, name: String) async throws -> MailboxID
    func messages(mailbox: MailboxID) async throws -> [StoredMessage]
    /// A mailbox's id and state (no messages) by its name, in one read: what SELECT needs to know whether a view it
    /// holds is current.
    func mailboxState(account: AccountID, name: String) async throws -> (id: MailboxID, state: MailboxChanges)?
    /// A mailbox's state and what changed after `modSeq`, read in one transaction: every message when `modSeq` is nil.
    /// Every change to a mailbox raises its HIGHESTMODSEQ, so a caller holding the messages as of one modseq can bring
    /// them up to date from this delta alone (the shared IMAP mailbox view does).
    func mailboxChanges(mailbox: MailboxID, since modSeq: ModSeq?) async throws -> MailboxChanges
    func deleteMailbox(account: AccountID, name: String) async throws
    /// Octets stored in all of an account's mailboxes (a message in two mailboxes counts twice, as in Dovecot).
    func usage(account: AccountID) async throws -> Int64
    /// Renames a mailbox and its children (`a` → `b` renames `a/x` → `b/x`). Renaming INBOX moves its messages.
    func renameMailbox(account: AccountID, from: String, to: String) async throws
    func setSubscribed(account: AccountID, name: String, _ subscribed: Bool) async throws
    func subscriptions(account: AccountID) async throws -> [String]
    /// Changes flags and keywords of the given UIDs; returns the messages whose flags changed, with their new modseq.
    /// `unchangedSince` (CONDSTORE) leaves out messages modified after it and reports them in `failed`.
    func storeFlags(mailbox: MailboxID, uids: [UID], operation: FlagOperation, flags: MessageFlags, keywords: [String],
                    unchangedSince: ModSeq?) async throws -> (changed: [StoredMessage], failed: [UID])
    /// Removes messages from a mailbox (recorded for QRESYNC); returns the UIDs removed. With `onlyDeleted`, only those
    /// flagged \Deleted when it runs: IMAP's EXPUNGE and CLOSE name the messages their session last saw flagged, and
    /// another session may have cleared the flag since (RFC 9051 §6.4.3 removes only messages flagged \Deleted).
    func expunge(mailbox: MailboxID, uids: [UID], onlyDeleted: Bool) async throws -> [UID]
    /// Copies messages (the content is shared, not duplicated); with `move`, removes them from the source in the
    /// same transaction. Returns (source UID, new UID) pairs and the target's UIDVALIDITY (UIDPLUS, RFC 4315). UIDs no
    /// longer in the source are left out, or with `all` nothing is copied and `MessagesExpunged` names them (IMAP's
    /// COPY and MOVE of messages another session expunged: RFC 9051 §6.4.7 leaves the target as it was).
    func copy(from: MailboxID, uids: [UID], to: MailboxID, move: Bool, all: Bool) async throws -> (pairs: [(UID, UID)], uidValidity: UIDValidity)
    /// IMAP4rev1's \Recent (RFC 3501 §2.3.2): a message is recent to the first session that learns of it. Claims for
    /// the calling session every UID below `uidNext` that no session has claimed, and returns the first UID claimed
    /// (UIDs from it up to `uidNext` are this session's recent ones; it equals `uidNext` when none were left). With
    /// `claim` false (EXAMINE) it only tells, and the messages stay recent for the next session.
    func claimRecent(mailbox: MailboxID, below uidNext: UID, claim: Bool) async throws -> UID
    /// Messages no session has claimed as recent yet (STATUS RECENT).
    func unclaimedRecent(mailbox: MailboxID) async throws -> Int
    /// Messages' UIDs expunged after `modSeq` (QRESYNC VANISHED).
    func expunged(mailbox: MailboxID, since modSeq: ModSeq) async throws -> [UID]
    /// Called after every committed change to a mailbox (in this process), with the mailbox id.
    func observeChanges(_ observer: @escaping @Sendable (MailboxID) -> Void)
    /// Called after a mailbox of the account was created, deleted or renamed, or a subscription changed (in this
    /// process), with the account.
    func observeMailboxTree(_ observer: @escaping @Sendable (AccountID) -> Void)
    /// The full message content.
    func content(of message: MessageID) async throws -> [UInt8]
    /// Several messages' contents in one round trip (FETCH and SEARCH over many messages).
    func contents(of messages: [MessageID]) async throws -> [MessageID: [UInt8]]
    /// The content opened for reading in pieces: a large message is streamed out (FETCH, RETR, export) without
    /// ever being held whole. A reader opened before the message is expunged reads on where the backend can (a file
    /// stays readable while open); otherwise a later piece throws `StoreError.notFound`.
    func openContent(of message: MessageID) async throws -> any ContentReader
}

public extension MessageStore {
    func copy(from: MailboxID, uids: [UID], to: MailboxID, move: Bool) async throws -> (pairs: [(UID, UID)], uidValidity: UIDValidity) {
        try await copy(from: from, uids: uids, to: to, move: move, all: false)
    }

    /// Removes the messages whatever their flags (POP3's DELE, MOVE's source, the admin's clean-up).
    func expunge(mailbox: MailboxID, uids: [UID]) async throws -> [UID] {
        try await expunge(mailbox: mailbox, uids: uids, onlyDeleted: false)
    }
}

/// A message's content, read a range at a time.
public protocol ContentReader: Sendable {
    var size: Int { get }
    /// The octets of `range`, clamped to the content.
    func read(_ range: Range<Int>) async throws -> [UInt8]
}

extension ContentReader {
    /// Hands `range` (the whole content when nil) to `body` in pieces of at most `pieceSize` octets, in order.
    public func pieces(_ range: Range<Int>? = nil, pieceSize: Int = ContentPieces.size,
                       _ body: ([UInt8]) async throws -> Void) async throws {
        let range = (range ?? 0..<size).clamped(to: 0..<size)
        var at = range.lowerBound
        while at < range.upperBound {
            let piece = try await read(at..<min(at + pieceSize, range.upperBound))
            guard !piece.isEmpty else { throw StoreError.notFound("content ends at \(at) of \(size)") }
            try await body(piece)
            at += piece.count
        }
    }
}

public enum ContentPieces {
    /// How much of a large content is read at a time.
    public static let size = 256 * 1024
    /// Contents above this size are streamed by the protocols instead of being read whole (and are never read ahead
    /// in batches).
    public static let streamAbove = 1 << 20
    /// The most that batched reads (FETCH, SEARCH, RETR read-ahead) hold at once.
    public static let batchBytes = 8 << 20

    /// What one batched read takes of `candidates` (in order): those `wanted`, until one more would take the batch
    /// past `batchBytes` (the first is always taken). `examined`: how many candidates were gone through.
    public static func batch(_ candidates: some Sequence<StoredMessage>, wanted: (StoredMessage) -> Bool) -> (ids: [MessageID], examined: Int) {
        var ids: [MessageID] = [], bytes = 0, examined = 0
        for m in candidates {
            if wanted(m) {
                if !ids.isEmpty && bytes + m.size > batchBytes { break }
                ids.append(m.messageID)
                bytes += m.size
            }
            examined += 1
        }
        return (ids, examined)
    }
}

/// A content held in memory (inline contents are small).
public struct InMemoryContent: ContentReader {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var size: Int { bytes.count }
    public func read(_ range: Range<Int>) async throws -> [UInt8] {
        Array(bytes[range.clamped(to: 0..<bytes.count)])
    }
}

/// A content in a file, read with pread on a descriptor opened once: the file may be unlinked meanwhile (an expunge
/// and the clean-up after it) and stays readable until the reader goes.
public final class FileContent: ContentReader {
    public let size: Int
    private let fd: Int32

    public init(path: String) throws {
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw StoreError.notFound("content file \(path)") }
            throw FileSystemError(errno: errno, "open \(path)")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw FileSystemError(errno: e, "stat \(path)")
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    public func read(_ range: Range<Int>) async throws -> [UInt8] {
        let range = range.clamped(to: 0..<size)
        guard !range.isEmpty else { return [] }
        var out = [UInt8](repeating: 0, count: range.count)
        var done = 0
        try out.withUnsafeMutableBytes { raw in
            while done < range.count {
                let n = pread(fd, raw.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else { throw FileSystemError(errno: errno, "read") }
                if n == 0 { break }
                done += n
            }
        }
        if done < out.count { out.removeLast(out.count - done) }
        return out
    }
}

/// What `mailboxChanges(mailbox:since:)` returns.
public struct MailboxChanges: Sendable {
    public var uidValidity: UIDValidity
    public var uidNext: UID
    public var highestModSeq: ModSeq
    /// Messages added or changed after the given modseq (all of them when none was given), in UID order.
    public var changed: [StoredMessage]
    /// UIDs expunged after the given modseq (empty when none was given).
    public var expunged: [UID]
    /// The first UID no session has claimed as \Recent, when the backend read it with the rest (a SELECT then needs
    /// no second read to learn that there is nothing to claim).
    public var firstRecent: UID?
    public init(uidValidity: UIDValidity, uidNext: UID, highestModSeq: ModSeq, changed: [StoredMessage], expunged: [UID]) {
        self.uidValidity = uidValidity
        self.uidNext = uidNext
        self.highestModSeq = highestModSeq
        self.changed = changed
        self.expunged = expunged
    }
}

public enum FlagOperation: Sendable {
    case add, remove, replace

    /// The flags and keywords a message has after this operation with `flags` and `keywords` (STORE's arithmetic, the
    /// same in every backend).
    public func apply(_ flags: MessageFlags, _ keywords: [String], to old: (MessageFlags, [String])) -> (MessageFlags, [String]) {
        var (newFlags, newKeywords) = old
        switch self {
        case .add:
            newFlags.formUnion(flags)
            for k in keywords where !newKeywords.contains(k) { newKeywords.append(k) }
        case .remove:
            newFlags.subtract(flags)
            newKeywords.removeAll { keywords.contains($0) }
        case .replace:
            newFlags = flags
            newKeywords = keywords
        }
        return (newFlags, newKeywords)
    }
}

/// What the server and the admin commands need of a store beyond its data: where message contents too large to keep
/// inline go, the time it records, and keeping it tidy. Every backend has these, so nothing outside a backend needs to
/// name the backend's type.
public protocol StoreHousekeeping: Sendable {
    /// Contents up to this size are stored inline; larger ones are written to `blobs` first (streamed as they arrive)
    /// and stored by key.
    var inlineLimit: Int { get }
    var blobs: BlobStore { get }
    /// The clock the store records by (arrival, the queue's schedule, UIDVALIDITY).
    var clock: any WallClock { get }
    /// Removes contents no message refers to any more.
    func collectGarbage() async throws
    /// Removes what an interrupted write left behind (at start-up, before anything is written): files older than
    /// `BlobStore.leftoverAge` (an admin command running beside the server may be writing younger ones).
    func cleanTemporaryFiles() throws
    /// Removes stored contents no message refers to, older than `BlobStore.leftoverAge`; returns how many.
    func removeOrphanBlobs() async throws -> Int
}

public typealias MailStore = Directory & MessageStore & QueueStore & DKIMKeyStore & BayesStore & DeliveryLogStore & StoreHousekeeping & PolicyStateStore & SieveScriptStore
