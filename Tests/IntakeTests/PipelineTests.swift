import Foundation
import Logging
import MailCore
import MailDNS
import MailMessage
import MailStore
import MailStoreSQLite
import TernConfig
import TernTestSupport
import Testing
@testable import Intake

/// The intake pipeline, step by step (each step's value built and inspected) and whole (a message taken in on a real
/// SQLite store, with DNS made of plain data and a manual clock).
@Suite struct PipelineTests {
    static let start = Date(timeIntervalSince1970: 2_000_000_000)

    // MARK: step 1, recipients

    @Test func recipientPolicyDecidesFromTheResolutionAndTheSource() throws {
        let mx = RecipientPolicy(mayRelay: false, testerLocalPart: "Check")
        let submission = RecipientPolicy(mayRelay: true)
        let a = try EmailAddress.parse("someone@here.test"), check = try EmailAddress.parse("CHECK@here.test")
        let outside = try EmailAddress.parse("x@elsewhere.test")
        #expect(mx.decide(a, .success(.local([AccountID(7)]))) == .accept(.local([AccountID(7)])))
        // Port 25 never relays; submission does.
        guard case .refuse(let relay) = mx.decide(outside, .success(.notOurDomain)) else { Issue.record("relayed"); return }
        #expect(relay.code.rawValue == 550 && relay.enhanced?.description == "5.7.1")
        #expect(submission.decide(outside, .success(.notOurDomain)) == .accept(.remote))
        // Unknown users are refused for good, except the tester's address where the tester is on.
        guard case .refuse(let unknown) = mx.decide(a, .success(.unknownUser)) else { Issue.record("accepted"); return }
        #expect(unknown.code.rawValue == 550 && unknown.enhanced?.description == "5.1.1")
        #expect(mx.decide(check, .success(.unknownUser)) == .accept(.tester))
        #expect(submission.decide(check, .success(.unknownUser)) != .accept(.tester))
        // A full mailbox and a failed lookup are temporary: the sender retries.
        guard case .refuse(let full) = mx.decide(a, .failure(MailboxFull())),
              case .refuse(let failed) = mx.decide(a, .failure(FileSystemError(errno: EIO, "read"))) else { Issue.record("accepted"); return }
        #expect(full.code.rawValue == 452 && full.enhanced?.description == "4.2.2")
        #expect(failed.code.rawValue == 451 && !failed.code.isPermanent)
    }

    // MARK: step 2, routing

    @Test func routingStoresOneCopyPerAccountQueuesTheRestAndLeavesTheTesterOut() {
        let alice = AccountID(1), bob = AccountID(2)
        let envelope = IntakeEnvelope(mailFrom: "s@remote.test", recipients: [
            .init(address: "alice@here.test"), .init(address: "team@here.test"), .init(address: "x@far.test", notify: ["NEVER"]),
            .init(address: "check@here.test"),
        ], envelopeID: "env1", dsnReturn: "HDRS")
        let plan = RoutingPlan(envelope: envelope, routes: [.local([alice]), .local([alice, bob]), .remote, .tester])
        #expect(plan.targets.map(\.account) == [alice, bob])
        #expect(plan.targets.allSatisfy { $0.mailbox == nil && $0.specialUse == nil })
        #expect(plan.remote == [StoredEnvelope.Recipient(address: "x@far.test", notify: ["NEVER"])])
        #expect(plan.localAddresses == ["alice@here.test", "team@here.test"])
        #expect(plan.testerAddress == "check@here.test" && plan.hasOtherRecipients)
        // The envelope kept with the message names everyone but the tester, with the DSN parameters.
        #expect(plan.envelope.recipients.map(\.address) == ["alice@here.test", "team@here.test", "x@far.test"])
        #expect(plan.envelope.envelopeID == "env1" && plan.envelope.dsnReturn == "HDRS")
        #expect(plan.intoJunk().targets.allSatisfy { $0.specialUse == .junk })
        let onlyTester = RoutingPlan(envelope: IntakeEnvelope(mailFrom: "", recipients: [.init(address: "check@here.test")]), routes: [.reported])
        #expect(!onlyTester.hasOtherRecipients && onlyTester.targets.isEmpty && onlyTester.testerAddress == nil)
    }

