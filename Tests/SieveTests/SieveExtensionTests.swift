import Foundation
import Testing
@testable import Sieve

/// The extensions, each on the examples of its RFC (the scripts as the RFCs print them, the messages they describe).
@Suite struct SieveExtensionTests {
    func message(_ header: String, body: String = "hello\r\n", from: String = "sender@remote.example", to: String = "me@example.com") -> SieveMessage {
        SieveMessage(bytes: Array((header.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n\r\n" + body).utf8), envelopeFrom: from, envelopeTo: to)
    }

    func run(_ script: String, _ m: SieveMessage, _ environment: SieveEnvironment = SieveEnvironment()) throws -> SieveResult {
        SieveInterpreter.run(try SieveScript.compile(script), message: m, environment: environment)
    }

    func fileinto(_ name: String, flags: [String]? = nil) -> SieveAction { .fileinto(mailbox: name, create: false, flags: flags) }

    /// What `set "b" …` left in the variable, read back through a fileinto.
    func value(_ script: String, _ m: SieveMessage? = nil) throws -> String? {
        let r = try run("require [\"variables\", \"fileinto\"];\n" + script + "\nfileinto \"${b}\";", m ?? message("Subject: x"))
        guard case .fileinto(let name, _, _, _)? = r.actions.first else { return r.actions.first == .keep ? "INBOX" : nil }
        return name
    }

    // MARK: RFC 5229 variables

    @Test func variablesExpandAsRFC5229Says() throws {
        let company = "set \"company\" \"ACME\";\n"
        #expect(try value(company + "set \"b\" \"${full}x\";") == "x")
        #expect(try value(company + "set \"b\" \"${company}\";") == "ACME")
        #expect(try value(company + "set \"b\" \"${BAD${Company}\";") == "${BADACME")
        #expect(try value(company + "set \"b\" \"${President, ${Company} Inc.}\";") == "${President, ACME Inc.}")
        #expect(try value("set \"b\" \"&%${}!\";") == "&%${}!")
        #expect(try value("set \"b\" \"${doh!}\";") == "${doh!}")
        // §4.1's modifiers, highest precedence first.
        let a = "set \"a\" \"juMBlEd lETteRS\";\n"
        #expect(try value(a + "set :length \"b\" \"${a}\";") == "15")
        #expect(try value(a + "set :lower \"b\" \"${a}\";") == "jumbled letters")
        #expect(try value(a + "set :upperfirst \"b\" \"${a}\";") == "JuMBlEd lETteRS")
        #expect(try value(a + "set :upperfirst :lower \"b\" \"${a}\";") == "Jumbled letters")
        #expect(try value("set :quotewildcard \"b\" \"Rock*\";") == "Rock\\*")
        // A multi-line value with variables in it.
        let letter = "set \"honorific\" \"Mr\";\nset \"last_name\" \"Coyote\";\nset \"b\" text:\nDear ${HONORIFIC} ${last_name},\nI'm out.\n.\n;"
        #expect(try value(letter) == "Dear Mr Coyote,\r\nI'm out.\r\n")
        // Two modifiers of one precedence, or a name that is no identifier, are errors.
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"variables\"; set :lower :upper \"a\" \"b\";") }
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"variables\"; set \"1a\" \"b\";") }
        #expect(throws: SieveError.self) { try SieveScript.compile("set \"a\" \"b\";") }
    }

    @Test func matchVariablesFromTheRFCExamples() throws {
        let script = """
            require ["fileinto", "variables"];
            if header :matches "List-ID" "*<*@*" {
                fileinto "INBOX.lists.${2}"; stop;
            }
            # Imagine the header
            # Subject: [acme-users] [fwd] version 1.0 is out
            if header :matches "Subject" "[*] *" {
                # ${1} will hold "acme-users",
                # ${2} will hold "[fwd] version 1.0 is out"
                fileinto "INBOX.lists.${1}/${2}"; stop;
            }
            # Imagine the header
            # To: coyote@ACME.Example.COM
            if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] {
                # ${0} is the matching address
                # ${1} is always the empty string
                # ${2} is part of the domain name ("ACME.Example")
                fileinto "INBOX.business.${2}|${1}|${0}"; stop;
            }
            if anyof (true, address :domain :matches "To" "*.com") {
                fileinto "none:${1}"; stop;
            }
            """
        #expect(try run(script, message("List-ID: Sieve <sieve@ietf.example>\nSubject: x")).actions == [fileinto("INBOX.lists.sieve")])
        #expect(try run(script, message("Subject: [acme-users] [fwd] version 1.0 is out")).actions
                == [fileinto("INBOX.lists.acme-users/[fwd] version 1.0 is out")])
        #expect(try run(script, message("To: coyote@ACME.Example.COM\nSubject: x")).actions
                == [fileinto("INBOX.business.ACME.Example||coyote@ACME.Example.COM")])
        // No successful :matches before it: the match variables are empty.
        #expect(try run(script, message("To: x@y.org\nSubject: x")).actions == [fileinto("none:")])
        // §5: the string test.
        let string = """
            require ["variables", "fileinto"];
            set "state" "${state} pending";
            if string :matches " ${state} " "* pending *" { fileinto "yes"; }
            """
        #expect(try run(string, message("Subject: x")).actions == [fileinto("yes")])
    }

    // MARK: RFC 5228 §2.4.2.4 encoded-character

    @Test func encodedCharacters() throws {
        func decoded(_ s: String) throws -> String? {
            let r = try run("require [\"encoded-character\", \"fileinto\"]; fileinto \"\(s)\";", message("Subject: x"))
            guard case .fileinto(let name, _, _, _)? = r.actions.first else { return nil }
            return name
        }
        #expect(try decoded("$${hex:24 24}") == "$$$")
        #expect(try decoded("${hex: 40}") == "@")
        #expect(try decoded("${ unicode:40}") == "${ unicode:40}")
        #expect(try decoded("${UNICODE:40}") == "@")
        #expect(try decoded("${UnICoDE:0000040}") == "@")
        #expect(try decoded("${Unicode:Cool}") == "${Unicode:Cool}")
        #expect(try decoded("${hex:e2 82 ac}") == "€")
        #expect(throws: SieveError.self) { try run("require \"encoded-character\"; redirect \"${unicode:200000}\";", message("Subject: x")) }
        #expect(throws: SieveError.self) { try run("require \"encoded-character\"; redirect \"${Unicode:DF01}\";", message("Subject: x")) }
        // Without the require, the text is as written.
        #expect(try run("require \"fileinto\"; fileinto \"${hex:40}\";", message("Subject: x")).actions == [fileinto("${hex:40}")])
    }

    // MARK: RFC 5232 imap4flags

    @Test func imapFlagsFromTheRFCExample() throws {
        let script = """
            require ["fileinto", "imap4flags", "variables"];
            if size :over 1K {
                addflag "MyFlags" "Big";
                if header :is "From" "boss@company.example.com" {
                    # The message will be marked as "\\\\Flagged Big" when filed into mailbox "Big messages"
                    addflag "MyFlags" "\\\\Flagged";
                }
                fileinto :flags "${MyFlags}" "Big messages";
            }
            if header :is "From" "grandma@example.net" {
                addflag "MyFlags" ["\\\\Answered", "$MDNSent"];
                fileinto :flags "${MyFlags}" "GrandMa";
            }
            """
        let big = String(repeating: "x", count: 2000)
        #expect(try run(script, message("From: boss@company.example.com", body: big)).actions
                == [fileinto("Big messages", flags: ["Big", "\\Flagged"])])
        #expect(try run(script, message("From: grandma@example.net", body: big)).actions
                == [fileinto("Big messages", flags: ["Big"]), fileinto("GrandMa", flags: ["Big", "\\Answered", "$MDNSent"])])
        #expect(try run(script, message("From: grandma@example.net")).actions == [fileinto("GrandMa", flags: ["\\Answered", "$MDNSent"])])
        // The internal variable: setflag replaces, addflag adds (each flag once, any case), removeflag takes away; the
        // implicit keep gets what it holds at the end.
        let internalFlags = """
            require ["imap4flags"];
            setflag "\\\\Seen";
            addflag ["\\\\flagged \\\\SEEN", "Work"];
            removeflag "work";
            """
        #expect(try run(internalFlags, message("Subject: x")).actions == [.keep(flags: ["\\Seen", "\\flagged"])])
        #expect(try run("require \"imap4flags\"; keep :flags \"\\\\Deleted\";", message("Subject: x")).actions == [.keep(flags: ["\\Deleted"])])
        // hasflag, on the internal variable or a named one; :count with the relational extension.
        let has = """
            require ["imap4flags", "variables", "relational", "comparator-i;ascii-numeric", "fileinto"];
            set "MyVar" "label1 label2";
            addflag "Tag";
            if allof (hasflag :is "MyVar" "label1", hasflag "tag", not hasflag :is "MyVar" "label",
                      hasflag :count "ge" :comparator "i;ascii-numeric" "MyVar" "2") { fileinto "yes"; }
            """
        #expect(try run(has, message("Subject: x")).actions == [fileinto("yes", flags: ["Tag"])])
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"imap4flags\"; addflag \"v\" \"x\";") }
    }

    // MARK: RFC 5233 subaddress

    @Test func subaddressParts() throws {
        let script = """
            require ["envelope", "subaddress", "fileinto"];
            if envelope :user "to" "postmaster" { fileinto "inbox.postmaster"; stop; }
            if envelope :detail :is "to" "mta-filters" { fileinto "inbox.ietf-mta-filters"; stop; }
            if address :detail :is "from" "" { fileinto "empty detail"; stop; }
            """
        #expect(try run(script, message("Subject: x", to: "postmaster+x@example.com")).actions == [fileinto("inbox.postmaster")])
        #expect(try run(script, message("Subject: x", to: "ken+mta-filters@example.com")).actions == [fileinto("inbox.ietf-mta-filters")])
        #expect(try run(script, message("From: ken+@example.org", to: "ken@example.com")).actions == [fileinto("empty detail")])
        // No separator: :detail matches nothing, not even "".
        #expect(try run(script, message("From: ken@example.org", to: "ken@example.com")).actions == [.keep])
    }

    // MARK: RFC 5231 relational

    @Test func relationalFromTheRFCExamples() throws {
        let m = message("Received: from a\nReceived: from b\nSubject: example\nTo: foo@example.com.invalid, baz@example.com.invalid\nCc: qux@example.com.invalid\nX-Priority: 1")
        func holds(_ test: String) throws -> Bool {
            try run("require [\"relational\", \"comparator-i;ascii-numeric\"]; if \(test) { discard; }", m).actions.isEmpty
        }
        #expect(try holds(#"address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]"#))
        #expect(try !holds(#"anyof (address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"], address :count "ge" :comparator "i;ascii-numeric" ["cc"] ["3"])"#))
        #expect(try !holds(#"header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"]"#))
        #expect(try holds(#"header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["3"]"#))
        #expect(try !holds(#"header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"]"#))
        #expect(try holds(#"header :value "lt" :comparator "i;ascii-numeric" "x-priority" "3""#))
        #expect(try !holds(#"header :value "gt" :comparator "i;ascii-numeric" "x-priority" "3""#))
        // i;ascii-numeric: leading digits as a number; none is infinity (above every number, equal to each other).
        #expect(try holds(#"header :value "gt" :comparator "i;ascii-numeric" "subject" "99999999999999999999""#))
        #expect(try holds(#"header :value "eq" :comparator "i;ascii-numeric" "x-priority" "001 apples""#))
        // Without a comparator: i;ascii-casemap's order.
        #expect(try holds(#"header :value "lt" "subject" "EXAMPLF""#))
        #expect(throws: SieveError.self) { try SieveScript.compile(#"require "relational"; if header :value "like" "a" "b" { stop; }"#) }
        #expect(throws: SieveError.self) { try SieveScript.compile(#"require "relational"; if header :value "lt" :comparator "i;ascii-numeric" "a" "b" { stop; }"#) }
    }

    // MARK: RFC 5173 body

    @Test func bodyFromTheRFCExamples() throws {
        let script = """
            require ["body", "fileinto"];
            if body :content "text" :contains ["missile", "coordinates"] { fileinto "secrets"; }
            if body :content "audio" :contains "" { fileinto "music"; }
            if body :raw :contains "MAKE MONEY FAST" { discard; }
            """
        let mixed = """
            Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nthe c=F6ordinates of the MISSILE\r\n--b\r\nContent-Type: audio/ogg\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n
            """
        #expect(try run(script, message("Subject: x\nMIME-Version: 1.0\n" + mixed.components(separatedBy: "\r\n\r\n")[0],
                                        body: mixed.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n"))).actions
                == [fileinto("secrets"), fileinto("music")])
        let fast = try run(script, message("Subject: x", body: "MAKE MONEY FAST\r\n"))
        #expect(fast.actions.isEmpty, "\(fast)")
        // :text (the default) sees decoded text only; the raw body is what the message holds.
        let encoded = message("Subject: x\nContent-Type: text/plain\nContent-Transfer-Encoding: base64", body: "c2VjcmV0IHBsYW4=\r\n")
        #expect(try run("require \"body\"; if body :contains \"secret plan\" { discard; }", encoded).actions.isEmpty)
        #expect(try run("require \"body\"; if body :raw :contains \"secret plan\" { discard; }", encoded).actions == [.keep])
        // No bytes given (the caller read the header only): the body test finds nothing.
        let headerOnly = SieveMessage(fields: [(name: "Subject", value: "x")], size: 10, envelopeFrom: "", envelopeTo: "")
        #expect(try run("require \"body\"; if body :contains \"\" { discard; }", headerOnly).actions == [.keep])
    }

    // MARK: RFC 5260 date and index

    @Test func datesFromTheRFCExamples() throws {
        let urgent = """
            require ["date", "relational", "fileinto"];
            if allof(header :is "from" "boss@example.com",
                     date :value "ge" :originalzone "date" "hour" "09",
                     date :value "lt" :originalzone "date" "hour" "17")
            { fileinto "urgent"; }
            """
        #expect(try run(urgent, message("From: boss@example.com\nDate: Mon, 7 Dec 2026 16:30:00 +0900")).actions == [fileinto("urgent")])
        #expect(try run(urgent, message("From: boss@example.com\nDate: Mon, 7 Dec 2026 08:59:59 -0500")).actions == [.keep])
        // The same instant seen in another zone: 16:30 +0900 is 07:30 UTC.
        let utc = "require [\"date\", \"fileinto\", \"variables\"]; if date :zone \"+0000\" :matches \"date\" \"iso8601\" \"*\" { fileinto \"${1}\"; }"
        #expect(try run(utc, message("Date: Mon, 7 Dec 2026 16:30:00 +0900")).actions == [fileinto("2026-12-07T07:30:00Z")])
        // currentdate reads the time the delivery passes in (never the machine's clock).
        let monthly = """
            require ["date", "variables", "fileinto"];
            if currentdate :matches "month" "*" { set "month" "${1}"; }
            if currentdate :matches "year"  "*" { set "year"  "${1}"; }
            fileinto "${month}-${year}";
            """
        let at = SieveEnvironment(now: Date(timeIntervalSince1970: 1_798_761_599), zoneOffset: 3600)   // 2026-12-31 23:59:59 UTC
        #expect(try run(monthly, message("Subject: x"), at).actions == [fileinto("01-2027")])
        #expect(try run(monthly, message("Subject: x"), SieveEnvironment(now: Date(timeIntervalSince1970: 1_798_761_599))).actions == [fileinto("12-2026")])
        let parts = "require [\"date\", \"variables\", \"fileinto\"]; if currentdate :zone \"-0130\" :matches \"std11\" \"*\" { set \"a\" \"${0}\"; } "
            + "if currentdate :matches \"julian\" \"*\" { set \"j\" \"${0}\"; } if currentdate :matches \"weekday\" \"*\" { fileinto \"${a}|${j}|${1}\"; }"
        #expect(try run(parts, message("Subject: x"), SieveEnvironment(now: Date(timeIntervalSince1970: 1_798_761_599))).actions
                == [fileinto("Thu, 31 Dec 2026 22:29:59 -0130|61405|4")])
        // :index picks one occurrence, from the top or (with :last) from the bottom.
        let received = message("Received: from a by mx1\nReceived: from b by mx2\nReceived: from c by mx3")
        let index = "require [\"index\", \"fileinto\"]; if header :index 2 :contains \"received\" \"mx2\" { fileinto \"second\"; } "
            + "if header :index 1 :last :contains \"received\" \"mx3\" { fileinto \"last\"; } if header :index 4 :contains \"received\" \"\" { fileinto \"none\"; }"
        #expect(try run(index, received).actions == [fileinto("second"), fileinto("last")])
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"index\"; if header :last :is \"a\" \"b\" { stop; }") }
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"date\"; if currentdate \"fortnight\" \"1\" { stop; }") }
    }

    // MARK: RFC 5183 environment, RFC 5463 ihave, RFC 5490 mailboxexists, RFC 5235 spamtest

    @Test func environmentIhaveMailboxesAndSpam() throws {
        let env = SieveEnvironment(items: ["name": "Tern", "location": "MDA", "remote-ip": "192.0.2.7"], mailboxes: ["INBOX", "Partners"],
                                   spamScore: 8, spamPercent: 74)
        let m = message("Subject: x")
        #expect(try run("require \"environment\"; if allof (environment :is \"location\" \"mda\", environment :matches \"remote-ip\" \"192.0.2.*\") { discard; }", m, env).actions.isEmpty)
        #expect(try run("require \"environment\"; if environment :contains \"vnd.unknown\" \"\" { discard; }", m, env).actions == [.keep])
        // ihave: a block using an extension this server lacks is valid and skipped.
        let ihave = """
            require ["ihave", "fileinto"];
            if ihave "vnd.acme.teleport" { teleport :to "mars"; }
            elsif ihave "variables" { fileinto "never: RFC 5463 §4"; }
            elsif ihave ["fileinto", "copy"] { fileinto "has-y"; }
            """
        let had = try run(ihave, m)
        #expect(had.actions == [fileinto("has-y")], "\(had)")
        let failing = try run("require \"ihave\"; error \"no way\";", m)
        #expect(failing.actions == [.keep] && failing.error?.message == "error: no way")
        let partners = "require [\"fileinto\", \"mailbox\"]; if mailboxexists \"Partners\" { fileinto \"Partners\"; } else { keep; }"
        #expect(try run(partners, m, env).actions == [fileinto("Partners")])
        #expect(try run(partners, m).actions == [.keep])
        let spam = """
            require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];
            if spamtest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "INBOX.unclassified"; }
            elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" { fileinto "INBOX.spam-trap"; }
            """
        #expect(try run(spam, m, env).actions == [fileinto("INBOX.spam-trap")])
        #expect(try run(spam, m).actions == [fileinto("INBOX.unclassified")])
        let plus = """
            require ["spamtestplus", "fileinto", "relational", "comparator-i;ascii-numeric"];
            if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "75" { fileinto "spam"; }
            elsif spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto "maybe"; }
            """
        #expect(try run(plus, m, env).actions == [fileinto("maybe")])
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"spamtest\"; if spamtest :percent \"1\" { stop; }") }
    }

    // MARK: regex (draft-ietf-sieve-regex)

    @Test func regexWithGroups() throws {
        let script = #"""
            require ["regex", "variables", "fileinto"];
            if header :regex "subject" "^\\[([a-z-]+)\\] (.*)$" { fileinto "lists/${1}/${2}"; stop; }
            if address :regex :comparator "i;octet" "from" "^[0-9]+@" { discard; }
            """#
        #expect(try run(script, message("Subject: [Acme-Users] hello world")).actions == [fileinto("lists/Acme-Users/hello world")])
        #expect(try run(script, message("From: 12345@example.com\nSubject: x")).actions.isEmpty)
        #expect(try run(script, message("From: ab@example.com\nSubject: x")).actions == [.keep])
        // A pattern that does not compile matches nothing (and the script goes on).
        #expect(try run("require \"regex\"; if header :regex \"subject\" \"([\" { discard; }", message("Subject: x")).actions == [.keep])
    }

    // MARK: RFC 5230 vacation (RFC 6131 :seconds), RFC 5429 reject and ereject

    @Test func vacationAndReject() throws {
        let m = message("From: friend@remote.example\nTo: me@example.com\nSubject: lunch")
        // RFC 5230 §4's example.
        let script = """
            require "vacation";
            if header :contains "subject" "cyrus" {
                vacation "I'm out -- send mail to cyrus-bugs";
            } else {
                vacation "I'm out -- call me at +1 304 555 0123";
            }
            """
        let r = try run(script, m)
        #expect(r.actions == [.vacation(SieveVacation(reason: "I'm out -- call me at +1 304 555 0123")), .keep])
        let full = try run("""
            require ["vacation", "vacation-seconds", "variables"];
            set "who" "Ken";
            vacation :seconds 1800 :subject "Away: ${who}" :from "ken@example.com" :addresses ["k@example.com"] :handle "h1" "Back soon";
            """, m)
        guard case .vacation(let v)? = full.actions.first else { Issue.record("\(full)"); return }
        #expect(v.seconds == 1800 && v.subject == "Away: Ken" && v.from == "ken@example.com" && v.addresses == ["k@example.com"] && v.handle == "h1")
        // :days 0 is a day at least; a second vacation in one run is an error (the message is kept).
        guard case .vacation(let day)? = try run("require \"vacation\"; vacation :days 0 \"x\";", m).actions.first else { Issue.record("no vacation"); return }
        #expect(day.seconds == 86400)
        #expect(try run("require \"vacation\"; vacation \"a\"; vacation \"b\";", m).error != nil)
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"vacation\"; vacation :seconds 5 \"x\";") }
        // The same reason, subject and sender make the same handle; another reason another.
        #expect(SieveVacation(reason: "a").handle == SieveVacation(reason: "a").handle && SieveVacation(reason: "a").handle != SieveVacation(reason: "b").handle)

        // reject cancels the implicit keep; it cannot go with keep or fileinto (RFC 5429 §2.1).
        #expect(try run("require \"reject\"; reject \"I never read mail from you\";", m).actions == [.reject(reason: "I never read mail from you")])
        #expect(try run("require \"ereject\"; ereject \"no\";", m).actions == [.reject(reason: "no")])
        let both = try run("require [\"reject\", \"fileinto\"]; fileinto \"x\"; reject \"no\";", m)
        #expect(both.actions == [.keep] && both.error != nil)
        #expect(try run("require \"reject\"; reject \"no\"; keep;", m).error != nil)
        #expect(try run("require [\"reject\", \"copy\"]; redirect :copy \"a@b.example\"; reject \"no\";", m).actions
                == [.redirect(address: "a@b.example"), .reject(reason: "no")])
    }

    // MARK: the administrator's scripts around the user's; RFC 8579 special-use

    @Test func beforeUserAndAfterScripts() throws {
        let m = message("From: x@remote.example\nSubject: hi")
        let junk = try SieveScript.compile("""
            require ["fileinto", "special-use", "spamtestplus", "relational", "comparator-i;ascii-numeric"];
            if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto :specialuse "\\\\Junk" "Junk"; }
            """)
        let spam = SieveEnvironment(spamScore: 9, spamPercent: 90)
        func run(_ before: [String], _ user: String?, _ env: SieveEnvironment = SieveEnvironment()) throws -> [SieveAction] {
            SieveInterpreter.run(before: try before.map { try SieveScript.compile($0) }, script: try user.map { try SieveScript.compile($0) },
                                 after: [junk], message: m, environment: env).actions
        }
        let toJunk = SieveAction.fileinto(mailbox: "Junk", create: false, flags: nil, specialUse: "\\Junk")
        // The after script runs while the message would only be kept: with no script, an empty one, an explicit keep.
        #expect(try run([], nil, spam) == [toJunk])
        #expect(try run([], "keep;", spam) == [toJunk])
        #expect(try run([], nil) == [.keep])
        // Not when the user's script filed, discarded or stopped.
        #expect(try run([], "require \"fileinto\"; fileinto \"Lists\";", spam) == [fileinto("Lists")])
        #expect(try run([], "discard;", spam) == [])
        #expect(try run([], "keep; stop;", spam) == [.keep])
        // A vacation reply does not stop spam going to Junk.
        #expect(try run([], "require \"vacation\"; vacation \"away\";", spam) == [.vacation(SieveVacation(reason: "away")), toJunk])
        // A before script runs first; its stop ends the run; each script has its own variables.
        #expect(try run(["require \"fileinto\"; fileinto \"Audit\";"], nil) == [fileinto("Audit")])
        #expect(try run(["require [\"fileinto\", \"copy\"]; fileinto :copy \"Audit\";"], "discard;") == [fileinto("Audit")])
        #expect(try run(["stop;"], "discard;", spam) == [.keep])
        #expect(try run(["require \"variables\"; set \"x\" \"1\";"], "require [\"variables\", \"fileinto\"]; fileinto \"x${x}\";") == [fileinto("x")])
        // specialuse_exists (RFC 8579 §4).
        let uses = SieveEnvironment(specialUses: ["\\junk": "Spam", "\\sent": "Sent"])
        let exists = "require [\"special-use\", \"fileinto\"]; if specialuse_exists [\"\\\\Junk\", \"\\\\Sent\"] { fileinto \"a\"; } if specialuse_exists \"Spam\" \"\\\\Junk\" { fileinto \"b\"; } if specialuse_exists \"\\\\Archive\" { fileinto \"c\"; }"
        #expect(try self.run(exists, m, uses).actions == [fileinto("a"), fileinto("b")])
    }

    // MARK: RFC 7352 duplicate

    @Test func duplicateAsksTheEnvironmentAndSaysWhatToRemember() throws {
        let script = """
            require ["duplicate", "fileinto", "mailbox"];
            if duplicate { fileinto :create "Trash/Duplicate"; }
            if duplicate :header "X-Event-ID" :handle "notifier" :seconds 3600 :last { discard; }
            """
        let m = message("Message-ID: <a@b>\nX-Event-ID: 42\nSubject: x")
        // Unknown keys are reported (and taken as not seen), with what to remember.
        let first = try run(script, m)
        #expect(first.actions == [.keep] && first.unknownDuplicates == ["\u{0}<a@b>", "notifier\u{0}42"])
        #expect(first.duplicates == [SieveDuplicate(key: "\u{0}<a@b>", seconds: 7 * 86400, last: false),
                                     SieveDuplicate(key: "notifier\u{0}42", seconds: 3600, last: true)])
        var env = SieveEnvironment()
        env.duplicatesSeen = ["\u{0}<a@b>": true, "notifier\u{0}42": false]
        let second = try run(script, m, env)
        #expect(second.actions == [.fileinto(mailbox: "Trash/Duplicate", create: true)] && second.unknownDuplicates.isEmpty)
        // No id, no duplicate (and nothing to remember).
        let none = try run("require \"duplicate\"; if duplicate { discard; }", message("Subject: x"))
        #expect(none.actions == [.keep] && none.duplicates.isEmpty && none.unknownDuplicates.isEmpty)
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"duplicate\"; if duplicate :header \"a\" :uniqueid \"b\" { stop; }") }
    }

    // MARK: RFC 6609 include

    @Test func includeWithGlobalsReturnOnceOptionalAndLoops() throws {
        var env = SieveEnvironment()
        env.personalScripts = [
            "sub": try SieveScript.compile("""
                require ["include", "variables"];
                global "who";
                if string :is "${who}" "x" { set "who" "y"; }
                return;
                set "who" "z";
                """),
            "loop": try SieveScript.compile("require \"include\"; include \"loop\";"),
            "count": try SieveScript.compile("require [\"include\", \"variables\"]; global \"n\"; set \"n\" \"${n}i\";"),
        ]
        env.globalScripts = ["spam": try SieveScript.compile("require \"fileinto\"; if header :contains \"subject\" \"$$$\" { fileinto \"Junk\"; }")]
        let m = message("Subject: win $$$ now")
        let main = """
            require ["include", "variables", "fileinto"];
            global "who";
            set "who" "x";
            include :personal "sub";
            fileinto "${who}/${global.who}";
            include :global "spam";
            """
        #expect(try run(main, m, env).actions == [fileinto("y/y"), fileinto("Junk")])
        // :once runs a script once however often it is included.
        let once = "require [\"include\", \"variables\", \"fileinto\"]; global \"n\"; include \"count\"; include :once \"count\"; include \"count\"; fileinto \"${n}\";"
        #expect(try run(once, m, env).actions == [fileinto("ii")])
        // A missing script is an error unless :optional; a loop is an error; both keep the message.
        #expect(try run("require \"include\"; include :optional \"nothing\";", m, env).actions == [.keep])
        #expect(try run("require \"include\"; include \"nothing\";", m, env).error?.message == "no personal script nothing to include")
        #expect(try run("require \"include\"; include \"loop\";", m, env).error?.message.contains("include loop") == true)
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"include\"; global \"x\";") }
        #expect(throws: SieveError.self) { try SieveScript.compile("require \"include\"; include :personal :global \"x\";") }
    }

    // MARK: RFC 5435 enotify, RFC 5436 mailto

    @Test func notifyByMail() throws {
        let m = message("From: boss@example.org\nTo: sievemailinglist@example.org\nSubject: Urgent")
        let script = """
            require ["enotify", "fileinto", "variables"];
            if header :contains "from" "boss@example.org" {
              notify :importance "1" :message "This is probably very important" "mailto:alm@example.com";
              # Don't send any further notifications
              stop;
            }
            """
        #expect(try run(script, m).actions == [.notify(SieveNotify(method: "mailto:alm@example.com", importance: "1",
                                                                   message: "This is probably very important")), .keep])
        let tests = """
            require ["enotify", "variables", "fileinto"];
            set :encodeurl "subject" "a&b c/é";
            if allof (valid_notify_method ["mailto:a@b.example", "mailto:?to=c@d.example&subject=${subject}"],
                      not valid_notify_method "xmpp:romeo@example.org",
                      notify_method_capability "mailto:a@b.example" "online" ["maybe"]) {
              fileinto "${subject}";
            }
            """
        #expect(try run(tests, m).actions == [fileinto("a%26b%20c%2F%C3%A9")])
        // An unusable method is a run-time error: the message is kept.
        let bad = try run("require \"enotify\"; notify \"xmpp:x@y\";", m)
        #expect(bad.actions == [.keep] && bad.error != nil)
        // mailto: recipients from the address part and the query; reserved fields ignored; encoded parts decoded.
        let mailto = try #require(SieveMailto.parse("mailto:a@b.example,c@d.example?cc=e@f.example&subject=Hi%20there&body=x&from=evil@x&X-Tag=1"))
        #expect(mailto.to == ["a@b.example", "c@d.example"] && mailto.cc == ["e@f.example"] && mailto.subject == "Hi there" && mailto.body == "x")
        #expect(mailto.headers.map(\.name) == ["x-tag"])
        #expect(SieveMailto.parse("mailto:") == nil && SieveMailto.parse("mailto:not an address") == nil && SieveMailto.parse("http://x") == nil)
        // A CR or LF (percent-encoded) or anything else no address holds refuses the URI: it would reach the notice's
        // header fields and RCPT TO (RFC 5435 §8).
        for injected in ["mailto:x%0D%0AReply-To:a@evil.example", "mailto:a@b.example?cc=x%0D%0ABcc:y@evil.example", "mailto:a@b.example%0A",
                         "mailto:a(b)@c.example", "mailto:a@b..example"] {
            #expect(SieveMailto.parse(injected) == nil, "\(injected)")
        }
    }

    // MARK: RFC 5293 editheader

    @Test func editheaderChangesWhatLaterTestsSeeAndWhatIsStored() throws {
        let m = message("Received: from a\nX-Spam: yes\nSubject: hi\nX-Spam: maybe\nX-Spam: no")
        // Added at the top (or with :last at the bottom), and seen by the tests that follow.
        let added = try run("""
            require ["editheader", "fileinto"];
            addheader "X-Filtered" "by Tern";
            addheader :last "X-Last" "end";
            if header :is "x-filtered" "by Tern" { fileinto "seen"; }
            """, m)
        #expect(added.actions == [fileinto("seen")])
        #expect(added.header == [.added(name: "X-Filtered", value: "by Tern"), .original(0), .original(1), .original(2), .original(3), .original(4),
                                 .added(name: "X-Last", value: "end")])
        // deleteheader: every occurrence, one by index (from the end with :last), or those whose value matches.
        #expect(try run("require \"editheader\"; deleteheader \"x-spam\";", m).header == [.original(0), .original(2)])
        #expect(try run("require \"editheader\"; deleteheader :index 1 :last \"X-Spam\";", m).header
                == [.original(0), .original(1), .original(2), .original(3)])
        #expect(try run("require \"editheader\"; deleteheader :contains \"X-Spam\" [\"may\", \"no\"];", m).header
                == [.original(0), .original(1), .original(2)])
        let gone = try run("require [\"editheader\", \"fileinto\"]; deleteheader \"subject\"; if not exists \"subject\" { fileinto \"x\"; }", m)
        #expect(gone.actions == [fileinto("x")])
        // Received, Auto-Submitted and Return-Path are the trace's: left as they are.
        #expect(try run("require \"editheader\"; deleteheader \"received\"; addheader \"Auto-Submitted\" \"no\";", m).header == nil)
        #expect(try run("keep;", m).header == nil)
    }

    // MARK: more of the RFCs' own examples

    @Test func theVacationRejectEditheaderAndDuplicateRFCExamples() throws {
        // RFC 5230 §4.2 (:subject with a variable), §4.5 (:days and :addresses), §4.8 (redirect or vacation).
        let m = message("From: someone@example.org\nTo: tjs@example.edu\nSubject: Meeting")
        guard case .vacation(let v)? = try run("""
            require ["vacation", "variables"];
            if header :matches "subject" "*" {
                vacation :subject "Automatic response to: ${1}" "I'm away";
            }
            """, m).actions.first else { Issue.record("no vacation"); return }
        #expect(v.subject == "Automatic response to: Meeting" && v.reason == "I'm away")
        guard case .vacation(let days)? = try run("""
            require "vacation";
            vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"]
               "I'm away until October 19.  If it's an emergency, call 911, I guess." ;
            """, m).actions.first else { Issue.record("no vacation"); return }
        #expect(days.seconds == 23 * 86400 && days.addresses == ["tjs@example.edu", "ts4z@landru.example.edu"])
        let boss = """
            require "vacation";
            if header :contains "from" "boss@example.edu" {
                redirect "pleeb@xanadu.example.edu";
            } else {
                vacation "Sorry, I'm away, I'll read your message when I get around to it.";
            }
            """
        #expect(try run(boss, message("From: boss@example.edu\nSubject: x")).actions == [.redirect(address: "pleeb@xanadu.example.edu")])
        #expect(try run(boss, m).actions.count == 2)
        // RFC 5230 §4.3: :mime, the reason a MIME entity.
        guard case .vacation(let mime)? = try run("""
            require "vacation";
            vacation :mime text:
            Content-Type: multipart/alternative; boundary=foo

            --foo

            I'm at the beach relaxing.  Mmmm, surf...

            --foo
            Content-Type: text/html; charset=us-ascii

            <!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0//EN"
             "http://www.w3.org/TR/REC-html40/strict.dtd">
            <HTML><HEAD><TITLE>How to relax</TITLE>
            <BASE HREF="http://home.example.com/pictures/"></HEAD>
            <BODY><P>I'm at the <A HREF="beach.gif">beach</A> relaxing.
            Mmmm, <A HREF="ocean.gif">surf</A>...
            </BODY></HTML>

            --foo--
            .
            ;
            """, m).actions.first else { Issue.record("no vacation"); return }
        #expect(mime.mime && mime.reason.hasPrefix("Content-Type: multipart/alternative; boundary=foo\r\n"))

        // RFC 5429 §2.1's example: a message too big for the user.
        let big = message("Subject: x", body: String(repeating: "x", count: 101 * 1024))
        let reject = """
            require ["reject"];
            if size :over 100K {
                reject text:
            Your message is too big.  If you want to send me a big attachment,
            put it on a public web site and send me a URL.
            .
            ;
            }
            """
        #expect(try run(reject, big).actions == [.reject(reason: "Your message is too big.  If you want to send me a big attachment,\r\nput it on a public web site and send me a URL.\r\n")])
        #expect(try run(reject, m).actions == [.keep])

        // RFC 5293 §9's example: do not redirect what was redirected already.
        let guardScript = """
            require ["editheader", "envelope"];
            if header :contains "X-Sieve-Filtered" ["<kim@job.example.com>", "<kitty@home.example.com>"] {
                keep;
            } else {
                addheader "X-Sieve-Filtered" "<kim@job.example.com>";
                redirect "kitty@home.example.com";
            }
            """
        let first = try run(guardScript, m)
        #expect(first.actions == [.redirect(address: "kitty@home.example.com")])
        #expect(first.header?.first == .added(name: "X-Sieve-Filtered", value: "<kim@job.example.com>"))
        #expect(try run(guardScript, message("X-Sieve-Filtered: <kitty@home.example.com>\nSubject: x")).actions == [.keep])

        // RFC 7352 §3.3's example: an alert seen in the last minute is marked read.
        let alert = """
            require ["duplicate", "variables", "imap4flags", "fileinto"];
            if header :matches "subject" "ALERT: *" {
                if duplicate :seconds 60 :uniqueid "${1}" {
                    setflag "\\\\seen";
                }
                fileinto "Alerts";
            }
            """
        var seen = SieveEnvironment()
        seen.duplicatesSeen = ["\u{0}disk full"]
            .reduce(into: [:]) { $0[$1] = true }
        let alertMessage = message("Subject: ALERT: disk full")
        #expect(try run(alert, alertMessage).actions == [.fileinto(mailbox: "Alerts", create: false, flags: [])])
        let marked = try run(alert, alertMessage, seen)
        #expect(marked.actions == [.fileinto(mailbox: "Alerts", create: false, flags: ["\\seen"])], "\(marked)")
    }
}
