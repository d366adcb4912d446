import NIOCore

/// Assembles whole IMAP commands from the byte stream: the command line, and each literal it announces
/// (`{n}`, `{n+}`, `{n-}`, `~{n}`) with the line that follows it. A pure value; `next(_:)` returns nil when it
/// needs more bytes and never consumes a partial command.
///
/// Limits: a line is at most `maxLine` octets; a literal at most `maxLiteral` octets, or `maxAppendLiteral` in an
/// APPEND (a message). Until the session is `authenticated`, a whole command, its lines and literals together, is at
/// most `preAuthMaxCommand` octets (as Dovecot's login processes allow a few KB): nobody holds the server's memory
/// before logging in. A synchronizing literal over the limit is refused before the client sends it; a
/// non-synchronizing one (LITERAL+) over the limit cannot be refused in band, so the connection is dropped.
public struct IMAPFramer: Sendable {
    public enum Event: Equatable, Sendable {
        /// A complete command: its lines and literals, without the final CRLF.
        case command([UInt8])
        /// The client announced a synchronizing literal and waits for `+` before sending it.
        case continuationNeeded
        /// A synchronizing literal over the limit: answer the tagged command with NO; nothing more of it will come.
        case literalTooLarge(tag: String?, size: Int)
        /// A non-synchronizing literal over the limit, or a line over `maxLine`: end the session with BYE.
        case fatal(String)
        /// An APPEND literal larger than `spoolAbove` begins: its octets come as `spoolData` events to be written
        /// to a spool file, never held in memory, and the command carries `spoolMarker(n)` in its place (n counts the
        /// command's spooled literals from 0). `continuation`: send `+` first (a synchronizing literal).
        case spoolStart(size: Int, continuation: Bool)
        case spoolData(ByteBuffer)
    }

    public let maxLine: Int
    public let maxLiteral: Int
    public let maxAppendLiteral: Int
    public let maxCommand: Int
    /// The most a command other than APPEND may hold, its lines and literals together: only APPEND carries a message;
    /// another command of many lines (each ending in a literal, `{0}` needing no round trip) could otherwise fill
    /// APPEND's budget with search keys or sequence ranges, each much larger parsed than written.
    public let maxOtherCommand: Int
    /// The session has logged in: the full limits apply (set by the connection after each command).
    public var authenticated = false
    /// Before login, the most a whole command may hold (LOGIN or AUTHENTICATE with their literals fit easily).
    public static let preAuthMaxCommand = 8 * 1024
    /// Records received whole so far: lines, and 64 KiB of a literal. The connection gives each record a deadline from
    /// its first octet, so a client trickling bytes cannot hold it for ever.
    public private(set) var records = 0
    private var literalOctets = 0
    private var command: [UInt8] = []
    private var literalRemaining = 0
    /// The literal being read goes out as `spoolData` instead of into `command`.
    private var spooling = false
    private var spooledInCommand = 0
    private var spooledOctets = 0
    /// APPEND literals above this size are spooled (`spoolStart`); nil: every literal is held in the command.
    public var spoolAbove: Int?
    /// Stands for a spooled literal in the command: a value the client cannot guess (the connection sets it at random).
    public var spoolToken: [UInt8] = []

    /// What the command holds in place of its `n`th spooled literal.
    public func spoolMarker(_ n: Int) -> [UInt8] { spoolToken + Array(":\(n)".utf8) }

    /// Which spooled literal `data` stands for (`spoolMarker` read back), or nil when it is literal data.
    public static func spoolIndex(_ data: [UInt8], token: [UInt8]) -> Int? {
        guard !token.isEmpty, data.count > token.count + 1, data.starts(with: token), data[token.count] == UInt8(ascii: ":") else { return nil }
        return Int(String(decoding: data[(token.count + 1)...], as: UTF8.self))
    }
    /// After a fatal event the framer yields nothing more: the session ends.
    private var failed = false

    public init(maxLine: Int = 65_536, maxLiteral: Int = 65_536, maxAppendLiteral: Int = 50 << 20, maxOtherCommand: Int = 1 << 20) {
        self.maxLine = maxLine
        self.maxLiteral = maxLiteral
        self.maxAppendLiteral = maxAppendLiteral
        maxCommand = maxAppendLiteral + 16 * maxLine
        self.maxOtherCommand = maxOtherCommand
    }

    /// Bytes of the command being assembled (bounded by the limits).
    public var buffered: Int { command.count }

