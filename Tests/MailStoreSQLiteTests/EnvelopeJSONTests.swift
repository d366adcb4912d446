import Foundation
import MailStore
import Testing
import TernTestSupport

/// `StoredEnvelope.json` is written by hand for speed; what it writes must be what `JSONEncoder` wrote before (the
/// stored column is read back with `JSONDecoder`, and rows written by either must read the same).
@Suite struct EnvelopeJSONTests {
    /// Strings with everything JSON must escape, and text it must not touch (UTF-8 addresses, `/`, `+`).
    static func randomText(_ rng: inout SplitMix) -> String {
        let pieces = ["a", "bob", "@", "example.test", "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1F}", "\u{7F}", "/", "+tag",
                      "é", "用户", "😀", " ", "<>", "{}", "[],:"]
        return (0..<Int.random(in: 0...6, using: &rng)).map { _ in
            // Now and then any control character (all of them must be escaped, each its own way).
            rng.next(4) == 0 ? String(UnicodeScalar(UInt8(rng.next(32)))) : pieces.randomElement(using: &rng)!
        }.joined()
    }

    static func randomEnvelope(_ rng: inout SplitMix) -> StoredEnvelope {
        func maybe(_ rng: inout SplitMix) -> String? { Bool.random(using: &rng) ? randomText(&rng) : nil }
        let recipients = (0..<Int.random(in: 0...4, using: &rng)).map { _ in
            StoredEnvelope.Recipient(address: randomText(&rng),
                                     notify: Bool.random(using: &rng) ? (0..<Int.random(in: 0...3, using: &rng)).map { _ in randomText(&rng) } : nil,
                                     originalRecipient: maybe(&rng))
        }
        return StoredEnvelope(mailFrom: randomText(&rng), recipients: recipients, envelopeID: maybe(&rng), dsnReturn: maybe(&rng),
                              body: maybe(&rng), smtputf8: Bool.random(using: &rng))
    }

    @Test func readsBackAndMatchesJSONEncoderForRandomEnvelopes() throws {
        var rng = SplitMix(seed: 0x5EED_E7E1)
        for _ in 0..<2_000 {
            let envelope = Self.randomEnvelope(&rng)
            let written = Data(envelope.json.utf8)
            #expect(try JSONDecoder().decode(StoredEnvelope.self, from: written) == envelope)
            // The same JSON value as JSONEncoder's (keys, nesting, absent optionals left out), whatever the key order.
            let ours = try JSONSerialization.jsonObject(with: written) as? NSDictionary
            let theirs = try JSONSerialization.jsonObject(with: JSONEncoder().encode(envelope)) as? NSDictionary
            #expect(ours != nil && ours == theirs, "\(envelope.json)")
        }
    }

    @Test func aPlainEnvelopeIsCompactJSON() {
        let envelope = StoredEnvelope(mailFrom: "a@b.test", recipients: [.init(address: "c@d.test", notify: ["SUCCESS", "DELAY"])],
                                      envelopeID: "x\"y")
        #expect(envelope.json == #"{"mailFrom":"a@b.test","recipients":[{"address":"c@d.test","notify":["SUCCESS","DELAY"]}],"envelopeID":"x\"y","smtputf8":false}"#)
    }
}
