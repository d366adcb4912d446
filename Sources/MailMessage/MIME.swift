/// A header field as it appears in the message.
public struct HeaderField: Sendable, Hashable {
    public var name: String
    /// The raw value after the colon, folding removed (CRLF/LF before whitespace dropped), not decoded.
    public var value: String
}

/// `type/subtype; param=value` (RFC 2045 §5.1), with RFC 2231 continuations and charsets resolved.
public struct ContentType: Sendable, Hashable {
    public var type: String
    public var subtype: String
    /// Parameter names in lower case, values decoded (RFC 2231) but otherwise as written.
    public var parameters: [(String, String)]

    public init(type: String, subtype: String, parameters: [(String, String)] = []) {
        self.type = type
        self.subtype = subtype
        self.parameters = parameters
    }

    public func parameter(_ name: String) -> String? {
        let n = name.lowercased()
        return parameters.first { $0.0 == n }?.1
    }

    public var isMultipart: Bool { type == "multipart" }
    public var isMessage: Bool { type == "message" && (subtype == "rfc822" || subtype == "global") }

    public static func == (a: ContentType, b: ContentType) -> Bool {
        a.type == b.type && a.subtype == b.subtype && a.parameters.map(\.0) == b.parameters.map(\.0) && a.parameters.map(\.1) == b.parameters.map(\.1)
    }
    public func hash(into h: inout Hasher) { h.combine(type); h.combine(subtype) }
}

/// One node of a message's MIME tree. Offsets index the bytes given to `MIMEParser.parse`.
public struct MIMEPart: Sendable {
    /// Where the part's header starts, where its body starts, and where the body ends (exclusive; the line
    /// break before a multipart delimiter belongs to the delimiter, RFC 2046 §5.1.1).
    public var headerStart: Int
    public var bodyStart: Int
    public var end: Int
    public var fields: [HeaderField]
    public var contentType: ContentType
    /// The type was not given and was taken from the context (text/plain, or message/rfc822 in a digest).
    public var isDefaultType: Bool
    public var children: [MIMEPart]
    /// The message inside a message/rfc822 part.
    public var message: [MIMEPart]

    public func header(_ name: String) -> String? {
        let n = name.lowercased()
        return fields.first { $0.name.lowercased() == n }?.value
    }

    public func headers(_ name: String) -> [String] {
        let n = name.lowercased()
        return fields.filter { $0.name.lowercased() == n }.map(\.value)
    }

    public var transferEncoding: String {
        header("Content-Transfer-Encoding")?.trimmingWhitespace().lowercased() ?? "7bit"
    }
}

/// Parses a message into its MIME tree without copying the content. Never fails: malformed input (missing
/// boundaries, broken headers, bad parameters) gives the most sensible tree, as mail readers do. Nesting deeper
/// than `maxDepth` is treated as an opaque body.
public enum MIMEParser {
    public static let maxDepth = 30

    public static func parse(_ bytes: [UInt8]) -> MIMEPart {
        parsePart(bytes, start: 0, end: bytes.count, defaultType: ContentType(type: "text", subtype: "plain",
                  parameters: [("charset", "us-ascii")]), depth: 0)
    }

    static func parsePart(_ b: [UInt8], start: Int, end: Int, defaultType: ContentType, depth: Int) -> MIMEPart {
        let (fields, bodyStart) = parseHeader(b, start: start, end: end)
        var part = MIMEPart(headerStart: start, bodyStart: bodyStart, end: end, fields: fields, contentType: defaultType,
                            isDefaultType: true, children: [], message: [])
        if let ct = part.header("Content-Type"), let parsed = parseContentType(ct) {
            part.contentType = parsed
            part.isDefaultType = false
        }
        guard depth < maxDepth else { return part }
        if part.contentType.isMultipart, let boundary = part.contentType.parameter("boundary"), !boundary.isEmpty {
            let childDefault = part.contentType.subtype == "digest"
                ? ContentType(type: "message", subtype: "rfc822") : ContentType(type: "text", subtype: "plain", parameters: [("charset", "us-ascii")])
            for (s, e) in splitMultipart(b, bodyStart: bodyStart, end: end, boundary: Array(boundary.utf8)) {
                part.children.append(parsePart(b, start: s, end: e, defaultType: childDefault, depth: depth + 1))
            }
        } else if part.contentType.isMessage, part.transferEncoding != "base64", part.transferEncoding != "quoted-printable" {
            part.message = [parsePart(b, start: bodyStart, end: end, defaultType: ContentType(type: "text", subtype: "plain",
                                      parameters: [("charset", "us-ascii")]), depth: depth + 1)]
        }
        return part
    }

