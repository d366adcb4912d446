import ServerCore
import Foundation
import MailCore
import MailDNS
import MailStore
import MailStoreSQLite
import TernConfig
import TernTestSupport
import Testing
@testable import MailServer
@testable import Intake

/// What depends on the time of day reads it from the injected clock: these tests move a manual clock and never
/// read the machine's.
@Suite struct ClockTests {
    func checks(_ clock: ManualClock, _ tweak: (inout TernConfiguration) -> Void) -> InboundChecks {
        var config = TernConfiguration.embeddedDefault(dataDirectory: URL(fileURLWithPath: "/nonexistent"))
        config.checks.spf = false
        tweak(&config)
        return InboundChecks(config: config, resolver: StaticResolver(), clock: clock)
    }

    @Test func greylistingWaitsOnTheInjectedClock() async {
        let clock = ManualClock()
        let inbound = checks(clock) {
            $0.checks.greylisting = true
            $0.checks.greylistDelay = .seconds(300)
            $0.checks.greylistWindow = .seconds(3600)
        }
        let client = ClientFacts(address: "192.0.2.7")
        let first = await inbound.recipient(client: client, sender: "a@remote.test", recipient: "b@here.test")
        #expect(first?.code.rawValue == 451)
        clock.advance(by: 299)
        #expect(await inbound.recipient(client: client, sender: "a@remote.test", recipient: "b@here.test")?.code.rawValue == 451)
        clock.advance(by: 2)
        #expect(await inbound.recipient(client: client, sender: "a@remote.test", recipient: "b@here.test") == nil)
        // Another triplet starts its own wait.
        #expect(await inbound.recipient(client: client, sender: "c@remote.test", recipient: "b@here.test")?.code.rawValue == 451)
    }

    @Test func rateLimitWindowFollowsTheClock() async {
        let clock = ManualClock()
        let inbound = checks(clock) { $0.checks.ratePerClient = 2 }
        let client = ClientFacts(address: "192.0.2.8")
        for _ in 0..<2 { #expect(await inbound.mailFrom(client: client, helo: "x.test", sender: "a@remote.test").refusal == nil) }
        #expect(await inbound.mailFrom(client: client, helo: "x.test", sender: "a@remote.test").refusal?.code.rawValue == 451)
        // Two hours later the window has passed.
        clock.advance(by: 2 * 3600)
        #expect(await inbound.mailFrom(client: client, helo: "x.test", sender: "a@remote.test").refusal == nil)
    }

    @Test func loginThrottleWindow() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 3, window: 900)
        for _ in 0..<3 {
            #expect(throttle.begin("192.0.2.9", user: "a@example.test", now: clock.now) == .proceed)
            throttle.finished("192.0.2.9", user: "a@example.test", success: false, now: clock.now)
        }
        #expect(throttle.isBlocked("192.0.2.9", now: clock.now))
        clock.advance(by: 901)
        #expect(!throttle.isBlocked("192.0.2.9", now: clock.now))
    }

    @Test func storeTakesArrivalQueueAndUIDValidityFromItsClock() async throws {
        let start = Date(timeIntervalSince1970: 2_000_000_000)
        let clock = ManualClock(start)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-clock-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteMailStore(dataDirectory: dir, clock: clock)
        try await store.addDomain("here.test")
        let account = try await store.addAccount(try EmailAddress.parse("b@here.test"), password: "pw")
        let inbox = try await store.mailboxes(account: account)[0]
        #expect(inbox.uidValidity.rawValue == 2_000_000_000)
        // A queued message: created now, first attempt now; due only once the clock gets there.
        clock.advance(by: 60)
        let envelope = StoredEnvelope(mailFrom: "b@here.test", recipients: [.init(address: "x@remote.test")])
        _ = try await store.deliver(Delivery(content: .inline(Array("Subject: q\r\n\r\nq\r\n".utf8)), envelope: envelope, targets: [],
                                             internalDate: clock.now, remoteRecipients: envelope.recipients, queueID: "Q1"))
        let queued = try #require(try await store.queuedMessage(queueID: "Q1"))
        #expect(queued.created == clock.now)
        #expect(try await store.nextQueueAttempt() == clock.now)
        #expect(try await store.queuedMessages(dueBy: start, after: 0, limit: 10).isEmpty)
        #expect(try await store.queuedMessages(dueBy: clock.now, after: 0, limit: 10).count == 1)
    }

    /// The hourly upkeep runs on one node at a time: the node holding the claim prunes the delivery log (to its
    /// retention, by the injected clock) and the greylisting triplets that no longer count; another node skips the
    /// round until the claim runs out.
    @Test func housekeepingPrunesOnOneNodeAtATime() async throws {
        let start = Date(timeIntervalSince1970: 2_000_000_000)
        let clock = ManualClock(start)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tern-house-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = try SQLiteMailStore(dataDirectory: dir, clock: clock)
        var config = TernConfiguration.embeddedDefault(dataDirectory: dir)
        config.deliveryLogRetention = .seconds(30 * 86400)
        try await store.log([DeliveryEvent(at: start, queueID: "OLD", kind: .received, detail: "x"),
                             DeliveryEvent(at: start.addingTimeInterval(20 * 86400), queueID: "NEW", kind: .received, detail: "y")])
        _ = try await store.greylist("192.0.2.1|a@remote.test|b@here.test", rule: InboundChecks.greylistRule(config.checks), now: start)
        clock.set(start.addingTimeInterval(31 * 86400))
        let a = Housekeeping(store: store, config: config, clock: clock, logger: .init(label: "test"), node: "A")
        let b = Housekeeping(store: store, config: config, clock: clock, logger: .init(label: "test"), node: "B")
        #expect(try await a.runOnce() == Housekeeping.Round(deliveryEvents: 1, policyEntries: 1))
        #expect(try await store.deliveryLog(id: "OLD").isEmpty)
        #expect(try await store.deliveryLog(id: "NEW").count == 1)
        #expect(try await b.runOnce() == nil, "B ran while A held the job")
        #expect(try await a.runOnce() != nil, "A's next round")
        clock.advance(by: Housekeeping.interval)
        #expect(try await b.runOnce() != nil, "B took over after A's claim ran out")
        // B stops (SIGTERM): A need not wait for B's claim to run out.
        try await b.releaseClaim()
        #expect(try await a.runOnce() != nil, "A took over at once after B let go")
    }
}
