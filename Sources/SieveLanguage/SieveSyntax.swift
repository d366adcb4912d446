/// Sieve scripts (RFC 5228) as text: the lexer and parser of §8, with line and column for every error. Pure: no I/O,
/// no knowledge of what the commands mean (that is `SieveValidator`'s and `SieveInterpreter`'s).

/// A place in a script: 1-based line and column (columns count Unicode scalars).
public struct SievePosition: Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
    public var description: String { "line \(line), column \(column)" }
}

/// What is wrong with a script, and where.
public struct SieveError: Error, Hashable, Sendable, CustomStringConvertible {
    public var position: SievePosition
    public var message: String
    public init(_ position: SievePosition, _ message: String) {
        self.position = position
        self.message = message
    }
    public var description: String { "\(position): \(message)" }
}

/// An argument of a command or test (RFC 5228 §2.6.1): a string list (one string is a list of one), a number or a tag.
public enum SieveArgument: Hashable, Sendable {
    case strings([String], SievePosition)
    case number(UInt64, SievePosition)
    case tag(String, SievePosition)

    public var position: SievePosition {
        switch self {
        case .strings(_, let p), .number(_, let p), .tag(_, let p): return p
        }
    }
}

/// A test (RFC 5228 §2.9, §5): its name, arguments and nested tests.
public struct SieveTest: Hashable, Sendable {
    public var name: String
    public var arguments: [SieveArgument]
    public var tests: [SieveTest]
    public var position: SievePosition
}

/// A command (RFC 5228 §2.9): its name, arguments, tests, and the block it controls (nil when it ends with `;`).
public struct SieveCommand: Hashable, Sendable {
    public var name: String
    public var arguments: [SieveArgument]
    public var tests: [SieveTest]
    public var block: [SieveCommand]?
    public var position: SievePosition
}

/// Bounds a parser holds a script to, whoever wrote it.
public struct SieveLimits: Sendable {
    /// Octets of script text.
    public var scriptSize = 1 << 20
    /// Blocks and tests inside each other.
    public var nesting = 32
    public init() {}
}

enum SieveToken: Equatable {
    case identifier(String)
    case tag(String)
    case number(UInt64)
    case string(String)
    case punct(Character)   // ; , ( ) [ ] { }
    case end
}

/// RFC 5228 §8.1: identifiers, tags, numbers with K/M/G, quoted and multi-line strings, both kinds of comments.
struct SieveLexer {
    private let scalars: [Unicode.Scalar]
    private var i = 0
    private var line = 1
    private var column = 1

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    var position: SievePosition { SievePosition(line: line, column: column) }

