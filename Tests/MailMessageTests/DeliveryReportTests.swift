import Foundation
import MailMessage
import Testing

@Suite struct DeliveryReportTests {
    @Test func statusFromReply() {
        #expect(DeliveryReport.status(fromReply: "550 5.1.1 User unknown", permanent: true) == "5.1.1")
        #expect(DeliveryReport.status(fromReply: "550 User unknown", permanent: true) == "5.0.0")
        #expect(DeliveryReport.status(fromReply: "451 4.4.1 cannot connect", permanent: false) == "4.4.1")
        #expect(DeliveryReport.status(fromReply: "connection refused", permanent: false) == "4.0.0")
    }

    /// RFC 3464's structure, parsed back by the MIME parser: three parts, the fields per recipient, the original.
    @Test func bounceStructure() {
        let original = Array("From: a@a.test\r\nSubject: hi\r\n\r\nbody\r\n".utf8)
        let bytes = DeliveryReport.make(
            reportingMTA: "mx.a.test", postmaster: "MAILER-DAEMON@mx.a.test", to: "a@a.test",
            recipients: [.init(address: "b@b.test", originalRecipient: "rfc822;B@b.test", action: .failed, status: "5.1.1",
                               diagnostic: "550 5.1.1 User unknown", remoteMTA: "mx.b.test", lastAttempt: Date(timeIntervalSince1970: 0))],
            original: original, queueID: "Q1", envelopeID: "env-1", arrival: Date(timeIntervalSince1970: 0), returnFull: nil,
            now: Date(timeIntervalSince1970: 3600))
        let top = MIMEParser.parse(bytes)
        #expect(top.contentType.type == "multipart" && top.contentType.subtype == "report")
        #expect(top.contentType.parameter("report-type") == "delivery-status")
        #expect(top.children.map { "\($0.contentType.type)/\($0.contentType.subtype)" } == ["text/plain", "message/delivery-status", "message/rfc822"])
        let status = String(decoding: bytes[top.children[1].bodyStart..<top.children[1].end], as: UTF8.self)
        for field in ["Reporting-MTA: dns; mx.a.test", "Original-Envelope-Id: env-1", "Final-Recipient: rfc822; b@b.test",
                      "Original-Recipient: rfc822;B@b.test", "Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.b.test",
                      "Diagnostic-Code: smtp; 550 5.1.1 User unknown"] {
            #expect(status.contains(field + "\r\n"), "\(field)")
        }
        #expect(Array(bytes[top.children[2].bodyStart..<top.children[2].end]).starts(with: original))

        let headersOnly = DeliveryReport.make(reportingMTA: "mx.a.test", postmaster: "m@mx.a.test", to: "a@a.test",
                                              recipients: [.init(address: "b@b.test", action: .failed, status: "5.0.0", diagnostic: "x")],
                                              original: original, queueID: "Q2", envelopeID: nil, arrival: Date(timeIntervalSince1970: 0), returnFull: false,
                                              now: Date(timeIntervalSince1970: 3600))
        let parsed = MIMEParser.parse(headersOnly)
        #expect(parsed.children.last?.contentType.subtype == "rfc822-headers")
        #expect(!String(decoding: headersOnly, as: UTF8.self).contains("body\r\n"))
    }
}
