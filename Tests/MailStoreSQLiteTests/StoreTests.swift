import Foundation
import GRDB
import Synchronization
import MailCore
import MailStore
import SQLiteDatabase
import TernTestSupport
import Testing
@testable import MailStoreSQLite

/// A store in a new temporary folder, on a manual clock (fixed unless the test moves it).
func tempStore(clock: ManualClock = ManualClock()) throws -> (SQLiteMailStore, URL) {
    let dir = try tempFolder()
    return (try SQLiteMailStore(dataDirectory: dir, clock: clock), dir)
}

/// A new empty folder in the temporary folder.
func tempFolder() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// The time stamp test deliveries carry.
let testDate = Date(timeIntervalSince1970: 1_893_456_000)

func addr(_ s: String) -> EmailAddress { try! EmailAddress.parse(s) }

@Suite struct StoreTests {
    @Test func durableSettings() throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try store.synchronousMode() == 2) // FULL: every commit fsyncs the WAL
    }

    @Test func accountsGetSpecialUseMailboxes() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("Example.TEST")
        let id = try await store.addAccount(addr("Alice@example.test"), password: "pw")
        let boxes = try await store.mailboxes(account: id)
        #expect(boxes.map(\.name) == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"])
        #expect(boxes.first { $0.name == "Junk" }?.specialUse == .junk)
        #expect(Set(boxes.map(\.uidValidity)).count == boxes.count)
        #expect(try await store.account(addr("alice@EXAMPLE.test")) == id)
        await #expect(throws: StoreError.self) { try await store.addAccount(addr("alice@example.test"), password: "x") }
        await #expect(throws: StoreError.self) { try await store.addAccount(addr("bob@nowhere.test"), password: "x") }
    }

    /// NOTIFY's MailboxName and SubscriptionChange (RFC 5465) rest on these: every change to an account's mailbox list
    /// or subscriptions tells the tree observers which account; renaming INBOX (which empties it) tells the content
    /// observers too; a CREATE of a mailbox that exists changes nothing and tells no one.
    @Test func mailboxTreeChangesAreAnnounced() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let alice = try await store.addAccount(addr("alice@example.test"), password: "pw")
        let trees = Mutex<[AccountID]>([]), contents = Mutex<[MailboxID]>([])
        store.observeMailboxTree { a in trees.withLock { $0.append(a) } }
        store.observeChanges { m in contents.withLock { $0.append(m) } }
        _ = try await store.createMailbox(account: alice, name: "Projects")
        #expect(trees.withLock { $0 } == [alice])
        _ = try await store.createMailbox(account: alice, name: "Projects")
        try await store.renameMailbox(account: alice, from: "Projects", to: "Plans")
        try await store.setSubscribed(account: alice, name: "Plans", true)
        try await store.deleteMailbox(account: alice, name: "Plans")
        #expect(trees.withLock { $0 } == [alice, alice, alice, alice])
        let inbox = try await store.mailboxes(account: alice).first { $0.name == "INBOX" }!.id
        contents.withLock { $0 = [] }
        try await store.renameMailbox(account: alice, from: "INBOX", to: "Old mail")
        #expect(contents.withLock { $0 } == [inbox])
        #expect(trees.withLock { $0 }.count == 5)
    }

    @Test func passwords() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let id = try await store.addAccount(addr("a@example.test"), password: "correct horse")
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "correct horse") == id)
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "wrong") == nil)
        #expect(try await store.verifyPassword(addr("nobody@example.test"), password: "correct horse") == nil)
        try await store.setPassword(addr("a@example.test"), password: "new one")
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "correct horse") == nil)
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "new one") == id)
    }

    @Test func scramKeysMatchRFC7677Example() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let h = PasswordHash.make(password: "pencil", salt: salt, iterations: 4096)
        let salted = PasswordHash.saltedPassword("pencil", salt: salt, iterations: 4096)
        #expect(salted.count == 32)
        // The server signature in the RFC's example is HMAC(ServerKey, AuthMessage).
        let authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let signature = PasswordHash.hmac(h.serverKey, authMessage)
        #expect(Data(signature).base64EncodedString() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(PasswordHash(encoded: h.encoded) == h)
    }

    @Test func resolution() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        try await store.addDomain("other.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "x")
        let b = try await store.addAccount(addr("bob@example.test"), password: "x")
        try await store.addAlias("team@example.test", targets: [addr("alice@example.test"), addr("bob@example.test")])
        try await store.addAlias("chain@other.test", targets: [addr("team@example.test")])
        #expect(try await store.resolve(addr("alice@example.test")) == .local([a]))
        #expect(try await store.resolve(addr("ALICE+news@Example.Test")) == .local([a]))
        #expect(try await store.resolve(addr("team@example.test")) == .local([a, b]))
        #expect(try await store.resolve(addr("chain@other.test")) == .local([a, b]))
        #expect(try await store.resolve(addr("nobody@example.test")) == .unknownUser)
        #expect(try await store.resolve(addr("alice@elsewhere.test")) == .notOurDomain)
        try await store.addAlias("@example.test", targets: [addr("bob@example.test")])
        #expect(try await store.resolve(addr("nobody@example.test")) == .local([b]))
        #expect(try await store.resolve(addr("alice@example.test")) == .local([a]))
        // Loops end instead of hanging.
        try await store.addAlias("x@other.test", targets: [addr("y@other.test")])
        try await store.addAlias("y@other.test", targets: [addr("x@other.test")])
        #expect(try await store.resolve(addr("x@other.test")) == .unknownUser)
        await #expect(throws: StoreError.self) { try await store.addAlias("f@example.test", targets: [addr("out@remote.test")]) }
    }

    @Test func directoryCacheSeesChangesFromAnotherProcess() async throws {
        let (server, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let admin = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock()) // stands for `tern user add` in another process
        try await admin.addDomain("example.test")
        let alice = addr("alice@example.test")
        #expect(server.cachedResolution(alice) == nil)
        #expect(try await server.resolve(alice) == .unknownUser)
        #expect(server.cachedResolution(alice) == .unknownUser)
        let id = try await admin.addAccount(alice, password: "x")
        #expect(server.cachedResolution(alice) == nil)
        #expect(try await server.resolve(alice) == .local([id]))
        #expect(server.cachedResolution(alice) == .local([id]))
        try await admin.removeAccount(alice)
        #expect(server.cachedResolution(alice) == nil)
    }

    /// `tern sieve activate` in another process: the server's cache of active scripts forgets at once.
    @Test func activeScriptsFollowChangesFromAnotherProcess() async throws {
        let (server, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        let admin = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock())
        try await admin.addDomain("example.test")
        let id = try await admin.addAccount(addr("alice@example.test"), password: "x")
        #expect(try await server.activeScripts(accounts: [id]) == [:])
        #expect(server.cachedActiveScripts(accounts: [id]) == [:])
        try await admin.putScript(account: id, name: "s", content: "discard;")
        try await admin.activateScript(account: id, name: "s")
        #expect(server.cachedActiveScripts(accounts: [id]) == nil)
        #expect(try await server.activeScripts(accounts: [id]) == [id: "discard;"])
        #expect(server.cachedActiveScripts(accounts: [id]) == [id: "discard;"])
        try await admin.activateScript(account: id, name: nil)
        #expect(server.cachedActiveScripts(accounts: [id]) == nil)
        #expect(try await server.activeScripts(accounts: [id]) == [:])
    }

    @Test func oneCopyForManyMailboxes() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "x")
        let b = try await store.addAccount(addr("bob@example.test"), password: "x")
        let body = Array("Subject: hi\r\n\r\nbody\r\n".utf8)
        let env = StoredEnvelope(mailFrom: "s@remote.test", recipients: [.init(address: "alice@example.test"), .init(address: "bob@example.test")])
        let r = try await store.deliver(Delivery(content: .inline(body), envelope: env,
                                                 targets: [DeliveryTarget(account: a), DeliveryTarget(account: b), DeliveryTarget(account: a)],
                                                 internalDate: testDate))
        #expect(r.placements.count == 2)
        let inboxA = try await store.mailboxes(account: a)[0], inboxB = try await store.mailboxes(account: b)[0]
        let ma = try await store.messages(mailbox: inboxA.id), mb = try await store.messages(mailbox: inboxB.id)
        #expect(ma.count == 1 && mb.count == 1)
        #expect(ma[0].messageID == mb[0].messageID)
        #expect(ma[0].uid == UID(1))
        #expect(try await store.content(of: ma[0].messageID) == body)
        #expect(inboxA.uidNext == UID(2))
        // Removing one account keeps the message for the other; removing both frees it.
        try await store.removeAccount(addr("alice@example.test"))
        #expect(try await store.content(of: mb[0].messageID) == body)
        try await store.removeAccount(addr("bob@example.test"))
        await #expect(throws: StoreError.self) { try await store.content(of: mb[0].messageID) }
    }

    @Test func largeMessagesAreFiles() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "x")
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 200_000)
        let key = BlobStore.newKey()
        try store.blobs.write(big, key: key)
        let r = try await store.deliver(Delivery(content: .blob(key: key, size: big.count),
                                                 envelope: StoredEnvelope(mailFrom: "", recipients: []), targets: [DeliveryTarget(account: a)], internalDate: testDate))
        #expect(try await store.content(of: r.messageID) == big)
        let reader = try await store.openContent(of: r.messageID)
        #expect(reader.size == big.count)
        #expect(try await reader.read(199_990..<300_000) == Array(big[199_990...]))
        #expect(try await store.orphanBlobKeys().isEmpty)
        // A file no row names is an orphan once it is a day old; a younger one may be `tern import`'s, placed before
        // its rows are committed, beside a server that starts meanwhile.
        try store.blobs.write([1, 2, 3], key: "orphan-1")
        try store.blobs.write([4, 5, 6], key: "importing-1")
        /// Makes the file `seconds` old by the store's clock, as the file system reports its time: the year-ahead run's
        /// libfaketime shifts the times stat reports but not those it is given, so the shift is measured and undone.
        func age(_ url: URL, _ seconds: TimeInterval) throws {
            let wanted = store.clock.now.addingTimeInterval(-seconds)
            func reported() throws -> Date { try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as! Date }
            try FileManager.default.setAttributes([.modificationDate: wanted], ofItemAtPath: url.path)
            let shift = try reported().timeIntervalSince(wanted)
            if abs(shift) > 1 {
                try FileManager.default.setAttributes([.modificationDate: wanted.addingTimeInterval(-shift)], ofItemAtPath: url.path)
            }
        }
        try age(store.blobs.url(for: "orphan-1"), BlobStore.leftoverAge + 60)
        try age(store.blobs.url(for: "importing-1"), 600)
        #expect(try await store.orphanBlobKeys() == ["orphan-1"])
        #expect(try await store.removeOrphanBlobs() == 1)
        #expect(FileManager.default.fileExists(atPath: store.blobs.url(for: "importing-1").path))
        // The same for spool files in tmp/.
        let old = store.blobs.tmp.appendingPathComponent("incoming-old"), young = store.blobs.tmp.appendingPathComponent("incoming-young")
        try Data([1]).write(to: old)
        try Data([2]).write(to: young)
        try age(old, BlobStore.leftoverAge + 60)
        try age(young, 5)
        try store.cleanTemporaryFiles()
        #expect(!FileManager.default.fileExists(atPath: old.path) && FileManager.default.fileExists(atPath: young.path))
        try await store.removeAccount(addr("alice@example.test"))
        #expect(!FileManager.default.fileExists(atPath: store.blobs.url(for: key).path))
        // A reader opened before the message went reads on (an IMAP session streaming it out finishes its literal).
        #expect(try await reader.read(0..<3) == Array(big[0..<3]))
        await #expect(throws: StoreError.self) { try await store.openContent(of: r.messageID) }
    }

    @Test func concurrentDeliveriesShareCommitsAndKeepUIDsUnique() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "x")
        try await withThrowingTaskGroup(of: DeliveryReceipt.self) { group in
            for i in 0..<300 {
                group.addTask {
                    try await store.deliver(Delivery(content: .inline(Array("Subject: \(i)\r\n\r\n".utf8)),
                                                     envelope: StoredEnvelope(mailFrom: "", recipients: []), targets: [DeliveryTarget(account: a)], internalDate: testDate))
                }
            }
            var uids = Set<UID>()
            for try await r in group { uids.insert(r.placements[0].uid) }
            #expect(uids.count == 300)
        }
        let inbox = try await store.mailboxes(account: a)[0]
        #expect(inbox.messages == 300)
        #expect(inbox.uidNext == UID(301))
        #expect(inbox.highestModSeq.rawValue == 301)
    }

    @Test func batchKeepsOrder() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "x")
        let box = try await store.createMailbox(account: a, name: "Imported")
        #expect(try await store.createMailbox(account: a, name: "Imported") == box)
        let batch = (0..<50).map { i in
            Delivery(content: .inline(Array("n\(i)".utf8)), envelope: StoredEnvelope(mailFrom: "", recipients: []),
                     targets: [DeliveryTarget(account: a, mailbox: "Imported")], internalDate: testDate, flags: i % 2 == 0 ? [.seen] : [])
        }
        _ = try await store.deliver(batch: batch)
        let msgs = try await store.messages(mailbox: box)
        var contents: [String] = []
        for m in msgs { contents.append(String(decoding: try await store.content(of: m.messageID), as: UTF8.self)) }
        #expect(contents == (0..<50).map { "n\($0)" })
        #expect(msgs[0].flags == [.seen] && msgs[1].flags == [])
    }

    /// Migration 15 moves inline contents out of `message` (into `message_content`): a database of schema 14 keeps
    /// every content, and the old column is gone.
    @Test func upgradeMovesInlineContents() async throws {
        let dir = try tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            let old = try DatabasePool(path: dir.appendingPathComponent("tern.db").path)
            try await old.writeWithoutTransaction { db in
                for migration in SQLiteSchema.migrations[0..<14] { try db.execute(sql: migration) }
                try db.execute(sql: """
                    PRAGMA user_version = 14;
                    INSERT INTO domain(id, name, created) VALUES (1, 'example.test', 0);
                    INSERT INTO account(id, domain_id, localpart, password, created) VALUES (1, 1, 'alice', 'x', 0);
                    INSERT INTO mailbox(id, account_id, name, uidvalidity, uidnext) VALUES (1, 1, 'INBOX', 7, 3);
                    INSERT INTO message(id, size, blob_key, content, received, envelope) VALUES
                      (1, 5, NULL, X'6869210D0A', 0, '{}'), (2, 0, NULL, NULL, 0, '{}');
                    INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, internal_date) VALUES (1, 1, 1, 1, 0), (1, 2, 2, 1, 0);
                    """)
            }
        }
        let store = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock())
        #expect(try await store.content(of: 1) == Array("hi!\r\n".utf8))
        #expect(try await store.content(of: 2) == [])
        #expect(try await store.contents(of: [1, 2]) == [1: Array("hi!\r\n".utf8), 2: []])
        let columns = try await store.read { db in try Row.fetchAll(db, sql: "PRAGMA table_info(message)").map { $0["name"] as String } }
        #expect(!columns.contains("content"))
        // The content goes with its message.
        _ = try await store.expunge(mailbox: 1, uids: [UID(1)])
        try await store.collectGarbage()
        #expect(try await store.read { db in try Int.fetchAll(db, sql: "SELECT id FROM message_content") } == [2])
    }

    /// A message row changes with every reference a mailbox takes or drops; its content is written once. COPY of a
    /// 200 KB message wrote all of it to the WAL again when the content was part of the row.
    @Test func copyDoesNotRewriteTheContent() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let a = try await store.addAccount(addr("alice@example.test"), password: "pw")
        let boxes = try await store.mailboxes(account: a)
        let inbox = boxes.first { $0.name == "INBOX" }!.id, archive = boxes.first { $0.name == "Archive" }!.id
        let big = Array(repeating: UInt8(ascii: "x"), count: 200 * 1024)
        let receipt = try await store.deliver(Delivery(content: .inline(big), envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                       targets: [DeliveryTarget(account: a)], internalDate: testDate))
        let wal = dir.appendingPathComponent("tern.db-wal").path
        func walSize() throws -> Int { (try FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue ?? 0 }
        try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        #expect(try walSize() == 0)
        _ = try await store.copy(from: inbox, uids: [receipt.placements[0].1], to: archive, move: true)
        #expect(try walSize() < 64 * 1024)
        #expect(try await store.content(of: receipt.messageID) == big)
    }

    @Test func refusesNewerSchema() throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA user_version = 999") }
        #expect(throws: StoreError.schemaTooNew(found: 999, supported: SQLiteSchema.currentVersion)) {
            try SQLiteMailStore(dataDirectory: dir, clock: ManualClock())
        }
    }
}