    private func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        i + offset < scalars.count ? scalars[i + offset] : nil
    }

    private mutating func advance() {
        if scalars[i] == "\n" {
            line += 1
            column = 1
        } else {
            column += 1
        }
        i += 1
    }

    private static func isAlpha(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) }
    private static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }

    /// Skips white space and comments.
    private mutating func skipSpace() throws {
        while let c = peek() {
            if c == " " || c == "\t" || c == "\r" || c == "\n" {
                advance()
            } else if c == "#" {
                while let d = peek(), d != "\n" { advance() }
            } else if c == "/" && peek(1) == "*" {
                let start = position
                advance(); advance()
                while true {
                    guard let d = peek() else { throw SieveError(start, "comment not closed with */") }
                    if d == "*" && peek(1) == "/" { advance(); advance(); break }
                    advance()
                }
            } else {
                return
            }
        }
    }

    /// The next token and where it starts.
    mutating func next() throws -> (SieveToken, SievePosition) {
        try skipSpace()
        let start = position
        guard let c = peek() else { return (.end, start) }
        if ";,()[]{}".unicodeScalars.contains(c) {
            advance()
            return (.punct(Character(c)), start)
        }
        if c == ":" {
            advance()
            guard let d = peek(), Self.isAlpha(d) || d == "_" else { throw SieveError(start, "a tag needs a name after ':'") }
            return (.tag(identifier()), start)
        }
        if Self.isDigit(c) {
            var value: UInt64 = 0
            while let d = peek(), Self.isDigit(d) {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(d.value - 48))
                guard !o1 && !o2 else { throw SieveError(start, "number too large") }
                value = s
                advance()
            }
            if let q = peek(), "KkMmGg".unicodeScalars.contains(q) {
                let shift: UInt64 = q == "K" || q == "k" ? 10 : q == "M" || q == "m" ? 20 : 30
                guard value <= UInt64.max >> shift else { throw SieveError(start, "number too large") }
                value <<= shift
                advance()
            }
            if let d = peek(), Self.isAlpha(d) || d == "_" { throw SieveError(position, "unexpected '\(d)' after a number") }
            return (.number(value), start)
        }
        if c == "\"" {
            advance()
            var out = String.UnicodeScalarView()
            while true {
                guard let d = peek() else { throw SieveError(start, "string not closed with '\"'") }
                advance()
                if d == "\"" { break }
                if d == "\\" {
                    // RFC 5228 §2.4.2: \\ and \" stand for themselves; any other escaped character is itself.
                    guard let e = peek() else { throw SieveError(start, "string not closed with '\"'") }
                    advance()
                    out.append(e)
                } else {
                    out.append(d)
                }
            }
            return (.string(String(out)), start)
        }
        if Self.isAlpha(c) || c == "_" {
            let name = identifier()
            if name.lowercased() == "text" && peek() == ":" {
                advance()
                return (.string(try multiLine(start)), start)
            }
            return (.identifier(name), start)
        }
        throw SieveError(start, "unexpected character '\(c)'")
    }

    private mutating func identifier() -> String {
        var out = String.UnicodeScalarView()
        while let d = peek(), Self.isAlpha(d) || Self.isDigit(d) || d == "_" {
            out.append(d)
            advance()
        }
        return String(out)
    }

    /// `text:` then white space or a comment to the end of the line, then lines up to one holding only "." (a line
    /// starting with "." has it doubled: RFC 5228 §2.4.2, dot-stuffing). Line ends come out as CRLF.
    private mutating func multiLine(_ start: SievePosition) throws -> String {
        while let d = peek(), d == " " || d == "\t" { advance() }
        if peek() == "#" { while let d = peek(), d != "\n" { advance() } }
        if peek() == "\r" { advance() }
        guard peek() == "\n" else { throw SieveError(position, "text: must be followed by the end of the line") }
        advance()
        var lines: [String] = []
        while true {
            guard peek() != nil else { throw SieveError(start, "multi-line string not ended with a line holding '.'") }
            var current = String.UnicodeScalarView()
            while let d = peek(), d != "\n" {
                current.append(d)
                advance()
            }
            if peek() == "\n" { advance() }
            var text = String(current)
            if text.hasSuffix("\r") { text.removeLast() }
            if text == "." { break }
            if text.hasPrefix("..") { text.removeFirst() }
            lines.append(text)
        }
        return lines.map { $0 + "\r\n" }.joined()
    }
}

/// RFC 5228 §8.2: commands, blocks, arguments, tests and test lists.
public struct SieveParser {
    private var lexer: SieveLexer
    private var token: SieveToken = .end
    private var at = SievePosition(line: 1, column: 1)
    private let limits: SieveLimits
    private var depth = 0

    /// The commands of `script`, or the first error with its position.
    public static func parse(_ script: String, limits: SieveLimits = SieveLimits()) throws(SieveError) -> [SieveCommand] {
        guard script.utf8.count <= limits.scriptSize else {
            throw SieveError(SievePosition(line: 1, column: 1), "script of \(script.utf8.count) octets is over the limit of \(limits.scriptSize)")
        }
        do {
            var parser = SieveParser(script, limits: limits)
            try parser.advance()
            let commands = try parser.commands()
            guard parser.token == .end else { throw SieveError(parser.at, "unexpected \(parser.describe(parser.token))") }
            return commands
        } catch let e as SieveError {
            throw e
        } catch {
            throw SieveError(SievePosition(line: 1, column: 1), "\(error)")
        }
    }

