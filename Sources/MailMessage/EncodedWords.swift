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
