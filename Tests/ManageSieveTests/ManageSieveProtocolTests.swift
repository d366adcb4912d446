import Testing
@testable import ManageSieveServer

/// ManageSieve's framing (RFC 5804 §4): commands with quoted strings, numbers and literals, fed whole and a byte at a
/// time; bad input answered and skipped; bounds.
@Suite struct ManageSieveProtocolTests {
    /// Every event from `input` fed `step` octets at a time.
    func events(_ input: String, step: Int = .max, framer: ManageSieveFramer = ManageSieveFramer()) -> [ManageSieveEvent] {
        let bytes = Array(input.utf8)
        var buffer: [UInt8] = [], from = 0, out: [ManageSieveEvent] = []
        var i = 0
        while i < bytes.count {
            buffer += bytes[i..<min(bytes.count, i + step)]
            i += step
            while let e = framer.next(buffer, from: &from) {
                out.append(e)
                if e == .tooLong { return out }
            }
        }
        return out
    }

    @Test func commandsWithStringsNumbersAndLiterals() {
        let input = "CAPABILITY\r\nHAVESPACE \"my script\" 999\r\nPUTSCRIPT \"a\\\"b\" {12+}\r\nkeep;\r\nstop;\r\nNOOP\nAUTHENTICATE \"PLAIN\" {4}\r\nAAAA\r\n"
        let expected: [ManageSieveEvent] = [
            .command([.atom("CAPABILITY")]),
            .command([.atom("HAVESPACE"), .string(Array("my script".utf8)), .number(999)]),
            .command([.atom("PUTSCRIPT"), .string(Array("a\"b".utf8)), .string(Array("keep;\r\nstop;".utf8))]),
            .command([.atom("NOOP")]),
            .command([.atom("AUTHENTICATE"), .string(Array("PLAIN".utf8)), .string(Array("AAAA".utf8))]),
        ]
        for step in [1, 2, 3, 7, .max] { #expect(events(input, step: step) == expected, "step \(step)") }
    }

    @Test func badInputIsAnsweredAndTheNextLineRead() {
        let got = events("PUTSCRIPT \"a\r\nNOOP\r\nX {abc}\r\nNOOP\r\n")
        #expect(got.count == 4)
        if case .bad = got[0] {} else { Issue.record("\(got[0])") }
        #expect(got[1] == .command([.atom("NOOP")]))
        if case .bad = got[2] {} else { Issue.record("\(got[2])") }
        #expect(got[3] == .command([.atom("NOOP")]))
    }

    @Test func boundsHold() {
        let small = ManageSieveFramer(maxLine: 64, maxLiteral: 100)
        #expect(events("PUTSCRIPT \"a\" {101+}\r\n", framer: small) == [.tooLong])
        #expect(events("NOOP " + String(repeating: "x", count: 300), step: 10, framer: small) == [.tooLong])
        #expect(events("NOOP \"" + String(repeating: "x", count: 300), step: 10, framer: small) == [.tooLong])
        // A literal within bounds that has not all arrived yet: nothing yet.
        #expect(events("PUTSCRIPT \"a\" {100+}\r\nkeep;", framer: small).isEmpty)
    }

    @Test func whatTheServerWrites() {
        #expect(ManageSieveWire.string("plain") == "\"plain\"")
        #expect(ManageSieveWire.string("a \"q\" \\") == "\"a \\\"q\\\" \\\\\"")
        #expect(ManageSieveWire.string("two\r\nlines") == "{10}\r\ntwo\r\nlines")
        #expect(ManageSieveWire.response("NO", code: "NONEXISTENT", "gone") == "NO (NONEXISTENT) \"gone\"\r\n")
        #expect(ManageSieveWire.validName("vacation") && ManageSieveWire.validName("été 2026"))
        #expect(!ManageSieveWire.validName("") && !ManageSieveWire.validName("a\tb") && !ManageSieveWire.validName("a\u{2028}b"))
    }
}
