import Foundation
import Logging
import Synchronization
import MailCore
import MailDNS
import MailStore
import MailStoreSQLite
import NIOPosix
import TernConfig
import TernTestSupport
import Testing
@testable import MailDelivery
@testable import MailServer

/// The outbound queue on a manual clock, a DNS made of plain data and a scripted remote server: which recipients are
/// tried when, what the retry schedule gives, when the sender hears of a delay, and the bounce once the queue gives
/// up. The queue is driven scan by scan, as its run loop would, with the clock moved between scans.
@Suite struct OutboundQueueTests {
    final class Rig {
        let clock: ManualClock
        let store: SQLiteMailStore
        let remote: ScriptedSMTPServer
        let queue: OutboundQueue
        let group: MultiThreadedEventLoopGroup
        let dir: URL
        let sender: AccountID
        let start: Date

        init(tweak: (inout TernConfiguration.Delivery) -> Void, dns: (inout StaticResolver) -> Void = { _ in },
             wrap: (StaticResolver) -> any DNSResolver = { $0 }, rcptReply: @escaping @Sendable (String) -> String) async throws {
            start = Date(timeIntervalSince1970: 2_000_000_000)
            clock = ManualClock(start)
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-queue-\(UUID().uuidString)")
            store = try SQLiteMailStore(dataDirectory: dir, clock: clock)
            try await store.addDomain("here.test")
            sender = try await store.addAccount(try EmailAddress.parse("alice@here.test"), password: "pw")
            remote = try ScriptedSMTPServer(rcptReply: rcptReply)
            var config = TernConfiguration.embeddedDefault(dataDirectory: dir)
            config.hostname = "mx.here.test"
            config.delivery.remotePort = remote.port
            tweak(&config.delivery)
            var resolver = StaticResolver()
            resolver.mx["remote.test"] = [MXRecord(preference: 10, exchange: "mx.remote.test")]
            resolver.a["mx.remote.test"] = ["127.0.0.1"]
            dns(&resolver)
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            var logger = Logger(label: "queue-test")
            logger.logLevel = .critical
            queue = OutboundQueue(store: store, resolver: wrap(resolver), courier: try SMTPCourier(group: group, heloName: "mx.here.test"),
                                  config: config, clock: clock, logger: logger)
        }

        func stop() async throws {
            remote.stop()
            try await group.shutdownGracefully()
            try? FileManager.default.removeItem(at: dir)
        }

        /// Queues a message from alice to `recipients` now.
        func enqueue(_ recipients: [String], id: String = "Q1", notify: [String]? = nil, ret: String? = nil) async throws {
            let rcpts = recipients.map { StoredEnvelope.Recipient(address: $0, notify: notify) }
            var envelope = StoredEnvelope(mailFrom: "alice@here.test", recipients: rcpts)
            envelope.dsnReturn = ret
            envelope.envelopeID = notify == nil ? nil : "env-\(id)"
            let content = Array("From: alice@here.test\r\nTo: someone@remote.test\r\nSubject: report\r\nMessage-ID: <q1@here.test>\r\n\r\nthe report\r\n".utf8)
            _ = try await store.deliver(Delivery(content: .inline(content), envelope: envelope, targets: [], internalDate: clock.now,
                                                 remoteRecipients: rcpts, queueID: id))
        }

        /// One pass of the queue, then waits (bounded) until everything it started has finished.
        func scan() async throws {
            _ = try await queue.scan(after: 0)
            for _ in 0..<1000 {
                if queue.isIdle { return }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("the queue did not settle")
        }

        func recipients() async throws -> [String: QueuedRecipient] {
            guard let m = try await store.queuedMessage(queueID: "Q1") else { return [:] }
            return Dictionary(uniqueKeysWithValues: m.recipients.map { ($0.address, $0) })
        }

        /// The sender's INBOX: the delay notices and bounces the queue wrote.
        func senderMail() async throws -> [String] {
            let inbox = try await store.mailboxes(account: sender)[0]
            var out: [String] = []
            for m in try await store.messages(mailbox: inbox.id) { out.append(String(decoding: try await store.content(of: m.messageID), as: UTF8.self)) }
            return out
        }

        func at(_ seconds: TimeInterval) { clock.set(start.addingTimeInterval(seconds)) }
    }

    static func reply(_ address: String) -> String {
        switch address {
        case "ok@remote.test": return "250 2.1.5 OK"
        case "gone@remote.test": return "550 5.1.1 No such user"
        default: return "451 4.7.1 Try again later"
        }
    }