    /// The top-level part only (no multipart splitting): what the whole-message sections need.
    public static func shallow(_ bytes: [UInt8], _ headerEnd: Int) -> MIMEPart {
        MIMEPart(headerStart: 0, bodyStart: headerEnd, end: bytes.count, fields: [], contentType: ContentType(type: "text", subtype: "plain"),
                 isDefaultType: true, children: [], message: [])
    }

    /// Header fields up to the first empty line; returns them and the offset of the body.
    public static func parseHeader(_ b: [UInt8], start: Int, end: Int) -> ([HeaderField], Int) {
        var fields: [HeaderField] = []
        var i = start
        var current: (name: String, value: [UInt8])?
        func flush() {
            if let c = current { fields.append(HeaderField(name: c.name, value: String(decoding: c.value, as: UTF8.self).trimmingWhitespace())) }
            current = nil
        }
        while i < end {
            var lineEnd = i
            while lineEnd < end && b[lineEnd] != 10 { lineEnd += 1 }
            let next = lineEnd < end ? lineEnd + 1 : end
            var contentEnd = lineEnd
            if contentEnd > i && b[contentEnd - 1] == 13 { contentEnd -= 1 }
            if contentEnd == i {
                // The empty line ends the header.
                flush()
                return (fields, next)
            }
            if b[i] == 32 || b[i] == 9 {
                if current != nil { current!.value += b[i..<contentEnd] }
            } else if let colon = b[i..<contentEnd].firstIndex(of: UInt8(ascii: ":")),
                      b[i..<colon].allSatisfy({ $0 > 32 && $0 < 127 }), colon > i {
                flush()
                current = (String(decoding: b[i..<colon], as: UTF8.self), Array(b[(colon + 1)..<contentEnd]))
            } else {
                // Not a header line: the header ended without its empty line (a common malformation).
                flush()
                return (fields, i)
            }
            i = next
        }
        flush()
        return (fields, end)
    }

    /// The (start, end) of each body part between delimiter lines `--boundary`.
    static func splitMultipart(_ b: [UInt8], bodyStart: Int, end: Int, boundary: [UInt8]) -> [(Int, Int)] {
        var parts: [(Int, Int)] = []
        var partStart: Int?
        var i = bodyStart
        while i < end {
            var lineEnd = i
            while lineEnd < end && b[lineEnd] != 10 { lineEnd += 1 }
            let next = lineEnd < end ? lineEnd + 1 : end
            let after = i + 2 + boundary.count
            var contentEnd = lineEnd
            if contentEnd > i && b[contentEnd - 1] == 13 { contentEnd -= 1 }
            if contentEnd >= after, b[i] == 45, b[i + 1] == 45, b[(i + 2)..<after].elementsEqual(boundary),
               b[after..<contentEnd].allSatisfy({ $0 == 32 || $0 == 9 })
                || (contentEnd >= after + 2 && b[after] == 45 && b[after + 1] == 45) {
                let isClose = contentEnd >= after + 2 && b[after] == 45 && b[after + 1] == 45
                // The delimiter includes the line break before it.
                var delimiterStart = i
                if delimiterStart > bodyStart && b[delimiterStart - 1] == 10 {
                    delimiterStart -= 1
                    if delimiterStart > bodyStart && b[delimiterStart - 1] == 13 { delimiterStart -= 1 }
                }
                if let s = partStart { parts.append((s, max(s, delimiterStart))) }
                if isClose { return parts }
                partStart = next
            }
            i = next
        }
        // A missing close delimiter: the last part runs to the end.
        if let s = partStart { parts.append((s, end)) }
        return parts
    }

    /// `Content-Type: type/subtype *(";" parameter)` with RFC 2231 continuations (`name*0*=`) and charsets.
    public static func parseContentType(_ value: String) -> ContentType? {
        var (main, params) = splitParameters(value)
        // `multipart/mixed boundary="x"` (whitespace where the semicolon belongs): take the rest as parameters.
        if let ws = main.firstIndex(where: { $0 == " " || $0 == "\t" }) {
            let (_, more) = splitParameters(";" + main[ws...])
            main = String(main[..<ws])
            params = more + params
        }
        let pieces = main.split(separator: "/", maxSplits: 1)
        guard pieces.count == 2 else { return nil }
        let type = pieces[0].trimmingWhitespace().lowercased(), subtype = pieces[1].trimmingWhitespace().lowercased()
        guard !type.isEmpty, !subtype.isEmpty, !type.contains(" "), !subtype.contains(" ") else { return nil }
        return ContentType(type: type, subtype: subtype, parameters: params)
    }

