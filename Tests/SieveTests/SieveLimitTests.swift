import Testing
@testable import Sieve

/// Hostile scripts and messages: every one runs to an answer (the message kept when a bound is passed), none traps,
/// recurses without bound or takes time or memory out of proportion to its size.
@Suite struct SieveLimitTests {
    func message(_ header: String, body: String = "hello\r\n") -> SieveMessage {
        SieveMessage(bytes: Array((header.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n\r\n" + body).utf8),
                     envelopeFrom: "sender@remote.example", envelopeTo: "me@example.com")
    }

    func run(_ script: String, _ m: SieveMessage, limits: SieveRunLimits = SieveRunLimits(),
             environment: SieveEnvironment = SieveEnvironment()) throws -> SieveResult {
        SieveInterpreter.run(try SieveScript.compile(script), message: m, environment: environment, limits: limits)
    }

    @Test func vacationDaysTooLargeToCountInSecondsAreAYear() throws {
        let r = try run("require \"vacation\"; vacation :days 300000000000000 \"away\";", message("From: a@remote.example\nSubject: x"))
        guard case .vacation(let v)? = r.actions.first else { Issue.record("no vacation: \(r.actions)"); return }
        #expect(v.seconds == 365 * 86400)
    }

    @Test func aMatchPatternOfManyStarsStillMatchesWithoutCaptures() throws {
        // 200,000 pieces: the capture search would recurse once per piece.
        let stars = String(repeating: "*", count: 200_000)
        let script = "require [\"variables\", \"fileinto\"]; if header :matches \"subject\" \"\(stars)x\" { fileinto \"got-${0}-${1}\"; }"
        #expect(try run(script, message("Subject: abx")).actions == [.fileinto(mailbox: "got-abx-", create: false)])
        // A short pattern still captures.
        let short = "require [\"variables\", \"fileinto\"]; if header :matches \"subject\" \"*b*\" { fileinto \"got-${1}-${2}\"; }"
        #expect(try run(short, message("Subject: abx")).actions == [.fileinto(mailbox: "got-a-x", create: false)])
    }

    @Test func includesAreCountedAllTold() throws {
        // Each level includes the next 20 times, five levels: 20^5 runs of the last without a total bound.
        var environment = SieveEnvironment()
        for level in 1...5 {
            let body = level == 5 ? "keep;" : String(repeating: "include :personal \"l\(level + 1)\";\n", count: 20)
            environment.personalScripts["l\(level)"] = try SieveScript.compile("require \"include\";\n" + body)
        }
        let r = try run("require \"include\"; include :personal \"l1\";", message("Subject: x"), environment: environment)
        #expect(r.actions == [.keep])
        #expect(r.error?.message.contains("includes in one run") == true)
        var few = SieveEnvironment()
        few.personalScripts["one"] = try SieveScript.compile("require \"fileinto\"; fileinto \"A\";")
        #expect(try run("require \"include\"; include :personal \"one\";", message("Subject: x"), environment: few).actions
                == [.fileinto(mailbox: "A", create: false)])
    }

    @Test func aRunHasABudgetOfSteps() throws {
        var limits = SieveRunLimits()
        limits.steps = 1_000
        let many = String(repeating: "if header :is \"x-none\" \"y\" { }\n", count: 600)
        let r = try run(many + "discard;", message("Subject: x"), limits: limits)
        #expect(r.actions == [.keep])
        #expect(r.error?.message.contains("steps") == true)
        // Under the budget, the same script runs to its end.
        #expect(try run(String(repeating: "if header :is \"x-none\" \"y\" { }\n", count: 100) + "discard;", message("Subject: x"),
                        limits: limits).actions.isEmpty)
        // A test is charged for what it reads: a body of 4 MB is about a thousand steps.
        let big = message("Subject: x", body: String(repeating: "0123456789abcdef", count: 1 << 18))
        limits.steps = 500
        let body = try run("require \"body\"; if body :contains \"zzz\" { discard; }", big, limits: limits)
        #expect(body.actions == [.keep] && body.error != nil)
        limits.steps = 5_000
        #expect(try run("require \"body\"; if body :contains \"cdef0123\" { discard; }", big, limits: limits).actions.isEmpty)
    }

    @Test func longKeysLongHeadersAndLongFlagListsAreCharged() throws {
        var limits = SieveRunLimits()
        limits.steps = 2_000
        // A pattern's match may take the value's length times its own: a 4 KB value against 150 copies of a 2 KB pattern.
        let pattern = "*" + String(repeating: "a", count: 2000) + "b"
        let keys = Array(repeating: "\"\(pattern)\"", count: 150).joined(separator: ",")
        let value = String(repeating: "a", count: 4000)
        let r = try run("require \"variables\"; set \"v\" \"\(value)\"; if string :matches \"${v}\" [\(keys)] { discard; }", message("Subject: x"), limits: limits)
        #expect(r.actions == [.keep] && r.error?.message.contains("steps") == true)
        // Names looked up one by one in a header of many fields.
        let header = (0..<6000).map { "X-F\($0): v" }.joined(separator: "\n")
        let names = (0..<400).map { "\"x-none-\($0)\"" }.joined(separator: ",")
        let e = try run("if exists [\(names)] { discard; }", message(header), limits: limits)
        #expect(e.actions == [.keep] && e.error != nil)
        // A flag list keeps what fits in a variable, each flag once.
        let flags = (0..<5000).map { "f\($0)" }.joined(separator: " ")
        let f = try run("require \"imap4flags\"; addflag \"F1 \(flags) f1\";", message("Subject: x"))
        guard case .keep(let kept?)? = f.actions.first else { Issue.record("\(f.actions.prefix(1))"); return }
        #expect(kept.joined(separator: " ").utf8.count <= 4096 && kept.count > 500)
        #expect(Set(kept.map { $0.lowercased() }).count == kept.count && kept.first == "F1")
    }

    @Test func containsIsLinearAndRight() {
        #expect(Match.contains(Array("hello world".utf8), Array("o w".utf8)))
        #expect(Match.contains(Array("aaaaab".utf8), Array("aab".utf8)))
        #expect(!Match.contains(Array("aaaaa".utf8), Array("aab".utf8)))
        #expect(Match.contains(Array("abcabd".utf8), Array("abd".utf8)) && Match.contains(Array("x".utf8), []))
        // A 1 MB key against a 4 MB value: linear, not their product.
        let v = [UInt8](repeating: 97, count: 4 << 20), k = [UInt8](repeating: 97, count: 1 << 20) + [98]
        #expect(!Match.contains(v, k))
        #expect(Match.contains(v + [98], k))
    }

    @Test func manyReferencesReadOnceAndExpandToABoundedValue() throws {
        // "${${${…": each "${" once (a scan to the end for each was hours at a megabyte).
        let opens = String(repeating: "${", count: 100_000)
        let script = "require [\"variables\", \"fileinto\"]; set \"b\" \"\(opens)\"; if string :is \"${b}\" \"\" { discard; } else { keep; }"
        let r = try run(script, message("Subject: x"))
        #expect(r.actions == [.keep] && r.error == nil)
        // 20,000 references to a 4 KB value: the result stops at the 4 KB a value may hold.
        let refs = String(repeating: "${a}", count: 20_000)
        let grow = try run("require [\"variables\", \"fileinto\"]; set \"a\" \"\(String(repeating: "x", count: 4096))\"; set \"b\" \"\(refs)\";"
                           + " set :length \"n\" \"${b}\"; fileinto \"${n}\";", message("Subject: x"))
        #expect(grow.actions == [.fileinto(mailbox: "4096", create: false)])
        #expect(SieveVariables.decodeEncoded("${hex:41 42}${unicode:1F600}${hex:zz}" + opens) == "AB\u{1F600}${hex:zz}" + opens)
    }

    @Test func regexIntervalsThatWouldCompileToMillionsAreRefused() throws {
        #expect(Match.expandedSize("((a{1,1000}){1,1000}){1,1000}") > 10_000)
        #expect(Match.expandedSize("^\\[([a-z-]+)\\] (.*)$") < 100)
        #expect(Match.expandedSize("a{2,3}b{10}") <= 14)
        let script = "require \"regex\"; if header :regex \"subject\" \"((a{1,1000}){1,1000}){1,1000}\" { discard; }"
        #expect(try run(script, message("Subject: aaa")).actions == [.keep])
        #expect(try run("require \"regex\"; if header :regex \"subject\" \"^a{2,3}$\" { discard; }", message("Subject: aaa")).actions.isEmpty)
    }

    @Test func redirectAddressesAreWhatRCPTTOCanCarry() throws {
        #expect(SieveValidator.redirectAddress("Bob <bob@far.example>") == "bob@far.example")
        // A quoted local part stays quoted (not "john smith@x"); one with CR LF would be SMTP commands of its own.
        #expect(SieveValidator.redirectAddress("\"john smith\"@far.example") == "\"john smith\"@far.example")
        #expect(SieveValidator.redirectAddress("\"a<b@c.example>\"@far.example") == "\"a<b@c.example>\"@far.example")
        #expect(SieveValidator.redirectAddress("\"x\r\nRSET\r\nMAIL FROM:<ceo@here.example>\"@far.example") == nil)
        #expect(throws: SieveError.self) { try SieveScript.compile("redirect \"\\\"x\r\nRSET\\\"@far.example\";") }
        // Built at run time from the message: the run fails, the message is kept.
        let script = "require [\"variables\", \"encoded-character\"]; if header :matches \"x-to\" \"*\" { redirect \"\\\"${1}${hex:0d 0a}\\\"@far.example\"; }"
        let r = try run(script, message("X-To: a\nSubject: x"))
        #expect(r.actions == [.keep] && r.error != nil)
    }

    @Test func editheaderBounds() throws {
        let m = message("Delivered-To: me@example.com\nSubject: x")
        // The loop check's field stays.
        #expect(try run("require \"editheader\"; deleteheader \"Delivered-To\";", m).header == nil)
        let long = String(repeating: "v", count: 9000)
        let r = try run("require \"editheader\"; addheader \"X-Long\" \"\(long)\";", m)
        #expect(r.actions == [.keep] && r.error?.message.contains("8,192") == true)
    }
}
