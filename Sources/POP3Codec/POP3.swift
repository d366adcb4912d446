import MailCore

/// A POP3 command (RFC 1939, CAPA and STLS of RFC 2449 / RFC 2595, AUTH of RFC 5034).
public enum POP3Command: Equatable, Sendable {
    /// `CAPA` — lists the capabilities (RFC 2449 §5).
    case capa
    /// `USER name`
    case user(String)
    /// `PASS password` (the rest of the line: a password may contain spaces).
    case pass(String)
    /// `AUTH [mechanism [initial-response]]` (RFC 5034); without a mechanism, lists the mechanisms.
    case auth(mechanism: String?, initialResponse: String?)
    /// `STLS` — starts TLS (RFC 2595 §4).
    case stls
    /// `STAT`
    case stat
    /// `LIST [msg]`
    case list(Int?)
    /// `RETR msg`
    case retr(Int)
    /// `DELE msg`
    case dele(Int)
    /// `NOOP`
    case noop
    /// `RSET`
    case rset
    /// `TOP msg n` — the header and the first n lines of the body.
    case top(Int, lines: Int)
    /// `UIDL [msg]`
    case uidl(Int?)
    /// `QUIT`
    case quit

    public var name: String {
        switch self {
        case .capa: return "CAPA"
        case .user: return "USER"
        case .pass: return "PASS"
        case .auth: return "AUTH"
        case .stls: return "STLS"
        case .stat: return "STAT"
        case .list: return "LIST"
        case .retr: return "RETR"
        case .dele: return "DELE"
        case .noop: return "NOOP"
        case .rset: return "RSET"
        case .top: return "TOP"
        case .uidl: return "UIDL"
        case .quit: return "QUIT"
        }
    }
}

public struct POP3ParseError: Error, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

public enum POP3CommandParser {
    /// RFC 2449 §4: a command line is at most 255 octets; Tern allows more for AUTH responses (long passwords in
    /// base64) and answers anything longer with -ERR.
    public static let maxLineLength = 2048

    /// Parses one command line (without its CRLF).
    public static func parse(_ line: [UInt8]) throws(POP3ParseError) -> POP3Command {
        let text = String(decoding: line, as: UTF8.self)
        let keywordEnd = text.firstIndex(of: " ") ?? text.endIndex
        let keyword = text[..<keywordEnd].uppercased()
        let rest = keywordEnd < text.endIndex ? String(text[text.index(after: keywordEnd)...]) : ""
        let args = rest.split(separator: " ", omittingEmptySubsequences: true).map(String.init)

        func number(_ s: String) throws(POP3ParseError) -> Int {
            // RFC 1939: message numbers are decimal, from 1; a line count may be 0.
            guard !s.isEmpty, s.count <= 9, s.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(s) else {
                throw POP3ParseError("Invalid number: \(s.prefix(20))")
            }
            return n
        }
        func message(_ s: String) throws(POP3ParseError) -> Int {
            let n = try number(s)
            guard n >= 1 else { throw POP3ParseError("Message numbers start at 1") }
            return n
        }
        func arity(_ range: ClosedRange<Int>) throws(POP3ParseError) {
            guard range.contains(args.count) else { throw POP3ParseError("Wrong number of arguments for \(keyword)") }
        }

        switch keyword {
        case "CAPA": try arity(0...0); return .capa
        case "STLS": try arity(0...0); return .stls
        case "STAT": try arity(0...0); return .stat
        case "NOOP": try arity(0...0); return .noop
        case "RSET": try arity(0...0); return .rset
        case "QUIT": try arity(0...0); return .quit
        case "USER":
            guard !rest.isEmpty else { throw POP3ParseError("USER needs a name") }
            return .user(rest)
        case "PASS":
            guard !rest.isEmpty else { throw POP3ParseError("PASS needs a password") }
            return .pass(rest)
        case "AUTH":
            try arity(0...2)
            return .auth(mechanism: args.first?.uppercased(), initialResponse: args.count > 1 ? args[1] : nil)
        case "LIST":
            try arity(0...1)
            return .list(try args.first.map { (s: String) throws(POP3ParseError) in try message(s) })
        case "UIDL":
            try arity(0...1)
            return .uidl(try args.first.map { (s: String) throws(POP3ParseError) in try message(s) })
        case "RETR": try arity(1...1); return .retr(try message(args[0]))
        case "DELE": try arity(1...1); return .dele(try message(args[0]))
        case "TOP": try arity(2...2); return .top(try message(args[0]), lines: try number(args[1]))
        case "": throw POP3ParseError("Empty command")
        default: throw POP3ParseError("Unknown command: \(keyword.prefix(20))")
        }
    }
}

