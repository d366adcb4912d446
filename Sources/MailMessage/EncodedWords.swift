import Foundation

/// RFC 2047 encoded words (`=?charset?B|Q?text?=`) in header values, decoded to Unicode. Whitespace between two
/// adjacent encoded words is dropped (RFC 2047 §6.2); an encoded word that cannot be decoded stays as written.
public enum EncodedWords {
    public static func decode(_ text: String) -> String {
        guard text.contains("=?") else { return text }
        var out = ""
        var rest = Substring(text)
        var pendingSpace = ""
        var lastWasEncoded = false
        while let start = rest.range(of: "=?") {
            let before = rest[..<start.lowerBound]
            if let word = parseWord(rest[start.lowerBound...]) {
                if !before.isEmpty {
                    if lastWasEncoded && before.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }) {
                        // Dropped: whitespace between encoded words.
                    } else {
                        out += pendingSpace + before
                    }
                }
                pendingSpace = ""
                out += word.decoded
                rest = rest[word.end...]
                lastWasEncoded = true
            } else {
                out += before + "=?"
                rest = rest[start.upperBound...]
                lastWasEncoded = false
            }
        }
        out += rest
        return out
    }

    /// The same from a field's octets: an encoded word's octets are decoded in its own charset even when the sender
    /// put raw 8-bit octets in it (which RFC 2047 forbids but mail carries).
    public static func decode(bytes: [UInt8]) -> String {
        // Outside encoded words the text is UTF-8 (RFC 6532); an octet that is not reads as U+FFFD.
        func text(_ b: ArraySlice<UInt8>) -> String { String(decoding: b, as: UTF8.self) }
        var out = "", i = 0, plainStart = 0, lastWasEncoded = false
        while i + 1 < bytes.count {
            guard bytes[i] == 61, bytes[i + 1] == 63 else { i += 1; continue }   // "=?"
            // =?charset?encoding?text?=
            guard let q1 = bytes[(i + 2)...].firstIndex(of: 63), q1 + 2 < bytes.count, bytes[q1 + 2] == 63,
                  let close = (q1 + 3..<max(q1 + 3, bytes.count - 1)).first(where: { bytes[$0] == 63 && bytes[$0 + 1] == 61 }),
                  !bytes[(q1 + 3)..<close].contains(32) else { i += 2; continue }
            let charset = text(bytes[(i + 2)..<q1]).split(separator: "*").first.map(String.init)?.lowercased() ?? ""
            let payload = Array(bytes[(q1 + 3)..<close])
            let decoded: [UInt8]
            switch bytes[q1 + 1] | 0x20 {
            case UInt8(ascii: "b"): decoded = TransferEncoding.decodeBase64(payload)
            case UInt8(ascii: "q"): decoded = TransferEncoding.decodeQuotedPrintable(payload.map { $0 == 95 ? 32 : $0 })
            default: i += 2; continue
            }
            guard let word = decodeCharset(decoded, charset) else { i += 2; continue }
            let between = bytes[plainStart..<i]
            // Whitespace between two encoded words is dropped (RFC 2047 §6.2).
            if !(lastWasEncoded && between.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 })) { out += text(between) }
            out += word
            i = close + 2
            plainStart = i
            lastWasEncoded = true
        }
        return out + text(bytes[plainStart...])
    }

    static func parseWord(_ s: Substring) -> (decoded: String, end: Substring.Index)? {
        // =?charset?encoding?encoded-text?=
        let parts = s.dropFirst(2)
        guard let q1 = parts.firstIndex(of: "?") else { return nil }
        let charset = parts[..<q1].split(separator: "*").first.map(String.init)?.lowercased() ?? ""
        let afterCharset = parts[parts.index(after: q1)...]
        guard let q2 = afterCharset.firstIndex(of: "?"), afterCharset.distance(from: afterCharset.startIndex, to: q2) == 1 else { return nil }
        let encoding = afterCharset[afterCharset.startIndex].uppercased()
        let payloadStart = afterCharset.index(after: q2)
        guard let close = afterCharset[payloadStart...].range(of: "?=") else { return nil }
        let payload = afterCharset[payloadStart..<close.lowerBound]
        guard !payload.contains(" ") else { return nil }
        let bytes: [UInt8]
        switch encoding {
        case "B": bytes = TransferEncoding.decodeBase64(Array(payload.utf8))
        case "Q": bytes = TransferEncoding.decodeQuotedPrintable(Array(payload.replacingOccurrences(of: "_", with: " ").utf8))
        default: return nil
        }
        guard let text = decodeCharset(bytes, charset) else { return nil }
        return (text, close.upperBound)
    }

    public static func decodeCharset(_ bytes: [UInt8], _ charset: String) -> String? {
        switch charset {
        case "utf-8", "utf8", "us-ascii", "ascii":
            return String(decoding: bytes, as: UTF8.self)
        case "iso-8859-1", "latin1", "iso8859-1":
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        default:
            let encodings: [String: String.Encoding] = [
                "iso-8859-2": .isoLatin2, "windows-1252": .windowsCP1252, "cp1252": .windowsCP1252, "windows-1251": .windowsCP1251,
                "windows-1250": .windowsCP1250, "utf-16": .utf16, "iso-2022-jp": .iso2022JP, "shift_jis": .shiftJIS,
                "euc-jp": .japaneseEUC, "koi8-r": String.Encoding(rawValue: 0x80000A02),
            ]
            guard let e = encodings[charset] else { return nil }
            return String(data: Data(bytes), encoding: e)
        }
    }
}
