import Foundation
import TernTestSupport
import Testing
@testable import ServerCore

/// The login throttle counts attempts when they start, per client and per account, and a success forgives only
/// itself and its own account.
@Suite struct LoginThrottleTests {
    @Test func attemptsInFlightCountSoParallelGuessesAreNotAllChecked() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        // Fifty logins started at once from one client: ten are checked, forty refused unchecked.
        let started = (0..<50).filter { _ in throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now) }
        #expect(started.count == 10)
        #expect(throttle.isBlocked("192.0.2.9", now: clock.now))
        // Another client is not affected; the window's end frees the first.
        #expect(!throttle.isBlocked("192.0.2.10", now: clock.now))
        clock.advance(by: 15 * 60 + 1)
        #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now))
    }

    @Test func aSuccessAtOnesOwnAccountDoesNotResetAGuessingRun() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        for _ in 0..<9 { #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now)) }
        // The attacker logs in to its own account: that attempt is forgiven, the nine failures are not.
        #expect(throttle.begin("192.0.2.9", user: "attacker@example.test", now: clock.now))
        throttle.succeeded("192.0.2.9", user: "attacker@example.test")
        #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now))
        #expect(!throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now))
    }

    @Test func oneAccountGuessedFromManyClientsIsThrottledToo() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        let limit = throttle.maxAccountFailures
        for i in 0..<limit { #expect(throttle.begin("198.51.100.\(i % 250)", user: "Victim@Example.test", now: clock.now)) }
        #expect(!throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now))
        // Its owner's success forgives the account's failures.
        throttle.succeeded("203.0.113.2", user: "victim@example.test")
        #expect(throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now))
        // An IPv6 client is counted by its /64.
        let v6 = LoginThrottle(maxFailures: 2)
        #expect(v6.begin("2001:db8:1:2::1", user: nil, now: clock.now) && v6.begin("2001:db8:1:2::99", user: nil, now: clock.now))
        #expect(!v6.begin("2001:db8:1:2:ffff::1", user: nil, now: clock.now))
    }

    @Test func clientTextIsEscapedForTheLog() {
        #expect(loggable("alice@example.test") == "alice@example.test")
        #expect(loggable("x\nJan 01 tern: login ok user=root") == "x\\x0AJan 01 tern: login ok user=root")
        #expect(loggable("\u{1B}[2Jcleared\r") == "\\x1B[2Jcleared\\x0D")
        #expect(loggable(String(repeating: "a", count: 1000)).count == 256)
    }
}