/// Multi-line responses (RFC 1939 §3): lines that start with "." get one more, the data ends with CRLF "." CRLF.
public enum POP3Encoding {
    /// Appends `content` dot-stuffed, with a final CRLF if it lacks one, and the terminating line.
    public static func appendMultiline(_ content: ArraySlice<UInt8>, to out: inout [UInt8]) {
        var stuffer = DotStuffer()
        stuffer.append(content, to: &out)
        stuffer.finish(&out)
    }

    /// RFC 1939 §3's byte-stuffing is SMTP's (RFC 5321 §4.5.2): one implementation serves both.
    public typealias DotStuffer = MailCore.DotStuffer

    /// The header block, the empty line and the first `lines` lines of the body (TOP).
    public static func top(_ message: ArraySlice<UInt8>, lines: Int) -> ArraySlice<UInt8> {
        var i = message.startIndex
        // The end of the header: the first empty line.
        var lineStart = true
        while i < message.endIndex {
            let b = message[i]
            if lineStart && (b == 10 || (b == 13 && i + 1 < message.endIndex && message[i + 1] == 10)) {
                i = b == 10 ? i + 1 : i + 2
                break
            }
            lineStart = b == 10
            i += 1
        }
        var remaining = lines
        while remaining > 0 && i < message.endIndex {
            if let lf = message[i...].firstIndex(of: 10) { i = lf + 1 } else { i = message.endIndex }
            remaining -= 1
        }
        return message[message.startIndex..<i]
    }

    /// Where TOP cuts a message read a piece at a time: the same cut as `top`, found by looking at each octet once
    /// (a large message is not scanned again from its start for every piece).
    public struct TopCut {
        private let lines: Int
        private var inHeader = true
        private var lineStart = true
        private var crAtLineStart = false
        private var remaining: Int
        /// Octets looked at so far.
        public private(set) var position = 0

        public init(lines: Int) {
            self.lines = lines
            remaining = lines
        }

        /// Looks at the next piece; returns the cut (octets from the start to send) once it is known.
        public mutating func feed(_ piece: ArraySlice<UInt8>) -> Int? {
            for b in piece {
                position += 1
                if inHeader {
                    // The header ends at the first empty line (LF, or CRLF, at a line's start).
                    if lineStart && b == 10 || crAtLineStart && b == 10 {
                        inHeader = false
                        if remaining <= 0 { return position }
                        continue
                    }
                    crAtLineStart = lineStart && b == 13
                    lineStart = b == 10
                } else if b == 10 {
                    remaining -= 1
                    if remaining <= 0 { return position }
                }
            }
            return nil
        }
    }

    /// The unique-id of a message (RFC 1939 §7): its UID and the mailbox's UIDVALIDITY as 8 hex digits each, as
    /// Dovecot's default `%08Xu%08Xv`, so an account moved between the two keeps its "already downloaded" list.
    public static func uniqueID(uid: UInt32, uidValidity: UInt32) -> String {
        func hex(_ v: UInt32) -> String {
            let s = String(v, radix: 16, uppercase: true)
            return String(repeating: "0", count: 8 - s.count) + s
        }
        return hex(uid) + hex(uidValidity)
    }
}

/// Splits the input into command lines, each at most `POP3CommandParser.maxLineLength` octets.
public struct POP3LineFramer: Sendable {
    public enum Event: Equatable, Sendable {
        case line([UInt8])
        /// A line longer than the limit: answer -ERR and close (RFC 2449 §4 allows the server to do so).
        case tooLong
    }

    public init() {}

    public mutating func next(_ buffer: [UInt8], from start: inout Int) -> Event? {
        guard start < buffer.count else { return nil }
        guard let lf = buffer[start...].firstIndex(of: 10) else {
            return buffer.count - start > POP3CommandParser.maxLineLength ? .tooLong : nil
        }
        var end = lf
        if end > start && buffer[end - 1] == 13 { end -= 1 }
        guard end - start <= POP3CommandParser.maxLineLength else { return .tooLong }
        let line = Array(buffer[start..<end])
        start = lf + 1
        return .line(line)
    }
}