    // MARK: steps 4 and 5, the commit and the reply

    @Test func commitWritesTheLogWithTheDeliveryAndTheReplySaysWhatHappened() {
        let plan = RoutingPlan(envelope: IntakeEnvelope(mailFrom: "s@remote.test", recipients: [.init(address: "a@here.test"), .init(address: "z@far.test")]),
                               routes: [.local([AccountID(1)]), .remote])
        let prepared = Prepared(content: .inline(Array("Subject: x\r\n\r\nhi\r\n".utf8)), messageID: "<m@x>", checked: "spf=pass", junk: true)
        let delivery = IntakeCommit.delivery(plan: plan, prepared: prepared, queueID: "Q9", now: Self.start, received: "from x")
        #expect(delivery.queueID == "Q9" && delivery.internalDate == Self.start)
        #expect(delivery.targets == [DeliveryTarget(account: AccountID(1), specialUse: .junk)])
        #expect(delivery.remoteRecipients.map(\.address) == ["z@far.test"])
        #expect(delivery.log.map(\.kind).contains(.received) && delivery.log.allSatisfy { $0.queueID == "Q9" })
        #expect(IntakeCommit.delivery(plan: plan, prepared: prepared, queueID: "Q9", now: Self.start, received: nil).log.isEmpty)

        let receipt = DeliveryReceipt(messageID: MessageID(1), placements: [])
        #expect(IntakeOutcome.committed(receipt, queueID: "Q9", size: 10, queued: true).reply.encoded() == "250 2.0.0 Ok: queued as Q9\r\n")
        #expect(IntakeOutcome.committed(receipt, queueID: "Q9", size: 10, queued: false).reply.encoded() == "250 2.0.0 Ok: stored as Q9\r\n")
        #expect(IntakeOutcome.failed(FileSystemError(errno: ENOSPC, "write")).reply.encoded().hasPrefix("452 4.3.1"))
        #expect(IntakeOutcome.failed(FileSystemError(errno: EIO, "write")).reply.encoded().hasPrefix("451 4.3.0"))
    }

    // MARK: the whole pipeline on a store

    final class Rig: @unchecked Sendable {
        let dir: URL
        let store: SQLiteMailStore
        let alice: AccountID
        let bob: AccountID
        let config: TernConfiguration
        let logger: Logger

        init(quota: Int = 0) async throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-intake-\(UUID().uuidString)")
            store = try SQLiteMailStore(dataDirectory: dir, clock: ManualClock(PipelineTests.start))
            try await store.addDomain("here.test")
            alice = try await store.addAccount(try EmailAddress.parse("alice@here.test"), password: "pw")
            bob = try await store.addAccount(try EmailAddress.parse("bob@here.test"), password: "pw")
            try await store.addAlias("team@here.test", targets: [try EmailAddress.parse("alice@here.test"), try EmailAddress.parse("bob@here.test")])
            var c = TernConfiguration.embeddedDefault(dataDirectory: dir)
            c.hostname = "mx.here.test"
            c.limits.quota = quota
            config = c
            var l = Logger(label: "intake-test")
            l.logLevel = .critical
            logger = l
        }

        func intake(greylisting: Bool = false, _ dns: ((inout StaticResolver) -> Void)? = nil) -> Intake {
            var checks: InboundChecks?
            if let dns {
                var resolver = StaticResolver()
                dns(&resolver)
                var c = config
                c.checks.spamFilter = false
                c.checks.greylisting = greylisting
                checks = InboundChecks(config: c, resolver: resolver, clock: ManualClock(PipelineTests.start))
            }
            return Intake(store: store, config: config, checks: checks, work: InlineWork(), logger: logger)
        }

