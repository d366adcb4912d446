import ServerCore
import Foundation
import Glibc
import Logging
import MailCore
import MailServer
import MailStore
import MailStoreSQLite
import NIOCore
import NIOPosix
import TernConfig
import TernTestSupport
import Testing

/// The EHLO keywords after the greeting line, as transcript lines (SIZE is the default 50 MiB).
let ehloKeywords = """
    S: 250-PIPELINING
    S: 250-SIZE 52428800
    S: 250-8BITMIME
    S: 250-SMTPUTF8
    S: 250-ENHANCEDSTATUSCODES
    S: 250-CHUNKING
    S: 250-DSN
    S: 250-STARTTLS
    S: 250 HELP
    """

@Suite(.serialized) struct TranscriptTests {
    @Test func deliveryAndRejections() async throws {
        let s = try await InProcessServer.start()
        let mismatch = await s.play("""
            S: 220 mx.test ESMTP Tern
            C: EHLO client.test
            S: 250-mx.test greets client.test
            \(ehloKeywords)
            C: MAIL FROM:<sender@remote.test>
            S: 250 2.1.0
            C: RCPT TO:<nobody@example.test>
            S: 550 5.1.1 <nobody@example.test>: Recipient address rejected
            C: RCPT TO:<someone@elsewhere.test>
            S: 550 5.7.1 <someone@elsewhere.test>: Relay access denied
            C: RCPT TO:<Alice+tag@EXAMPLE.test>
            S: 250 2.1.5
            C: DATA
            S: 354
            C: Subject: transcript\\r\\n\\r\\n..dot\\r\\n.
            S: 250 2.0.0 Ok: stored as
            C: QUIT
            S: 221 2.0.0
            CLOSED
            """)
        #expect(mismatch == nil)
        let inbox = try await s.inbox("alice@example.test")
        #expect(inbox.count == 1)
        let text = String(decoding: inbox.first ?? [], as: UTF8.self)
        #expect(text.hasPrefix("Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby mx.test (Tern) with ESMTP id "))
        #expect(text.hasSuffix("\r\nSubject: transcript\r\n\r\n.dot\r\n"))
        try await s.stop()
    }

    @Test func pipelinedTransactionKeepsReplyOrder() async throws {
        let s = try await InProcessServer.start()
        let mismatch = await s.play("""
            S: 220
            C: EHLO c\\r\\nMAIL FROM:<a@remote.test>\\r\\nRCPT TO:<nobody@example.test>\\r\\nRCPT TO:<alice@example.test>\\r\\nDATA
            S: 250-mx.test
            \(ehloKeywords)
            S: 250 2.1.0
            S: 550 5.1.1
            S: 250 2.1.5
            S: 354
            C: x\\r\\n.\\r\\nMAIL FROM:<b@remote.test>\\r\\nRCPT TO:<alice@example.test>\\r\\nBDAT 5 LAST\\r\\nhello
            S: 250 2.0.0
            S: 250 2.1.0
            S: 250 2.1.5
            S: 250 2.0.0
            """)
        #expect(mismatch == nil)
        #expect(try await s.inbox("alice@example.test").count == 2)
        try await s.stop()
    }

    @Test func lineLimitAndErrors() async throws {
        let s = try await InProcessServer.start { $0.limits.maxErrors = 3 }
        let long = String(repeating: "x", count: 3000)
        let mismatch = await s.play("""
            S: 220
            C: NOOP \(long)
            S: 500 5.5.2 Line too long
            C: RCPT TO:<a@b.c>
            S: 503 5.5.1
            C: FOO
            S: 421 4.7.0
            CLOSED
            """)
        #expect(mismatch == nil)
        try await s.stop()
    }
}
