import Foundation
import MailCore
import MailStore
import StoreConformance
import TernTestSupport
import Testing
@testable import MailStoreSQLite

/// The store conformance suite (Tests/StoreConformance) on the SQLite backend.
@Suite struct SQLiteConformanceTests {
    @Test(arguments: StoreConformance.cases) func conforms(_ c: StoreConformance.Case) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-conf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let problems = try await c.run { clock in try SQLiteMailStore(dataDirectory: dir, clock: clock) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}

/// The directory conformance suite (Tests/StoreConformance) on the SQLite backend.
@Suite struct SQLiteDirectoryConformanceTests {
    @Test(arguments: DirectoryConformance.cases) func conforms(_ c: DirectoryConformance.Case) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-dir-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let problems = try await c.run { clock in try SQLiteMailStore(dataDirectory: dir, clock: clock) }
        #expect(problems.isEmpty, "\(c.name): \(problems)")
    }
}

/// `tern migrate` between two SQLite stores: every table and every content arrives as it was, ids included; the
/// copy refuses a destination that holds anything; the destination hands out new ids and UIDs after the copied ones.
@Suite struct SQLiteMigrationTests {
    @Test func aCopyHoldsTheSameInstallation() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tern-mig-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
        let source = try SQLiteMailStore(dataDirectory: root.appendingPathComponent("a"), clock: clock)
        try await MigrationFixture.populate(source, clock: clock)
        let copy = try SQLiteMailStore(dataDirectory: root.appendingPathComponent("b"), clock: clock)
        let counts = try await StoreMigration.copy(from: source, to: copy)
        #expect(counts.allSatisfy { $0.rows > 0 }, "the fixture leaves a table empty: \(counts.filter { $0.rows == 0 })")
        let before = try await MigrationFixture.snapshot(source), after = try await MigrationFixture.snapshot(copy)
        #expect(before == after)
        await #expect(throws: StoreMigration.NotEmpty.self) { try await StoreMigration.copy(from: source, to: copy) }
        // New mail in the copy: the next UID, and a message id after every copied one.
        let alice = try #require(try await copy.account(try EmailAddress.parse("alice@example.test")))
        let inbox = try #require(try await copy.mailboxes(account: alice).first { $0.name == "INBOX" })
        let receipt = try await copy.deliver(Delivery(content: .inline(Array("Subject: new\r\n\r\nnew\r\n".utf8)),
                                                      envelope: StoredEnvelope(mailFrom: "", recipients: []),
                                                      targets: [DeliveryTarget(account: alice)], internalDate: clock.now))
        #expect(receipt.placements[0].1 == inbox.uidNext)
        // After every id the source ever handed out, not only after those its rows still hold (the fixture removed
        // its newest message, mailbox and queue entry).
        let marks = try await source.idHighWater()
        for table in TransferTable.neverReused {
            let present = (before[table] ?? []).compactMap { $0.first?.integer }.max() ?? 0
            #expect((marks[table] ?? 0) > present, "\(table): the fixture's removed row is not above the rest")
        }
        #expect(receipt.messageID > marks["message"] ?? .max)
        let scratch = try await copy.createMailbox(account: alice, name: "Scratch")
        #expect(scratch > marks["mailbox"] ?? .max)
    }
}