        /// The messages in `account`'s mailbox with `use` (INBOX: nil), with their contents.
        func contents(_ account: AccountID, _ use: SpecialUse? = nil) async throws -> [String] {
            let boxes = try await store.mailboxes(account: account)
            guard let box = use == nil ? boxes.first(where: { $0.name == "INBOX" }) : boxes.first(where: { $0.specialUse == use }) else { return [] }
            var out: [String] = []
            for m in try await store.messages(mailbox: box.id) { out.append(String(decoding: try await store.content(of: m.messageID), as: UTF8.self)) }
            return out
        }

        func receive(_ intake: Intake, _ message: IncomingMessage, _ bytes: String) async -> IntakeOutcome {
            let sink = MessageSink(blobs: store.blobs, inlineLimit: store.inlineLimit, maxSize: 1 << 20, prefix: "Return-Path: <\(message.envelope.mailFrom)>\r\n")
            sink.append(Array(bytes.utf8))
            return await withCheckedContinuation { c in intake.receive(message, sink: sink) { c.resume(returning: $0) } }
        }

        func stop() { try? FileManager.default.removeItem(at: dir) }
    }

    @Test func sendmailGoesThroughTheSamePipeline() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        let receipt = try await LocalSubmission.submit(
            Array("From: root@here.test\r\nSubject: cron\r\n\r\ndone\r\n".utf8), mailFrom: "root@here.test",
            recipients: [try EmailAddress.parse("alice@here.test"), try EmailAddress.parse("team@here.test"), try EmailAddress.parse("ops@far.test")],
            origin: "root (uid 0)", intake: intake, now: Self.start, logger: rig.logger)
        #expect(receipt.local == 2 && receipt.remote == 1)
        // One copy each for alice (named twice, directly and through the alias) and bob, prepared as submitted mail.
        let alice = try await rig.contents(rig.alice), bob = try await rig.contents(rig.bob)
        #expect(alice.count == 1 && bob.count == 1)
        let head = alice[0].components(separatedBy: "\r\n\r\n")[0]
        #expect(head.contains("Received: by mx.here.test (Tern sendmail, from root (uid 0))"))
        #expect(head.contains("Message-ID: <") && head.contains("Date: ") && !head.contains("Return-Path"))
        // Queued for the outside recipient in the same commit, and logged.
        let queued = try #require(try await rig.store.queuedMessage(queueID: receipt.queueID))
        #expect(queued.recipients.map(\.address) == ["ops@far.test"])
        let log = try await rig.store.deliveryLog(id: receipt.queueID)
        #expect(log.contains { $0.kind == .received && $0.detail.contains("via tern sendmail") })
        // An unknown local user is refused before anything is stored.
        await #expect(throws: LocalSubmission.Failure.self) {
            _ = try await LocalSubmission.submit(Array("Subject: x\r\n\r\nx\r\n".utf8), mailFrom: "root@here.test",
                                                 recipients: [try EmailAddress.parse("nobody@here.test")], origin: "root",
                                                 intake: intake, now: Self.start, logger: rig.logger)
        }
        #expect(try await rig.contents(rig.alice).count == 1)
    }

    @Test func portTwentyFiveChecksRefuseOrFileAsJunkBeforeTheCommit() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let intake = rig.intake { dns in
            dns.txt["remote.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
            dns.txt["_dmarc.remote.test"] = ["v=DMARC1; p=reject"]
            dns.txt["soft.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
            dns.txt["_dmarc.soft.test"] = ["v=DMARC1; p=quarantine"]
        }
        let checks = try #require(intake.checks)
        let facts = await checks.connect("198.51.100.7")
        func message(from: String, id: String) async -> IncomingMessage {
            let spf = await checks.mailFrom(client: facts, helo: "x.test", sender: from).spf
            return IncomingMessage(source: .mx, envelope: IntakeEnvelope(mailFrom: from, recipients: [.init(address: "alice@here.test")]),
                                   routes: [.local([rig.alice])], queueID: id, arrived: Self.start,
                                   client: IntakeClient(address: "198.51.100.7", helo: "x.test", facts: facts, spf: spf),
                                   received: "from x.test", returnPathLength: "Return-Path: <\(from)>\r\n".utf8.count, logger: rig.logger)
        }
        func body(_ from: String) -> String {
            "Authentication-Results: mx.here.test; dmarc=pass\r\nFrom: <\(from)>\r\nTo: <alice@here.test>\r\nSubject: hi\r\nMessage-ID: <m@x>\r\n\r\nhello\r\n"
        }
        // p=reject: refused with 550, nothing stored, the refusal in the delivery log.
        let refused = await rig.receive(intake, await message(from: "a@remote.test", id: "R1"), body("a@remote.test"))
        guard case .refused(let reply) = refused else { Issue.record("not refused: \(refused)"); return }
        #expect(reply.code.rawValue == 550)
        #expect(try await rig.contents(rig.alice).isEmpty)
        #expect(try await rig.store.deliveryLog(id: "R1").map(\.kind) == [.received, .checked, .refused])
        // p=quarantine: into Junk; the forged Authentication-Results is gone and Tern's own sits below the Return-Path.
        let junk = await rig.receive(intake, await message(from: "a@soft.test", id: "J1"), body("a@soft.test"))
        guard case .committed(_, let id, _, let queued) = junk else { Issue.record("not committed: \(junk)"); return }
        #expect(id == "J1" && !queued)
        #expect(try await rig.contents(rig.alice).isEmpty)
        let stored = try await rig.contents(rig.alice, .junk)
        #expect(stored.count == 1)
        #expect(stored.first?.hasPrefix("Return-Path: <a@soft.test>\r\nAuthentication-Results: mx.here.test;") == true)
        #expect(stored.first?.contains("dmarc=pass") == false && stored.first?.contains("dmarc=fail") == true)
    }

    @Test func aFullMailboxIsATemporaryRefusalAtRecipientTime() async throws {
        let rig = try await Rig(quota: 100)
        defer { rig.stop() }
        let intake = rig.intake()
        let policy = intake.policy(for: .mx)
        let bob = try EmailAddress.parse("bob@here.test")
        #expect(await intake.recipient(bob, isPostmaster: false, policy: policy) == .accept(.local([rig.bob])))
        // The cache may not answer while a quota is set: usage must be read.
        #expect(intake.cachedRecipient(bob, isPostmaster: false, policy: policy) == nil)
        let incoming = IncomingMessage(source: .mx, envelope: IntakeEnvelope(mailFrom: "s@remote.test", recipients: [.init(address: "bob@here.test")]),
                                       routes: [.local([rig.bob])], queueID: "F1", arrived: Self.start, received: nil, logger: rig.logger)
        guard case .committed = await rig.receive(intake, incoming, "Subject: big\r\n\r\n" + String(repeating: "x", count: 200) + "\r\n") else {
            Issue.record("not stored"); return
        }
        guard case .refuse(let reply) = await intake.recipient(bob, isPostmaster: false, policy: policy) else { Issue.record("accepted"); return }
        #expect(reply.code.rawValue == 452 && reply.enhanced?.description == "4.2.2")
    }

    @Test func greylistingAppliesWhetherTheDirectoryCacheAnswersOrNot() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let intake = rig.intake(greylisting: true) { _ in }
        let checks = try #require(intake.checks)
        let client = await checks.connect("198.51.100.7")
        let policy = intake.policy(for: .mx), alice = try EmailAddress.parse("alice@here.test")
        let tuple = (client: client, sender: "a@remote.test")
        // The first attempt of the triplet waits (the store is asked: the cache is empty).
        #expect(intake.cachedRecipient(alice, isPostmaster: false, policy: policy, greylist: tuple) == nil)
        guard case .refuse(let first) = await intake.recipient(alice, isPostmaster: false, policy: policy, greylist: tuple) else {
            Issue.record("accepted"); return
        }
        #expect(first.code.rawValue == 451 && first.enhanced?.description == "4.7.1")
        // Now the directory cache answers on the caller's thread, and the triplet still waits.
        guard case .refuse(let cached)? = intake.cachedRecipient(alice, isPostmaster: false, policy: policy, greylist: tuple) else {
            Issue.record("not refused from the cache"); return
        }
        #expect(cached.code.rawValue == 451)
        // Without a greylist tuple (an exempt client, submission) the same address is accepted from the cache.
        #expect(intake.cachedRecipient(alice, isPostmaster: false, policy: policy) == .accept(.local([rig.alice])))
    }

    @Test func theMessageIDIsFoundByTheHeaderScanAsByTheFieldParser() {
        let heads = [
            "Subject: x\r\nMessage-ID: <a.1@example.test>\r\n\r\nbody\r\n",
            "message-id:<b@x>\r\nMessage-ID: <second@x>\r\n\r\n",
            "Subject: folded\r\nMESSAGE-ID:\r\n <c.folded@example.test>\r\nTo: y\r\n\r\n",
            "Subject: none\r\n\r\nMessage-ID: <in.the.body@x>\r\n",
            "X-Message-ID: <not.this@x>\r\nSubject: y\r\n\r\n",
            "Message-ID: <>\r\n\r\n",
            "Message-ID: <no.body@x>",
        ]
        for text in heads {
            let bytes = Array(text.utf8)
            let parsed = DeliveryLogEvents.messageID(RawHeader.fields(bytes[..<RawHeader.end(bytes)]))
            #expect(DeliveryLogEvents.messageID(head: bytes) == parsed, "\(text)")
        }
        #expect(DeliveryLogEvents.messageID(head: Array(heads[2].utf8)) == "c.folded@example.test")
        #expect(DeliveryLogEvents.messageID(head: Array(heads[3].utf8)) == nil)
    }

    @Test func postmasterIsAlwaysTaken() async throws {
        let rig = try await Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        let policy = intake.policy(for: .mx)
        // No account or alias of that name: the domain's oldest account (alice), in any case of the name, and the
        // bare <Postmaster> (which the state machine names at the server's host name, not a served domain).
        for text in ["postmaster@here.test", "PostMaster@HERE.test"] {
            #expect(await intake.recipient(try EmailAddress.parse(text), isPostmaster: false, policy: policy) == .accept(.local([rig.alice])))
        }
        #expect(await intake.recipient(try EmailAddress.parse("postmaster@mx.here.test"), isPostmaster: true, policy: policy)
                == .accept(.local([rig.alice])))
        // Other unknown names are still refused.
        guard case .refuse = await intake.recipient(try EmailAddress.parse("webmaster@here.test"), isPostmaster: false, policy: policy) else {
            Issue.record("accepted"); return
        }
        // The config's `postmaster` when set; an alias of that name before either.
        var config = rig.config
        config.postmaster = try EmailAddress.parse("bob@here.test")
        let configured = Intake(store: rig.store, config: config, checks: nil, work: InlineWork(), logger: rig.logger)
        #expect(await configured.recipient(try EmailAddress.parse("postmaster@here.test"), isPostmaster: false, policy: policy)
                == .accept(.local([rig.bob])))
        try await rig.store.addAlias("postmaster@here.test", targets: [try EmailAddress.parse("alice@here.test")])
        #expect(await configured.recipient(try EmailAddress.parse("POSTMASTER@here.test"), isPostmaster: false, policy: policy)
                == .accept(.local([rig.alice])))
    }
}
