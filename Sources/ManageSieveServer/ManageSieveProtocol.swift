import Sieve

/// ManageSieve's wire format (RFC 5804 §4), without I/O: commands split from a byte stream (atoms, numbers, quoted
/// strings, literals `{N+}` and `{N}`), and the responses the server writes. Bounded: a command line, and a literal.
public enum ManageSieveToken: Equatable, Sendable {
    case atom(String)
    case number(Int)
    case string([UInt8])

    public var number: Int? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// A string argument as text (a number or an atom is not one, nor octets that are not UTF-8: RFC 5804 strings and
    /// Sieve scripts are UTF-8, and a script is stored as sent or not at all).
    public var text: String? {
        if case .string(let b) = self { return String(validating: b, as: UTF8.self) }
        return nil
    }
}

public enum ManageSieveEvent: Equatable, Sendable {
    /// A whole command: its tokens in order (the first is normally the command's name, an atom).
    case command([ManageSieveToken])
    /// A command that could not be read; the connection goes on from the next line.
    case bad(String)
    /// A line or a literal over the limits: the connection ends.
    case tooLong
}

/// Splits commands from the bytes a client sends. `next` returns nil until a whole command is there.
public struct ManageSieveFramer: Sendable {
    /// Octets of command text outside literals, and of one literal.
    public var maxLine: Int
    public var maxLiteral: Int

    public init(maxLine: Int = 8192, maxLiteral: Int = 1 << 20) {
        self.maxLine = maxLine
        self.maxLiteral = maxLiteral
    }

    /// The next event from `buffer[from...]`; `from` moves past what was used.
    public func next(_ buffer: [UInt8], from: inout Int) -> ManageSieveEvent? {
        var i = from, tokens: [ManageSieveToken] = [], lineOctets = 0
        func bad(_ why: String) -> ManageSieveEvent {
            // Skip to the end of this line.
            var j = i
            while j < buffer.count && buffer[j] != 10 { j += 1 }
            from = min(j + 1, buffer.count)
            return .bad(why)
        }
        while true {
            guard i < buffer.count else { return buffer.count - from > maxLine + maxLiteral ? .tooLong : nil }
            let c = buffer[i]
            switch c {
            case 32, 9:
                i += 1
            case 13:
                guard i + 1 < buffer.count else { return nil }
                guard buffer[i + 1] == 10 else { return bad("a bare CR") }
                from = i + 2
                return .command(tokens)
            case 10:
                from = i + 1
                return .command(tokens)
            case UInt8(ascii: "\""):
                var value: [UInt8] = [], j = i + 1, closed = false
                while j < buffer.count {
                    let d = buffer[j]
                    if d == UInt8(ascii: "\\"), j + 1 < buffer.count {
                        value.append(buffer[j + 1])
                        j += 2
                    } else if d == UInt8(ascii: "\"") {
                        closed = true
                        break
                    } else if d == 13 || d == 10 {
                        return bad("a quoted string may not hold a line break")
                    } else {
                        value.append(d)
                        j += 1
                    }
                    if value.count > maxLine { return .tooLong }
                }
                guard closed else { return j - from > maxLine ? .tooLong : nil }
                tokens.append(.string(value))
                i = j + 1
            case UInt8(ascii: "{"):
                // {N+} or {N} then CRLF, then N octets.
                var j = i + 1, n = 0, digits = 0
                while j < buffer.count, buffer[j] >= 48, buffer[j] <= 57, digits < 10 {
                    n = n * 10 + Int(buffer[j] - 48)
                    j += 1
                    digits += 1
                }
                guard j < buffer.count else { return nil }
                if buffer[j] == UInt8(ascii: "+") { j += 1 }
                guard j < buffer.count else { return nil }
                guard digits > 0, buffer[j] == UInt8(ascii: "}") else { return bad("a literal is {N+} or {N}") }
                guard n <= maxLiteral else { return .tooLong }
                j += 1
                if j < buffer.count, buffer[j] == 13 { j += 1 }
                guard j < buffer.count else { return nil }
                guard buffer[j] == 10 else { return bad("a literal's size ends its line") }
                j += 1
                guard buffer.count - j >= n else { return nil }
                tokens.append(.string(Array(buffer[j..<(j + n)])))
                i = j + n
            default:
                var j = i
                while j < buffer.count, ![32, 9, 13, 10, UInt8(ascii: "\""), UInt8(ascii: "{")].contains(buffer[j]) { j += 1 }
                guard j < buffer.count else { return j - from > maxLine ? .tooLong : nil }
                let word = String(decoding: buffer[i..<j], as: UTF8.self)
                if let n = Int(word), word.allSatisfy(\.isNumber) { tokens.append(.number(n)) } else { tokens.append(.atom(word)) }
                i = j
            }
            lineOctets = i - from
            if lineOctets > maxLine + maxLiteral { return .tooLong }
        }
    }
}

/// What the server writes (RFC 5804 §4): strings quoted when they can be, literals otherwise; responses with codes.
public enum ManageSieveWire {
    /// A quoted string when the text allows it (no CR, LF, NUL, and short), else a literal.
    public static func string(_ s: String) -> String {
        let bytes = Array(s.utf8)
        if bytes.count <= 1024, !bytes.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) {
            return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        return "{\(bytes.count)}\r\n" + s
    }

    /// `OK`, `NO` or `BYE`, with a response code (`(NONEXISTENT)`, `(SASL "…")`) and a human-readable text.
    public static func response(_ kind: String, code: String? = nil, _ text: String? = nil) -> String {
        var line = kind
        if let code { line += " (\(code))" }
        if let text { line += " " + string(text) }
        return line + "\r\n"
    }

    /// RFC 5804 §1.6's script names.
    public static func validName(_ name: String) -> Bool { SieveScriptName.isValid(name) }
}
