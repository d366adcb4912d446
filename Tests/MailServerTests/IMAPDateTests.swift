import IMAPCodec
import IMAPResponses
import Foundation
import Testing
@testable import MailServer

/// APPEND's date-time (RFC 9051 §9 date-time): out-of-range fields are refused, never rolled over into another day.
@Suite struct IMAPDateTests {
    @Test func validDateTime() {
        #expect(IMAPDateTime.parse("17-Jul-1996 02:44:25 -0700") == Date(timeIntervalSince1970: 837_596_665))
        #expect(IMAPDateTime.parse(" 5-Jan-2026 10:00:00 +0000") != nil)
    }

    @Test(arguments: ["31-Feb-2026 10:00:00 +0000", "30-Jan-2026 24:00:00 +0000", "30-Jan-2026 10:60:00 +0000",
                      "30-Jan-2026 10:00:61 +0000", "30-Jan-2026 10:00:00 +0075", "0-Jan-2026 10:00:00 +0000",
                      "30-Foo-2026 10:00:00 +0000", "30-Jan-2026 10:00:00"])
    func invalidDateTime(_ text: String) {
        #expect(IMAPDateTime.parse(text) == nil)
    }
}