@Suite struct DirectoryGenerationTests {
    /// Every directory change (an account, an alias, a Sieve script) replaces the generation file; changes made at once
    /// in one process shared the temporary file's name, and one of them was answered with an error after it was stored.
    @Test func changesAtOnceAllReplaceTheGeneration() async throws {
        let dir = try tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = DirectoryCache(dataDirectory: dir)
        let failures = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var failed = 0
                    for _ in 0..<200 { do { try cache.bump() } catch { failed += 1 } }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}

@Suite struct VerifiedLoginTests {
    @Test func repeatedLoginsUseTheCacheAndEveryDirectoryChangeEmptiesIt() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let id = try await store.addAccount(addr("a@example.test"), password: "first")
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "first") == id)
        // Remembered now (and only the right password is).
        let generation = store.directoryCache.currentGeneration()
        #expect(store.verifiedLogins.check("a@example.test", "first", generation: generation) == id)
        #expect(store.verifiedLogins.check("a@example.test", "First", generation: generation) == nil)
        #expect(try await store.verifyPassword(addr("A@example.test"), password: "first") == id)
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "First") == nil)
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "first ") == nil)
        // Another process changes the password (an admin command): the old one stops working at once.
        let other = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock())
        try await other.setPassword(addr("a@example.test"), password: "second")
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "first") == nil)
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "second") == id)
        #expect(store.verifiedLogins.check("a@example.test", "second", generation: store.directoryCache.currentGeneration()) == id)
        try await other.removeAccount(addr("a@example.test"))
        #expect(try await store.verifyPassword(addr("a@example.test"), password: "second") == nil)
    }

    @Test func mailboxChangesReturnTheDeltaAfterAModSeq() async throws {
        let (store, dir) = try tempStore()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await store.addDomain("example.test")
        let account = try await store.addAccount(addr("a@example.test"), password: "pw")
        let inbox = try #require(try await store.mailboxID(account: account, name: "INBOX"))
        #expect(try await store.mailboxID(account: account, name: "Nope") == nil)
        func deliver() async throws {
            _ = try await store.deliver(Delivery(content: .inline(Array("Subject: x\r\n\r\nhi\r\n".utf8)),
                                                 envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                 targets: [DeliveryTarget(account: account)], internalDate: testDate))
        }
        for _ in 0..<3 { try await deliver() }
        let all = try await store.mailboxChanges(mailbox: inbox, since: nil)
        #expect(all.changed.map(\.uid.rawValue) == [1, 2, 3])
        let mark = all.highestModSeq
        let none = try await store.mailboxChanges(mailbox: inbox, since: mark)
        #expect(none.changed.isEmpty && none.expunged.isEmpty && none.highestModSeq == mark)
        _ = try await store.storeFlags(mailbox: inbox, uids: [UID(2)], operation: .add, flags: .seen, keywords: [], unchangedSince: nil)
        _ = try await store.expunge(mailbox: inbox, uids: [UID(1)])
        try await deliver()
        let delta = try await store.mailboxChanges(mailbox: inbox, since: mark)
        #expect(delta.changed.map(\.uid.rawValue) == [2, 4])
        #expect(delta.changed.first?.flags == .seen)
        #expect(delta.expunged == [UID(1)])
        #expect(delta.highestModSeq > mark)
        #expect(delta.uidNext == UID(5))
    }
}

