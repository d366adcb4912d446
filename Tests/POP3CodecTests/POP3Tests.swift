import TernTestSupport
import Testing
@testable import POP3Codec

@Suite struct POP3ParserTests {
    func parse(_ s: String) throws(POP3ParseError) -> POP3Command { try POP3CommandParser.parse(Array(s.utf8)) }

    @Test func commands() throws {
        #expect(try parse("CAPA") == .capa)
        #expect(try parse("user alice@example.test") == .user("alice@example.test"))
        #expect(try parse("PASS a secret with spaces") == .pass("a secret with spaces"))
        #expect(try parse("STAT") == .stat)
        #expect(try parse("LIST") == .list(nil))
        #expect(try parse("LIST 3") == .list(3))
        #expect(try parse("retr 12") == .retr(12))
        #expect(try parse("DELE 1") == .dele(1))
        #expect(try parse("TOP 2 0") == .top(2, lines: 0))
        #expect(try parse("UIDL") == .uidl(nil))
        #expect(try parse("UIDL 7") == .uidl(7))
        #expect(try parse("AUTH") == .auth(mechanism: nil, initialResponse: nil))
        #expect(try parse("AUTH plain AGFAYgBj") == .auth(mechanism: "PLAIN", initialResponse: "AGFAYgBj"))
        #expect(try parse("STLS") == .stls)
        #expect(try parse("NOOP") == .noop)
        #expect(try parse("RSET") == .rset)
        #expect(try parse("QUIT") == .quit)
    }

    @Test func errors() {
        for bad in ["", "FROB", "RETR", "RETR 0", "RETR -1", "RETR x", "RETR 1 2", "TOP 1", "LIST 1 2", "DELE 99999999999",
                    "USER", "PASS", "STAT now", "AUTH A B C"] {
            #expect(throws: POP3ParseError.self, "\(bad)") { try parse(bad) }
        }
    }

    @Test func dotStuffingAndTermination() {
        var out: [UInt8] = []
        POP3Encoding.appendMultiline(Array("a\r\n.b\r\n..c\r\n.\r\nend".utf8)[...], to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "a\r\n..b\r\n...c\r\n..\r\nend\r\n.\r\n")
        out = []
        POP3Encoding.appendMultiline(Array(".first\r\n".utf8)[...], to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "..first\r\n.\r\n")
        out = []
        POP3Encoding.appendMultiline([][...], to: &out)
        #expect(String(decoding: out, as: UTF8.self) == ".\r\n")
    }

    @Test func stuffingInPiecesEqualsStuffingAtOnce() {
        let text = Array("a\r\n.b\r\n..c\r\n.\r\nend.\r\n.x".utf8)
        var whole: [UInt8] = []
        POP3Encoding.appendMultiline(text[...], to: &whole)
        for size in 1...text.count {
            var stuffer = POP3Encoding.DotStuffer()
            var out: [UInt8] = []
            var i = 0
            while i < text.count {
                stuffer.append(text[i..<min(i + size, text.count)], to: &out)
                i += size
            }
            stuffer.finish(&out)
            #expect(out == whole, "pieces of \(size)")
        }
    }

    @Test func top() {
        let m = Array("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n".utf8)[...]
        #expect(String(decoding: POP3Encoding.top(m, lines: 0), as: UTF8.self) == "A: 1\r\nB: 2\r\n\r\n")
        #expect(String(decoding: POP3Encoding.top(m, lines: 2), as: UTF8.self) == "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n")
        #expect(POP3Encoding.top(m, lines: 10) == m)
        let noBody = Array("A: 1\r\n".utf8)[...]
        #expect(POP3Encoding.top(noBody, lines: 5) == noBody)
    }

    @Test func uniqueIDs() {
        #expect(POP3Encoding.uniqueID(uid: 1, uidValidity: 0x5F3A) == "0000000100005F3A")
        #expect(POP3Encoding.uniqueID(uid: 0xFFFFFFFF, uidValidity: 1) == "FFFFFFFF00000001")
    }

    @Test func framerSplitsLinesAndBoundsThem() {
        var framer = POP3LineFramer()
        var buffer = Array("STAT\r\nLIST\nNO".utf8)
        var start = 0
        #expect(framer.next(buffer, from: &start) == .line(Array("STAT".utf8)))
        #expect(framer.next(buffer, from: &start) == .line(Array("LIST".utf8)))
        #expect(framer.next(buffer, from: &start) == nil)
        buffer += Array("OP\r\n".utf8)
        #expect(framer.next(buffer, from: &start) == .line(Array("NOOP".utf8)))
        let long = [UInt8](repeating: 65, count: POP3CommandParser.maxLineLength + 1)
        start = 0
        #expect(framer.next(long, from: &start) == .tooLong)
    }

    /// TOP's cut found a piece at a time is the cut of the whole message, however the pieces fall.
    @Test func topCutInPiecesAgreesWithTheWholeCut() {
        var rng = SplitMix(seed: 0x709)
        let atoms: [[UInt8]] = [Array("a".utf8), Array("Subject: x".utf8), [13, 10], [10], [13], Array(" ".utf8), Array(".".utf8)]
        for _ in 0..<2_000 {
            var message: [UInt8] = []
            for _ in 0..<rng.next(40) { message += atoms[rng.next(atoms.count)] }
            for lines in [0, 1, 2, 5, 1000] {
                let whole = POP3Encoding.top(message[...], lines: lines).count
                var cut = POP3Encoding.TopCut(lines: lines)
                var found: Int?
                var at = 0
                while found == nil && at < message.count {
                    let n = 1 + rng.next(7)
                    found = cut.feed(message[at..<min(at + n, message.count)])
                    at += n
                }
                #expect((found ?? message.count) == whole, "\(message) lines \(lines)")
            }
        }
    }
}
