import Foundation
import Logging
import MailCore
import MailStore
import MailStoreSQLite
@testable import PostgresDatabase
import PostgresNIO
import StoreConformance
import TernTestSupport
import Synchronization
import Testing
@testable import MailStorePostgres

/// The server the tests use: `scripts/test` starts a throwaway cluster (scripts/pg-test-cluster) and names it in
/// TERN_TEST_POSTGRES. Without it these tests do not run (and `scripts/test` sets TERN_REQUIRE_POSTGRES, so that
/// there they fail instead of being skipped).
enum TestServer {
    static let url = TestDatabase.url
    static var available: Bool { TestDatabase.available }

    /// A new folder for a store's spool.
    static func spool() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("tern-pg-spool-\(UUID().uuidString)")
    }

    /// Makes stores on a new database for one conformance case; the box keeps the store so that the test can close it.
    static func storeFactory() async throws -> (@Sendable (ManualClock) async throws -> PostgresMailStore, StoreBox) {
        let url = try await newDatabase()
        let box = StoreBox()
        return ({ clock in
            let store = try await PostgresMailStore.open(url: url, spool: spool(), clock: clock)
            box.store = store
            return store
        }, box)
    }

    /// Two nodes (stores) on a new database, sharing a manual clock set to `seconds` since 1970.
    static func twoNodes(at seconds: TimeInterval, listenerCheck: Duration = .seconds(30)) async throws -> (PostgresMailStore, PostgresMailStore, ManualClock) {
        let url = try await newDatabase()
        let clock = ManualClock(Date(timeIntervalSince1970: seconds))
        let a = try await PostgresMailStore.open(url: url, spool: spool(), clock: clock, listenerCheck: listenerCheck)
        let b = try await PostgresMailStore.open(url: url, spool: spool(), clock: clock, listenerCheck: listenerCheck)
        return (a, b, clock)
    }

    /// A new, empty database on the test server (each test its own); returns its URL.
    static func newDatabase() async throws -> String { try await TestDatabase.create() }

    /// A store on a new database with example.test and alice@example.test, on a manual clock.
    static func storeWithAlice() async throws -> (PostgresMailStore, ManualClock, AccountID) {
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let store = try await PostgresMailStore.open(url: try await newDatabase(), spool: spool(), clock: clock)
        try await store.addDomain("example.test")
        return (store, clock, try await store.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw"))
    }
}

