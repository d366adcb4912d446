/// One header field as it appears in the message: its name and the raw bytes of the whole field, folded lines and the
/// final line end included (what DKIM canonicalizes and IMAP's HEADER.FIELDS returns).
public struct RawHeaderField: Sendable, Equatable {
    public var name: String
    public var raw: [UInt8]
    public init(name: String, raw: [UInt8]) {
        self.name = name
        self.raw = raw
    }
}

/// The header block of a message as bytes: where it ends, and its fields. One splitter for every reader (IMAP FETCH,
/// DKIM, bounces, submission, `tern queue show`).
public enum RawHeader {
    /// The offset just past the empty line that ends the header block (the start of the body): just past the first line
    /// when the message starts with an empty one, the message length when there is no empty line. Lines may end in CRLF
    /// or LF.
    public static func end(_ b: UnsafeRawBufferPointer) -> Int {
        let n = b.count
        if n >= 1 && b[0] == 10 { return 1 }
        if n >= 2 && b[0] == 13 && b[1] == 10 { return 2 }
        var i = 0
        while i < n {
            if b[i] == 10 {
                if i + 1 < n && b[i + 1] == 10 { return i + 2 }
                if i + 2 < n && b[i + 1] == 13 && b[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return n
    }

    public static func end(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { end($0) }
    }

    /// The fields of a header block (a line starting with WSP continues the field before it); stops at an empty line.
    /// Lines without a colon are not fields and are left out.
    public static func fields(_ header: ArraySlice<UInt8>) -> [RawHeaderField] {
        var out: [RawHeaderField] = []
        var start = header.startIndex
        var i = header.startIndex
        func close(_ end: Int) {
            guard end > start else { return }
            let raw = header[start..<end]
            guard let colon = raw.firstIndex(of: 58) else { return }
            var nameBytes = header[start..<colon]
            while let f = nameBytes.first, f == 32 || f == 9 { nameBytes.removeFirst() }
            while let l = nameBytes.last, l == 32 || l == 9 { nameBytes.removeLast() }
            let name = String(decoding: nameBytes, as: UTF8.self)
            out.append(RawHeaderField(name: name, raw: Array(raw)))
        }
        if let first = header.first, first == 13 || first == 10 { return [] }
        while i < header.endIndex {
            if header[i] == 10 {
                let next = i + 1
                if next < header.endIndex && (header[next] == 32 || header[next] == 9) { i = next; continue }
                close(next)
                start = next
                if next < header.endIndex && (header[next] == 13 || header[next] == 10) { return out }
            }
            i += 1
        }
        close(header.endIndex)
        return out
    }
}

extension RawHeaderField {
    /// The value after the colon, unfolded (line breaks removed, tabs as spaces) and trimmed.
    public var unfoldedValue: String {
        let value = raw.firstIndex(of: 58).map { raw[($0 + 1)...] } ?? raw[...]
        return String(decoding: value, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "").replacingOccurrences(of: "\n", with: "")
            .replacingOccurrences(of: "\t", with: " ").trimmingCharacters(in: .whitespaces)
    }
}

extension Sequence where Element == RawHeaderField {
    /// The first field with this name (names compare without regard to case).
    public func first(named name: String) -> RawHeaderField? {
        first { $0.name.caseInsensitiveCompare(name) == .orderedSame }
    }
}
