import NIOCore
import MailCore

/// Splits the bytes a client sends into command lines, DATA content and BDAT chunks.
///
/// A pure value: it never reads from a socket. The session tells it which mode it is in (after a 354 it
/// switches to `.data`; after a BDAT command to `.bdat`); `next(_:)` returns `nil` when it needs more bytes
/// and never consumes a partial element.
///
/// DATA content comes out dot-unstuffed (RFC 5321 §4.5.2) in chunks, so a large message never sits in memory
/// whole. Only `CRLF "." CRLF` ends it: a bare LF or bare CR (the "SMTP smuggling" vectors) is never taken
/// as a line end; it is recorded in `dataProblems` and the message is refused when it ends.
public struct SMTPFramer: Sendable {
    public enum Mode: Equatable, Sendable {
        case command
        case data
        case bdat(remaining: Int)
    }

    public enum Event: Equatable, Sendable {
        /// A command line without its line ending.
        case line([UInt8])
        /// A command line longer than the limit; its bytes up to the next LF are discarded.
        case lineTooLong
        /// Message content, unstuffed, line endings as received.
        case dataChunk(ByteBuffer)
        /// `CRLF.CRLF` was seen; the framer is back in command mode.
        case dataEnd
        /// Part of a BDAT chunk.
        case bdatChunk(ByteBuffer)
        /// The BDAT chunk is complete; the framer is back in command mode.
        case bdatEnd
    }

