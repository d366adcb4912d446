import Foundation
import GRDB
import NIOPosix
import MailCore
import MailStore
import SQLiteDatabase
import Synchronization

/// The embedded store: SQLite in WAL mode for metadata, large message contents as files.
///
/// One writer connection (SQLite allows one), many readers. Deliveries go through a group commit: those that
/// arrive while a commit is running wait and share the next one, so many sessions pay for one fsync.
public final class SQLiteMailStore: MailStore, Sendable {
    /// Messages up to this size live inline in the database; larger ones are files. Most mail is below it, so most
    /// deliveries cost one fsync (the WAL's, shared by a group commit) where a file would add its own and its
    /// folder's; a receiving session holds at most this much in memory before it spills to a file.
    public static let inlineLimit = 256 * 1024
    public var inlineLimit: Int { Self.inlineLimit }

    public let dataDirectory: URL
    public let blobs: BlobStore
    /// The time of arrivals, queue schedules, UIDVALIDITY and the directory's records.
    public let clock: any WallClock
    let pool: DatabasePool
    let committer: GroupCommitter
    /// Threads for the blocking SQLite calls of async methods. GRDB's own async API waits for a free reader on the
    /// caller's thread, and Swift's cooperative pool has one thread per core: enough concurrent readers would
    /// block every cooperative thread (a deadlock seen with 8 IMAP logins at once). Blocking here is harmless.
    let io: NIOThreadPool
    let directoryCache: DirectoryCache
    let changes = Observers<MailboxID>()
    let treeChanges = Observers<AccountID>()
    let queueChanges = Signal()
    /// The queue's bookkeeping writes, batched.
    let batcher: WriteBatcher
    let verifiedLogins = VerifiedLogins<DirectoryCache.Generation>()
    /// Rate counters, greylisting and job claims: one process serves a SQLite installation, so its memory is the
    /// installation's (lost at a restart, as Postfix's postscreen cache is when not persisted).
    let policy = MemoryPolicyState()

    /// How long a queue scan holds the recipients it takes (`delivery.lease`).
    public let queueLease: TimeInterval

    /// `beforeUpgrade`: see `SQLiteSchema.migrate`.
    public init(dataDirectory: URL, clock: any WallClock, queueLease: TimeInterval = QueueLease.duration,
                beforeUpgrade: (_ found: Int) throws -> Void = { _ in }) throws {
        self.dataDirectory = dataDirectory
        self.queueLease = queueLease
        self.clock = clock
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        blobs = try BlobStore(root: dataDirectory.appendingPathComponent("blobs"), tmp: dataDirectory.appendingPathComponent("tmp"))
        io = NIOThreadPool(numberOfThreads: 8)
        io.start()
        var config = Configuration()
        // Admin commands and the server share the database; a writer waits for the other's transaction.
        config.busyMode = .timeout(10)
        config.foreignKeysEnabled = true
        config.label = "tern"
        // Statement journals and temporary tables in memory: a delivery's savepoint opened (and unlinked) a file in
        // /var/tmp about every other message. What they hold is bounded by the pages one transaction changes.
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA temp_store = MEMORY") }
        pool = try DatabasePool(path: dataDirectory.appendingPathComponent("tern.db").path, configuration: config)
        // GRDB sets synchronous=NORMAL in WAL mode, which is not durable across power loss. Tern's 250 means
        // "on disk": with FULL, every commit fsyncs the WAL.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try SQLiteSchema.migrate(pool, beforeUpgrade: beforeUpgrade)
        let hub = changes
        let queueHub = queueChanges
        committer = GroupCommitter(pool: pool, blobs: blobs, clock: clock, onCommit: { hub.notify($0) }, onQueued: { queueHub.notify() })
        directoryCache = DirectoryCache(dataDirectory: dataDirectory)
        batcher = WriteBatcher(pool: pool)
    }

    deinit {
        io.shutdownGracefully { _ in }
    }

