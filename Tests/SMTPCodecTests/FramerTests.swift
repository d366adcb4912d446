import NIOCore
import TernTestSupport
import Testing
@testable import SMTPCodec

/// Feeds input in pieces of `step` bytes and collects what the framer produced, joining data chunks.
func frame(_ input: [UInt8], step: Int, startInData: Bool = true, maxLine: Int = 1000) -> (data: [UInt8], ended: Bool, lines: [String], problems: SMTPFramer.DataProblems) {
    var framer = SMTPFramer(maxTextLine: maxLine)
    if startInData { framer.startData() }
    var buffer = ByteBuffer()
    var data: [UInt8] = []
    var ended = false
    var lines: [String] = []
    var problems: SMTPFramer.DataProblems = []
    var i = 0
    while i < input.count {
        buffer.writeBytes(input[i..<min(i + step, input.count)])
        i += step
        while let event = framer.next(&buffer) {
            switch event {
            case .dataChunk(let b): data += Array(b.readableBytesView)
            case .dataEnd: ended = true; problems = framer.dataProblems
            case .line(let l): lines.append(String(decoding: l, as: UTF8.self))
            default: break
            }
        }
    }
    return (data, ended, lines, problems)
}

@Suite struct FramerTests {
    static let steps = [1, 2, 3, 5, 7, 64, 100_000]

    @Test(arguments: steps)
    func unstuffsAndEndsAtDotLine(step: Int) {
        let wire = Array("Subject: x\r\n\r\n..leading dot\r\n.x\r\nlast\r\n.\r\nNOOP\r\n".utf8)
        let r = frame(wire, step: step)
        #expect(String(decoding: r.data, as: UTF8.self) == "Subject: x\r\n\r\n.leading dot\r\nx\r\nlast\r\n")
        #expect(r.ended)
        #expect(r.lines == ["NOOP"])
        #expect(r.problems == [])
    }

    @Test(arguments: steps)
    func emptyMessage(step: Int) {
        let r = frame(Array(".\r\n".utf8), step: step)
        #expect(r.data == [])
        #expect(r.ended)
    }

    @Test(arguments: steps)
    func bareLFDotIsNotAnEnd(step: Int) {
        // The smuggling vector: "\n.\n" and "\n.\r\n" must not end the data.
        let wire = Array("a\n.\nMAIL FROM:<x@y>\r\nb\n.\r\nc\r\n.\r\n".utf8)
        let r = frame(wire, step: step)
        #expect(r.ended)
        #expect(r.lines.isEmpty)
        #expect(r.problems.contains(.bareLF))
        #expect(String(decoding: r.data, as: UTF8.self).contains("MAIL FROM"))
    }

    @Test(arguments: steps)
    func bareCRAndNul(step: Int) {
        let r = frame(Array("a\rb\r\nn\u{0}l\r\n.\r\n".utf8), step: step)
        #expect(r.ended)
        #expect(r.problems.contains(.bareCR))
        #expect(r.problems.contains(.nul))
        #expect(!r.problems.contains(.bareLF))
    }

    @Test(arguments: steps)
    func crlfSplitAcrossReads(step: Int) {
        let body = String(repeating: "0123456789", count: 50) + "\r\n"
        let wire = Array((body + "." + body + ".\r\n").utf8)
        let r = frame(wire, step: step)
        #expect(String(decoding: r.data, as: UTF8.self) == body + body)
        #expect(r.problems == [])
    }

