/// Content-Transfer-Encoding decoders (RFC 2045 §6.7 quoted-printable, §6.8 base64), lenient as mail readers are:
/// characters outside the alphabet are skipped, a broken escape is kept as written.
public enum TransferEncoding {
    static let base64Values: [Int8] = {
        var t = [Int8](repeating: -1, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { t[Int(c)] = Int8(i) }
        return t
    }()

    public static func decodeBase64<C: Collection>(_ input: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 3 / 4)
        var acc = 0, bits = 0
        for c in input {
            if c == UInt8(ascii: "=") { break }
            let v = base64Values[Int(c)]
            guard v >= 0 else { continue }
            acc = (acc << 6) | Int(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> bits) & 0xFF))
            }
        }
        return out
    }

    public static func decodeQuotedPrintable<C: Collection>(_ input: C) -> [UInt8] where C.Element == UInt8, C.Index == Int {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = input.startIndex
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < input.endIndex {
            let c = input[i]
            if c == UInt8(ascii: "=") {
                // Soft line break: "=" then optional whitespace then CRLF or LF.
                var j = i + 1
                while j < input.endIndex, input[j] == 32 || input[j] == 9 { j += 1 }
                if j < input.endIndex, input[j] == 13, j + 1 < input.endIndex, input[j + 1] == 10 { i = j + 2; continue }
                if j < input.endIndex, input[j] == 10 { i = j + 1; continue }
                if j == input.endIndex { i = j; continue }
                if i + 2 < input.endIndex, let h = hex(input[i + 1]), let l = hex(input[i + 2]) {
                    out.append(h << 4 | l); i += 3; continue
                }
            }
            if c == 32 || c == 9 {
                // RFC 2045 §6.7 (3): white space at the end of an encoded line was added in transport; it is deleted.
                var j = i + 1
                while j < input.endIndex, input[j] == 32 || input[j] == 9 { j += 1 }
                if j == input.endIndex || input[j] == 10 || (input[j] == 13 && j + 1 < input.endIndex && input[j + 1] == 10) {
                    i = j
                    continue
                }
                out.append(contentsOf: input[i..<j])
                i = j
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }

    /// Decodes a part body by its Content-Transfer-Encoding; nil for an unknown encoding (RFC 3516 §4.3: NO [UNKNOWN-CTE]).
    public static func decode(_ body: ArraySlice<UInt8>, encoding: String) -> [UInt8]? {
        switch encoding.lowercased() {
        case "base64": return decodeBase64(body)
        case "quoted-printable": return decodeQuotedPrintable(Array(body))
        case "7bit", "8bit", "binary", "": return Array(body)
        default: return nil
        }
    }
}
