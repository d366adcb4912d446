/// An SMTP reply code (RFC 5321 §4.2).
public struct ReplyCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    public init(_ value: Int) { self.rawValue = value }
    public var description: String { String(rawValue) }
    public var isPositive: Bool { rawValue < 400 }
    public var isTransient: Bool { (400..<500).contains(rawValue) }
    public var isPermanent: Bool { rawValue >= 500 }
}

/// An enhanced mail system status code (RFC 3463), such as `5.1.1`.
public struct EnhancedStatusCode: Hashable, Sendable, CustomStringConvertible {
    public let klass: Int
    public let subject: Int
    public let detail: Int
    public init(_ klass: Int, _ subject: Int, _ detail: Int) {
        self.klass = klass; self.subject = subject; self.detail = detail
    }
    public init?(_ text: String) {
        let parts = text.split(separator: ".")
        guard parts.count == 3, let a = Int(parts[0]), let b = Int(parts[1]), let c = Int(parts[2]),
              [2, 4, 5].contains(a) else { return nil }
        self.init(a, b, c)
    }
    public var description: String { "\(klass).\(subject).\(detail)" }
}

/// One SMTP reply: a code, an optional enhanced status code and one or more lines of text.
public struct SMTPReply: Hashable, Sendable, Error, CustomStringConvertible {
    public var code: ReplyCode
    public var enhanced: EnhancedStatusCode?
    public var lines: [String]
    /// Whether the client caused this reply (bad syntax, unknown user) rather than the server.
    public var isClientFault: Bool

    public init(_ code: Int, _ enhanced: EnhancedStatusCode? = nil, _ lines: [String], isClientFault: Bool = true) {
        self.code = ReplyCode(code)
        self.enhanced = enhanced
        self.lines = lines.isEmpty ? [""] : lines
        self.isClientFault = isClientFault
    }

    public init(_ code: Int, _ enhanced: String?, _ text: String, isClientFault: Bool = true) {
        self.init(code, enhanced.flatMap(EnhancedStatusCode.init), [text], isClientFault: isClientFault)
    }

    /// The reply on the wire: `250-first`, `250 last`, each line ending in CRLF.
    /// Enhanced codes are sent only when `withEnhanced` (ENHANCEDSTATUSCODES was advertised).
    public func encoded(withEnhanced: Bool = true) -> String {
        var out = ""
        for (n, line) in lines.enumerated() {
            out += String(code.rawValue)
            out += n == lines.count - 1 ? " " : "-"
            if withEnhanced, let e = enhanced { out += "\(e) " }
            out += line
            out += "\r\n"
        }
        return out
    }

    public var description: String { lines.map { "\(code.rawValue) \(enhanced.map { "\($0) " } ?? "")\($0)" }.joined(separator: " | ") }
}
