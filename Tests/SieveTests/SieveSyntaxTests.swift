import Testing
@testable import Sieve
@testable import SieveLanguage

@Suite struct SieveSyntaxTests {
    func parse(_ s: String) throws -> [SieveCommand] { try SieveParser.parse(s) }

    func error(_ s: String) -> SieveError? {
        do {
            try SieveValidator.validate(try SieveParser.parse(s))
            return nil
        } catch let e as SieveError {
            return e
        } catch {
            return nil
        }
    }

    /// RFC 5228 §9, the example script (code components of RFCs are under the IETF Trust's BSD licence).
    static let rfc5228Example = """
        #
        # Example Sieve Filter
        # Declare any optional features or extension used by the script
        #
        require ["fileinto"];

        #
        # Handle messages from known mailing lists
        # Move messages from IETF filter discussion list to filter mailbox
        #
        if header :is "Sender" "owner-ietf-mta-filters@imc.org"
                {
                fileinto "filter";  # move to "filter" mailbox
                }
        #
        # Keep all messages to or from people in my company
        #
        elsif address :DOMAIN :is ["From", "To"] "example.com"
                {
                keep;               # keep in "In" mailbox
                }

        #
        # Try and catch unsolicited email.  If a message is not to me,
        # or it contains a subject known to be spam, file it away.
        #
        elsif anyof (NOT address :all :contains
                       ["To", "Cc", "Bcc"] "me@example.com",
                     header :matches "subject"
                       ["*make*money*fast*", "*university*dipl*mas*"])
                {
                fileinto "spam";   # move to "spam" mailbox
                }
        else
                {
                # Move all other (non-company) mail to "personal"
                # mailbox.
                fileinto "personal";
                }

        """

    @Test func theRFCExampleParsesAndValidates() throws {
        let commands = try parse(Self.rfc5228Example)
        #expect(commands.map(\.name) == ["require", "if", "elsif", "elsif", "else"])
        #expect(commands[0].arguments == [.strings(["fileinto"], SievePosition(line: 5, column: 9))])
        #expect(commands[1].position == SievePosition(line: 11, column: 1))
        let header = commands[1].tests[0]
        #expect(header.name == "header")
        #expect(header.arguments.map(Self.plain) == ["tag is", "Sender", "owner-ietf-mta-filters@imc.org"])
        #expect(commands[1].block?.first?.arguments.map(Self.plain) == ["filter"])
        // Names and tags are case-insensitive: NOT and :DOMAIN.
        #expect(commands[2].tests[0].arguments.map(Self.plain) == ["tag domain", "tag is", "From,To", "example.com"])
        let anyof = commands[3].tests[0]
        #expect(anyof.name == "anyof" && anyof.tests.map(\.name) == ["not", "header"])
        #expect(anyof.tests[0].tests[0].arguments.map(Self.plain) == ["tag all", "tag contains", "To,Cc,Bcc", "me@example.com"])
        #expect(commands[4].block?.map(\.name) == ["fileinto"])
        #expect(try SieveValidator.validate(commands) == ["fileinto"])
    }

    static func plain(_ a: SieveArgument) -> String {
        switch a {
        case .strings(let l, _): return l.joined(separator: ",")
        case .number(let n, _): return "\(n)"
        case .tag(let t, _): return "tag \(t)"
        }
    }

    @Test func stringsNumbersAndComments() throws {
        // RFC 5228 §2.4.1: quantifiers; §2.4.2: escapes, multi-line strings with dot-stuffing; §2.3: both comments.
        let script = "if size :over 100K { discard; } /* a\n bracket comment */ redirect \"a\\\"b\\\\c\\d@example.com\";\n"
            + "keep; # the end\nfileinto text: # a comment after text:\nline one\n..dotted\n.\n;"
        let commands = try parse(script)
        #expect(commands[0].tests[0].arguments.map(Self.plain) == ["tag over", "\(100 * 1024)"])
        #expect(commands[1].arguments.map(Self.plain) == ["a\"b\\cd@example.com"])
        #expect(commands[3].arguments.map(Self.plain) == ["line one\r\n.dotted\r\n"])
        #expect(commands[3].position == SievePosition(line: 4, column: 1))
        #expect(try parse("if size :under 2G { stop; }")[0].tests[0].arguments.map(Self.plain) == ["tag under", "\(2 << 30)"])
        #expect(try parse("") == [])
    }

