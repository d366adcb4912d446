import IMAPCodec
import IMAPResponses
import MailMessage
import Testing
@testable import IMAPMailboxView
@testable import IMAPServer
@testable import MailServer

@Suite struct IMAPStructureTests {
    let message = Array("""
        From: "Doe, John" <john@example.com>\r
        To: Team: a@example.com, "B" <b@example.com>;, c@example.com (Carol)\r
        Subject: Hello\r
        Date: Tue, 24 Nov 2026 10:00:00 +0000\r
        Message-ID: <1@example.com>\r
        Content-Type: multipart/alternative; boundary="xx"\r
        \r
        --xx\r
        Content-Type: text/plain; charset=us-ascii\r
        \r
        Hi\r
        there\r
        --xx\r
        Content-Type: text/html; charset="utf-8"\r
        Content-Transfer-Encoding: quoted-printable\r
        \r
        <p>Hi</p>\r
        --xx--\r

        """.utf8)

    @Test func envelope() {
        let tree = MIMEParser.parse(message)
        #expect(wire(.envelope(IMAPBodyStructure.envelope(tree))) == "ENVELOPE " + """
            ("Tue, 24 Nov 2026 10:00:00 +0000" "Hello" (("Doe, John" NIL "john" "example.com")) (("Doe, John" NIL "john" "example.com")) \
            (("Doe, John" NIL "john" "example.com")) ((NIL NIL "Team" NIL)(NIL NIL "a" "example.com")("B" NIL "b" "example.com")\
            (NIL NIL NIL NIL)("Carol" NIL "c" "example.com")) NIL NIL NIL "<1@example.com>")
            """)
    }

    @Test func bodyStructure() {
        let tree = MIMEParser.parse(message)
        #expect(wire(.body(IMAPBodyStructure.structure(message, tree, extended: false))) == "BODY " + """
            (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 9 2)("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 9 1) "ALTERNATIVE")
            """)
        #expect(wire(.bodyStructure(IMAPBodyStructure.structure(message, tree, extended: true))).hasSuffix("\"ALTERNATIVE\" (\"BOUNDARY\" \"xx\") NIL NIL NIL)"))
        #expect(IMAPBodyStructure.section(message, tree, SectionSpec(part: [2], text: .full)) == Array("<p>Hi</p>".utf8))
        #expect(IMAPBodyStructure.section(message, tree, SectionSpec(part: [3], text: .full)) == nil)
        #expect(IMAPBodyStructure.section(message, tree, SectionSpec(part: [1], text: .mime)) == Array("Content-Type: text/plain; charset=us-ascii\r\n\r\n".utf8))
    }

    @Test(arguments: [
        ("Re: Lunch", "Lunch"),
        ("RE: [list] Fwd: Lunch (fwd)", "Lunch"),
        ("[fwd: Re: Lunch]", "Lunch"),
        ("Re:   lots   of   space", "lots of space"),
        ("[list]", "[list]"),
        ("=?UTF-8?Q?Re:_Gr=C3=BC=C3=9Fe?=", "Grüße"),
    ])
    func baseSubject(_ raw: String, _ base: String) {
        #expect(BaseSubject.extract(raw) == base)
    }

    func wire(_ item: IMAPFetchItem) -> String {
        String(decoding: IMAPEncodedItem(item).bytes, as: UTF8.self)
    }
}