    /// NOTIFY=SUCCESS to a next hop without DSN: the sender gets a "relayed" notice (RFC 3461 §5.2.3) with the
    /// ENVID and, without RET=FULL, only the header; a failed recipient of the same message shares the notice.
    @Test func successNoticeWhenTheNextHopHasNoDSN() async throws {
        let rig = try await Rig(tweak: { _ in }, rcptReply: Self.reply)
        try await rig.enqueue(["ok@remote.test", "gone@remote.test"], notify: ["SUCCESS", "FAILURE"])
        try await rig.scan()
        #expect(try await rig.store.queuedMessage(queueID: "Q1") == nil)
        let mail = try await rig.senderMail()
        #expect(mail.count == 1)
        let notice = mail.first ?? ""
        #expect(notice.contains("Subject: Delivery Status Notification"))
        #expect(notice.contains("Final-Recipient: rfc822; ok@remote.test\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.remote.test"))
        #expect(notice.contains("Final-Recipient: rfc822; gone@remote.test\r\nAction: failed\r\nStatus: 5.1.1"))
        #expect(notice.contains("Original-Envelope-Id: env-Q1"))
        // A failure in the notice returns the message (no RET given).
        #expect(notice.contains("Content-Type: message/rfc822"))
        try await rig.stop()
    }

    @Test func successNoticeAloneCarriesTheHeaderUnlessRetFull() async throws {
        let rig = try await Rig(tweak: { _ in }, rcptReply: Self.reply)
        try await rig.enqueue(["ok@remote.test"], id: "Q1", notify: ["SUCCESS"])
        try await rig.enqueue(["ok@remote.test"], id: "Q2", notify: ["SUCCESS"], ret: "FULL")
        try await rig.enqueue(["ok@remote.test"], id: "Q3", notify: ["FAILURE"])
        try await rig.scan()
        let mail = try await rig.senderMail().sorted { $0.contains("env-Q1") && !$1.contains("env-Q1") }
        #expect(mail.count == 2)   // none for Q3: it asked only for failures
        #expect(mail.allSatisfy { $0.contains("Subject: Successful Mail Delivery Report") && $0.contains("Action: relayed") })
        #expect(mail.first { $0.contains("env-Q1") }?.contains("Content-Type: text/rfc822-headers") == true)
        #expect(mail.first { $0.contains("env-Q2") }?.contains("Content-Type: message/rfc822") == true)
        try await rig.stop()
    }

    @Test func retriesOnTheScheduleTellsOfTheDelayAndBouncesWhenItGivesUp() async throws {
        let rig = try await Rig(tweak: {
            $0.retry = [.seconds(60), .seconds(300)]
            $0.giveUpAfter = .seconds(1800)
            $0.delayNotice = .seconds(600)
        }, rcptReply: Self.reply)
        try await rig.enqueue(["ok@remote.test", "later@remote.test", "gone@remote.test"])
        try await rig.scan()
        // First attempt: one delivered, one refused for good, one deferred by the first step of the schedule.
        var r = try await rig.recipients()
        #expect(r["ok@remote.test"]?.status == .delivered)
        #expect(r["gone@remote.test"]?.status == .failed && r["gone@remote.test"]?.lastReply?.hasPrefix("550") == true)
        #expect(r["later@remote.test"]?.status == .pending)
        #expect(r["later@remote.test"]?.nextAttempt == rig.start.addingTimeInterval(60))
        #expect(rig.remote.messages.count == 1)
        #expect(try await rig.senderMail().isEmpty)   // no bounce while a recipient is still pending
        // Not due yet: nothing is tried.
        rig.at(59)
        try await rig.scan()
        #expect(rig.remote.recipientsAsked.filter { $0 == "later@remote.test" }.count == 1)
        // Due: the second attempt, then the schedule's last step (300 s) from then on.
        rig.at(60)
        try await rig.scan()
        r = try await rig.recipients()
        #expect(rig.remote.recipientsAsked.filter { $0 == "later@remote.test" }.count == 2)
        #expect(r["later@remote.test"]?.attempts == 2)
        #expect(r["later@remote.test"]?.nextAttempt == rig.start.addingTimeInterval(360))
        // Delivered and failed recipients are never tried again.
        #expect(rig.remote.recipientsAsked.filter { $0 != "later@remote.test" } == ["ok@remote.test", "gone@remote.test"])
        // Ten minutes in the queue: the sender is told, once, of the one recipient still waiting.
        rig.at(600)
        try await rig.scan()
        var mail = try await rig.senderMail()
        #expect(mail.count == 1)
        #expect(mail.first?.contains("Action: delayed") == true && mail.first?.contains("later@remote.test") == true)
        #expect(mail.first?.contains("gone@remote.test") == false)
        #expect(r["later@remote.test"] != nil)
        rig.at(1000)
        try await rig.scan()
        #expect(try await rig.senderMail().count == 1)
        // Past give_up_after: the last attempt fails for good, and one bounce names both failed recipients.
        rig.at(1800)
        try await rig.scan()
        try await rig.scan()
        #expect(try await rig.store.queuedMessage(queueID: "Q1") == nil)
        mail = try await rig.senderMail()
        #expect(mail.count == 2)
        let bounce = mail.last ?? ""
        #expect(bounce.contains("Action: failed") && bounce.contains("later@remote.test") && bounce.contains("gone@remote.test"))
        #expect(!bounce.contains("Final-Recipient: rfc822; ok@remote.test"))
        #expect(rig.remote.messages.count == 1)
        try await rig.stop()
    }