    @Test func syntaxErrorsSayWhere() {
        func at(_ s: String) -> String? {
            do {
                _ = try SieveParser.parse(s)
                return nil
            } catch {
                return "\(error.position.line):\(error.position.column) \(error.message)"
            }
        }
        #expect(at("keep") == "1:5 expected ';' or '{' after keep, found end of script")
        #expect(at("if true {\n  keep;\n") == "3:1 expected '}' to close the block of if (line 1, column 1), found end of script")
        #expect(at("redirect \"unclosed;") == "1:10 string not closed with '\"'")
        #expect(at("fileinto [\"a\", ];") == "1:16 expected a string in the list, found ']'")
        #expect(at("keep;\n  /* never closed") == "2:3 comment not closed with */")
        #expect(at("if size :over 99999999999999999999 { keep; }") == "1:15 number too large")
        #expect(at("if size :over 17179869184G { keep; }") == "1:15 number too large")
        #expect(at("if anyof (true, ) { keep; }") == "1:17 expected a test, found ')'")
        #expect(at("keep; }") == "1:7 unexpected '}'")
        #expect(at("fileinto text:\nno end\n") == "1:10 multi-line string not ended with a line holding '.'")
        #expect(at("keep; @") == "1:7 unexpected character '@'")
    }

    @Test func limitsHold() {
        var limits = SieveLimits()
        limits.nesting = 3
        #expect(throws: SieveError.self) { try SieveParser.parse("if true { if true { if true { if true { keep; } } } }", limits: limits) }
        #expect((try? SieveParser.parse("if true { if true { keep; } }", limits: limits)) != nil)
        #expect(throws: SieveError.self) { try SieveParser.parse("if not not not not true { keep; }", limits: limits) }
        limits.scriptSize = 10
        #expect(throws: SieveError.self) { try SieveParser.parse("keep; keep; keep;", limits: limits) }
        // A script nested deeper than the default bound fails cleanly instead of exhausting the stack.
        let deep = String(repeating: "if true { ", count: 5000) + String(repeating: "}", count: 5000)
        #expect(throws: SieveError.self) { try SieveParser.parse(deep) }
    }

    @Test func rulesOfRFC5228() {
        #expect(error("keep; require \"fileinto\";")?.description == "line 1, column 7: require must come before every other command")
        #expect(error("require \"vacation-seconds-x\";")?.description == "line 1, column 9: unsupported extension \"vacation-seconds-x\"")
        #expect(error("fileinto \"x\";")?.description == "line 1, column 1: fileinto needs require \"fileinto\"")
        #expect(error("require \"fileinto\";\nfileinto :copy \"x\";")?.description == "line 2, column 10: :copy needs require \"copy\"")
        #expect(error("require [\"fileinto\", \"copy\"];\nfileinto :copy \"x\";") == nil)
        #expect(error("elsif true { keep; }")?.description == "line 1, column 1: elsif must follow if or elsif")
        #expect(error("if true { keep; } keep; else { keep; }")?.description == "line 1, column 25: else must follow if or elsif")
        #expect(error("if true keep;")?.description == "line 1, column 1: if needs a block")
        #expect(error("if header :is :contains \"a\" \"b\" { keep; }")?.description == "line 1, column 15: only one match type may be given")
        #expect(error("if header :is \"a\" { keep; }")?.description == "line 1, column 4: header needs 2 arguments")
        #expect(error("if header \"a\" :is \"b\" { keep; }")?.description == "line 1, column 15: tag :is must come before the other arguments of header")
        #expect(error("if address :localpart :domain \"to\" \"b\" { keep; }")?.description == "line 1, column 23: only one address part may be given")
        #expect(error("if header :comparator \"i;unicode-casemap\" \"a\" \"b\" { keep; }")?.description
                == "line 1, column 23: comparator \"i;unicode-casemap\" needs require \"comparator-i;unicode-casemap\"")
        #expect(error("if header :comparator \"i;octet\" :is \"a\" \"b\" { keep; }") == nil)
        #expect(error("if size 100 { keep; }")?.description == "line 1, column 4: size needs :over or :under")
        #expect(error("if size :over \"1\" { keep; }")?.description == "line 1, column 15: size expects a number here")
        #expect(error("if envelope :is \"from\" \"a\" { keep; }")?.description == "line 1, column 4: envelope needs require \"envelope\"")
        #expect(error("if not (true, false) { keep; }")?.description == "line 1, column 4: not takes one test")
        #expect(error("if exists \"x\" true { keep; }")?.description == "line 1, column 15: exists takes no nested test")
        #expect(error("keep { stop; }")?.description == "line 1, column 1: keep takes no block; end it with ';'")
        #expect(error("redirect [\"a@b.example\", \"c@d.example\"];")?.description == "line 1, column 10: redirect takes one string here, not a list")
        #expect(error("teleport \"mars\";")?.description == "line 1, column 1: unknown command teleport")
        #expect(error("if true { keep; } elsif false { discard; } else { stop; }") == nil)
    }
}
