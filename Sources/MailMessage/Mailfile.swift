import Foundation

/// The mboxrd format (the "From " line separated format with `>From` quoting that can be undone).
///
/// Messages are stored by Tern with CRLF line ends; an mbox file uses LF, as every Unix mail tool expects.
public enum Mbox {
    /// One message as an mbox entry: `From sender date` line, LF line ends, `>`-quoted From lines, a blank line after.
    public static func entry(message: [UInt8], sender: String, date: Date) -> [UInt8] {
        var out: [UInt8] = Array("From \(sender.isEmpty ? "MAILER-DAEMON" : sender) \(asctime(date))\n".utf8)
        out.reserveCapacity(message.count + 64)
        var lineStart = 0
        var i = 0
        func emitLine(_ start: Int, _ end: Int) {
            // mboxrd: a line matching ^>*From  gets one more '>'.
            var j = start
            while j < end, message[j] == UInt8(ascii: ">") { j += 1 }
            if end - j >= 5, message[j..<(j + 5)].elementsEqual("From ".utf8) { out.append(UInt8(ascii: ">")) }
            out.append(contentsOf: message[start..<end])
            out.append(UInt8(ascii: "\n"))
        }
        while i < message.count {
            if message[i] == UInt8(ascii: "\n") {
                let end = (i > lineStart && message[i - 1] == UInt8(ascii: "\r")) ? i - 1 : i
                emitLine(lineStart, end)
                lineStart = i + 1
            }
            i += 1
        }
        if lineStart < message.count { emitLine(lineStart, message.count) }
        out.append(UInt8(ascii: "\n"))
        return out
    }

    /// Splits an mbox into messages (CRLF line ends, quoting undone). Accepts mboxrd and mboxo files.
    public static func messages(in data: [UInt8]) -> [[UInt8]] {
        var splitter = MboxSplitter()
        return splitter.feed(data[...]) + splitter.finish()
    }

    /// `Tue Nov 24 02:18:00 2026` in UTC, as the From line wants.
    public static func asctime(_ date: Date) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let day = c.day! < 10 ? " \(c.day!)" : "\(c.day!)"
        return "\(days[c.weekday! - 1]) \(months[c.month! - 1]) \(day) \(two(c.hour!)):\(two(c.minute!)):\(two(c.second!)) \(c.year!)"
    }
}

/// Splits an mbox stream into messages as its bytes arrive, so an mbox of any size is read in bounded memory
/// (one message at a time). Lines become CRLF-terminated; mboxrd `>From ` quoting is undone; the blank line that
/// separates messages is dropped.
public struct MboxSplitter {
    private var current: [UInt8]?
    private var pendingBlank = 0
    private var partial: [UInt8] = []

    public init() {}

    /// Feeds more bytes; returns the messages completed by them.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> [[UInt8]] {
        var done: [[UInt8]] = []
        var start = bytes.startIndex
        for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
            if partial.isEmpty {
                line(bytes[start..<i], into: &done)
            } else {
                partial.append(contentsOf: bytes[start..<i])
                let whole = partial
                partial = []
                line(whole[...], into: &done)
            }
            start = i + 1
        }
        partial.append(contentsOf: bytes[start...])
        return done
    }

    /// Ends the stream; returns the last message.
    public mutating func finish() -> [[UInt8]] {
        var done: [[UInt8]] = []
        if !partial.isEmpty {
            let whole = partial
            partial = []
            line(whole[...], into: &done)
        }
        if var c = current {
            for _ in 0..<max(0, pendingBlank - 1) { c.append(contentsOf: [13, 10]) }
            done.append(c)
            current = nil
        }
        return done
    }

    private mutating func line(_ raw: ArraySlice<UInt8>, into done: inout [[UInt8]]) {
        var line = raw
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.starts(with: "From ".utf8) {
            if var c = current {
                for _ in 0..<max(0, pendingBlank - 1) { c.append(contentsOf: [13, 10]) }
                done.append(c)
            }
            current = []
            pendingBlank = 0
            return
        }
        guard current != nil else { return }
        // Blank lines are held back: the last one before the next "From " is the separator, not content.
        if line.isEmpty { pendingBlank += 1; return }
        for _ in 0..<pendingBlank { current!.append(contentsOf: [13, 10]) }
        pendingBlank = 0
        var j = line.startIndex
        while j < line.endIndex, line[j] == UInt8(ascii: ">") { j += 1 }
        if j > line.startIndex, line[j...].starts(with: "From ".utf8) { line = line.dropFirst() }
        current!.append(contentsOf: line)
        current!.append(contentsOf: [13, 10])
    }
}

/// Maildir file names and flags (the `:2,` info suffix of the Maildir specification).
public enum Maildir {
    /// Flag letters in ASCII order, as the spec requires: D(raft) F(lagged) P(assed) R(eplied) S(een) T(rashed).
    public static func infoSuffix(seen: Bool, answered: Bool, flagged: Bool, deleted: Bool, draft: Bool) -> String {
        var s = ":2,"
        if draft { s += "D" }
        if flagged { s += "F" }
        if answered { s += "R" }
        if seen { s += "S" }
        if deleted { s += "T" }
        return s
    }

    /// The flag letters of a Maildir file name (empty without an info part).
    public static func flags(ofFileName name: String) -> Set<Character> {
        guard let r = name.range(of: ":2,", options: .backwards) else { return [] }
        return Set(name[r.upperBound...])
    }
}

/// A minimal POSIX ustar writer, so a Maildir export can go to standard output as one stream.
public struct TarWriter {
    public init() {}

    public func header(path: String, size: Int, mode: Int, isDirectory: Bool, mtime: Date) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ offset: Int, _ length: Int) {
            let b = Array(s.utf8.prefix(length))
            h.replaceSubrange(offset..<(offset + b.count), with: b)
        }
        func octal(_ v: Int, _ offset: Int, _ length: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, length - 1 - s.count)) + s, offset, length - 1)
        }
        var name = path, prefix = ""
        if name.utf8.count > 100, let slash = name.lastIndex(of: "/") {
            prefix = String(name[..<slash]); name = String(name[name.index(after: slash)...])
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(isDirectory ? 0 : size, 124, 12)
        octal(Int(mtime.timeIntervalSince1970), 136, 12)
        put("        ", 148, 8)
        h[156] = isDirectory ? UInt8(ascii: "5") : UInt8(ascii: "0")
        put("ustar", 257, 6)
        put("00", 263, 2)
        put(prefix, 345, 155)
        let sum = h.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - s.count)) + s, 148, 6)
        h[154] = 0
        h[155] = UInt8(ascii: " ")
        return h
    }

    public func padding(for size: Int) -> [UInt8] {
        [UInt8](repeating: 0, count: (512 - size % 512) % 512)
    }

    /// Two zero blocks end the archive.
    public var trailer: [UInt8] { [UInt8](repeating: 0, count: 1024) }
}
