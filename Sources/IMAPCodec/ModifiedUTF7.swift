/// Modified UTF-7 for mailbox names (RFC 3501 §5.1.3), used with IMAP4rev1 clients that have not enabled UTF-8.
public enum ModifiedUTF7 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,".utf8)

    public static func encode(_ s: String) -> String {
        var out = ""
        var pending: [UInt16] = []
        func flush() {
            guard !pending.isEmpty else { return }
            var bytes: [UInt8] = []
            for u in pending { bytes.append(UInt8(u >> 8)); bytes.append(UInt8(u & 0xFF)) }
            out += "&"
            var i = 0
            while i < bytes.count {
                let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
                let n = bytes.count - i
                out.append(Character(Unicode.Scalar(alphabet[Int(b0 >> 2)])))
                out.append(Character(Unicode.Scalar(alphabet[Int((b0 & 3) << 4 | b1 >> 4)])))
                if n > 1 { out.append(Character(Unicode.Scalar(alphabet[Int((b1 & 15) << 2 | b2 >> 6)]))) }
                if n > 2 { out.append(Character(Unicode.Scalar(alphabet[Int(b2 & 63)]))) }
                i += 3
            }
            out += "-"
            pending = []
        }
        for scalar in s.unicodeScalars {
            if scalar.value >= 0x20 && scalar.value <= 0x7E {
                flush()
                out += scalar == "&" ? "&-" : String(scalar)
            } else {
                pending.append(contentsOf: String(scalar).utf16)
            }
        }
        flush()
        return out
    }

    public static func decode(_ s: String) -> String? {
        var out = String.UnicodeScalarView()
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            let c = b[i]
            guard c >= 0x20 && c <= 0x7E else { return nil }
            if c != UInt8(ascii: "&") { out.append(Unicode.Scalar(c)); i += 1; continue }
            guard let end = b[(i + 1)...].firstIndex(of: UInt8(ascii: "-")) else { return nil }
            if end == i + 1 { out.append("&"); i = end + 1; continue }
            var bits = 0, value = 0
            var bytes: [UInt8] = []
            for ch in b[(i + 1)..<end] {
                guard let v = alphabet.firstIndex(of: ch) else { return nil }
                value = (value << 6) | v
                bits += 6
                if bits >= 8 {
                    bits -= 8
                    bytes.append(UInt8((value >> bits) & 0xFF))
                }
            }
            guard bytes.count % 2 == 0 else { return nil }
            var units: [UInt16] = []
            for k in stride(from: 0, to: bytes.count, by: 2) { units.append(UInt16(bytes[k]) << 8 | UInt16(bytes[k + 1])) }
            for r in UTF16.decode(units) { guard let r else { return nil }; out.append(r) }
            i = end + 1
        }
        return String(out)
    }
}

extension UTF16 {
    /// Decodes UTF-16 code units; nil entries mark invalid sequences.
    static func decode(_ units: [UInt16]) -> [Unicode.Scalar?] {
        var it = units.makeIterator()
        var decoder = UTF16()
        var out: [Unicode.Scalar?] = []
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let v): out.append(v)
            case .emptyInput: break loop
            case .error: out.append(nil)
            }
        }
        return out
    }
}
