import Testing
import MailCore
@testable import SMTPCodec

@Suite struct CommandParserTests {
    func parse(_ s: String) throws(SMTPReply) -> SMTPCommand { try SMTPCommandParser.parse(Array(s.utf8)) }

    @Test func verbs() throws {
        #expect(try parse("EHLO client.example") == .ehlo("client.example"))
        #expect(try parse("ehlo [192.0.2.1]") == .ehlo("[192.0.2.1]"))
        #expect(try parse("HELO x") == .helo("x"))
        #expect(try parse("DATA") == .data)
        #expect(try parse("rset") == .rset)
        #expect(try parse("NOOP anything") == .noop)
        #expect(try parse("QUIT") == .quit)
        #expect(try parse("STARTTLS") == .startTLS)
        #expect(try parse("HELP") == .help(nil))
        #expect(try parse("VRFY alice") == .vrfy("alice"))
        #expect(try parse("BDAT 1000") == .bdat(size: 1000, last: false))
        #expect(try parse("BDAT 0 LAST") == .bdat(size: 0, last: true))
        #expect(try parse("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == .auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="))
    }

    @Test func mailFrom() throws {
        guard case .mail(let path, let p) = try parse("MAIL FROM:<alice@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By") else {
            Issue.record("not MAIL"); return
        }
        #expect(path == .mailbox(EmailAddress(localPart: "alice", domain: "example.com")))
        #expect(p.size == 1000)
        #expect(p.body == .eightBitMIME)
        #expect(p.smtputf8)
        #expect(p.dsnReturn == .headers)
        #expect(p.envelopeID == "x+y")
        #expect(try parse("MAIL FROM:<>") == .mail(.null, MailParameters()))
        // A space after the colon, and a source route, are accepted (RFC 5321 appendix C).
        #expect(try parse("MAIL FROM: <a@b.example>") == .mail(.mailbox(EmailAddress(localPart: "a", domain: "b.example")), MailParameters()))
        #expect(try parse("MAIL FROM:<@relay.example,@r2.example:a@b.example>") == .mail(.mailbox(EmailAddress(localPart: "a", domain: "b.example")), MailParameters()))
        // ">" inside a quoted local part does not end the path.
        #expect(try parse("MAIL FROM:<\"a>b\"@c.example>") == .mail(.mailbox(EmailAddress(localPart: "a>b", domain: "c.example")), MailParameters()))
    }

    @Test func rcptTo() throws {
        #expect(try parse("RCPT TO:<Postmaster>") == .rcpt(.postmaster, RecipientParameters()))
        guard case .rcpt(_, let p) = try parse("RCPT TO:<b@c.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40c.example") else {
            Issue.record("not RCPT"); return
        }
        #expect(p.notify == [.success, .delay])
        #expect(p.originalRecipient == "rfc822;b@c.example")
        guard case .rcpt(_, let never) = try parse("RCPT TO:<b@c.example> NOTIFY=NEVER") else { return }
        #expect(never.notifyNever)
    }

    @Test(arguments: [
        ("FOO", 500, "5.5.2"),
        ("EHLO", 501, "5.5.4"),
        ("MAIL FROM:alice@example.com", 501, "5.5.4"),
        ("MAIL TO:<a@b.c>", 501, "5.5.4"),
        ("MAIL FROM:<a@b.c", 501, "5.5.4"),
        ("MAIL FROM:<a..b@c.d>", 501, "5.1.7"),
        ("RCPT TO:<a@b..c>", 501, "5.1.3"),
        ("RCPT TO:<>", 501, "5.1.3"),
        ("MAIL FROM:<a@b.c> SIZE=abc", 501, "5.5.4"),
        ("MAIL FROM:<a@b.c> SIZE=1 SIZE=2", 501, "5.5.4"),
        ("MAIL FROM:<a@b.c> XFOO=1", 555, "5.5.4"),
        ("MAIL FROM:<a@b.c> BODY=BINARYMIME", 555, "5.5.4"),
        ("RCPT TO:<a@b.c> NOTIFY=SOMETIMES", 501, "5.5.4"),
        ("DATA now", 501, "5.5.4"),
        ("BDAT -1", 501, "5.5.4"),
        ("BDAT 10 FIRST", 501, "5.5.4"),
        ("BDAT 9223372036854775807", 501, "5.5.4"),
        ("BDAT 1000000000000000000 LAST", 501, "5.5.4"),
    ])
    func errors(_ line: String, _ code: Int, _ enhanced: String) {
        do {
            _ = try parse(line)
            Issue.record("\(line) parsed")
        } catch {
            #expect(error.code.rawValue == code, "\(line)")
            #expect(error.enhanced?.description == enhanced, "\(line)")
        }
    }

    @Test func xtext() {
        #expect(XText.decode("a+2Bb+3Dc") == "a+b=c")
        #expect(XText.decode("bad+2") == nil)
        #expect(XText.decode("sp ace") == nil)
        #expect(XText.encode("a+b=c d") == "a+2Bb+3Dc+20d")
    }
}
