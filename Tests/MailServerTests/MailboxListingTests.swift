import MailCore
import MailStore
import Testing
@testable import IMAPMailboxView
@testable import IMAPServer
@testable import MailServer

/// LIST and LSUB as pure functions of the mailboxes and subscriptions (RFC 9051 §6.3.9, RFC 3501 §6.3.9, RFC 5258).
@Suite struct MailboxListingTests {
    func box(_ id: Int64, _ name: String, _ use: SpecialUse? = nil) -> MailboxInfo {
        MailboxInfo(id: id, name: name, specialUse: use, uidValidity: UIDValidity(rawValue: 1), uidNext: UID(1),
                    highestModSeq: ModSeq(rawValue: 1), messages: 0)
    }

    func listing(rev2: Bool = false, subscriptions: Set<String>) -> MailboxListing {
        MailboxListing(mailboxes: [box(1, "INBOX"), box(2, "Sent", .sent), box(3, "a/b/c"), box(4, "z")],
                       subscriptions: subscriptions, rev2: rev2)
    }

    func percent(_ prefix: String = "") -> (String) -> Bool {
        { name in IMAPSession.matches(name, prefix + "%") }
    }

    @Test func ancestors() {
        #expect(listing(subscriptions: []).ancestors("a/b/c") == ["a", "a/b"])
        #expect(listing(subscriptions: []).ancestors("INBOX").isEmpty)
    }

    @Test func parentsThatDoNotExist() {
        let rev1 = listing(subscriptions: []).list(patterns: ["%"], matches: percent(), selectSubscribed: false, selectSpecialUse: false,
                                                   recursiveMatch: false, returnSubscribed: false, returnSpecialUse: true)
        #expect(rev1.map(\.name) == ["INBOX", "Sent", "a", "z"])
        #expect(rev1.first { $0.name == "a" }?.attributes == ["\\Noselect", "\\HasChildren"])
        #expect(rev1.first { $0.name == "Sent" }?.attributes == ["\\HasNoChildren", "\\Sent"])
        let rev2 = listing(rev2: true, subscriptions: []).list(patterns: ["%"], matches: percent(), selectSubscribed: false,
                                                               selectSpecialUse: false, recursiveMatch: false, returnSubscribed: false,
                                                               returnSpecialUse: false)
        #expect(rev2.first { $0.name == "a" }?.attributes == ["\\NonExistent", "\\HasChildren"])
        #expect(rev2.first { $0.name == "a" }?.selectable == false)
    }

    @Test func subscribedSelectionWithRecursiveMatch() {
        let l = listing(subscriptions: ["INBOX", "a/b/c", "gone"])
        let plain = l.list(patterns: ["%"], matches: percent(), selectSubscribed: true, selectSpecialUse: false, recursiveMatch: false,
                           returnSubscribed: false, returnSpecialUse: false)
        #expect(plain.map(\.name) == ["INBOX", "gone"])
        #expect(plain.last?.attributes == ["\\NonExistent", "\\HasNoChildren", "\\Subscribed"])
        let recursive = l.list(patterns: ["%"], matches: percent(), selectSubscribed: true, selectSpecialUse: false, recursiveMatch: true,
                               returnSubscribed: false, returnSpecialUse: false)
        #expect(recursive.map(\.name) == ["INBOX", "a", "gone"])
        #expect(recursive.first { $0.name == "a" }?.childInfo == ["SUBSCRIBED"])
        // With "*" the subscribed child is listed itself: no CHILDINFO for its parents.
        let all = l.list(patterns: ["*"], matches: { IMAPSession.matches($0, "*") }, selectSubscribed: true, selectSpecialUse: false,
                         recursiveMatch: true, returnSubscribed: false, returnSpecialUse: false)
        #expect(all.map(\.name) == ["INBOX", "a/b/c", "gone"])
        #expect(all.allSatisfy { $0.childInfo.isEmpty })
    }

    @Test func lsubParentsAreNoselect() {
        let l = listing(subscriptions: ["a/b/c", "z"])
        #expect(l.lsub(matches: percent()) == [
            .init(name: "a", attributes: ["\\Noselect"], selectable: false),
            .init(name: "z", attributes: [], selectable: true),
        ])
        #expect(l.lsub(matches: { IMAPSession.matches($0, "*") }).map(\.name) == ["a/b/c", "z"])
    }
}
