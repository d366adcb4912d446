import Foundation
import MailCore
import MailMessage
import SieveLanguage

/// The date and currentdate tests' date parts (RFC 5260 §4.2), computed from a point in time and a zone offset.
enum SieveDates {
    static let parts = SieveValidator.dateParts

    /// `date` in the zone `offset` seconds east of UTC, as the named part.
    static func part(_ name: String, of date: Date, offset: Int) -> String? {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + offset
        let t = CivilTime(unixSeconds: seconds)
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let (y, m, d, hh, mm, ss) = (t.year, t.month, t.day, t.hour, t.minute, t.second)
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
            return "\(CivilTime.weekdayNames[t.weekday]), \(d) \(CivilTime.monthNames[m - 1]) \(four(y)) \(two(hh)):\(two(mm)):\(two(ss)) \(zone)"
        case "zone": return zone
        // 0 is Sunday; 1970-01-01 was a Thursday.
        case "weekday": return String(t.weekday)
        default: return nil
        }
    }

    /// A zone argument "+hhmm" / "-hhmm" as seconds east of UTC.
    static func offset(_ zone: String) -> Int? {
        guard zone.count == 5, let sign = zone.first, sign == "+" || sign == "-", let n = Int(zone.dropFirst()),
              zone.dropFirst().allSatisfy(\.isNumber), n % 100 < 60 else { return nil }
        return (n / 100 * 3600 + n % 100 * 60) * (sign == "-" ? -1 : 1)
    }
}
