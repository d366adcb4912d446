import Testing
@testable import Sieve

@Suite struct SieveInterpreterTests {
    func message(_ header: String, body: String = "hello\r\n", from: String = "sender@remote.example", to: String = "me@example.com") -> SieveMessage {
        SieveMessage(bytes: Array((header.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n\r\n" + body).utf8), envelopeFrom: from, envelopeTo: to)
    }

    func run(_ script: String, _ m: SieveMessage, limits: SieveRunLimits = SieveRunLimits(),
             environment: SieveEnvironment = SieveEnvironment()) throws -> SieveResult {
        SieveInterpreter.run(try SieveScript.compile(script), message: m, environment: environment, limits: limits)
    }

    /// RFC 5228 §9 with four messages, one through each branch.
    @Test func theRFCExampleSortsFourMessages() throws {
        let script = SieveSyntaxTests.rfc5228Example
        let list = message("Sender: owner-ietf-mta-filters@imc.org\nFrom: someone@else.example\nTo: me@example.com\nSubject: draft")
        #expect(try run(script, list).actions == [.fileinto(mailbox: "filter", create: false)])
        let colleague = message("From: Boss <boss@EXAMPLE.com>\nTo: someone@else.example\nSubject: meeting")
        #expect(try run(script, colleague).actions == [.keep])
        let notToMe = message("From: x@spam.example\nTo: list@else.example\nSubject: hello")
        #expect(try run(script, notToMe).actions == [.fileinto(mailbox: "spam", create: false)])
        // Mail to me@example.com is the company's (From or To in example.com): kept before the spam test is reached.
        let toMe = message("From: x@spam.example\nTo: Me <me@example.com>\nSubject: How to MAKE real money FAST")
        #expect(try run(script, toMe).actions == [.keep])
        let spam = message("From: x@spam.example\nTo: list@else.example\nCc: me@example.com\nSubject: How to MAKE real money FAST")
        #expect(try run(script, spam).actions == [.fileinto(mailbox: "spam", create: false)])
        let friend = message("From: Friend <friend@home.example>\nTo: list@home.example\nCc: Me <me@example.com>\nSubject: dinner")
        #expect(try run(script, friend).actions == [.fileinto(mailbox: "personal", create: false)])
    }

    @Test func matchTypesAndComparators() {
        func m(_ type: String, _ value: String, _ key: String, comparator: String = "i;ascii-casemap") -> Bool {
            Match(type: type, comparator: comparator).matches(value, key)
        }
        #expect(m("is", "Hello", "hELLO"))
        #expect(!m("is", "Hello", "hELLO", comparator: "i;octet"))
        #expect(m("contains", "Re: Hello there", "HELLO"))
        #expect(m("contains", "anything", ""))
        #expect(!m("contains", "abc", "abcd"))
        // RFC 5228 §2.7.1: * any run (also empty), ? exactly one character, \ quotes the next one.
        #expect(m("matches", "make money fast", "*money*"))
        #expect(m("matches", "abc", "a?c") && !m("matches", "ac", "a?c"))
        #expect(m("matches", "", "*") && !m("matches", "", "?"))
        #expect(m("matches", "a*b", "a\\*b") && !m("matches", "axb", "a\\*b"))
        #expect(m("matches", "a?b", "a\\?b") && !m("matches", "axb", "a\\?b"))
        #expect(m("matches", "mississippi", "*sip*") && !m("matches", "mississippi", "*sip"))
        // RFC 5228 §2.7.1: under i;octet and i;ascii-casemap a character is one octet, so ß (two octets) takes "??".
        #expect(!m("matches", "Straße", "stra?e") && m("matches", "Straße", "stra??e"))
        // No exponential backtracking: a long value against many stars answers at once.
        #expect(!m("matches", String(repeating: "a", count: 5000), String(repeating: "*a", count: 200) + "b"))
    }

    @Test func addressPartsEnvelopeSizeAndExists() throws {
        let m = message("From: \"Doe, Jane\" <Jane.Doe@Example.COM>, other@x.example\nX-Spam: yes\nSubject: =?UTF-8?B?w6l0w6k=?=",
                        from: "bounce@lists.example", to: "me+tag@example.com")
        #expect(try run("if address :localpart :is \"from\" \"jane.doe\" { discard; }", m).actions == [])
        #expect(try run("if address :domain :is \"from\" \"x.example\" { discard; }", m).actions == [])
        #expect(try run("if address :all :is \"from\" \"other@x.example\" { discard; }", m).actions == [])
        #expect(try run("if address :is \"to\" \"me@example.com\" { discard; }", m).actions == [.keep])
        // RFC 2047 words are decoded before comparing.
        #expect(try run("if header :is \"subject\" \"été\" { discard; }", m).actions == [])
        #expect(try run("require \"envelope\"; if envelope :domain :is \"from\" \"lists.example\" { discard; }", m).actions == [])
        #expect(try run("require \"envelope\"; if envelope :localpart :matches \"to\" \"me+*\" { discard; }", m).actions == [])
        let bounce = message("Subject: x", from: "")
        #expect(try run("require \"envelope\"; if envelope :is \"from\" \"\" { discard; }", bounce).actions == [])
        #expect(try run("if exists [\"x-spam\", \"subject\"] { discard; }", m).actions == [])
        #expect(try run("if exists [\"x-spam\", \"x-missing\"] { discard; }", m).actions == [.keep])
        #expect(try run("if size :over 10 { discard; }", m).actions == [])
        #expect(try run("if size :under 10 { discard; }", m).actions == [.keep])
        #expect(try run("if size :over 1K { discard; }", m).actions == [.keep])
        #expect(try run("if allof (true, not false, anyof (false, true)) { discard; }", m).actions == [])
    }

    @Test func actionsAndTheImplicitKeep() throws {
        let m = message("Subject: x")
        // RFC 5228 §2.10.2: no action, or only actions that do not cancel it, means the implicit keep.
        #expect(try run("", m).actions == [.keep])
        #expect(try run("require \"fileinto\"; fileinto \"A\"; fileinto \"A\"; fileinto \"INBOX\";", m).actions
                == [.fileinto(mailbox: "A", create: false), .keep])
        #expect(try run("require [\"fileinto\", \"copy\", \"mailbox\"]; fileinto :copy :create \"A\";", m).actions
                == [.fileinto(mailbox: "A", create: true), .keep])
        #expect(try run("redirect \"a@x.example\"; redirect \"a@x.example\";", m).actions == [.redirect(address: "a@x.example")])
        #expect(try run("require \"copy\"; redirect :copy \"a@x.example\";", m).actions == [.redirect(address: "a@x.example"), .keep])
        #expect(try run("discard; stop; keep;", m).actions == [])
        #expect(try run("if false { discard; } elsif true { stop; } else { discard; } discard;", m).actions == [.keep])
        #expect(try run("if true { } elsif true { discard; }", m).actions == [.keep])
    }

    @Test func aRuntimeErrorKeepsTheMessage() throws {
        var limits = SieveRunLimits()
        limits.redirects = 2
        let r = try run("redirect \"a@x.example\"; redirect \"b@x.example\"; redirect \"c@x.example\";", message("Subject: x"), limits: limits)
        #expect(r.actions == [.keep])
        #expect(r.error?.description == "line 1, column 49: more than 2 redirects")
        limits.actions = 1
        let many = try run("require \"fileinto\"; fileinto \"a\"; fileinto \"b\";", message("Subject: x"), limits: limits)
        #expect(many.actions == [.keep] && many.error?.message == "more than 1 actions")
    }
}
