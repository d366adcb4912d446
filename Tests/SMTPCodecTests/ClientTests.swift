import MailCore
import Testing
@testable import SMTPCodec

@Suite struct SMTPClientTests {
    func reply(_ lines: String...) -> SMTPReply {
        var parser = SMTPReplyParser()
        for (i, l) in lines.enumerated() {
            let r = try! parser.feed(Array(l.utf8))
            if i == lines.count - 1 { return r! }
            #expect(r == nil)
        }
        fatalError("no reply")
    }

    @Test func replyParser() throws {
        let r = reply("250-mx.b.test Hello", "250-PIPELINING", "250-SIZE 1000", "250 STARTTLS")
        #expect(r.code.rawValue == 250)
        #expect(r.lines == ["mx.b.test Hello", "PIPELINING", "SIZE 1000", "STARTTLS"])
        let e = reply("550 5.1.1 <x@b.test>: user unknown")
        #expect(e.enhanced == EnhancedStatusCode(5, 1, 1))
        #expect(e.lines == ["<x@b.test>: user unknown"])
        #expect(reply("220").lines == [""])
        var p = SMTPReplyParser()
        #expect(throws: SMTPReplyParser.Failure.self) { try p.feed(Array("hello".utf8)) }
        p = SMTPReplyParser()
        _ = try p.feed(Array("250-a".utf8))
        #expect(throws: SMTPReplyParser.Failure.self) { try p.feed(Array("251 b".utf8)) }
        p = SMTPReplyParser()
        #expect(throws: SMTPReplyParser.Failure.tooLong) { try p.feed([UInt8](repeating: 50, count: 5000)) }
    }

    @Test func capabilities() {
        let c = EHLOCapabilities(reply("250-mx Hello", "250-PIPELINING", "250-8BITMIME", "250-SMTPUTF8", "250-SIZE 35882577",
                                       "250-AUTH PLAIN LOGIN", "250-ENHANCEDSTATUSCODES", "250 STARTTLS"))
        #expect(c.pipelining && c.eightBitMIME && c.smtpUTF8 && c.startTLS && c.enhancedStatusCodes && !c.chunking)
        #expect(c.size == 35882577)
        #expect(c.auth == ["PLAIN", "LOGIN"])
    }

    let message = SMTPClientTransaction.Message(mailFrom: "alice@a.test", recipients: ["bob@b.test", "nobody@b.test"], size: 1200,
                                                eightBit: true, needsSMTPUTF8: false)

