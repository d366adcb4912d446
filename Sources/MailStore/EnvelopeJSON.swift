/// The stored envelope's JSON, written directly: every delivered message and queued job carries one, and
/// `JSONEncoder`'s general machinery (a boxed value tree, a container per level, the writer) was 2% of the CPU an SMTP
/// delivery takes. The text is what `JSONEncoder` writes for the same value, key for key (absent optionals left out),
/// so the stored column reads back with `JSONDecoder` as before; a randomised test holds the two together.
extension StoredEnvelope {
    public var json: String {
        var out: [UInt8] = []
        out.reserveCapacity(128 + 64 * recipients.count)
        out.append(contentsOf: #"{"mailFrom":"#.utf8)
        Self.appendString(mailFrom, to: &out)
        out.append(contentsOf: #","recipients":["#.utf8)
        for (index, recipient) in recipients.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"address":"#.utf8)
            Self.appendString(recipient.address, to: &out)
            if let notify = recipient.notify {
                out.append(contentsOf: #","notify":["#.utf8)
                for (n, word) in notify.enumerated() {
                    if n > 0 { out.append(UInt8(ascii: ",")) }
                    Self.appendString(word, to: &out)
                }
                out.append(UInt8(ascii: "]"))
            }
            Self.appendField("originalRecipient", recipient.originalRecipient, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        Self.appendField("envelopeID", envelopeID, to: &out)
        Self.appendField("dsnReturn", dsnReturn, to: &out)
        Self.appendField("body", body, to: &out)
        out.append(contentsOf: (smtputf8 ? #","smtputf8":true}"# : #","smtputf8":false}"#).utf8)
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendField(_ key: StaticString, _ value: String?, to out: inout [UInt8]) {
        guard let value else { return }
        out.append(contentsOf: [UInt8(ascii: ","), UInt8(ascii: "\"")])
        key.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        appendString(value, to: &out)
    }

    /// A JSON string (RFC 8259 §7): the quote, the backslash and the control characters escaped, the rest as UTF-8.
    private static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                        hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
