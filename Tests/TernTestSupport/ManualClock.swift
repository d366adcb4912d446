import Foundation
import MailCore
import Synchronization

/// A clock that stands still until the test moves it: the time every piece of Tern that takes a `WallClock` reads
/// in tests, so that no test depends on today's date, the time zone or the machine's speed.
public final class ManualClock: WallClock, Sendable {
    private let time: Mutex<Date>

    /// Starts at `start`; the default is a fixed instant (2030-01-01T00:00:00Z), never the machine's time.
    public init(_ start: Date = Date(timeIntervalSince1970: 1_893_456_000)) {
        time = Mutex(start)
    }

    public var now: Date { time.withLock { $0 } }

    /// Moves the clock forward (or back, with a negative interval).
    public func advance(by seconds: TimeInterval) {
        time.withLock { $0 = $0.addingTimeInterval(seconds) }
    }

    /// Sets the clock to `date`.
    public func set(_ date: Date) {
        time.withLock { $0 = date }
    }
}