    /// RFC 3461 §5.2.2: the DSN request travels on to a server that offers DSN (RET, ENVID as xtext; NOTIFY, ORCPT),
    /// and is left off for one that does not (it would refuse unknown parameters).
    @Test func dsnParametersGoOnlyToAServerThatOffersDSN() {
        var m = message
        m.dsn = .init(envelopeID: "id 1+x", ret: "HDRS", recipients: [.init(notify: ["SUCCESS", "FAILURE"], originalRecipient: "rfc822;Bob@b.test"),
                                                                       .init(notify: nil, originalRecipient: nil)])
        var t = SMTPClientTransaction(message: m, heloName: "mx.a.test", useTLS: false)
        _ = t.receive(reply("220 mx.b.test ESMTP"))
        #expect(t.receive(reply("250-mx.b.test", "250-PIPELINING", "250 DSN")) ==
                .send(["MAIL FROM:<alice@a.test> RET=HDRS ENVID=id+201+2Bx", "RCPT TO:<bob@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@b.test",
                       "RCPT TO:<nobody@b.test>", "DATA"]))
        var plain = SMTPClientTransaction(message: m, heloName: "mx.a.test", useTLS: false)
        _ = plain.receive(reply("220 mx.b.test ESMTP"))
        #expect(plain.receive(reply("250-mx.b.test", "250 PIPELINING")) ==
                .send(["MAIL FROM:<alice@a.test>", "RCPT TO:<bob@b.test>", "RCPT TO:<nobody@b.test>", "DATA"]))
        // Without PIPELINING each RCPT carries its own parameters too.
        var step = SMTPClientTransaction(message: m, heloName: "mx.a.test", useTLS: false)
        _ = step.receive(reply("220 mx.b.test ESMTP"))
        #expect(step.receive(reply("250-mx.b.test", "250 DSN")) == .send(["MAIL FROM:<alice@a.test> RET=HDRS ENVID=id+201+2Bx"]))
        #expect(step.receive(reply("250 ok")) == .send(["RCPT TO:<bob@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@b.test"]))
        #expect(step.receive(reply("250 ok")) == .send(["RCPT TO:<nobody@b.test>"]))
    }

    @Test func pipelinedTransactionWithTLSAndOneRefusedRecipient() {
        var t = SMTPClientTransaction(message: message, heloName: "mx.a.test")
        #expect(t.receive(reply("220 mx.b.test ESMTP")) == .send(["EHLO mx.a.test"]))
        #expect(t.receive(reply("250-mx.b.test", "250-STARTTLS", "250 PIPELINING")) == .send(["STARTTLS"]))
        #expect(t.receive(reply("220 go ahead")) == .startTLS)
        #expect(t.tlsEstablished() == .send(["EHLO mx.a.test"]))
        #expect(t.receive(reply("250-mx.b.test", "250-PIPELINING", "250-SIZE 10000", "250 8BITMIME")) ==
                .send(["MAIL FROM:<alice@a.test> SIZE=1200 BODY=8BITMIME", "RCPT TO:<bob@b.test>", "RCPT TO:<nobody@b.test>", "DATA"]))
        #expect(t.receive(reply("250 2.1.0 ok")) == nil)
        #expect(t.receive(reply("250 2.1.5 ok")) == nil)
        #expect(t.receive(reply("550 5.1.1 no such user")) == nil)
        #expect(t.receive(reply("354 go")) == .sendContent)
        guard case .finished(let results) = t.receive(reply("250 2.0.0 queued as X")) else { Issue.record("not finished"); return }
        #expect(results.map(\.delivered) == [true, false])
        #expect(results[1].permanent && results[1].reply.enhanced == EnhancedStatusCode(5, 1, 1))
        #expect(t.tlsActive)
    }

    @Test func withoutPipeliningOneCommandAtATime() {
        var t = SMTPClientTransaction(message: message, heloName: "mx.a.test")
        _ = t.receive(reply("220 hi"))
        #expect(t.receive(reply("250 mx.b.test")) == .send(["MAIL FROM:<alice@a.test>"]))
        #expect(t.receive(reply("250 ok")) == .send(["RCPT TO:<bob@b.test>"]))
        #expect(t.receive(reply("450 4.2.0 try later")) == .send(["RCPT TO:<nobody@b.test>"]))
        guard case .finished(let results) = t.receive(reply("550 no")) else { Issue.record("not finished"); return }
        #expect(results.map { $0.reply.code.rawValue } == [450, 550])
        #expect(!results[0].permanent && results[1].permanent)
    }

    @Test func anEnvelopeAddressWithACommandInsideIsNeverSent() {
        var t = SMTPClientTransaction(message: .init(mailFrom: "a@a.test", recipients: ["\"x\r\nRSET\"@b.test"], size: 10, eightBit: false, needsSMTPUTF8: false), heloName: "mx.a.test")
        _ = t.receive(reply("220 hi"))
        guard case .failed(let r, true) = t.receive(reply("250-mx", "250 PIPELINING")) else { Issue.record("sent"); return }
        #expect(r.code.rawValue == 553)
    }

    @Test func heloFallbackRefusalsAndLimits() {
        var t = SMTPClientTransaction(message: message, heloName: "mx.a.test")
        _ = t.receive(reply("220 old"))
        #expect(t.receive(reply("502 what")) == .send(["HELO mx.a.test"]))
        #expect(t.receive(reply("250 ok")) == .send(["MAIL FROM:<alice@a.test>"]))
        var busy = SMTPClientTransaction(message: message, heloName: "mx.a.test")
        #expect(busy.receive(reply("421 4.3.2 busy")) == .failed(reply("421 4.3.2 busy"), permanent: false))
        var small = SMTPClientTransaction(message: message, heloName: "mx.a.test")
        _ = small.receive(reply("220 hi"))
        guard case .failed(let r, true) = small.receive(reply("250-mx", "250 SIZE 1000")) else { Issue.record("size"); return }
        #expect(r.code.rawValue == 552)
        var utf8 = SMTPClientTransaction(message: .init(mailFrom: "ä@a.test", recipients: ["b@b.test"], size: 10, eightBit: true,
                                                        needsSMTPUTF8: true), heloName: "mx.a.test")
        _ = utf8.receive(reply("220 hi"))
        guard case .failed(let u, true) = utf8.receive(reply("250-mx", "250 8BITMIME")) else { Issue.record("utf8"); return }
        #expect(u.enhanced == EnhancedStatusCode(5, 6, 7))
    }

    @Test func pipelinedDataAcceptedWithNoRecipientIsEndedAtOnce() {
        var t = SMTPClientTransaction(message: message, heloName: "mx.a.test", useTLS: false)
        _ = t.receive(reply("220 hi"))
        _ = t.receive(reply("250-mx", "250 PIPELINING"))
        _ = t.receive(reply("250 ok"))
        _ = t.receive(reply("550 no"))
        _ = t.receive(reply("550 no"))
        #expect(t.receive(reply("354 go on")) == .send(["."]))
        guard case .finished(let results) = t.receive(reply("554 no valid recipients")) else { Issue.record("not finished"); return }
        #expect(results.allSatisfy { $0.permanent })
    }
}

