import MailCore
import Testing
@testable import SMTPCodec

/// Runs a transcript of commands against the state machine, answering recipient checks with `accept`.
struct Transcript {
    var machine: SMTPServerStateMachine
    var accept: (EmailAddress) -> Bool = { $0.localPart != "nobody" }

    init(_ config: SMTPServerStateMachine.Configuration = .init(hostname: "mx.test", maxMessageSize: 1000, maxRecipients: 3,
                                                                 maxErrors: 10, startTLSAvailable: true)) {
        machine = SMTPServerStateMachine(configuration: config)
    }

    /// Sends a command line; returns the reply code (354 for DATA start, 0 for a BDAT chunk to read).
    mutating func send(_ line: String) -> Int {
        let action: SMTPServerStateMachine.Action
        do { action = machine.receive(try SMTPCommandParser.parse(Array(line.utf8))) } catch { action = machine.syntaxError(error) }
        return code(action)
    }

    mutating func code(_ action: SMTPServerStateMachine.Action) -> Int {
        switch action {
        case .reply(let r), .replyAndClose(let r), .startTLS(let r), .startData(let r): return r.code.rawValue
        case .checkRecipient(let rcpt, _):
            if accept(rcpt.address) { return machine.recipientAccepted()!.code.rawValue }
            return code(machine.recipientRejected(SMTPReply(550, "5.1.1", "unknown")))
        case .readBDATChunk: return 0
        case .authenticate: return 334
        }
    }
}

@Suite struct StateMachineTests {
    @Test func happyPath() {
        var t = Transcript()
        #expect(t.send("EHLO client") == 250)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 250)
        #expect(t.send("RCPT TO:<nobody@mx.test>") == 550)
        #expect(t.send("DATA") == 354)
        let txn = t.machine.dataEnded(problem: nil)
        #expect(txn?.recipients.map(\.address.localPart) == ["x"])
        t.machine.deliveryFinished()
        #expect(t.machine.state == .ready)
        #expect(t.send("QUIT") == 221)
        #expect(t.machine.state == .closed)
    }

    @Test func sequenceErrors() {
        var t = Transcript()
        #expect(t.send("MAIL FROM:<a@b.test>") == 503)
        #expect(t.send("HELO c") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 503)
        #expect(t.send("DATA") == 503)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("MAIL FROM:<a@b.test>") == 503)
        #expect(t.send("DATA") == 554) // no valid recipients
        #expect(t.send("RSET") == 250)
        #expect(t.machine.state == .ready)
    }