    /// A read transaction on one of the `io` threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        return try await io.runIfActive { try pool.read(body) }
    }

    /// A write transaction on one of the `io` threads (SQLite serialises writers).
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let pool = self.pool
        return try await io.runIfActive { try pool.write(body) }
    }

    /// Runs a change to domains, accounts or aliases, then tells every process's cache.
    private func changeDirectory<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let result = try await write(updates)
        try directoryCache.bump()
        verifiedLogins.clear()
        return result
    }

    /// The synchronous setting of the writer connection (2 = FULL), for tests.
    public func synchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    // MARK: Directory

    public func addDomain(_ name: String) async throws {
        let domain = Domain.canonical(try Domain.validate(name, allowUTF8: true))
        let now = clock.now.timeIntervalSince1970
        try await changeDirectory { db in
            if try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [domain]) != nil {
                throw StoreError.alreadyExists("domain \(domain)")
            }
            try db.execute(sql: "INSERT INTO domain(name, created) VALUES (?, ?)", arguments: [domain, now])
        }
    }

    public func removeDomain(_ name: String) async throws {
        let domain = Domain.canonical(name)
        try await changeDirectory { db in
            try db.execute(sql: "DELETE FROM domain WHERE name = ?", arguments: [domain])
            guard db.changesCount > 0 else { throw StoreError.notFound("domain \(domain)") }
        }
        try? await collectGarbage()
    }

    public func domains() async throws -> [DomainInfo] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.name, d.created,
                  (SELECT count(*) FROM account a WHERE a.domain_id = d.id) AS accounts,
                  (SELECT count(*) FROM alias x WHERE x.domain_id = d.id) AS aliases
                FROM domain d ORDER BY d.name
                """).map { DomainInfo(name: $0["name"], created: Date(timeIntervalSince1970: $0["created"]), accounts: $0["accounts"], aliases: $0["aliases"]) }
        }
    }

    public func addAccount(_ address: EmailAddress, password: String) async throws -> AccountID {
        let hash = PasswordHash.make(password: password).encoded
        let local = address.localPart.lowercased(), domain = address.normalizedDomain
        let now = clock.now
        return try await changeDirectory { db in
            guard let domainID = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [domain]) else {
                throw StoreError.notFound("domain \(domain) (add it first with `tern domain add \(domain)`)")
            }
            if try Int64.fetchOne(db, sql: "SELECT id FROM account WHERE domain_id = ? AND localpart = ?", arguments: [domainID, local]) != nil {
                throw StoreError.alreadyExists("account \(local)@\(domain)")
            }
            if try Int64.fetchOne(db, sql: "SELECT id FROM alias WHERE domain_id = ? AND localpart = ?", arguments: [domainID, local]) != nil {
                throw StoreError.alreadyExists("alias \(local)@\(domain)")
            }
            try db.execute(sql: "INSERT INTO account(domain_id, localpart, password, created) VALUES (?, ?, ?, ?)",
                           arguments: [domainID, local, hash, now.timeIntervalSince1970])
            let account = db.lastInsertedRowID
            try MailboxRows.createMailbox(db, account: account, name: "INBOX", specialUse: nil, now: now)
            for role in SpecialUse.allCases {
                try MailboxRows.createMailbox(db, account: account, name: role.defaultName, specialUse: role, now: now)
            }
            try db.execute(sql: "INSERT INTO subscription(account_id, name) SELECT account_id, name FROM mailbox WHERE account_id = ?",
                           arguments: [account])
            return account
        }
    }

    public func removeAccount(_ address: EmailAddress) async throws {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        try await changeDirectory { db in
            try db.execute(sql: """
                DELETE FROM account WHERE localpart = ? AND domain_id = (SELECT id FROM domain WHERE name = ?)
                """, arguments: [local, domain])
            guard db.changesCount > 0 else { throw StoreError.notFound("account \(local)@\(domain)") }
        }
        try? await collectGarbage()
    }

    public func setPassword(_ address: EmailAddress, password: String) async throws {
        let hash = PasswordHash.make(password: password).encoded
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        try await changeDirectory { db in
            try db.execute(sql: """
                UPDATE account SET password = ? WHERE localpart = ? AND domain_id = (SELECT id FROM domain WHERE name = ?)
                """, arguments: [hash, local, domain])
            guard db.changesCount > 0 else { throw StoreError.notFound("account \(local)@\(domain)") }
        }
    }

    public func accounts(domain: String?) async throws -> [AccountInfo] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT a.id, a.localpart || '@' || d.name AS address, a.created,
                  (SELECT count(*) FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id WHERE b.account_id = a.id) AS messages,
                  (SELECT coalesce(sum(m.size), 0) FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id
                     JOIN message m ON m.id = mm.message_id WHERE b.account_id = a.id) AS bytes
                FROM account a JOIN domain d ON d.id = a.domain_id
                WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, a.localpart
                """, arguments: [domain.map(Domain.canonical)]).map {
                AccountInfo(id: $0["id"], address: $0["address"], created: Date(timeIntervalSince1970: $0["created"]),
                            messages: $0["messages"], bytes: $0["bytes"])
            }
        }
    }

    public func account(_ address: EmailAddress) async throws -> AccountID? {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        return try await read { db in
            try Int64.fetchOne(db, sql: """
                SELECT a.id FROM account a JOIN domain d ON d.id = a.domain_id WHERE a.localpart = ? AND d.name = ?
                """, arguments: [local, domain])
        }
    }

    public func cachedLogin(_ address: EmailAddress, password: String) -> AccountID? {
        verifiedLogins.check(address.canonical, password, generation: directoryCache.currentGeneration())
    }


    public func verifyPassword(_ address: EmailAddress, password: String) async throws -> AccountID? {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        let user = address.canonical
        let generation = directoryCache.currentGeneration()
        if let account = verifiedLogins.check(user, password, generation: generation) { return account }
        // The slow hash runs on an io thread too, not on Swift's cooperative pool.
        let account = try await read { db -> AccountID? in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT a.id, a.password FROM account a JOIN domain d ON d.id = a.domain_id WHERE a.localpart = ? AND d.name = ?
                """, arguments: [local, domain]), let hash = PasswordHash(encoded: row["password"]) else {
                // No such account: the same hash work as a wrong password, so timing does not tell them apart.
                _ = PasswordHash.unknownUser.verify(password)
                return nil
            }
            return hash.verify(password) ? row["id"] : nil
        }
        if let account { verifiedLogins.remember(user, password, account: account, generation: generation) }
        return account
    }

    public func credentials(_ address: EmailAddress) async throws -> (AccountID, PasswordHash)? {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        return try await read { db -> (AccountID, PasswordHash)? in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT a.id, a.password FROM account a JOIN domain d ON d.id = a.domain_id WHERE a.localpart = ? AND d.name = ?
                """, arguments: [local, domain]), let hash = PasswordHash(encoded: row["password"]) else { return nil }
            return (row["id"], hash)
        }
    }

    public func addAlias(_ source: String, targets: [EmailAddress]) async throws {
        guard !targets.isEmpty else { throw StoreError.invalid("an alias needs at least one target address") }
        let (local, domain) = try DirectoryRules.splitAliasSource(source)
        let targetText = targets.map(\.canonical).joined(separator: "\n")
        try await changeDirectory { db in
            guard let domainID = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [domain]) else {
                throw StoreError.notFound("domain \(domain)")
            }
            for target in targets {
                // Until the outbound queue exists, aliases lead only to addresses in domains served here.
                guard try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [target.normalizedDomain]) != nil else {
                    throw StoreError.invalid("alias target \(target) is not in a domain served here")
                }
            }
            if !local.isEmpty, try Int64.fetchOne(db, sql: "SELECT id FROM account WHERE domain_id = ? AND localpart = ?", arguments: [domainID, local]) != nil {
                throw StoreError.alreadyExists("account \(local)@\(domain)")
            }
            try db.execute(sql: """
                INSERT INTO alias(domain_id, localpart, targets) VALUES (?, ?, ?)
                ON CONFLICT(domain_id, localpart) DO UPDATE SET targets = excluded.targets
                """, arguments: [domainID, local, targetText])
        }
    }

    public func removeAlias(_ source: String) async throws {
        let (local, domain) = try DirectoryRules.splitAliasSource(source)
        try await changeDirectory { db in
            try db.execute(sql: "DELETE FROM alias WHERE localpart = ? AND domain_id = (SELECT id FROM domain WHERE name = ?)",
                           arguments: [local, domain])
            guard db.changesCount > 0 else { throw StoreError.notFound("alias \(source)") }
        }
    }

    public func aliases(domain: String?) async throws -> [AliasInfo] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT x.localpart, d.name, x.targets FROM alias x JOIN domain d ON d.id = x.domain_id
                WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, x.localpart
                """, arguments: [domain.map(Domain.canonical)]).map {
                let local: String = $0["localpart"], name: String = $0["name"], targets: String = $0["targets"]
                return AliasInfo(source: "\(local)@\(name)", targets: targets.split(separator: "\n").map(String.init))
            }
        }
    }

    /// Resolution order (as Postfix's virtual maps): exact alias, account, then without `+tag`, then the
    /// domain's catch-all. Aliases may point at aliases, up to 10 levels.
    public func resolve(_ address: EmailAddress) async throws -> RecipientResolution {
        let generation = directoryCache.currentGeneration()
        let result = try await read { db in try Self.resolve(db, address.localPart.lowercased(), address.normalizedDomain, depth: 0) }
        directoryCache.store(address.canonical, result, computedAt: generation)
        return result
    }

    public func cachedResolution(_ address: EmailAddress) -> RecipientResolution? {
        directoryCache.lookup(address.canonical)
    }

    static func resolve(_ db: Database, _ local: String, _ domain: String, depth: Int) throws -> RecipientResolution {
        guard let domainID = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [domain]) else {
            return .notOurDomain
        }
        for candidate in DirectoryRules.candidates(local) {
            if let targets = try String.fetchOne(db, sql: "SELECT targets FROM alias WHERE domain_id = ? AND localpart = ?",
                                                 arguments: [domainID, candidate]) {
                return try expand(db, targets, depth: depth)
            }
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM account WHERE domain_id = ? AND localpart = ?",
                                           arguments: [domainID, candidate]) {
                return .local([id])
            }
        }
        if let targets = try String.fetchOne(db, sql: "SELECT targets FROM alias WHERE domain_id = ? AND localpart = ''",
                                             arguments: [domainID]) {
            return try expand(db, targets, depth: depth)
        }
        return .unknownUser
    }

    static func expand(_ db: Database, _ targets: String, depth: Int) throws -> RecipientResolution {
        guard depth < DirectoryRules.maximumAliasDepth else { return .unknownUser }
        var accounts: [AccountID] = []
        for target in targets.split(separator: "\n") {
            guard let at = target.lastIndex(of: "@") else { continue }
            let r = try resolve(db, String(target[..<at]), String(target[target.index(after: at)...]), depth: depth + 1)
            if case .local(let ids) = r { accounts.append(contentsOf: ids.filter { !accounts.contains($0) }) }
        }
        return accounts.isEmpty ? .unknownUser : .local(accounts)
    }

    // MARK: Messages

    public func deliver(_ delivery: Delivery) async throws -> DeliveryReceipt {
        try await committer.submit(delivery)
    }

    public func deliver(_ delivery: Delivery, completion: @escaping @Sendable (Result<DeliveryReceipt, Error>) -> Void) {
        committer.submit(delivery, completion: completion)
    }

    public func deliver(batch: [Delivery]) async throws -> [DeliveryReceipt] {
        try await committer.submit(batch: batch)
    }

    public func deliverAll(_ batch: [Delivery]) async throws -> [DeliveryReceipt] {
        guard !batch.isEmpty else { return [] }
        // File renames become durable before the rows that name them, as in a group commit.
        try blobs.syncDirectories(for: batch.compactMap { if case .blob(let key, _) = $0.content { return key } else { return nil } })
        let now = clock.now
        // One transaction: a failure rolls every message back.
        let receipts = try await write { db in try batch.map { try GroupCommitter.insert(db, $0, now: now) } }
        changes.notify(receipts.flatMap { $0.placements.map(\.mailbox) })
        if batch.contains(where: \.isQueued) { queueChanges.notify() }
        return receipts
    }

    public func mailboxes(account: AccountID) async throws -> [MailboxInfo] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT b.*, b.message_count AS messages
                FROM mailbox b WHERE account_id = ? ORDER BY (name = 'INBOX') DESC, name
                """, arguments: [account]).map {
                MailboxInfo(id: $0["id"], name: $0["name"], specialUse: ($0["special_use"] as String?).flatMap(SpecialUse.init),
                            uidValidity: UIDValidity(rawValue: UInt32($0["uidvalidity"] as Int64)),
                            uidNext: UID(UInt32($0["uidnext"] as Int64)), highestModSeq: ModSeq(rawValue: $0["highestmodseq"]),
                            messages: $0["messages"])
            }
        }
    }

    public func createMailbox(account: AccountID, name: String) async throws -> MailboxID {
        guard !name.isEmpty, !name.contains("\0") else { throw StoreError.invalid("invalid mailbox name") }
        let canonical = name.uppercased() == "INBOX" ? "INBOX" : name
        let now = clock.now
        let (id, created) = try await write { db -> (MailboxID, Bool) in
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM mailbox WHERE account_id = ? AND name = ?", arguments: [account, canonical]) {
                return (id, false)
            }
            try MailboxRows.createMailbox(db, account: account, name: canonical, specialUse: nil, now: now)
            return (db.lastInsertedRowID, true)
        }
        if created { treeChanges.notify(account) }
        return id
    }

    public func messages(mailbox: MailboxID) async throws -> [StoredMessage] {
        try await read { db in try Self.messages(db, mailbox: mailbox, since: nil) }
    }

    /// Messages of a mailbox in UID order, all or those changed after `since`. Runs for every SELECT: explicit columns
    /// read by position and a cursor (no row dictionary per message).
    static func messages(_ db: Database, mailbox: MailboxID, since: ModSeq?) throws -> [StoredMessage] {
        var out: [StoredMessage] = []
        let columns = """
            SELECT mm.uid, mm.message_id, m.size, mm.internal_date, mm.flags, mm.keywords, mm.modseq, mm.saved
            FROM mailbox_message mm
            """
        let rows: RowCursor
        if let since {
            // A delta: through the modseq index. (Left to itself SQLite walks the whole mailbox in UID order to spare
            // a sort, reading every row of a large mailbox for the few that changed, once per change per mailbox.)
            rows = try Row.fetchCursor(db.cachedStatement(sql: columns + """
                 INDEXED BY mailbox_message_modseq JOIN message m ON m.id = mm.message_id
                 WHERE mm.mailbox_id = ? AND mm.modseq > ? ORDER BY mm.uid
                """), arguments: [mailbox, since.rawValue])
        } else {
            rows = try Row.fetchCursor(db.cachedStatement(sql: columns + " JOIN message m ON m.id = mm.message_id WHERE mm.mailbox_id = ? ORDER BY mm.uid"),
                                       arguments: [mailbox])
        }
        while let row = try rows.next() {
            let keywords: String = row[5]
            out.append(StoredMessage(mailbox: mailbox, uid: UID(UInt32(row[0] as Int64)), messageID: row[1], size: row[2],
                                     internalDate: Date(timeIntervalSince1970: row[3]), flags: MessageFlags(rawValue: row[4]),
                                     keywords: keywords.isEmpty ? [] : keywords.split(separator: " ").map(String.init),
                                     modSeq: ModSeq(rawValue: row[6]), savedDate: Date(timeIntervalSince1970: row[7])))
        }
        return out
    }

    public func mailboxState(account: AccountID, name: String) async throws -> (id: MailboxID, state: MailboxChanges)? {
        try await read { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid FROM mailbox WHERE account_id = ? AND name = ?
                """), arguments: [account, name]) else { return nil }
            var state = MailboxChanges(uidValidity: UIDValidity(rawValue: UInt32(row[1] as Int64)), uidNext: UID(UInt32(row[2] as Int64)),
                                       highestModSeq: ModSeq(rawValue: row[3]), changed: [], expunged: [])
            state.firstRecent = UID(UInt32(row[4] as Int64))
            return (row[0], state)
        }
    }

    public func mailboxChanges(mailbox: MailboxID, since: ModSeq?) async throws -> MailboxChanges {
        try await read { db in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT uidvalidity, uidnext, highestmodseq FROM mailbox WHERE id = ?"),
                                             arguments: [mailbox]) else { throw StoreError.notFound("mailbox") }
            let highest = ModSeq(rawValue: row[2])
            var changes = MailboxChanges(uidValidity: UIDValidity(rawValue: UInt32(row[0] as Int64)), uidNext: UID(UInt32(row[1] as Int64)),
                                         highestModSeq: highest, changed: [], expunged: [])
            guard since.map({ $0 < highest }) ?? true else { return changes }
            changes.changed = try Self.messages(db, mailbox: mailbox, since: since)
            if let since {
                changes.expunged = try Int64.fetchAll(db.cachedStatement(sql: "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid"),
                                                      arguments: [mailbox, since.rawValue]).map { UID(UInt32($0)) }
            }
            return changes
        }
    }

    /// A message's file (`blob_key`) or its inline content (`content`, from `message_content`).
    static let contentColumns = "m.blob_key AS blob_key, c.content AS content"
    static let contentJoin = "LEFT JOIN message_content c ON c.id = m.id"

    public func content(of message: MessageID) async throws -> [UInt8] {
        let (key, inline) = try await read { db -> (String?, Data?) in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.contentColumns) FROM message m \(Self.contentJoin) WHERE m.id = ?",
                                             arguments: [message]) else {
                throw StoreError.notFound("message \(message)")
            }
            return (row["blob_key"], row["content"])
        }
        if let key { return try blobs.read(key) }
        return Array(inline ?? Data())
    }

    public func contents(of messages: [MessageID]) async throws -> [MessageID: [UInt8]] {
        guard !messages.isEmpty else { return [:] }
        let rows = try await read { db -> [(MessageID, String?, Data?)] in
            var out: [(MessageID, String?, Data?)] = []
            for chunk in stride(from: 0, to: messages.count, by: 500) {
                let ids = messages[chunk..<min(chunk + 500, messages.count)]
                let sql = "SELECT m.id, \(Self.contentColumns) FROM message m \(Self.contentJoin) WHERE m.id IN (\(ids.map { _ in "?" }.joined(separator: ",")))"
                for row in try Row.fetchAll(db, sql: sql, arguments: StatementArguments(Array(ids))) {
                    out.append((row["id"], row["blob_key"], row["content"]))
                }
            }
            return out
        }
        var result: [MessageID: [UInt8]] = [:]
        for (id, key, inline) in rows {
            result[id] = try key.map { try blobs.read($0) } ?? Array(inline ?? Data())
        }
        return result
    }

    public func openContent(of message: MessageID) async throws -> any ContentReader {
        // Inline contents are small (the inline limit); a file is opened once and read a piece at a time.
        let (key, inline) = try await read { db -> (String?, Data?) in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(Self.contentColumns) FROM message m \(Self.contentJoin) WHERE m.id = ?",
                                             arguments: [message]) else {
                throw StoreError.notFound("message \(message)")
            }
            return (row["blob_key"], row["content"])
        }
        if let key { return try FileContent(path: blobs.url(for: key).path) }
        return InMemoryContent(Array(inline ?? Data()))
    }

    /// Removes messages no mailbox references any more, and their files.
    public func collectGarbage() async throws {
        let keys = try await write { db -> [String] in
            let keys = try String.fetchAll(db, sql: "SELECT blob_key FROM message WHERE refcount <= 0 AND blob_key IS NOT NULL")
            try db.execute(sql: "DELETE FROM message WHERE refcount <= 0")
            return keys
        }
        for key in keys { blobs.remove(key) }
    }

    /// Removes temp files left by sessions that died mid-message (a crash or kill -9): nothing in tmp/ was
    /// ever acknowledged. Called at server start; files younger than `BlobStore.leftoverAge` stay (an admin command
    /// beside the server may be writing them).
    public func cleanTemporaryFiles() throws {
        BlobStore.removeLeftovers(in: blobs.tmp, now: clock.now)
        // The embedded store has one queue runner, this process's: leases of an earlier run died with it.
        try pool.write { db in try db.execute(sql: "UPDATE queue_recipient SET leased_until = NULL, leased_by = NULL WHERE leased_until IS NOT NULL") }
    }

    /// Blob files no message row references (written, then the process died before the commit), older than
    /// `BlobStore.leftoverAge`: `tern import` beside the server places files before it commits their rows.
    public func orphanBlobKeys() async throws -> [String] {
        // The files are listed before the rows are read: a file placed meanwhile is either young or named by then.
        // Only the files no row names are looked at for their age (one stat each, not one per stored message).
        var files: [String] = []
        for d in (try? FileManager.default.contentsOfDirectory(atPath: blobs.root.path)) ?? [] {
            files += (try? FileManager.default.contentsOfDirectory(atPath: blobs.root.appendingPathComponent(d).path)) ?? []
        }
        let known = Set(try await read { db in try String.fetchAll(db, sql: "SELECT blob_key FROM message WHERE blob_key IS NOT NULL") })
        let now = clock.now
        return files.filter { !known.contains($0) && BlobStore.isLeftover(blobs.url(for: $0), now: now) }
    }

    /// Deletes orphan blobs: safe only when no delivery is in flight (at start, before listeners open).
    public func removeOrphanBlobs() async throws -> Int {
        let orphans = try await orphanBlobKeys()
        for key in orphans { blobs.remove(key) }
        return orphans.count
    }
}

extension SQLiteMailStore {
    public var memoryPolicyState: MemoryPolicyState? { policy }
    public func takeRate(_ key: String, limit: Int, now: Date) async throws -> Bool { policy.takeRateNow(key, limit: limit, now: now) }
    public func greylist(_ key: String, rule: GreylistRule, now: Date) async throws -> GreylistVerdict {
        policy.greylistNow(key, rule: rule, now: now)
    }
    public func claimJob(_ name: String, holder: String, until: Date, now: Date) async throws -> Bool {
        try await policy.claimJob(name, holder: holder, until: until, now: now)
    }
    public func prunePolicyState(rule: GreylistRule, now: Date) async throws -> Int {
        // What Sieve scripts remember (schema 13) ends with its period too.
        let seen = try await write { db in
            try db.execute(sql: "DELETE FROM sieve_seen WHERE until <= ?", arguments: [now.timeIntervalSince1970])
            return db.changesCount
        }
        return try await policy.prunePolicyState(rule: rule, now: now) + seen
    }
}