    /// Splits `value; a=b; c="d"` into the value and its parameters (names lower-cased, RFC 2231 resolved).
    public static func splitParameters(_ value: String) -> (String, [(String, String)]) {
        let chars = Array(value.unicodeScalars)
        var i = 0
        var main = ""
        while i < chars.count && chars[i] != ";" {
            if chars[i] == "(" { skipComment(chars, &i); continue }
            main.unicodeScalars.append(chars[i]); i += 1
        }
        var raw: [(String, String)] = []
        while i < chars.count {
            i += 1 // ";"
            while i < chars.count && (chars[i] == " " || chars[i] == "\t") { i += 1 }
            var name = ""
            while i < chars.count && chars[i] != "=" && chars[i] != ";" { name.unicodeScalars.append(chars[i]); i += 1 }
            name = name.trimmingWhitespace().lowercased()
            guard i < chars.count, chars[i] == "=" else { continue }
            i += 1
            while i < chars.count && (chars[i] == " " || chars[i] == "\t") { i += 1 }
            var v = ""
            if i < chars.count && chars[i] == "\"" {
                i += 1
                while i < chars.count && chars[i] != "\"" {
                    if chars[i] == "\\" && i + 1 < chars.count { i += 1 }
                    v.unicodeScalars.append(chars[i]); i += 1
                }
                i += 1
                while i < chars.count && chars[i] != ";" { i += 1 }
            } else {
                while i < chars.count && chars[i] != ";" { v.unicodeScalars.append(chars[i]); i += 1 }
                v = v.trimmingWhitespace()
            }
            if !name.isEmpty { raw.append((name, v)) }
        }
        return (main.trimmingWhitespace(), resolveRFC2231(raw))
    }

    static func skipComment(_ c: [Unicode.Scalar], _ i: inout Int) {
        var depth = 0
        while i < c.count {
            if c[i] == "(" { depth += 1 } else if c[i] == ")" { depth -= 1; if depth == 0 { i += 1; return } }
            else if c[i] == "\\" { i += 1 }
            i += 1
        }
    }

    /// RFC 2231: `name*=charset'lang'%xx`, `name*0=`, `name*1*=` pieces joined in order.
    static func resolveRFC2231(_ raw: [(String, String)]) -> [(String, String)] {
        var out: [(String, String)] = []
        var pieces: [String: [(Int, String, Bool)]] = [:]
        var order: [String] = []
        for (name, value) in raw {
            guard let star = name.firstIndex(of: "*") else {
                if !out.contains(where: { $0.0 == name }) && pieces[name] == nil { out.append((name, value)) }
                continue
            }
            let base = String(name[..<star])
            let rest = name[name.index(after: star)...]
            let encoded = rest.hasSuffix("*") || rest.isEmpty
            let index = Int(rest.trimmingChars("*")) ?? 0
            if pieces[base] == nil { order.append(base) }
            pieces[base, default: []].append((index, value, encoded))
        }
        for base in order {
            let sorted = pieces[base]!.sorted { $0.0 < $1.0 }
            var bytes: [UInt8] = []
            var charset = "utf-8"
            for (n, (index, value, encoded)) in sorted.enumerated() {
                var v = value
                if encoded && n == 0 && index == 0 {
                    let parts = v.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                    if parts.count == 3 { charset = parts[0].lowercased(); v = String(parts[2]) }
                }
                bytes += encoded ? percentDecode(v) : Array(v.utf8)
            }
            let text = charset == "iso-8859-1" || charset == "latin1" ? String(bytes.map { Character(Unicode.Scalar($0)) })
                : String(decoding: bytes, as: UTF8.self)
            out.removeAll { $0.0 == base }
            out.append((base, text))
        }
        return out
    }

    static func percentDecode(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%"), i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) {
                out.append(v); i += 3
            } else {
                out.append(b[i]); i += 1
            }
        }
        return out
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s.removeLast() }
        return String(s)
    }

    func trimmingChars(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