@Suite struct VerifiedLoginsUnitTests {
    @Test func entriesExpireAndBelongToOneGeneration() throws {
        let g1 = DirectoryCache.Generation(inode: 1, seconds: 1, nanoseconds: 1)
        let g2 = DirectoryCache.Generation(inode: 2, seconds: 1, nanoseconds: 1)
        // Time that passes when the test says so.
        let passed = Mutex<Duration>(.zero)
        let start = ContinuousClock.now
        let logins = VerifiedLogins<DirectoryCache.Generation>(lifetime: .seconds(600), now: { start + passed.withLock { $0 } })
        #expect(logins.check("u@d", "pw", generation: g1) == nil)
        logins.remember("u@d", "pw", account: 7, generation: g1)
        #expect(logins.check("u@d", "pw", generation: g1) == 7)
        #expect(logins.check("u@d", "pw2", generation: g1) == nil)
        #expect(logins.check("v@d", "pw", generation: g1) == nil)
        #expect(logins.check("u@d", "pw", generation: nil) == nil)
        #expect(logins.check("u@d", "pw", generation: g2) == nil)   // the directory changed: forgotten
        logins.remember("u@d", "pw", account: 7, generation: g1)    // computed under the old generation: not kept
        #expect(logins.check("u@d", "pw", generation: g2) == nil)
        logins.remember("u@d", "pw", account: 7, generation: g2)
        #expect(logins.check("u@d", "pw", generation: g2) == 7)
        passed.withLock { $0 = .seconds(599) }
        #expect(logins.check("u@d", "pw", generation: g2) == 7)
        passed.withLock { $0 = .seconds(601) }
        #expect(logins.check("u@d", "pw", generation: g2) == nil)   // expired
        let off = VerifiedLogins<DirectoryCache.Generation>(lifetime: .zero)
        off.remember("u@d", "pw", account: 7, generation: g1)
        #expect(off.check("u@d", "pw", generation: g1) == nil)
    }
}