    public mutating func next(_ buffer: inout ByteBuffer) -> Event? {
        guard !failed else { return nil }
        let event = nextEvent(&buffer)
        if case .fatal = event { failed = true; buffer.clear() }
        return event
    }

    private mutating func nextEvent(_ buffer: inout ByteBuffer) -> Event? {
        while true {
            if literalRemaining > 0 {
                guard buffer.readableBytes > 0 else { return nil }
                let n = min(literalRemaining, buffer.readableBytes)
                literalRemaining -= n
                records += (literalOctets + n) / 65536 - literalOctets / 65536
                literalOctets += n
                if spooling {
                    let piece = buffer.readSlice(length: n)!
                    if literalRemaining == 0 { spooling = false }
                    return .spoolData(piece)
                }
                command.append(contentsOf: buffer.readBytes(length: n)!)
                if literalRemaining > 0 { return nil }
                continue
            }
            let view = buffer.readableBytesView
            let lineLimit = authenticated ? maxLine : Self.preAuthMaxCommand - command.count
            guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count > lineLimit { return .fatal("Line too long") }
                return nil
            }
            let lineLength = lf - view.startIndex
            if lineLength > lineLimit { return .fatal("Line too long") }
            var line = Array(view[view.startIndex..<lf])
            buffer.moveReaderIndex(to: lf + 1)
            records += 1
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if let (size, synchronizing) = Self.literalAnnouncement(line) {
                let append = isAppend(command + line)
                let limit = !authenticated ? Self.preAuthMaxCommand : append ? maxAppendLiteral : maxLiteral
                let total = !authenticated ? Self.preAuthMaxCommand : append ? maxCommand : maxOtherCommand
                if size > limit || command.count + spooledOctets + line.count + size > total {
                    if synchronizing {
                        let tag = Self.tag(of: command.isEmpty ? line : command)
                        command = []
                        spooledInCommand = 0
                        spooledOctets = 0
                        return .literalTooLarge(tag: tag, size: size)
                    }
                    return .fatal("Literal of \(size) octets exceeds the limit")
                }
                if authenticated, let spoolAbove, size > spoolAbove, !spoolToken.isEmpty, isAppend(command + line) {
                    // The literal's place in the command holds a marker of the same syntax: `{n}` and the marker.
                    let marker = spoolMarker(spooledInCommand)
                    spooledInCommand += 1
                    spooledOctets += size
                    command.append(contentsOf: line[..<line.lastIndex(of: UInt8(ascii: "{"))!])
                    command.append(contentsOf: Array("{\(marker.count)}\r\n".utf8) + marker)
                    literalRemaining = size
                    spooling = true
                    return .spoolStart(size: size, continuation: synchronizing)
                }
                command.append(contentsOf: line)
                command.append(contentsOf: [13, 10])
                literalRemaining = size
                if synchronizing && size > 0 { return .continuationNeeded }
                continue
            }
            command.append(contentsOf: line)
            let done = command
            command = []
            spooledInCommand = 0
            spooledOctets = 0
            return .command(done)
        }
    }

    /// `{n}`, `{n+}`, `{n-}` or `~{n}` at the end of a line: (size, synchronizing).
    static func literalAnnouncement(_ line: [UInt8]) -> (Int, Bool)? {
        guard line.last == UInt8(ascii: "}"), let open = line.lastIndex(of: UInt8(ascii: "{")) else { return nil }
        var digits = line[(open + 1)..<(line.count - 1)]
        var synchronizing = true
        if let last = digits.last, last == UInt8(ascii: "+") || last == UInt8(ascii: "-") {
            synchronizing = false
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ (48...57).contains($0) }),
              let n = Int(String(decoding: digits, as: UTF8.self)) else { return nil }
        return (n, synchronizing)
    }

    func isAppend(_ bytes: [UInt8]) -> Bool {
        // tag SP "APPEND" SP ...
        guard let sp = bytes.firstIndex(of: 0x20) else { return false }
        let rest = bytes[(sp + 1)...].prefix(7)
        return String(decoding: rest, as: UTF8.self).uppercased() == "APPEND "
    }

    static func tag(of bytes: [UInt8]) -> String? {
        guard let sp = bytes.firstIndex(of: 0x20), sp > 0 else { return nil }
        return String(decoding: bytes[..<sp], as: UTF8.self)
    }
}
