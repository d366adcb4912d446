import Foundation
import IMAPCodec
import IMAPResponses
import MailCore
import MailMessage
import MailStore

/// A message's bytes with its header and body found once (FETCH, SEARCH, SORT read the parts they need).
public struct MessageParts {
    public let bytes: [UInt8]
    public let headerEnd: Int  // index just past the empty line (start of the body)

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        headerEnd = RawHeader.end(bytes)
    }

    public var header: ArraySlice<UInt8> { bytes[..<headerEnd] }
    public var body: ArraySlice<UInt8> { bytes[headerEnd...] }

    /// Header fields with their raw lines (folding and line ends included).
    public var fields: [RawHeaderField] { RawHeader.fields(header) }

    /// Unfolded value of the first field with this name.
    public func value(_ name: String) -> String? {
        values(name).first
    }

    public func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map { f in
            let text = String(decoding: f.raw, as: UTF8.self)
            let v = text[text.index(after: text.firstIndex(of: ":")!)...]
            return v.replacingOccurrences(of: "\r\n", with: "").replacingOccurrences(of: "\n", with: "").trimmingCharacters(in: .whitespaces)
        }
    }
}

/// SEARCH BODY and TEXT: a case-insensitive substring test on the raw octets.
public enum TextSearch {
    /// ASCII text (nearly every body as stored: 7-bit, quoted-printable or base64) is compared octet by octet with
    /// ASCII case folding; anything else goes through Foundation's case- and diacritic-insensitive comparison.
    public static func contains(_ haystack: ArraySlice<UInt8>, _ needle: String) -> Bool {
        let n = Array(needle.utf8)
        guard !n.isEmpty else { return true }
        if n.allSatisfy({ $0 < 128 }) {
            // One pass: an ASCII match found is a match either way; a miss is final when the haystack is ASCII.
            let (found, sawNonASCII) = asciiScan(haystack, n.map(lower))
            if found || !sawNonASCII { return found }
        }
        return String(decoding: haystack, as: UTF8.self).range(of: needle, options: [.caseInsensitive, .diacriticInsensitive]) != nil
    }

    @inline(__always) public static func lower(_ b: UInt8) -> UInt8 { b &- 65 < 26 ? b | 0x20 : b }

    /// `needle` is lower-case ASCII.
    public static func asciiContains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        asciiScan(haystack, needle).found
    }

    /// Whether `needle` (lower-case ASCII) occurs with ASCII case folding, and, when it does not, whether the haystack
    /// holds any octet above 127 (then a Unicode comparison has the last word).
    static func asciiScan(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> (found: Bool, sawNonASCII: Bool) {
        haystack.withUnsafeBufferPointer { h in
            needle.withUnsafeBufferPointer { nd in
                var any: UInt8 = 0
                var i = 0
                if h.count >= nd.count {
                    let first = nd[0], last = h.count - nd.count
                    while i <= last {
                        let b = h[i]
                        any |= b
                        if lower(b) == first {
                            var k = 1
                            while k < nd.count && lower(h[i + k]) == nd[k] { k += 1 }
                            if k == nd.count { return (true, false) }
                        }
                        i += 1
                    }
                }
                while i < h.count { any |= h[i]; i += 1 }
                return (false, any >= 128)
            }
        }
    }
}

/// What a FETCH needs per message, decided once from its attributes.
public struct FetchPlan {
    /// The whole content (a body part, the text, the full message, BINARY).
    public var content = false
    /// Only the header block (`BODY.PEEK[HEADER]`, `HEADER.FIELDS`, `RFC822.HEADER`), which a cache may have.
    public var header = false
    /// ENVELOPE, BODYSTRUCTURE or BODY, which a cache may have.
    public var structure = false
    /// The MIME tree (a numbered part, BINARY).
    public var tree = false

    /// Whether a large message can be streamed from its content rather than read whole: its content items are
    /// the message or its text (no part, no BINARY, no preview), and any structure asked for is cached.
    public func streamable(structureCached: Bool) -> Bool {
        !tree && (!structure || structureCached)
    }

    /// Whether a message's content must be read: the content itself is asked for, or a cache lacks what is.
    public func needsContent(structureCached: Bool, headerCached: Bool) -> Bool {
        content || (structure && !structureCached) || (header && !headerCached)
    }

    public init(_ attrs: [FetchAttribute]) {
        for a in attrs {
            switch a {
            case .envelope, .bodyStructure, .body: structure = true
            case .rfc822Header: header = true
            case .rfc822, .rfc822Text: content = true
            case .binary, .binarySize, .preview: content = true; tree = true
            case .bodySection(let section, _, _):
                if !section.part.isEmpty {
                    content = true; tree = true
                } else {
                    switch section.text {
                    case .header, .headerFields, .headerFieldsNot, .mime: header = true
                    case .full, .text: content = true
                    }
                }
            case .uid, .flags, .internalDate, .rfc822Size, .modSeq, .emailID, .threadID, .saveDate: break
            }
        }
    }
}
