import NIOCore

/// Assembles whole IMAP commands from the byte stream: the command line, and each literal it announces
/// (`{n}`, `{n+}`, `{n-}`, `~{n}`) with the line that follows it. A pure value; `next(_:)` returns nil when it
/// needs more bytes and never consumes a partial command.
///
/// Limits: a line is at most `maxLine` octets; a literal at most `maxLiteral` octets, or `maxAppendLiteral` in an
/// APPEND (a message). A synchronizing literal over the limit is refused before the client sends it; a
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
    }

    public let maxLine: Int
    public let maxLiteral: Int
    public let maxAppendLiteral: Int
    public let maxCommand: Int
    private var command: [UInt8] = []
    private var literalRemaining = 0
    /// After a fatal event the framer yields nothing more: the session ends.
    private var failed = false

    public init(maxLine: Int = 65_536, maxLiteral: Int = 65_536, maxAppendLiteral: Int = 50 << 20) {
        self.maxLine = maxLine
        self.maxLiteral = maxLiteral
        self.maxAppendLiteral = maxAppendLiteral
        maxCommand = maxAppendLiteral + 16 * maxLine
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
                command.append(contentsOf: buffer.readBytes(length: n)!)
                literalRemaining -= n
                if literalRemaining > 0 { return nil }
                continue
            }
            let view = buffer.readableBytesView
            guard let lf = view.firstIndex(of: UInt8(ascii: "\n")) else {
                if view.count > maxLine { return .fatal("Line too long") }
                return nil
            }
            let lineLength = lf - view.startIndex
            if lineLength > maxLine { return .fatal("Line too long") }
            var line = Array(view[view.startIndex..<lf])
            buffer.moveReaderIndex(to: lf + 1)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            if let (size, synchronizing) = Self.literalAnnouncement(line) {
                let limit = isAppend(command + line) ? maxAppendLiteral : maxLiteral
                if size > limit || command.count + line.count + size > maxCommand {
                    if synchronizing {
                        let tag = Self.tag(of: command.isEmpty ? line : command)
                        command = []
                        return .literalTooLarge(tag: tag, size: size)
                    }
                    return .fatal("Literal of \(size) octets exceeds the limit")
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