@Suite(.enabled(if: TestServer.available, "needs TERN_TEST_POSTGRES (scripts/test starts a server)"))
struct PostgresDirectoryConformanceTests {
    @Test(arguments: DirectoryConformance.cases) func conforms(_ c: DirectoryConformance.Case) async throws {
        let (make, box) = try await TestServer.storeFactory()
        defer { box.store?.close() }
        let problems = try await c.run { try await make($0) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}

/// The store conformance suite (Tests/StoreConformance), the same cases as on SQLite.
@Suite(.enabled(if: TestServer.available, "needs TERN_TEST_POSTGRES (scripts/test starts a server)"))
struct PostgresStoreConformanceTests {
    @Test(arguments: StoreConformance.cases) func conforms(_ c: StoreConformance.Case) async throws {
        let (make, box) = try await TestServer.storeFactory()
        defer { box.store?.close() }
        let problems = try await c.run { try await make($0) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}

@Suite(.enabled(if: TestServer.available, "needs TERN_TEST_POSTGRES (scripts/test starts a server)"))
struct PostgresSchemaTests {
    /// Several nodes starting at once on a new database: one migrates, the others wait and find it done.
    @Test func concurrentStartsMigrateOnce() async throws {
        let url = try await TestServer.newDatabase()
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let stores = try await withThrowingTaskGroup(of: PostgresMailStore.self) { group in
            for _ in 0..<4 { group.addTask { try await PostgresMailStore.open(url: url, spool: TestServer.spool(), clock: clock) } }
            var all: [PostgresMailStore] = []
            for try await s in group { all.append(s) }
            return all
        }
        defer { stores.forEach { $0.close() } }
        let versions: [Int] = try await stores[0].column("SELECT version FROM schema_version", as: Int.self)
        #expect(versions == [PostgresSchema.currentVersion])
        // The directory works through any of them and is the same through all.
        try await stores[1].addDomain("example.test")
        #expect(try await stores[2].domains().map(\.name) == ["example.test"])
    }

    /// A database a newer Tern wrote is refused, never misread.
    @Test func refusesNewerSchema() async throws {
        let url = try await TestServer.newDatabase()
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let store = try await PostgresMailStore.open(url: url, spool: TestServer.spool(), clock: clock)
        try await store.transaction { db in
            try await store.execute("UPDATE schema_version SET version = \(PostgresSchema.currentVersion + 1)", on: db)
        }
        store.close()
        await #expect(throws: StoreError.schemaTooNew(found: PostgresSchema.currentVersion + 1, supported: PostgresSchema.currentVersion)) {
            let again = try await PostgresMailStore.open(url: url, spool: TestServer.spool(), clock: clock)
            again.close()
        }
    }

    /// Migration 6 moves contents written before it (inline, and in per-message chunks) into the shared content table:
    /// every message reads back the same, identical contents are kept once.
    @Test func contentsMoveToTheSharedTable() async throws {
        let url = try await TestServer.newDatabase()
        let client = PostgresClient(configuration: try PostgresURL.parse(url).configuration)
        let logger = Logger(label: "test")
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await client.run() }
            try await client.inTransaction(logger: logger) { db in
                try await db.query("CREATE TABLE schema_version(version integer NOT NULL)", logger: logger)
                for migration in PostgresSchema.migrations[0..<5] { for statement in migration { try await db.query(statement, logger: logger) } }
                try await db.query("INSERT INTO schema_version(version) VALUES (5)", logger: logger)
                for (id, content) in [(Int64(1), "hello"), (2, "hello")] {
                    try await db.query("""
                        INSERT INTO message(id, size, content, received, envelope, refcount) OVERRIDING SYSTEM VALUE
                        VALUES (\(id), 5, \(ByteBuffer(string: content)), 0, '{}', 1)
                        """, logger: logger)
                }
                try await db.query("""
                    INSERT INTO message(id, size, content, received, envelope, refcount) OVERRIDING SYSTEM VALUE VALUES (3, 6, NULL, 0, '{}', 1)
                    """, logger: logger)
                try await db.query("""
                    INSERT INTO message(id, size, content, received, envelope, refcount) OVERRIDING SYSTEM VALUE VALUES (4, 0, NULL, 0, '{}', 1)
                    """, logger: logger)
                for (seq, piece) in [(Int32(0), "abc"), (1, "def")] {
                    try await db.query("INSERT INTO message_chunk(message_id, seq, data) VALUES (3, \(seq), \(ByteBuffer(string: piece)))", logger: logger)
                }
            }
            group.cancelAll()
        }
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let store = try await PostgresMailStore.open(url: url, spool: TestServer.spool(), clock: clock)
        defer { store.close() }
        let contents = try await store.contents(of: [1, 2, 3, 4])
        #expect(contents[1] == Array("hello".utf8) && contents[2] == Array("hello".utf8) && contents[3] == Array("abcdef".utf8))
        #expect(contents[4] == [], "a row that had neither content nor chunks still reads as empty")
        #expect(try await store.column("SELECT refs FROM content ORDER BY refs", as: Int64.self) == [1, 1, 2])
    }

    /// The same content delivered in separate transactions is stored once, large or small, and goes with its last message.
    @Test func contentsAreStoredOncePerHash() async throws {
        let (store, clock, alice) = try await TestServer.storeWithAlice()
        defer { store.close() }
        let bob = try await store.addAccount(try EmailAddress.parse("bob@example.test"), password: "pw")
        let small = Array("Subject: list mail\r\n\r\nthe same to everyone\r\n".utf8)
        let large = small + Array(repeating: UInt8(ascii: "x"), count: 3 << 20)
        let envelope = StoredEnvelope(mailFrom: "list@remote.test", recipients: [])
        for account in [alice, bob, alice] {
            _ = try await store.deliver(Delivery(content: .inline(small), envelope: envelope, targets: [DeliveryTarget(account: account)],
                                                 internalDate: clock.now))
            let (tmp, handle) = try store.blobs.makeTempFile()
            try handle.write(contentsOf: large)
            let key = BlobStore.newKey()
            try store.blobs.commit(tempFile: tmp, handle: handle, key: key)
            _ = try await store.deliver(Delivery(content: .blob(key: key, size: large.count), envelope: envelope,
                                                 targets: [DeliveryTarget(account: account)], internalDate: clock.now))
        }
        #expect(try await store.column("SELECT refs FROM content ORDER BY size", as: Int64.self) == [3, 3])
        #expect(try await store.one("SELECT count(*) FROM content_chunk", as: Int64.self) == 4)
        let inbox = try #require(try await store.mailboxes(account: alice).first { $0.name == "INBOX" }).id
        let stored = try await store.messages(mailbox: inbox)
        #expect(stored.count == 4)
        for m in stored { #expect([small, large].contains(try await store.content(of: m.messageID))) }
        // Every copy gone: the contents and their chunks go too.
        for account in [alice, bob] {
            let box = try #require(try await store.mailboxes(account: account).first { $0.name == "INBOX" }).id
            let uids = try await store.messages(mailbox: box).map(\.uid)
            _ = try await store.storeFlags(mailbox: box, uids: uids, operation: .add, flags: .deleted, keywords: [], unchangedSince: nil)
            _ = try await store.expunge(mailbox: box, uids: uids)
        }
        try await store.collectGarbage()
        #expect(try await store.one("SELECT count(*) FROM content", as: Int64.self) == 0)
        #expect(try await store.one("SELECT count(*) FROM content_chunk", as: Int64.self) == 0)
    }

    /// A batch of usual deliveries is stored by one statement: per mailbox consecutive UIDs and MODSEQs in the batch's
    /// order, equal contents once with their references counted, log lines only for the stored ones, and a delivery to
    /// a mailbox that does not exist answered alone.
    @Test func aBatchOfDeliveriesIsOneStatement() async throws {
        let (store, clock, alice) = try await TestServer.storeWithAlice()
        defer { store.close() }
        let bob = try await store.addAccount(try EmailAddress.parse("bob@example.test"), password: "pw")
        let work = try await store.createMailbox(account: alice, name: "Work")
        let envelope = StoredEnvelope(mailFrom: "list@remote.test", recipients: [])
        func delivery(_ text: String, _ account: AccountID, _ mailbox: String? = nil, id: String) -> Delivery {
            Delivery(content: .inline(Array("Subject: \(text)\r\n\r\nbody\r\n".utf8)), envelope: envelope,
                     targets: [DeliveryTarget(account: account, mailbox: mailbox)], internalDate: clock.now, flags: .seen,
                     queueID: id, log: [DeliveryEvent(at: clock.now, queueID: id, messageID: "<\(id)@x>", kind: .stored, detail: text)])
        }
        let batch = [delivery("one", alice, id: "q1"), delivery("same", bob, id: "q2"), delivery("two", alice, "Nowhere", id: "q3"),
                     delivery("same", alice, id: "q4"), delivery("three", alice, "Work", id: "q5"), delivery("four", alice, id: "q6")]
        #expect(batch.allSatisfy { PostgresMailStore.usual($0) != nil })
        let results = await store.commitTogether(batch)
        let placed = results.map { (try? $0.get())?.placements.first?.uid.rawValue }
        #expect(placed == [1, 1, nil, 2, 1, 3])
        if case .failure(let error) = results[2] { #expect(error is StoreError) } else { Issue.record("a missing mailbox stored") }
        let inbox = try #require(try await store.mailboxes(account: alice).first { $0.name == "INBOX" })
        #expect(inbox.uidNext.rawValue == 4 && inbox.messages == 3)
        let stored = try await store.messages(mailbox: inbox.id)
        #expect(stored.map(\.uid.rawValue) == [1, 2, 3])
        // MODSEQs follow the UIDs, each above the mailbox's before, the mailbox's HIGHESTMODSEQ the last.
        #expect(zip(stored, stored.dropFirst()).allSatisfy { $0.modSeq.rawValue + 1 == $1.modSeq.rawValue })
        #expect(stored.last?.modSeq == inbox.highestModSeq)
        #expect(stored.allSatisfy { $0.flags == .seen })
        #expect(String(decoding: try await store.content(of: stored[1].messageID), as: UTF8.self).hasPrefix("Subject: same"))
        #expect(try await store.messages(mailbox: work).map(\.uid.rawValue) == [1])
        #expect(try await store.column("SELECT refs FROM content ORDER BY refs", as: Int64.self) == [1, 1, 1, 2])
        #expect(try await store.column("SELECT queue_id FROM delivery_log ORDER BY queue_id", as: String.self) == ["q1", "q2", "q4", "q5", "q6"])
        #expect(try await store.one("SELECT sum(refcount)::bigint FROM message", as: Int64.self) == 5)
    }

    /// STORE's arithmetic in SQL (`StoreFlagsStatement`) gives what `FlagOperation.apply` gives, the same for every
    /// backend: random flags and keyword lists (repeats included) on random messages, each operation compared.
    @Test func storeArithmeticInSQLIsFlagOperationsArithmetic() async throws {
        let (store, clock, alice) = try await TestServer.storeWithAlice()
        defer { store.close() }
        let inbox = try #require(try await store.mailboxes(account: alice).first).id
        var uids: [UID] = []
        for i in 0..<4 {
            let receipt = try await store.deliver(Delivery(content: .inline(Array("Subject: \(i)\r\n\r\nx\r\n".utf8)),
                                                           envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                           targets: [DeliveryTarget(account: alice)], internalDate: clock.now))
            uids.append(receipt.placements[0].1)
        }
        var rng = SplitMix(seed: 20261206)
        let words = ["$Work", "Later", "a", "b", "$Junk"]
        func someKeywords() -> [String] { (0..<Int(rng.next() % 4)).map { _ in words[Int(rng.next() % UInt64(words.count))] } }
        for round in 0..<120 {
            let before = Dictionary(uniqueKeysWithValues: try await store.messages(mailbox: inbox).map { ($0.uid, $0) })
            let operation: FlagOperation = [.add, .remove, .replace][Int(rng.next() % 3)]
            let flags = MessageFlags(rawValue: Int(rng.next() % 32)), keywords = someKeywords()
            let targets = uids.filter { _ in rng.next() % 2 == 0 }
            let (changed, failed) = try await store.storeFlags(mailbox: inbox, uids: targets, operation: operation, flags: flags,
                                                               keywords: keywords, unchangedSince: nil)
            #expect(failed.isEmpty)
            let after = Dictionary(uniqueKeysWithValues: try await store.messages(mailbox: inbox).map { ($0.uid, $0) })
            var expected: [UID] = []
            for uid in targets {
                let old = try #require(before[uid]), now = try #require(after[uid])
                let (f, k) = operation.apply(flags, keywords, to: (old.flags, old.keywords))
                #expect(now.flags == f && now.keywords == k, "round \(round): \(operation) \(flags.rawValue) \(keywords) on \(old.flags.rawValue) \(old.keywords)")
                if f != old.flags || k != old.keywords { expected.append(uid) }
            }
            #expect(changed.map(\.uid) == expected)
            #expect(changed.allSatisfy { after[$0.uid]?.modSeq == $0.modSeq && after[$0.uid]?.keywords == $0.keywords })
            // Each changed message its own MODSEQ, ascending in the order asked.
            #expect(zip(changed, changed.dropFirst()).allSatisfy { $0.modSeq.rawValue + 1 == $1.modSeq.rawValue })
        }
    }

    /// An operation's deadline fires once its time has passed, and never once it was removed (the store's `bounded`
    /// answers a query that hangs with this, and forgets the deadline of one that answered).
    @Test func deadlinesFireOnceAndNotAfterRemoval() async throws {
        let deadlines = Deadlines()
        let fired = Mutex<[String]>([])
        _ = deadlines.add(.milliseconds(100)) { fired.withLock { $0.append("late") } }
        let answered = deadlines.add(.milliseconds(100)) { fired.withLock { $0.append("answered") } }
        deadlines.remove(answered)
        for _ in 0..<200 where fired.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(25)) }
        // Two more ticks: nothing else fires, and the first does not fire twice.
        try await Task.sleep(for: Deadlines.tick * 2)
        #expect(fired.withLock { $0 } == ["late"])
    }

    /// UIDVALIDITY of a mailbox made again after its deletion is above the old one's, even in the same second.
    @Test func uidValidityNeverRepeats() async throws {
        let url = try await TestServer.newDatabase()
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let store = try await PostgresMailStore.open(url: url, spool: TestServer.spool(), clock: clock)
        defer { store.close() }
        try await store.addDomain("example.test")
        let account = try await store.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw")
        let validities = try await store.column("SELECT uidvalidity FROM mailbox WHERE account_id = \(account) ORDER BY id", as: Int64.self)
        // INBOX and the five special-use mailboxes, made in the same second: each above the one before.
        #expect(validities.count == 1 + SpecialUse.allCases.count)
        #expect(validities == validities.sorted() && Set(validities).count == validities.count && validities[0] == 2_000_000_000)
    }
}

@Suite struct PostgresURLTests {
    @Test func parsesWhatTheConfigHolds() throws {
        let tcp = try PostgresURL.parse("postgres://tern:s3cret@db.example.test:6432/mail?sslmode=require")
        #expect(tcp == PostgresURL(user: "tern", password: "s3cret", host: "db.example.test", port: 6432, database: "mail",
                                   socketFolder: nil, sslMode: "require"))
        // The password from elsewhere (a file, the environment) wins over one in the URL; the port defaults to 5432.
        let plain = try PostgresURL.parse("postgresql://tern@127.0.0.1/tern", password: "from-file")
        #expect(plain.password == "from-file" && plain.port == 5432 && plain.sslMode == "prefer")
        let socket = try PostgresURL.parse("postgres://tern@/tern?host=/run/postgresql")
        #expect(socket.socketFolder == "/run/postgresql")
        for bad in ["mysql://tern@host/db", "postgres://host/db", "postgres://tern@host/", "postgres://tern@host/db?sslmode=verify-full",
                    "postgres://tern@/db"] {
            #expect(throws: StoreError.self, "\(bad)") { try PostgresURL.parse(bad) }
        }
        // Every session gives up on a lock or a statement before the store's 20-second deadline.
        let parameters = Dictionary(uniqueKeysWithValues: tcp.configuration.options.additionalStartupParameters)
        #expect(parameters["lock_timeout"] == "10s" && parameters["statement_timeout"] == "15s")
    }
}

