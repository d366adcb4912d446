import Testing
@testable import MailMessage

@Suite struct MessagePreviewTests {
    func preview(_ message: String) -> String {
        let bytes = Array(message.utf8)
        return MessagePreview.text(bytes, MIMEParser.parse(bytes))
    }

    @Test func plainTextCollapsed() {
        #expect(preview("Subject: x\r\n\r\nHello   there,\r\n\r\n\tsee you\r\n") == "Hello there, see you")
        #expect(preview("Subject: empty\r\n\r\n") == "")
    }

    @Test func alternativePrefersPlainAndHTMLLosesItsMarkup() {
        let alt = """
            Content-Type: multipart/alternative; boundary=b\r
            \r
            --b\r
            Content-Type: text/html\r
            \r
            <p>HTML</p>\r
            --b\r
            Content-Type: text/plain\r
            \r
            Plain words\r
            --b--\r

            """
        #expect(preview(alt) == "Plain words")
        let html = """
            Content-Type: text/html; charset=utf-8\r
            \r
            <html><head><style>p { color: red }</style><script>alert(1)</script></head>\r
            <body><!-- hidden --><p>Fish &amp; chips</p><p>at&nbsp;5</p></body></html>\r

            """
        #expect(preview(html) == "Fish & chips at 5")
    }

    @Test func encodedAndCharsetsAndAttachments() {
        let mixed = """
            Content-Type: multipart/mixed; boundary=m\r
            \r
            --m\r
            Content-Type: application/pdf\r
            Content-Transfer-Encoding: base64\r
            \r
            JVBERi0=\r
            --m\r
            Content-Type: text/plain; charset=iso-8859-1\r
            Content-Transfer-Encoding: quoted-printable\r
            \r
            Gr=FC=DFe aus K=F6ln\r
            --m\r
            Content-Type: text/plain\r
            Content-Disposition: attachment; filename=notes.txt\r
            \r
            not the body\r
            --m--\r

            """
        #expect(preview(mixed) == "Grüße aus Köln")
        let onlyAttachment = "Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nfile\r\n"
        #expect(preview(onlyAttachment) == "")
    }

    @Test func atMost256Characters() {
        let words = (0..<200).map { "wörd\($0)" }.joined(separator: "  ")
        let p = preview("Subject: long\r\n\r\n\(words)\r\n")
        // The first 256 characters of the collapsed text, without a space at the cut.
        let first256 = String((0..<200).map { "wörd\($0)" }.joined(separator: " ").prefix(256))
        #expect(p == (first256.hasSuffix(" ") ? String(first256.dropLast()) : first256))
        #expect(p.count >= 255 && p.count <= 256)
    }
}