    private init(_ script: String, limits: SieveLimits) {
        lexer = SieveLexer(script)
        self.limits = limits
    }

    private mutating func advance() throws {
        (token, at) = try lexer.next()
    }

    private func describe(_ t: SieveToken) -> String {
        switch t {
        case .identifier(let s): return "identifier '\(s)'"
        case .tag(let s): return "tag ':\(s)'"
        case .number(let n): return "number \(n)"
        case .string: return "string"
        case .punct(let c): return "'\(c)'"
        case .end: return "end of script"
        }
    }

    private mutating func nest() throws {
        depth += 1
        guard depth <= limits.nesting else { throw SieveError(at, "nested more than \(limits.nesting) deep") }
    }

    private mutating func commands() throws -> [SieveCommand] {
        var out: [SieveCommand] = []
        while case .identifier = token { out.append(try command()) }
        return out
    }

    private mutating func command() throws -> SieveCommand {
        guard case .identifier(let name) = token else { throw SieveError(at, "expected a command, found \(describe(token))") }
        let position = at
        try advance()
        let (arguments, tests) = try argumentsAndTests()
        if token == .punct(";") {
            try advance()
            return SieveCommand(name: name.lowercased(), arguments: arguments, tests: tests, block: nil, position: position)
        }
        guard token == .punct("{") else { throw SieveError(at, "expected ';' or '{' after \(name), found \(describe(token))") }
        try nest()
        try advance()
        let block = try commands()
        guard token == .punct("}") else { throw SieveError(at, "expected '}' to close the block of \(name) (\(position)), found \(describe(token))") }
        depth -= 1
        try advance()
        return SieveCommand(name: name.lowercased(), arguments: arguments, tests: tests, block: block, position: position)
    }

    /// `*argument [test / test-list]`.
    private mutating func argumentsAndTests() throws -> ([SieveArgument], [SieveTest]) {
        var arguments: [SieveArgument] = []
        while let a = try argument() { arguments.append(a) }
        if token == .punct("(") {
            return (arguments, try testList())
        }
        if case .identifier = token { return (arguments, [try test()]) }
        return (arguments, [])
    }

    private mutating func argument() throws -> SieveArgument? {
        let position = at
        switch token {
        case .string(let s):
            try advance()
            return .strings([s], position)
        case .number(let n):
            try advance()
            return .number(n, position)
        case .tag(let t):
            try advance()
            return .tag(t.lowercased(), position)
        case .punct("["):
            try advance()
            var list: [String] = []
            while true {
                guard case .string(let s) = token else { throw SieveError(at, "expected a string in the list, found \(describe(token))") }
                list.append(s)
                try advance()
                if token == .punct("]") { break }
                guard token == .punct(",") else { throw SieveError(at, "expected ',' or ']' in the string list, found \(describe(token))") }
                try advance()
            }
            try advance()
            return .strings(list, position)
        default:
            return nil
        }
    }

    private mutating func testList() throws -> [SieveTest] {
        try nest()
        try advance()   // (
        var tests = [try test()]
        while token == .punct(",") {
            try advance()
            tests.append(try test())
        }
        guard token == .punct(")") else { throw SieveError(at, "expected ',' or ')' in the test list, found \(describe(token))") }
        depth -= 1
        try advance()
        return tests
    }

    private mutating func test() throws -> SieveTest {
        guard case .identifier(let name) = token else { throw SieveError(at, "expected a test, found \(describe(token))") }
        let position = at
        try nest()
        try advance()
        let (arguments, tests) = try argumentsAndTests()
        depth -= 1
        return SieveTest(name: name.lowercased(), arguments: arguments, tests: tests, position: position)
    }
}