    /// The data phase skips ordinary bytes eight at a time when it has them in one read: whatever the reads' sizes,
    /// it finds what a read of one byte at a time finds (the content, the end, and every problem), on random
    /// contents made of long runs, line ends, bare CRs and LFs, NULs, TABs, dots and over-long lines.
    @Test func readSizesDoNotChangeWhatIsFound() {
        var rng = SplitMix(seed: 19)
        let pieces: [String] = ["\r\n", "\r", "\n", "\u{0}", "\t", ".", "\r\n.", "\r\n..", "\r\n.\r", "é"]
        for _ in 0..<100 {
            var wire = ""
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                let run = Int.random(in: 0..<10, using: &rng) == 0 ? Int.random(in: 990...1010, using: &rng) : Int.random(in: 0...40, using: &rng)
                wire += String(repeating: "x", count: run) + pieces.randomElement(using: &rng)!
            }
            let bytes = Array((wire + "\r\n.\r\nNOOP\r\n").utf8)
            let reference = frame(bytes, step: 1)
            for step in [3, 8, 13, 64, 4096] {
                let r = frame(bytes, step: step)
                #expect(r.data == reference.data && r.ended == reference.ended && r.problems == reference.problems && r.lines == reference.lines,
                        "step \(step): \(wire.debugDescription)")
            }
        }
    }

    @Test func longLines() {
        let ok = frame(Array((String(repeating: "x", count: 998) + "\r\n.\r\n").utf8), step: 100)
        #expect(ok.problems == [])
        let long = frame(Array((String(repeating: "x", count: 999) + "\r\n.\r\n").utf8), step: 100)
        #expect(long.problems == [.longLine])
    }

    @Test(arguments: steps)
    func commandLines(step: Int) {
        let r = frame(Array("EHLO a\r\nNOOP\nRSET\r\n".utf8), step: step, startInData: false)
        #expect(r.lines == ["EHLO a", "NOOP", "RSET"])
    }

    @Test func commandLineTooLong() {
        var framer = SMTPFramer(maxCommandLine: 64)
        var b = ByteBuffer(string: String(repeating: "A", count: 100))
        #expect(framer.next(&b) == .lineTooLong)
        b.writeString(String(repeating: "B", count: 100) + "\r\nNOOP\r\n")
        #expect(framer.next(&b) == .line(Array("NOOP".utf8)))
        var c = ByteBuffer(string: String(repeating: "C", count: 70) + "\r\nQUIT\r\n")
        #expect(framer.next(&c) == .lineTooLong)
        #expect(framer.next(&c) == .line(Array("QUIT".utf8)))
    }

    @Test func bdatReadsExactBytes() {
        var framer = SMTPFramer()
        var b = ByteBuffer(string: "abc\r\n.\r\nde")
        framer.startBDAT(size: 12)
        var got: [UInt8] = []
        while let e = framer.next(&b) {
            if case .bdatChunk(let c) = e { got += Array(c.readableBytesView) }
            if e == .bdatEnd { Issue.record("ended early") }
        }
        b.writeString("fgBDAT")
        var ended = false
        while let e = framer.next(&b) {
            if case .bdatChunk(let c) = e { got += Array(c.readableBytesView) }
            if e == .bdatEnd { ended = true; break }
        }
        #expect(ended)
        #expect(String(decoding: got, as: UTF8.self) == "abc\r\n.\r\ndefg")
        #expect(framer.mode == .command)
        #expect(b.readableBytes == 4)
    }
}

/// The records the framer counts, on which the connection's per-record deadline rests: whole command lines, whole
/// lines of content, 64 KiB of a BDAT chunk; never a part of one, whatever pieces the bytes come in.
@Suite struct FramerRecordTests {
    @Test(arguments: [1, 7, 4096])
    func wholeLinesAndChunksAreCounted(step: Int) {
        var f = SMTPFramer()
        var buffer = ByteBuffer()
        func feed(_ bytes: [UInt8]) -> Int {
            var i = 0
            while i < bytes.count {
                buffer.writeBytes(bytes[i..<min(i + step, bytes.count)])
                i += step
                while let event = f.next(&buffer) {
                    if case .line(let l) = event, l == Array("DATA".utf8) { f.startData() }
                    if case .line(let l) = event, l.starts(with: Array("BDAT".utf8)) { f.startBDAT(size: 200_000) }
                }
            }
            return f.records
        }
        #expect(feed(Array("EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n".utf8)) == 4)
        #expect(feed(Array("Subject: x\r\n\r\nline 1\r\n".utf8)) == 7)
        #expect(feed(Array("part of a line".utf8)) == 7)
        #expect(feed(Array(" ends here\r\n.\r\n".utf8)) == 9)   // the line, then the final dot
        #expect(feed(Array("BDAT 200000 LAST\r\n".utf8)) == 10)
        #expect(feed([UInt8](repeating: 0x41, count: 200_000)) == 10 + 3 + 1)   // three full 64 KiB, then the chunk's end
    }
}

/// BDAT content is held to RFC 5321 §2.3.8 as DATA is: CR and LF only as CRLF, across chunk boundaries too.
@Suite struct BDATLineEndTests {
    func problems(_ chunks: [String]) -> SMTPFramer.DataProblems {
        var f = SMTPFramer()
        for (i, chunk) in chunks.enumerated() {
            let bytes = Array(chunk.utf8)
            f.startBDAT(size: bytes.count, first: i == 0)
            var buffer = ByteBuffer(bytes: bytes)
            while let event = f.next(&buffer) { if event == .bdatEnd { break } }
            if case .bdat(let remaining) = f.mode, remaining == 0 { _ = f.next(&buffer) }
        }
        f.finishBDATMessage()
        return f.dataProblems
    }

    @Test func bareLineEndsAreFoundInAndAcrossChunks() {
        #expect(problems(["Subject: x\r\n\r\nbody\r\n"]).isEmpty)
        #expect(problems(["Subject: x\r", "\n\r\nbody\r\n"]).isEmpty)                 // CRLF split between chunks
        #expect(problems(["Subject: x\r\n\r\nsmuggled\r.\r\nMAIL FROM:<x@y>\r\n"]).contains(.bareCR))
        #expect(problems(["Subject: x\r\n\r\n\n.\r\n"]).contains(.bareLF))
        #expect(problems(["Subject: x\r\n\r\nends in CR\r"]).contains(.bareCR))        // a CR at the very end
        // A new message starts afresh.
        var f = SMTPFramer()
        var b = ByteBuffer(bytes: Array("a\nb".utf8))
        f.startBDAT(size: 3, first: true)
        while f.next(&b) != nil {}
        #expect(f.dataProblems.contains(.bareLF))
        f.startBDAT(size: 0, first: true)
        #expect(f.dataProblems.isEmpty)
    }
}
