/// Dot-stuffing, for SMTP DATA (RFC 5321 §4.5.2) and POP3 multi-line responses (RFC 1939 §3): a line that starts
/// with "." gets one more; `finish` adds CRLF when the content lacks a final line end, then the "." line. Content
/// may come in pieces (a large message goes a chunk at a time).
public struct DotStuffer: Sendable {
    private var lineStart = true
    private var empty = true

    public init() {}

    public mutating func append(_ content: ArraySlice<UInt8>, to out: inout [UInt8]) {
        guard !content.isEmpty else { return }
        empty = false
        out.reserveCapacity(out.count + content.count + content.count / 64 + 5)
        var start = content.startIndex
        var i = content.startIndex
        while i < content.endIndex {
            if lineStart && content[i] == UInt8(ascii: ".") {
                out.append(contentsOf: content[start..<i])
                out.append(UInt8(ascii: "."))
                start = i
            }
            lineStart = content[i] == 10
            i += 1
        }
        out.append(contentsOf: content[start..<content.endIndex])
    }

    /// The final CRLF when the content lacks one, and the terminating "." line.
    public mutating func finish(_ out: inout [UInt8]) {
        if !empty && !lineStart { out.append(contentsOf: [13, 10]) }
        out.append(contentsOf: [46, 13, 10])
    }
}
