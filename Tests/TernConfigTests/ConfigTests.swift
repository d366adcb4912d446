import Foundation
import Testing
@testable import TernConfig

@Suite struct ConfigTests {
    let base = URL(fileURLWithPath: "/etc/tern")

    @Test func defaults() throws {
        let c = try TernConfiguration.parse("", file: "t.toml", baseDirectory: base)
        #expect(c.hostname == "localhost")
        #expect(c.listen[.smtp] == [ListenAddress(host: "127.0.0.1", port: 2525)])
        #expect(c.limits.maxMessageSize == 50 * 1024 * 1024)
        #expect(c.limits.commandTimeout == .seconds(300))
        #expect(c.delivery.retry.first == .seconds(60))
        #expect(c.dataDirectory.path == "/etc/tern/tern-data")
    }

    @Test func fullConfig() throws {
        let text = """
            hostname = "mail.example.com"
            data = "/var/lib/tern"
            [listen]
            smtp = ["0.0.0.0:25", "[::]:25"]
            [limits]
            max_message_size = 1048576
            command_timeout = "30s"
            data_timeout = "2m"
            [dns]
            nameservers = ["127.0.0.1:5353"]
            """
        let c = try TernConfiguration.parse(text, file: "t.toml", baseDirectory: base)
        #expect(c.hostname == "mail.example.com")
        #expect(c.dataDirectory.path == "/var/lib/tern")
        #expect(c.listen[.smtp] == [ListenAddress(host: "0.0.0.0", port: 25), ListenAddress(host: "::", port: 25)])
        #expect(c.limits.maxMessageSize == 1_048_576)
        #expect(c.limits.commandTimeout == .seconds(30))
        #expect(c.limits.dataTimeout == .seconds(120))
        #expect(c.nameservers == ["127.0.0.1:5353"])
    }