/// Holds the store a factory made, so that the test can close it.
final class StoreBox: @unchecked Sendable {
    var store: PostgresMailStore?
}

/// Two stores on one database are two nodes of one installation: what one commits, the other's observers hear.
@Suite(.enabled(if: TestServer.available, "needs TERN_TEST_POSTGRES (scripts/test starts a server)"))
struct PostgresNodesTests {
    /// Waits up to `seconds` for `condition`.
    func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// A listening connection that stops hearing (here: its node's check notices never come back) is given up and
    /// listening starts again, with a look at everything; while it hears, it is kept.
    @Test func aListenerThatStopsHearingIsReplaced() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000, listenerCheck: .milliseconds(200))
        defer { a.close(); b.close() }
        try await a.addDomain("example.test")
        let account = try await a.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw")
        let inbox = try await a.mailboxes(account: account).first { $0.name == "INBOX" }!.id
        // A check takes 0.2 s to send and 2 s to judge: after 5 s, at least two were judged.
        try await Task.sleep(for: .seconds(5))
        #expect(b.staleListens.withLock { $0 } == 0, "a listener that hears was replaced")
        let heard = Recorder<Int64>()
        b.observeChanges { heard.add($0) }
        b.checkPayloadOverride.withLock { $0 = "c someone-else" }
        #expect(try await eventually(15) { b.staleListens.withLock { $0 } > 0 }, "the deaf listener was kept")
        // The new listener looked at every mailbox (INBOX among them), and hears again once its checks come back.
        #expect(try await eventually(15) { heard.contains(inbox) })
        b.checkPayloadOverride.withLock { $0 = nil }
        heard.clear()
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
        _ = try await a.deliver(Delivery(content: .inline(Array("Subject: x\r\n\r\nx\r\n".utf8)), envelope: envelope,
                                         targets: [DeliveryTarget(account: account)], internalDate: clock.now))
        #expect(try await eventually(10) { heard.contains(inbox) }, "B did not hear A's delivery after listening again")
    }

    /// A queues a message for one remote recipient and takes it; its lease runs out and B takes the recipient over.
    /// Returns A's job, the recipient and B's job (nil, with the issue recorded, when a step fails).
    static func leaseTakenOver(_ a: PostgresMailStore, _ b: PostgresMailStore, _ clock: ManualClock, queueID: String) async throws
        -> (QueuedMessage, QueuedRecipient, QueuedMessage)? {
        let envelope = StoredEnvelope(mailFrom: "alice@example.test", recipients: [])
        _ = try await a.deliver(Delivery(content: .inline(Array("Subject: out\r\n\r\nx\r\n".utf8)), envelope: envelope, targets: [],
                                         internalDate: clock.now, remoteRecipients: [.init(address: "x@far.test")], queueID: queueID))
        guard let taken = try await a.queuedMessages(dueBy: clock.now, after: 0, limit: 10).first,
              let recipient = taken.recipients.first else { Issue.record("A leased nothing"); return nil }
        clock.advance(by: QueueLease.duration + 1)
        guard let again = try await b.queuedMessages(dueBy: clock.now, after: 0, limit: 10).first, again.recipients.first?.status == .pending
        else { Issue.record("B could not take the lapsed lease"); return nil }
        return (taken, recipient, again)
    }

    /// A node whose lease ran out while another node took the recipient over cannot record an outcome for it (no bounce
    /// for what the other is delivering) nor release the other's lease.
    @Test func aLeaseTakenOverIsTheNewHoldersToRecord() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000)
        defer { a.close(); b.close() }
        guard let (taken, recipient, again) = try await Self.leaseTakenOver(a, b, clock, queueID: "QL") else { return }
        // A, late: its failure and its release are not B's.
        _ = try await a.recordAttempts([DeliveryAttempt(recipientID: recipient.id, outcome: .failed, reply: "550 no", remoteHost: "mx")],
                                       completing: taken.id)
        try await a.releaseLeases([recipient.id])
        #expect(try await a.queuedMessages(dueBy: clock.now, after: 0, limit: 10).isEmpty, "A took B's recipient again")
        #expect(try await b.queuedMessage(queueID: "QL")?.recipients.first?.status == .pending)
        // B's outcome counts: delivered to all, the message leaves the queue.
        _ = try await b.recordAttempts([DeliveryAttempt(recipientID: recipient.id, outcome: .delivered, reply: "250 ok", remoteHost: "mx")],
                                       completing: again.id)
        #expect(try await a.queuedMessage(queueID: "QL") == nil)
    }

    /// A late node's delivery is recorded all the same (it happened): the node now holding the recipient finds it done
    /// at its next renewal and does not send it a second time.
    @Test func aLateDeliveryIsRecordedAndTheNewHolderLetsItGo() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000)
        defer { a.close(); b.close() }
        guard let (taken, recipient, _) = try await Self.leaseTakenOver(a, b, clock, queueID: "QD") else { return }
        _ = try await a.recordAttempts([DeliveryAttempt(recipientID: recipient.id, outcome: .delivered, reply: "250 ok", remoteHost: "mx")],
                                       completing: taken.id)
        #expect(try await b.queuedMessage(queueID: "QD") == nil, "the delivered recipient is done, and its message gone")
        #expect(try await b.renewLeases([recipient.id], until: clock.now.addingTimeInterval(QueueLease.duration)).isEmpty,
                "B still holds a recipient that was delivered")
    }

    @Test func changesReachTheOtherNode() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000)
        defer { a.close(); b.close() }
        let mailboxes = Recorder<Int64>(), trees = Recorder<Int64>(), queue = Recorder<Int>()
        b.observeChanges { mailboxes.add($0) }
        b.observeMailboxTree { trees.add($0) }
        b.observeQueue { queue.add(1) }
        try await a.addDomain("example.test")
        let account = try await a.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw")
        let inbox = try await a.mailboxes(account: account).first { $0.name == "INBOX" }!.id
        #expect(try await eventually { trees.contains(account) }, "B heard of A's new account's mailboxes")
        // A delivery on A reaches B's observers; so do a flag change and an expunge.
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
        let receipt = try await a.deliver(Delivery(content: .inline(Array("Subject: x\r\n\r\nx\r\n".utf8)), envelope: envelope,
                                                   targets: [DeliveryTarget(account: account)], internalDate: clock.now))
        #expect(try await eventually { mailboxes.contains(inbox) }, "B heard of the delivery")
        #expect(try await b.messages(mailbox: inbox).map(\.uid) == [receipt.placements[0].1])
        mailboxes.clear()
        _ = try await a.storeFlags(mailbox: inbox, uids: [receipt.placements[0].1], operation: .add, flags: .seen, keywords: [], unchangedSince: nil)
        #expect(try await eventually { mailboxes.contains(inbox) }, "B heard of the flag change")
        trees.clear()
        _ = try await a.createMailbox(account: account, name: "Projects")
        #expect(try await eventually { trees.contains(account) }, "B heard of the new mailbox")
        trees.clear()
        try await a.renameMailbox(account: account, from: "Projects", to: "Done")
        #expect(try await eventually { trees.contains(account) }, "B heard of the rename")
        let rcpt = StoredEnvelope.Recipient(address: "x@remote.test")
        _ = try await a.deliver(Delivery(content: .inline(Array("Subject: y\r\n\r\ny\r\n".utf8)), envelope: envelope, targets: [],
                                         internalDate: clock.now, remoteRecipients: [rcpt], queueID: "Q1"))
        #expect(try await eventually { !queue.isEmpty }, "B's queue runner heard of the queued message")
    }

    /// Each node answers RCPT from its cache of resolutions, and forgets them when the directory changes on any node
    /// (at once on the node that made the change, within a second on the others).
    @Test func resolutionsFollowDirectoryChangesOnEveryNode() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000)
        defer { a.close(); b.close() }
        try await a.addDomain("example.test")
        let alice = try EmailAddress.parse("alice@example.test"), bob = try EmailAddress.parse("bob@example.test")
        let id = try await a.addAccount(alice, password: "pw")
        // Wait for B to hear of both changes (the domain's notice and the account's) before it answers from its cache.
        #expect(try await eventually { b.resolutions.generation >= 2 })
        #expect(try await b.resolve(bob) == .unknownUser)
        #expect(try await b.resolve(alice) == .local([id]))
        #expect(b.cachedResolution(bob) == .unknownUser && b.cachedResolution(alice) == .local([id]))
        let bobID = try await a.addAccount(bob, password: "pw")
        #expect(try await eventually { b.cachedResolution(bob) == nil }, "B forgot bob's old answer")
        #expect(try await b.resolve(bob) == .local([bobID]))
        // The node that makes a change forgets at once.
        #expect(try await a.resolve(bob) == .local([bobID]))
        try await a.removeAccount(bob)
        #expect(a.cachedResolution(bob) == nil)
        #expect(try await a.resolve(bob) == .unknownUser)
        #expect(try await eventually { b.cachedResolution(bob) == nil })
        #expect(try await b.resolve(bob) == .unknownUser)

        // Active Sieve scripts are cached by the same rule: a change on A reaches B's cache (schema 10's trigger).
        let aliceID = try #require(try await a.account(alice))
        #expect(try await b.activeScripts(accounts: [aliceID]) == [:])
        #expect(b.cachedActiveScripts(accounts: [aliceID]) == [:])
        try await a.putScript(account: aliceID, name: "s", content: "discard;")
        try await a.activateScript(account: aliceID, name: "s")
        #expect(a.cachedActiveScripts(accounts: [aliceID]) == nil)
        #expect(try await eventually { b.cachedActiveScripts(accounts: [aliceID]) == nil }, "B forgot alice's script")
        #expect(try await b.activeScripts(accounts: [aliceID]) == [aliceID: "discard;"])
        try await a.activateScript(account: aliceID, name: nil)
        #expect(try await eventually { b.cachedActiveScripts(accounts: [aliceID]) == nil })
        #expect(try await b.activeScripts(accounts: [aliceID]) == [:])
    }

    /// Greylisting, rate counters and job claims made through node A hold on node B: one installation, one state.
    @Test func policyStateIsSharedByTheNodes() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_001_600)
        defer { a.close(); b.close() }
        let rule = GreylistRule(delay: 60, window: 3600, remember: 86400)
        let key = "192.0.2.1|a@remote.test|alice@example.test"
        #expect(try await a.greylist(key, rule: rule, now: clock.now) == .wait(seconds: 60))
        #expect(try await b.greylist(key, rule: rule, now: clock.now.addingTimeInterval(30)) == .wait(seconds: 30), "B knows A saw it")
        #expect(try await b.greylist(key, rule: rule, now: clock.now.addingTimeInterval(61)) == .pass)
        #expect(try await a.greylist(key, rule: rule, now: clock.now.addingTimeInterval(62)) == .pass, "A knows it passed on B")
        // A limit of 3 an hour: two on A, one on B, and the fourth is refused on either.
        for store in [a, a, b] { #expect(try await store.takeRate("c:192.0.2.1", limit: 3, now: clock.now)) }
        #expect(try await !b.takeRate("c:192.0.2.1", limit: 3, now: clock.now))
        #expect(try await !a.takeRate("c:192.0.2.1", limit: 3, now: clock.now))
        // One node runs the installation's jobs.
        #expect(try await a.claimJob("housekeeping", holder: "A", until: clock.now.addingTimeInterval(3540), now: clock.now))
        #expect(try await !b.claimJob("housekeeping", holder: "B", until: clock.now.addingTimeInterval(3540), now: clock.now))
        #expect(a.memoryPolicyState == nil && b.memoryPolicyState == nil, "on PostgreSQL the state is never a node's own")
    }

    /// When B's listening connection is cut, B reconnects and tells every observer to look again (notices sent
    /// meanwhile are lost), then hears new changes as before.
    @Test func listenerReconnectsAndResyncs() async throws {
        let (a, b, clock) = try await TestServer.twoNodes(at: 2_000_000_000)
        defer { a.close(); b.close() }
        try await a.addDomain("example.test")
        let account = try await a.addAccount(try EmailAddress.parse("alice@example.test"), password: "pw")
        let inbox = try await a.mailboxes(account: account).first { $0.name == "INBOX" }!.id
        let mailboxes = Recorder<Int64>()
        b.observeChanges { mailboxes.add($0) }
        var listening: Int64 = 0
        for _ in 0..<250 where listening != 2 {
            listening = try await a.column("""
                SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()
                """, as: Int64.self).first ?? 0
            if listening != 2 { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(listening == 2, "both nodes listen")
        // Cut every listening connection; B's comes back on its own.
        _ = try await a.column("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()
            """, as: Bool.self)
        #expect(try await eventually(10) { mailboxes.contains(inbox) }, "B told its observers to look again after reconnecting")
        mailboxes.clear()
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
        _ = try await a.deliver(Delivery(content: .inline(Array("Subject: x\r\n\r\nx\r\n".utf8)), envelope: envelope,
                                         targets: [DeliveryTarget(account: account)], internalDate: clock.now))
        #expect(try await eventually(10) { mailboxes.contains(inbox) }, "B hears new changes after reconnecting")
    }
}

/// `tern migrate` SQLite -> PostgreSQL -> SQLite: every table and every content the same in all three, ids included;
/// the PostgreSQL copy then serves new mail after the copied ids and UIDs.
@Suite(.enabled(if: TestServer.available, "needs TERN_TEST_POSTGRES"))
struct PostgresMigrationTests {
    @Test func sqliteToPostgresAndBack() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tern-pgmig-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let first = try SQLiteMailStore(dataDirectory: root.appendingPathComponent("first"), clock: clock)
        try await MigrationFixture.populate(first, clock: clock)
        let pg = try await PostgresMailStore.open(url: try await TestServer.newDatabase(), spool: TestServer.spool(), clock: clock)
        defer { pg.close() }
        try await StoreMigration.copy(from: first, to: pg)
        let last = try SQLiteMailStore(dataDirectory: root.appendingPathComponent("last"), clock: clock)
        try await StoreMigration.copy(from: pg, to: last)
        let original = try await MigrationFixture.snapshot(first)
        #expect(original == (try await MigrationFixture.snapshot(pg)), "SQLite -> PostgreSQL")
        #expect(original == (try await MigrationFixture.snapshot(last)), "SQLite -> PostgreSQL -> SQLite")
        // The PostgreSQL copy as a server would use it.
        let alice = try #require(try await pg.verifyPassword(try EmailAddress.parse("alice@example.test"), password: "pw-alice"))
        let inbox = try #require(try await pg.mailboxes(account: alice).first { $0.name == "INBOX" })
        let receipt = try await pg.deliver(Delivery(content: .inline(Array("Subject: new\r\n\r\nnew\r\n".utf8)),
                                                    envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                    targets: [DeliveryTarget(account: alice)], internalDate: clock.now))
        #expect(receipt.placements[0].1 == inbox.uidNext)
        #expect(receipt.messageID > (original["message"] ?? []).compactMap { $0.first?.integer }.max() ?? 0)
        #expect(try await pg.addAccount(try EmailAddress.parse("carol@example.test"), password: "pw") > alice)
        #expect(try await pg.queuedMessage(queueID: "QMIG1")?.recipients.count == 2)
    }
}