@Suite struct ClientReuseTests {
    func reply(_ text: String) -> SMTPReply {
        var p = SMTPReplyParser()
        return try! p.feed(Array(text.utf8))!
    }

    func message(_ rcpt: String) -> SMTPClientTransaction.Message {
        .init(mailFrom: "a@a.test", recipients: [rcpt], size: 10, eightBit: false, needsSMTPUTF8: false)
    }

    /// A second message on the same connection goes straight to MAIL; after a transaction whose recipients were all
    /// refused (MAIL may still be open on the server) RSET comes first.
    @Test func nextMessageOnTheSameConnection() {
        var t = SMTPClientTransaction(message: message("b@b.test"), heloName: "mx.a.test", useTLS: false)
        #expect(t.receive(reply("220 mx.b.test")) == .send(["EHLO mx.a.test"]))
        #expect(t.receive(reply("250 mx.b.test")) == .send(["MAIL FROM:<a@a.test> "].map { $0.trimmingCharacters(in: .whitespaces) }))
        #expect(t.receive(reply("250 ok")) == .send(["RCPT TO:<b@b.test>"]))
        #expect(t.receive(reply("250 ok")) == .send(["DATA"]))
        #expect(t.receive(reply("354 go")) == .sendContent)
        guard case .finished = t.receive(reply("250 queued")) else { Issue.record("not finished"); return }
        #expect(t.reusable)
        #expect(t.nextMessage(message("nobody@b.test")) == .send(["MAIL FROM:<a@a.test>"]))
        #expect(t.receive(reply("250 ok")) == .send(["RCPT TO:<nobody@b.test>"]))
        guard case .finished(let r) = t.receive(reply("550 5.1.1 no such user")) else { Issue.record("not finished"); return }
        #expect(r[0].permanent)
        #expect(t.reusable)
        #expect(t.nextMessage(message("c@b.test")) == .send(["RSET"]))
        #expect(t.receive(reply("250 reset")) == .send(["MAIL FROM:<a@a.test>"]))
        // A 421 ends the session: not reusable.
        guard case .failed = t.receive(reply("421 4.3.2 shutting down")) else { Issue.record("not failed"); return }
        #expect(!t.reusable)
    }
}
