import Foundation

/// RFC 5322 §3.3 dates as found in Date headers (with the obsolete forms mail still carries).
public enum RFC5322Date {
    static let obsoleteZones: [String: Int] = ["UT": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
                                               "PST": -8, "PDT": -7]
    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// The fields of a date as written, with the zone's offset from UTC in seconds (0 when absent or obsolete).
    struct Written {
        var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, offset: Int
    }

    static func written(_ text: String) -> Written? {
        var s = text
        if let comma = s.firstIndex(of: ",") { s = String(s[s.index(after: comma)...]) }
        if let paren = s.firstIndex(of: "(") { s = String(s[..<paren]) }
        let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count >= 4, let day = Int(parts[0]),
              let month = months.firstIndex(of: parts[1].prefix(3).lowercased()),
              var year = Int(parts[2]) else { return nil }
        if year < 50 { year += 2000 } else if year < 1000 { year += 1900 }
        let hms = parts[3].split(separator: ":").compactMap { Int($0) }
        guard hms.count >= 2 else { return nil }
        // A date that does not exist is no date (RFC 5322 §3.3): day within its month, time within the day, and not
        // before 1900 (§4.3's earliest year).
        let second = hms.count > 2 ? hms[2] : 0
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month]
        guard year >= 1900, (1...days).contains(day), (0...23).contains(hms[0]), (0...59).contains(hms[1]), (0...60).contains(second) else {
            return nil
        }
        var offset = 0
        if parts.count >= 5, let z = Int(parts[4]), parts[4].count == 5 {
            offset = (abs(z) / 100 * 3600 + abs(z) % 100 * 60) * (z < 0 ? -1 : 1)
        } else if parts.count >= 5, let hours = obsoleteZones[parts[4].uppercased()] {
            // RFC 5322 §4.3: the obsolete zone names (military letters mean -0000: their meaning was never agreed).
            offset = hours * 3600
        }
        return Written(year: year, month: month + 1, day: day, hour: hms[0], minute: hms[1], second: second, offset: offset)
    }

    /// The date with the zone it was written in (seconds east of UTC), as Sieve's date test and :originalzone need.
    public static func parseWithZone(_ text: String) -> (Date, Int)? {
        guard let w = written(text), let date = date(w) else { return nil }
        return (date, w.offset)
    }

    public static func parse(_ text: String) -> Date? {
        written(text).flatMap(date)
    }

    static func date(_ w: Written) -> Date? {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        guard let base = cal.date(from: DateComponents(year: w.year, month: w.month, day: w.day, hour: w.hour, minute: w.minute,
                                                      second: w.second)) else { return nil }
        return base.addingTimeInterval(TimeInterval(-w.offset))
    }

    /// The calendar day the date names in its own zone (what IMAP's SENTBEFORE, SENTON and SENTSINCE compare, RFC 9051
    /// §6.4.4: "disregarding time and timezone"); nil for a date that cannot be read.
    public static func writtenDay(_ text: String) -> (year: Int, month: Int, day: Int)? {
        guard let w = written(text), date(w) != nil else { return nil }
        return (w.year, w.month, w.day)
    }
}