    @Test func extensionsAndStartTLS() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(t.machine.extensions.contains("STARTTLS"))
        #expect(t.machine.extensions.contains("SIZE 1000"))
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("STARTTLS") == 220)
        // RFC 3207: all state is forgotten; EHLO again first.
        #expect(t.machine.state == .connected)
        #expect(t.send("MAIL FROM:<a@b.test>") == 503)
        #expect(t.send("EHLO c") == 250)
        #expect(!t.machine.extensions.contains("STARTTLS"))
        #expect(t.send("STARTTLS") == 503)
    }

    /// RFC 3207 §4.2: a login made before STARTTLS (loopback lets AUTH go without TLS) does not outlive it.
    @Test func startTLSForgetsALogin() {
        var t = Transcript(.init(hostname: "mx.test", maxMessageSize: 1000, maxRecipients: 3, maxErrors: 10, startTLSAvailable: true,
                                 authMechanisms: ["PLAIN"], authRequiresTLS: false, submission: true))
        #expect(t.send("EHLO c") == 250)
        t.machine.authenticated(as: "alice")
        #expect(t.machine.authenticatedAs == "alice")
        #expect(t.send("STARTTLS") == 220)
        #expect(t.machine.authenticatedAs == nil)
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<alice@mx.test>") == 530)
    }

    /// A session of nothing but NOOP, RSET, VRFY, HELP and EHLO ends: past the junk limit each counts as an error.
    @Test func junkCommandsEndASessionThatDeliversNothing() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        for i in 1..<100 { #expect(t.send(["NOOP", "RSET", "VRFY x", "HELP", "EHLO c"][i % 5]) != 421) }
        // 100 said, none of them an error yet; then each is one, and the tenth error ends the session.
        #expect(t.machine.errorCount == 0)
        var closed = false
        for _ in 0..<10 where !closed { closed = t.send("NOOP") == 421 }
        #expect(closed && t.machine.state == .closed)
        // A delivered message starts the count again.
        var u = Transcript()
        #expect(u.send("EHLO c") == 250)
        for _ in 0..<99 { _ = u.send("NOOP") }
        #expect(u.send("MAIL FROM:<a@b.test>") == 250)
        #expect(u.send("RCPT TO:<x@mx.test>") == 250)
        #expect(u.send("DATA") == 354)
        _ = u.machine.dataEnded(problem: nil)
        u.machine.deliveryFinished()
        u.machine.messageDelivered()
        for _ in 0..<100 { _ = u.send("NOOP") }
        #expect(u.machine.errorCount == 0)
        // A message refused (its transaction over, nothing delivered) does not.
        #expect(u.send("MAIL FROM:<a@b.test>") == 250)
        #expect(u.send("RCPT TO:<x@mx.test>") == 250)
        #expect(u.send("DATA") == 354)
        _ = u.machine.dataEnded(problem: nil)
        u.machine.deliveryFinished()
        #expect(u.send("NOOP") == 250 && u.machine.errorCount == 1)
    }

    @Test func startTLSNeedsEHLOAndCertificate() {
        var t = Transcript(.init(hostname: "mx.test", startTLSAvailable: false))
        #expect(t.send("EHLO c") == 250)
        #expect(!t.machine.extensions.contains("STARTTLS"))
        #expect(t.send("STARTTLS") == 502)
        var h = Transcript()
        #expect(h.send("HELO c") == 250)
        #expect(h.send("STARTTLS") == 502)
    }

    @Test func limits() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<a@b.test> SIZE=1001") == 552)
        #expect(t.send("MAIL FROM:<a@b.test> SIZE=1000") == 250)
        #expect(t.send("RCPT TO:<r1@mx.test>") == 250)
        #expect(t.send("RCPT TO:<r2@mx.test>") == 250)
        #expect(t.send("RCPT TO:<r3@mx.test>") == 250)
        #expect(t.send("RCPT TO:<r4@mx.test>") == 452)
    }

    @Test func utf8NeedsSMTPUTF8() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<jürgen@b.test>") == 553)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<jürgen@mx.test>") == 553)
        #expect(t.send("RSET") == 250)
        #expect(t.send("MAIL FROM:<jürgen@b.test> SMTPUTF8") == 250)
        #expect(t.send("RCPT TO:<jürgen@mx.test>") == 250)
    }

    @Test func tooManyErrorsCloses() {
        var t = Transcript()
        for _ in 0..<9 { #expect(t.send("BOGUS") == 500) }
        #expect(t.send("BOGUS") == 421)
        #expect(t.machine.state == .closed)
    }

    @Test func bdatFlow() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 250)
        #expect(t.send("BDAT 100") == 0)
        #expect(t.machine.bdatChunkEnded(last: false).reply?.code.rawValue == 250)
        #expect(t.send("DATA") == 503) // only BDAT may follow; transaction aborted
        #expect(t.machine.state == .ready)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 250)
        #expect(t.send("BDAT 500") == 0)
        #expect(t.machine.bdatChunkEnded(last: false).reply?.code.rawValue == 250)
        #expect(t.send("BDAT 600 LAST") == 0) // over 1000 in total: read, then refused
        let end = t.machine.bdatChunkEnded(last: true)
        #expect(end.reply?.code.rawValue == 552)
        #expect(end.deliver == nil)
        #expect(t.machine.state == .ready)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 250)
        #expect(t.send("BDAT 10 LAST") == 0)
        #expect(t.machine.bdatChunkEnded(last: true).deliver != nil)
    }

    /// Chunks of a refused transaction are counted however large they get: the sum never overflows (it trapped, and
    /// took the process down, at the eleventh chunk of 10^18 - 1 octets).
    @Test func hugeChunksOfARefusedTransactionAreCountedSafely() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<>") == 250)
        for _ in 0..<12 {
            #expect(t.send("BDAT 999999999999999999") == 0)
            #expect(t.machine.bdatChunkEnded(last: false).reply?.code.rawValue == 554)
        }
        #expect(t.send("BDAT 0 LAST") == 0)
        #expect(t.machine.bdatChunkEnded(last: true).reply?.code.rawValue == 554)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<x@mx.test>") == 250)
        for _ in 0..<12 {
            #expect(t.send("BDAT 999999999999999999") == 0)
            #expect(t.machine.bdatChunkEnded(last: false).reply?.code.rawValue == 552)
        }
    }

    @Test func bdatWithoutTransactionIsReadAndRefused() {
        var t = Transcript()
        #expect(t.send("BDAT 5 LAST") == 0)
        #expect(t.machine.bdatChunkEnded(last: true).reply?.code.rawValue == 503)
        #expect(t.send("EHLO c") == 250)
        #expect(t.send("MAIL FROM:<a@b.test>") == 250)
        #expect(t.send("RCPT TO:<nobody@mx.test>") == 550)
        #expect(t.send("BDAT 5 LAST") == 0)
        #expect(t.machine.bdatChunkEnded(last: true).reply?.code.rawValue == 554)
    }

    @Test func authNotOfferedOnPort25() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(!t.machine.extensions.contains { $0.hasPrefix("AUTH") })
        #expect(t.send("AUTH PLAIN AGEAYg==") == 503)
    }
}

