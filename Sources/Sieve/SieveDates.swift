import Foundation
import MailMessage

/// The date and currentdate tests' date parts (RFC 5260 §4.2), computed from a point in time and a zone offset.
enum SieveDates {
    static let parts: Set<String> = [
        "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11", "zone", "weekday",
    ]

    /// `date` in the zone `offset` seconds east of UTC, as the named part.
    static func part(_ name: String, of date: Date, offset: Int) -> String? {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + offset
        let days = Int((Double(seconds) / 86400).rounded(.down))
        let secondOfDay = seconds - days * 86400
        let (y, m, d) = civil(days)
        let (hh, mm, ss) = (secondOfDay / 3600, secondOfDay % 3600 / 60, secondOfDay % 60)
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        func four(_ n: Int) -> String { String(repeating: "0", count: max(0, 4 - String(n).count)) + String(n) }
        let sign = offset < 0 ? "-" : "+"
        let zone = sign + two(abs(offset) / 3600) + two(abs(offset) % 3600 / 60)
        switch name.lowercased() {
        case "year": return four(y)
        case "month": return two(m)
        case "day": return two(d)
        case "date": return "\(four(y))-\(two(m))-\(two(d))"
        // Modified Julian Day: days since 1858-11-17.
        case "julian": return String(days + 40587)
        case "hour": return two(hh)
        case "minute": return two(mm)
        case "second": return two(ss)
        case "time": return "\(two(hh)):\(two(mm)):\(two(ss))"
        // RFC 3339's form, with Z for UTC.
        case "iso8601": return "\(four(y))-\(two(m))-\(two(d))T\(two(hh)):\(two(mm)):\(two(ss))"
            + (offset == 0 ? "Z" : "\(sign)\(two(abs(offset) / 3600)):\(two(abs(offset) % 3600 / 60))")
        case "std11":
            let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            return "\(weekdays[((days % 7) + 7) % 7]), \(d) \(months[m - 1]) \(four(y)) \(two(hh)):\(two(mm)):\(two(ss)) \(zone)"
        case "zone": return zone
        // 0 is Sunday; 1970-01-01 was a Thursday.
        case "weekday": return String(((days + 4) % 7 + 7) % 7)
        default: return nil
        }
    }

    /// A zone argument "+hhmm" / "-hhmm" as seconds east of UTC.
    static func offset(_ zone: String) -> Int? {
        guard zone.count == 5, let sign = zone.first, sign == "+" || sign == "-", let n = Int(zone.dropFirst()),
              zone.dropFirst().allSatisfy(\.isNumber), n % 100 < 60 else { return nil }
        return (n / 100 * 3600 + n % 100 * 60) * (sign == "-" ? -1 : 1)
    }

    /// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
    static func civil(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