    /// What was wrong with the DATA content, reported at its end.
    public struct DataProblems: OptionSet, Sendable, Hashable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let bareLF = DataProblems(rawValue: 1)
        public static let bareCR = DataProblems(rawValue: 2)
        public static let nul = DataProblems(rawValue: 4)
        public static let longLine = DataProblems(rawValue: 8)
    }

    private enum DataState: Sendable {
        case lineStart, inLine, sawCR, leadingDot, leadingDotCR
    }

    public private(set) var mode: Mode = .command
    public private(set) var dataProblems: DataProblems = []
    /// Records received whole so far: command lines, lines of DATA content, 64 KiB of a BDAT chunk. The connection
    /// gives each record a deadline from its first octet, so a client trickling bytes cannot hold it for ever.
    public private(set) var records = 0
    private var bdatOctets = 0
    private var bdatLastWasCR = false
    public let maxCommandLine: Int
    public let maxTextLine: Int
    private var discardingLongLine = false
    private var dataState: DataState = .lineStart
    private var lineLength = 0
    private var pendingEnd = false

    public init(maxCommandLine: Int = Limits.maxCommandLineLength, maxTextLine: Int = Limits.maxTextLineLength) {
        self.maxCommandLine = maxCommandLine
        self.maxTextLine = maxTextLine
    }

    /// Switch to DATA content mode (after the 354 reply).
    public mutating func startData() {
        mode = .data
        dataState = .lineStart
        dataProblems = []
        lineLength = 0
    }

    /// Switch to reading a BDAT chunk of `size` octets (right after the BDAT command line). `first`: the message's first
    /// chunk (its content checks start afresh; they run on across its chunks).
    public mutating func startBDAT(size: Int, first: Bool = false) {
        mode = .bdat(remaining: size)
        if first {
            dataProblems = []
            bdatLastWasCR = false
        }
    }

    /// The BDAT message's last chunk is complete: a CR at its very end is a bare CR too.
    public mutating func finishBDATMessage() {
        if bdatLastWasCR { dataProblems.insert(.bareCR) }
        bdatLastWasCR = false
    }

    /// RFC 5321 §2.3.8 holds for BDAT content as for DATA: CR and LF only as CRLF (else the message could smuggle a
    /// line end a later hop reads differently). Scans a chunk, carrying a final CR to the next.
    private mutating func checkLineEnds(_ chunk: ByteBuffer) {
        guard !dataProblems.contains(.bareCR) || !dataProblems.contains(.bareLF) else { return }
        var lastWasCR = bdatLastWasCR, problems = dataProblems
        chunk.withUnsafeReadableBytes { raw in
            for c in raw {
                if lastWasCR && c != 10 { problems.insert(.bareCR) }
                if c == 10 && !lastWasCR { problems.insert(.bareLF) }
                lastWasCR = c == 13
            }
        }
        bdatLastWasCR = lastWasCR
        dataProblems = problems
    }

    public mutating func next(_ buffer: inout ByteBuffer) -> Event? {
        let event = nextEvent(&buffer)
        switch event {
        case .line, .lineTooLong, .dataEnd, .bdatEnd: records += 1
        default: break
        }
        return event
    }

    private mutating func nextEvent(_ buffer: inout ByteBuffer) -> Event? {
        if pendingEnd { pendingEnd = false; return .dataEnd }
        switch mode {
        case .command:
            return nextLine(&buffer)
        case .bdat(let remaining):
            if remaining == 0 {
                mode = .command
                return .bdatEnd
            }
            guard buffer.readableBytes > 0 else { return nil }
            let n = min(remaining, buffer.readableBytes)
            let chunk = buffer.readSlice(length: n)!
            checkLineEnds(chunk)
            mode = .bdat(remaining: remaining - n)
            records += (bdatOctets + n) / 65536 - bdatOctets / 65536
            bdatOctets += n
            return .bdatChunk(chunk)
        case .data:
            return nextData(&buffer)
        }
    }

    private mutating func nextLine(_ buffer: inout ByteBuffer) -> Event? {
        let view = buffer.readableBytesView
        if discardingLongLine {
            if let lf = view.firstIndex(of: UInt8(ascii: "\n")) {
                buffer.moveReaderIndex(to: lf + 1)
                discardingLongLine = false
                return nextLine(&buffer)
            }
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return nil
        }
        guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > maxCommandLine {
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                discardingLongLine = true
                return .lineTooLong
            }
            return nil
        }
        let length = lf - view.startIndex
        if length + 1 > maxCommandLine {
            buffer.moveReaderIndex(to: lf + 1)
            return .lineTooLong
        }
        var line = Array(view[view.startIndex..<lf])
        // Commands accept a bare LF as line end (as Postfix does); DATA never does.
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        buffer.moveReaderIndex(to: lf + 1)
        return .line(line)
    }

    private mutating func nextData(_ buffer: inout ByteBuffer) -> Event? {
        guard buffer.readableBytes > 0 else { return nil }
        var out = ByteBuffer()
        out.reserveCapacity(buffer.readableBytes)
        var ended = false
        var consumed = 0
        let cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n"), dot = UInt8(ascii: ".")
        buffer.withUnsafeReadableBytes { raw in
            var state = dataState
            var problems = dataProblems
            var length = lineLength
            var lines = 0
            defer { records += lines }
            let maxLine = maxTextLine
            var i = 0
            var runStart = 0 // start of a run of bytes copied verbatim
            func flushRun(_ end: Int) {
                if end > runStart { out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[runStart..<end])) }
            }
            while i < raw.count {
                let c = raw[i]
                switch state {
                case .lineStart:
                    if c == dot {
                        flushRun(i)
                        state = .leadingDot
                        i += 1
                        runStart = i
                        continue
                    }
                    state = .inLine
                    length = 0
                    continue // reprocess in .inLine
                case .leadingDot:
                    if c == cr { state = .leadingDotCR; i += 1; runStart = i; continue }
                    // A dot-stuffed line: the leading dot was dropped; the rest of the line is content.
                    state = .inLine
                    length = 1
                    runStart = i
                    continue
                case .leadingDotCR:
                    if c == lf {
                        i += 1
                        runStart = i
                        ended = true
                    } else {
                        // "." CR <not LF>: a bare CR; keep the CR as content.
                        problems.insert(.bareCR)
                        out.writeInteger(cr)
                        state = .inLine
                        runStart = i
                        continue
                    }
                case .inLine:
                    // Fast path: skip ordinary bytes up to the next CR, LF or NUL, 8 at a time where none of them is
                    // below 14 (CR, LF and NUL all are; a TAB is too, and is looked at byte by byte).
                    if c != cr && c != lf && c != 0 {
                        var j = i + 1
                        scan: while j < raw.count {
                            if j + 8 <= raw.count {
                                let w = UInt64(littleEndian: raw.baseAddress!.loadUnaligned(fromByteOffset: j, as: UInt64.self))
                                // Has a byte below 14: the borrow of subtracting 14 from each byte reaches its top bit.
                                if (w &- 0x0E0E_0E0E_0E0E_0E0E) & ~w & 0x8080_8080_8080_8080 == 0 {
                                    j += 8
                                    continue
                                }
                            }
                            let end = min(j + 8, raw.count)
                            while j < end {
                                let d = raw[j]
                                if d == cr || d == lf || d == 0 { break scan }
                                j += 1
                            }
                        }
                        length += j - i
                        if length > maxLine - 2 { problems.insert(.longLine) }
                        i = j
                        continue
                    }
                    if c == cr {
                        state = .sawCR
                    } else if c == lf {
                        // A bare LF is not a line end: "\n.\r\n" must never end the data (SMTP smuggling).
                        problems.insert(.bareLF)
                        length = 0
                    } else {
                        if c == 0 { problems.insert(.nul) }
                        length += 1
                        // RFC 5321 §4.5.3.1.6: at most 998 octets before CRLF.
                        if length > maxLine - 2 { problems.insert(.longLine) }
                    }
                    i += 1
                case .sawCR:
                    if c == lf {
                        state = .lineStart
                        lines += 1
                        i += 1
                    } else {
                        problems.insert(.bareCR)
                        state = .inLine
                    }
                }
                if ended { break }
            }
            if !ended {
                // A CR at the very end stays in the output; the LF that may follow is matched in the next call.
                flushRun(i)
            }
            consumed = i
            dataState = state
            dataProblems = problems
            lineLength = length
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if ended {
            mode = .command
            dataState = .lineStart
            // The final CRLF before "." belongs to the message; "." CRLF does not (RFC 5321 §4.1.1.4).
            if out.readableBytes > 0 { pendingEnd = true; return .dataChunk(out) }
            return .dataEnd
        }
        return out.readableBytes > 0 ? .dataChunk(out) : nil
    }
}
