extension String {
    /// The text with its control characters (C0 but those in `kept`, DEL, C1) written as `\xNN`, at most `limit`
    /// scalars of it: text from a client or a message made safe for a log line, a terminal or a report (a CR or LF
    /// would start a forged line, an ESC rewrite the reader's terminal).
    public func escapingControls(keeping kept: Set<UInt32> = [], limit: Int = .max) -> String {
        var out = ""
        for scalar in unicodeScalars.prefix(limit) {
            let v = scalar.value
            if ((v < 0x20 || v == 0x7F || (0x80...0x9F).contains(v)) && !kept.contains(v)) {
                let hex = String(v, radix: 16, uppercase: true)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Text from a client for a log field: control characters escaped, at most 256 characters.
public func loggable(_ text: String) -> String {
    text.escapingControls(limit: 256)
}
