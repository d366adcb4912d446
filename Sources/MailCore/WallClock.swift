import Foundation

/// Where Tern reads the time of day. Everything that needs "now" (Received and Date fields, INTERNALDATE, the queue's
/// retry schedule and expiry, greylisting, rate limits, login throttling, DKIM `t=`/`x=`, SPF's `%{t}`, the spam
/// rules' date checks, delivery-log retention, certificate validity) takes it from the clock the server context
/// carries: `SystemClock` in production, a manual clock in tests (TernTestSupport's `ManualClock`).
///
/// Measuring elapsed time (timeouts, throughput) is not the wall clock's job: that uses `ContinuousClock` or NIO's
/// deadlines, which no date change moves.
public protocol WallClock: Sendable {
    /// The current time.
    var now: Date { get }
}

/// The system's time of day.
public struct SystemClock: WallClock {
    public init() {}
    public var now: Date { Date() }
}