@Suite struct SubmissionStateTests {
    static let config = SMTPServerStateMachine.Configuration(hostname: "mx.test", startTLSAvailable: true,
                                                             authMechanisms: ["PLAIN", "SCRAM-SHA-256"], submission: true)

    @Test func authOnlyAfterTLSAndMailOnlyAfterAuth() {
        var t = Transcript(Self.config)
        #expect(t.send("EHLO c") == 250)
        // Without TLS the mechanisms are not offered, and AUTH is refused (RFC 4954 §6: 538).
        #expect(!t.machine.extensions.contains { $0.hasPrefix("AUTH") })
        #expect(t.send("AUTH PLAIN AGFsaWNlAHB3") == 538)
        #expect(t.send("MAIL FROM:<alice@a.test>") == 530)
        #expect(t.send("STARTTLS") == 220)
        #expect(t.send("EHLO c") == 250)
        #expect(t.machine.extensions.contains("AUTH PLAIN SCRAM-SHA-256"))
        #expect(t.send("AUTH CRAM-MD5") == 504)
        #expect(t.send("AUTH PLAIN AGFsaWNlAHB3") == 334)  // handed to the session (the transcript's stand-in)
        t.machine.authenticated(as: "alice@a.test")
        #expect(!t.machine.extensions.contains { $0.hasPrefix("AUTH") })
        #expect(t.send("AUTH PLAIN AGFsaWNlAHB3") == 503)
        #expect(t.send("MAIL FROM:<alice@a.test>") == 250)
    }

    @Test func loopbackMayAuthenticateWithoutTLS() {
        var config = Self.config
        config.authRequiresTLS = false
        var t = Transcript(config)
        #expect(t.send("EHLO c") == 250)
        #expect(t.machine.extensions.contains("AUTH PLAIN SCRAM-SHA-256"))
        #expect(t.send("AUTH PLAIN AGFsaWNlAHB3") == 334)
    }

    @Test func port25OffersNoAuth() {
        var t = Transcript()
        #expect(t.send("EHLO c") == 250)
        #expect(!t.machine.extensions.contains { $0.hasPrefix("AUTH") })
        #expect(t.send("AUTH PLAIN AGFsaWNlAHB3") == 503)
        #expect(t.send("MAIL FROM:<x@example.com>") == 250)
    }
}