    @Test func routesThatFailForNowAreRetriedAndRoutesThatCannotBeAreBounced() async throws {
        let rig = try await Rig(tweak: { $0.retry = [.seconds(120)] }, dns: {
            $0.failing = ["flaky.test"]                                          // DNS times out: try again later
            $0.mx["nomail.test"] = [MXRecord(preference: 0, exchange: ".")]      // null MX (RFC 7505): never
        }, rcptReply: Self.reply)
        try await rig.enqueue(["a@flaky.test", "b@nowhere.test", "c@nomail.test"])
        try await rig.scan()
        let r = try await rig.recipients()
        #expect(r["a@flaky.test"]?.status == .pending)
        #expect(r["a@flaky.test"]?.nextAttempt == rig.start.addingTimeInterval(120))
        // NXDOMAIN and a null MX fail at once, without a connection anywhere.
        #expect(r["b@nowhere.test"]?.status == .failed)
        #expect(r["c@nomail.test"]?.status == .failed)
        #expect(rig.remote.recipientsAsked.isEmpty)
        try await rig.stop()
    }

    /// A rig with one message queued and taken by a scan, its job waiting for the DNS answer `gate` holds back.
    static func jobWaitingForItsRoute() async throws -> (Rig, Gate) {
        let gate = Gate()
        let rig = try await Rig(tweak: { _ in }, wrap: { GatedResolver(inner: $0, gate: gate) }, rcptReply: Self.reply)
        try await rig.enqueue(["ok@remote.test"])
        _ = try await rig.queue.scan(after: 0)
        for _ in 0..<500 where gate.waiting == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(gate.waiting == 1)
        return (rig, gate)
    }

    /// A job waiting for its route (here: a DNS answer held back) whose recipients are no longer this runner's when it
    /// could go — the message deleted from the queue meanwhile (`tern queue delete`), or, on a shared store, its lease
    /// taken over by another node — is not sent: the lease renewal tells the runner, and the job drops them.
    @Test func aJobWhoseLeaseIsGoneIsNotSent() async throws {
        let (rig, gate) = try await Self.jobWaitingForItsRoute()
        #expect(try await rig.store.deleteQueued(queueID: "Q1"))
        await rig.queue.renewLeases()
        gate.open()
        for _ in 0..<1000 where !rig.queue.isIdle { try await Task.sleep(for: .milliseconds(10)) }
        #expect(rig.queue.isIdle)
        #expect(rig.remote.recipientsAsked.isEmpty)
        #expect(rig.remote.messages.isEmpty)
        try await rig.stop()
    }

    /// A job waiting for its route whose lease was not confirmed meanwhile (the renewals failed: the store out of reach)
    /// and now has less than a third of it left is not sent: the lease could run out during the transaction and another
    /// node take the message over and send it too. Once the lease has ended, the next scan takes the job and sends it.
    @Test func aJobWhoseLeaseRunsLowUnconfirmedWaitsForTheNextScan() async throws {
        let (rig, gate) = try await Self.jobWaitingForItsRoute()
        let lease = rig.store.queueLease
        rig.at(lease * 0.7)
        gate.open()
        for _ in 0..<1000 where !rig.queue.isIdle { try await Task.sleep(for: .milliseconds(10)) }
        #expect(rig.queue.isIdle)
        #expect(rig.remote.messages.isEmpty)
        // Still leased: no scan takes it before the lease ends; after, it goes.
        _ = try await rig.queue.scan(after: 0)
        #expect(rig.queue.isIdle)
        rig.at(lease + 1)
        _ = try await rig.queue.scan(after: 0)
        for _ in 0..<1000 where rig.remote.messages.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(rig.remote.messages.count == 1)
        try await rig.stop()
    }

    /// The same wait with a renewal that succeeded on the way: the job goes when its route comes.
    @Test func aJobWhoseLeaseWasRenewedIsSentAfterALongWait() async throws {
        let (rig, gate) = try await Self.jobWaitingForItsRoute()
        let lease = rig.store.queueLease
        rig.at(lease * 0.6)
        #expect(await rig.queue.renewLeases())
        rig.at(lease * 0.9)
        gate.open()
        for _ in 0..<1000 where rig.remote.messages.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(rig.remote.messages.count == 1)
        try await rig.stop()
    }
}

/// Holds callers until opened.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))
    var waiting: Int { state.withLock { $0.waiters.count } }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

/// A resolver whose MX answers wait for a gate.
struct GatedResolver: DNSResolver {
    let inner: StaticResolver
    let gate: Gate
    func mx(_ name: String) async throws(DNSError) -> [MXRecord] {
        await gate.wait()
        return try await inner.mx(name)
    }
    func a(_ name: String) async throws(DNSError) -> [String] { try await inner.a(name) }
    func aaaa(_ name: String) async throws(DNSError) -> [String] { try await inner.aaaa(name) }
    func txt(_ name: String) async throws(DNSError) -> [String] { try await inner.txt(name) }
    func ptr(_ address: String) async throws(DNSError) -> [String] { try await inner.ptr(address) }
}