    /// Found by the config fuzz target: toml++ stopped the process on an assertion for a table header without a name.
    @Test func tableHeaderWithoutANameIsAnError() {
        for text in ["hostname = \"mx.example.test\"\n[\nmax_connections = 3\n", "[[ ]]\n", "  [=x]\n"] {
            do {
                _ = try TernConfiguration.parse(text, file: "t.toml", baseDirectory: base)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.issues.first?.message == "TOML syntax: a table header needs a name, such as [listen]")
            }
        }
        #expect(TernConfiguration.headerProblem("[listen]\n[[x]]\n [\"quoted\"]\n")?.0 == nil)
    }

    /// Found by the config fuzz target's long run: a duration or size too large to count overflowed (a trap).
    @Test func hugeDurationsAndSizesAreErrorsNotTraps() {
        #expect(ConfigSchema.parseDuration("99999999999999999d") == nil)
        #expect(ConfigSchema.parseDuration("9223372036854775807s") == .seconds(Int.max))
        #expect(ConfigSchema.parseSize("99999999999999999G") == nil)
        #expect(ConfigSchema.parseDuration("5d") == .seconds(432_000) && ConfigSchema.parseSize("2K") == 2048)
    }

    /// Found by the config fuzz target: toml++ stopped the process on an assertion for "}" where an array needs a value.
    @Test func closingBraceInAnArrayIsAnError() {
        for (text, line) in [("y = [}", 1), ("hostname = \"x\"\ny=[\"\",\"\",}", 2), ("y = [1,\n # note\n }", 3), ("y = [[1, }, ]", 1),
                             ("t = { a = [ , } }", 1)] {
            do {
                _ = try TernConfiguration.parse(text, file: "t.toml", baseDirectory: base)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.issues.first?.message == "TOML syntax: an array needs a value or \"]\" here, not \"}\"", "\(text)")
                #expect(error.issues.first?.line == line, "\(text)")
            }
        }
        // Braces inside strings and comments, inline tables in arrays, and headers are not arrays' business.
        for text in ["y = [\"}\", '}', \"\"\"\n}\"\"\"]", "y = [ # }\n 1 ]", "y = [{a = 1}, {b = [2]}]", "[[x]]\nz = 1", "y = [1, 2, ]"] {
            #expect(TernConfiguration.arrayProblem(text) == nil, "\(text)")
        }
    }

    @Test func errorsCarryLines() {
        let text = """
            hostname = "bad host"
            [listen]
            smtp = ["nope"]
            imap = ["0.0.0.0:2525", "127.0.0.1:2525"]
            [limits]
            max_errors = "ten"
            typo = 3
            [tls]
            certificate = "/nonexistent.pem"
            """
        do {
            _ = try TernConfiguration.parse(text, file: "t.toml", baseDirectory: base)
            Issue.record("accepted a bad config")
        } catch {
            let lines = error.issues.map { "\($0.line ?? 0): \($0.message)" }
            #expect(lines.contains { $0.hasPrefix("1: hostname:") })
            #expect(lines.contains { $0.hasPrefix("3: listen.smtp: \"nope\" is not address:port") })
            #expect(lines.contains { $0.hasPrefix("6: limits.max_errors: must be a whole number") })
            #expect(lines.contains { $0.hasPrefix("7: unknown setting \"limits.typo\"") })
            #expect(lines.contains { $0.hasPrefix("9: tls.certificate") })
            #expect(lines.contains { $0.hasPrefix("10: tls.certificate") == false })
            #expect(error.issues.map { $0.line ?? 0 } == error.issues.map { $0.line ?? 0 }.sorted())
        }
    }

    @Test func nameserversMustBeIPv4AndAtMostThree() {
        for (list, ok) in [("[\"127.0.0.1\", \"10.0.0.1:5353\"]", true), ("[\"::1\"]", false), ("[\"dns.example\"]", false),
                           ("[\"127.0.0.1:99999\"]", false), ("[\"1.1.1.1\", \"1.0.0.1\", \"8.8.8.8\", \"8.8.4.4\"]", false)] {
            let text = "[dns]\nnameservers = \(list)\n"
            let parsed = Result { try TernConfiguration.parse(text, file: "t.toml", baseDirectory: base) }
            if ok { #expect((try? parsed.get()) != nil, "\(list)") } else { #expect((try? parsed.get()) == nil, "\(list)") }
        }
    }

    @Test func relayNetworksAreRangesButNeverTheWholeInternet() {
        for (list, ok) in [("[\"192.168.1.0/24\", \"10.0.0.0/8\", \"2001:db8::/48\", \"fd00::/16\", \"fc00::/7\", \"192.0.2.7\"]", true),
                           ("[\"0.0.0.0/0\"]", false), ("[\"::/0\"]", false), ("[\"128.0.0.0/1\"]", false),
                           ("[\"2000::/3\"]", false), ("[\"web.example\"]", false), ("[\"10.0.0.0/33\"]", false)] {
            let parsed = Result { try TernConfiguration.parse("[relay]\nnetworks = \(list)\n", file: "t.toml", baseDirectory: base) }
            if ok { #expect((try? parsed.get())?.relayNetworks.count == 6, "\(list)") } else { #expect((try? parsed.get()) == nil, "\(list)") }
        }
        #expect((try? TernConfiguration.parse("", file: "t.toml", baseDirectory: base))?.relayNetworks == [])
    }

    @Test func duplicateListenAddress() {
        let text = "[listen]\nsmtp = [\"127.0.0.1:2525\"]\nimap = [\"127.0.0.1:2525\"]\n"
        #expect(throws: ConfigErrors.self) { try TernConfiguration.parse(text, file: "t", baseDirectory: base) }
    }

    @Test func syntaxError() {
        do {
            _ = try TernConfiguration.parse("a = 1\n[limits\n", file: "t.toml", baseDirectory: base)
        } catch {
            #expect(error.issues.first?.line == 2)
            #expect(error.issues.first?.message.hasPrefix("TOML syntax") == true)
        }
    }

    @Test func exampleParsesToDefaults() throws {
        let c = try TernConfiguration.parse(ConfigSchema.example(), file: "example", baseDirectory: base)
        #expect(c.limits.maxRecipients == 100)
        #expect(ConfigSchema.example().contains("# Largest message accepted"))
    }

    @Test(arguments: [("30s", 30), ("5m", 300), ("2h", 7200), ("5d", 432_000), ("45", 45)])
    func durations(_ text: String, _ seconds: Int64) {
        #expect(ConfigSchema.parseDuration(text) == .seconds(seconds))
    }

    @Test func sizes() {
        #expect(ConfigSchema.parseSize("50M") == 52_428_800)
        #expect(ConfigSchema.parseSize("512K") == 524_288)
        #expect(ConfigSchema.parseSize("1GB") == 1_073_741_824)
        #expect(ConfigSchema.parseSize("0") == nil)
        #expect(ConfigSchema.parseSize("lots") == nil)
        #expect(ConfigSchema.parseDuration("soon") == nil)
    }

    @Test func listenAddresses() {
        #expect(ListenAddress("0.0.0.0:25") == ListenAddress(host: "0.0.0.0", port: 25))
        #expect(ListenAddress("[::1]:587") == ListenAddress(host: "::1", port: 587))
        #expect(ListenAddress("::1:587") == nil)
        #expect(ListenAddress("host:70000") == nil)
        #expect(ListenAddress("[::1]:587")?.description == "[::1]:587")
    }
}
