import Foundation
import MailCore
import TernTestSupport
import Testing
@testable import ServerCore

/// The login throttle counts checks under way with the failures, per client and per account, and a success forgives
/// only its own account.
@Suite struct LoginThrottleTests {
    @Test func checksUnderWayCountSoParallelGuessesAreNotAllChecked() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        let victim = "victim@example.test"
        // Fifty logins at once from one client: ten are checked; the others wait for those to finish.
        let admissions = (0..<50).map { _ in throttle.begin("192.0.2.9", user: victim, now: clock.now) }
        #expect(admissions.filter { $0 == .proceed }.count == 10 && admissions.filter { $0 == .wait }.count == 40)
        // The ten fail: the forty are then refused unchecked.
        for _ in 0..<10 { throttle.finished("192.0.2.9", user: victim, success: false, now: clock.now) }
        #expect(throttle.begin("192.0.2.9", user: victim, now: clock.now) == .blocked)
        #expect(throttle.isBlocked("192.0.2.9", now: clock.now) && !throttle.isBlocked("192.0.2.10", now: clock.now))
        clock.advance(by: 15 * 60 + 1)
        #expect(throttle.begin("192.0.2.9", user: victim, now: clock.now) == .proceed)
    }

    @Test func attemptsNeverFinishedStopCountingAfterTwoWindows() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        // Thirty attempts begun at one account and never finished (sessions that went away mid-exchange).
        for i in 0..<throttle.maxAccountFailures {
            #expect(throttle.begin("198.51.100.\(i)", user: "victim@example.test", now: clock.now) == .proceed)
        }
        #expect(throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now) == .wait)
        clock.advance(by: 20 * 60)
        #expect(throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now) == .wait)
        clock.advance(by: 11 * 60)
        #expect(throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now) == .proceed)
    }

    @Test func goodLoginsAtOnceAllGetThrough() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        var done = 0, waiting = 16
        while waiting > 0 {
            // Those admitted succeed; those told to wait ask again.
            let batch = (0..<waiting).map { _ in throttle.begin("192.0.2.9", user: "alice@example.test", now: clock.now) }
            #expect(!batch.contains(.blocked))
            let admitted = batch.filter { $0 == .proceed }.count
            for _ in 0..<admitted { throttle.finished("192.0.2.9", user: "alice@example.test", success: true, now: clock.now) }
            done += admitted
            waiting -= admitted
        }
        #expect(done == 16)
    }

    @Test func aSuccessAtOnesOwnAccountDoesNotResetAGuessingRun() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        for _ in 0..<9 {
            #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now) == .proceed)
            throttle.finished("192.0.2.9", user: "victim@example.test", success: false, now: clock.now)
        }
        // The attacker logs in to its own account: the nine failures stay.
        #expect(throttle.begin("192.0.2.9", user: "attacker@example.test", now: clock.now) == .proceed)
        throttle.finished("192.0.2.9", user: "attacker@example.test", success: true, now: clock.now)
        #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now) == .proceed)
        throttle.finished("192.0.2.9", user: "victim@example.test", success: false, now: clock.now)
        #expect(throttle.begin("192.0.2.9", user: "victim@example.test", now: clock.now) == .blocked)
    }

    @Test func oneAccountGuessedFromManyClientsIsThrottledToo() {
        let clock = ManualClock()
        let throttle = LoginThrottle(maxFailures: 10)
        for i in 0..<throttle.maxAccountFailures {
            #expect(throttle.begin("198.51.100.\(i % 250)", user: "Victim@Example.test", now: clock.now) == .proceed)
            throttle.finished("198.51.100.\(i % 250)", user: "Victim@Example.test", success: false, now: clock.now)
        }
        #expect(throttle.begin("203.0.113.1", user: "victim@example.test", now: clock.now) == .blocked)
        // An IPv6 client is counted by its /64.
        let v6 = LoginThrottle(maxFailures: 2)
        for a in ["2001:db8:1:2::1", "2001:db8:1:2::99"] {
            #expect(v6.begin(a, user: nil, now: clock.now) == .proceed)
            v6.finished(a, user: nil, success: false, now: clock.now)
        }
        #expect(v6.begin("2001:db8:1:2:ffff::1", user: nil, now: clock.now) == .blocked)
        #expect(v6.begin("2001:db8:1:3::1", user: nil, now: clock.now) == .proceed)
    }

    @Test func clientTextIsEscapedForTheLog() {
        #expect(loggable("alice@example.test") == "alice@example.test")
        #expect(loggable("x\nJan 01 tern: login ok user=root") == "x\\x0AJan 01 tern: login ok user=root")
        #expect(loggable("\u{1B}[2Jcleared\r") == "\\x1B[2Jcleared\\x0D")
        #expect(loggable(String(repeating: "a", count: 1000)).count == 256)
    }
}
