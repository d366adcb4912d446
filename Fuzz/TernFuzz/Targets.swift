import Dispatch
import Foundation
import NIOCore
@testable import DKIM
@testable import DNSResolverLive
@testable import IMAPCodec
@testable import MailAuth
@testable import MailCore
@testable import MailDNS
@testable import MailMessage
@testable import POP3Codec
@testable import SASL
@testable import SMTPCodec
@testable import Sieve
@testable import TernConfig

/// One parser fed by the network or by mail, given arbitrary bytes. A target must never crash, hang or leak,
/// whatever the bytes; what it returns does not matter (libFuzzer watches the process).
enum FuzzTargets {
    static let all: [String: @Sendable ([UInt8]) -> Void] = [
        // SMTP: command lines, the framer over a stream (commands, DATA, BDAT), the client's reply parser.
        "smtp-command": { bytes in _ = try? SMTPCommandParser.parse(bytes) },
        "smtp-framer": { bytes in
            var framer = SMTPFramer(maxCommandLine: 512, maxTextLine: 1000)
            var buffer = ByteBuffer(bytes: bytes)
            var steps = 0
            while steps < 10_000, let event = framer.next(&buffer) {
                steps += 1
                if case .line(let line) = event {
                    switch line.first {
                    case UInt8(ascii: "D"): framer.startData()
                    case UInt8(ascii: "B"): framer.startBDAT(size: Int(line.count) * 3, first: true)
                    default: break
                    }
                }
                if case .bdatEnd = event { framer.finishBDATMessage() }
            }
        },
        "smtp-reply": { bytes in
            var parser = SMTPReplyParser()
            for line in bytes.split(separator: 10, omittingEmptySubsequences: false) {
                if (try? parser.feed(Array(line))) == nil { parser = SMTPReplyParser() }
            }
        },
        // IMAP: the framer (lines and literals) and the parser of each command it frames, before and after login.
        "imap-command": { bytes in
            var framer = IMAPFramer(maxLine: 8192, maxLiteral: 8192, maxAppendLiteral: 65_536)
            var buffer = ByteBuffer(bytes: bytes)
            var steps = 0
            while steps < 10_000, let event = framer.next(&buffer) {
                steps += 1
                if case .command(let command) = event {
                    _ = try? IMAPCommandParser.parse(command)
                    _ = try? IMAPCommandParser.parse(command, utf8Mailboxes: true)
                }
            }
            // Logged in, with large APPEND literals spooled (their pieces handed out, a marker left in the command).
            var spooling = IMAPFramer(maxLine: 8192, maxLiteral: 8192, maxAppendLiteral: 65_536)
            spooling.authenticated = true
            spooling.spoolAbove = 16
            spooling.spoolToken = Array("T".utf8)
            var again = ByteBuffer(bytes: bytes)
            steps = 0
            while steps < 10_000, let event = spooling.next(&again) {
                steps += 1
                if case .command(let command) = event { _ = try? IMAPCommandParser.parse(command) }
            }
            _ = IMAPURL.parse(String(decoding: bytes, as: UTF8.self))
            _ = ModifiedUTF7.decode(String(decoding: bytes, as: UTF8.self))
        },
        // Sieve scripts (ManageSieve PUTSCRIPT, tern sieve put): parsed, checked, and run against a message when valid.
        "sieve": { bytes in
            guard let script = try? SieveScript.compile(String(decoding: bytes, as: UTF8.self)) else { return }
            let message = SieveMessage(bytes: Array(("From: A <a@b.example>\r\nTo: c@d.example\r\nSubject: =?UTF-8?Q?x=C3=A9?=\r\n"
                                                     + "Date: Sat, 5 Dec 2026 10:00:00 +0100\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                                                     + "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n--b--\r\n").utf8),
                                       envelopeFrom: "a+tag@b.example", envelopeTo: "c@d.example")
            let environment = SieveEnvironment(now: Date(timeIntervalSince1970: 2_000_000_000), items: ["name": "Tern"], mailboxes: ["INBOX", "a"],
                                               spamScore: 3, spamPercent: 25)
            _ = SieveInterpreter.run(script, message: message, environment: environment)
        },
        "pop3-command": { bytes in
            for line in bytes.split(separator: 10) { _ = try? POP3CommandParser.parse(Array(line)) }
        },
        // Mail: MIME structure, header fields, encoded words, dates, addresses.
        "mime": { bytes in
            let root = MIMEParser.parse(bytes)
            for part in [root] + root.children.prefix(20) {
                _ = part.header("Subject").map(EncodedWords.decode)
                _ = part.header("Date").map(RFC5322Date.parse)
                _ = part.header("Content-Type").map(MIMEParser.parseContentType)
            }
            _ = Mbox.messages(in: bytes)
        },
        "address": { bytes in
            _ = try? EmailAddress.parse(bytes)
            _ = try? EmailAddress.parse(bytes, allowUTF8: false)
            _ = IDNA.toUnicode(String(decoding: bytes, as: UTF8.self))
            // A header field's address list (From, To, Sender: what DMARC and Sieve read).
            _ = AddressList.parse(String(decoding: bytes, as: UTF8.self))
        },
        // Authentication records: a DKIM-Signature field and key record, DMARC and SPF records.
        "dkim-signature": { bytes in
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            _ = DKIMSignature.parse(RawHeaderField(name: "DKIM-Signature", raw: Array("DKIM-Signature:".utf8) + bytes), now: now)
            _ = DKIMPublicKey.parse(String(decoding: bytes, as: UTF8.self))
            _ = DKIMTagList.parse(String(decoding: bytes, as: UTF8.self))
        },
        "dmarc-record": { bytes in _ = DMARCRecord.parse(String(decoding: bytes, as: UTF8.self)) },
        "spf-record": { bytes in
            // The record as the TXT answer of the sender's domain, evaluated as port 25 would (a plain-data DNS).
            var dns = StaticResolver()
            dns.txt["fuzz.test"] = [String(decoding: bytes, as: UTF8.self)]
            dns.a["fuzz.test"] = ["192.0.2.1"]
            let checker = SPFChecker(resolver: dns, clock: SystemClock())
            let done = DispatchSemaphore(value: 0)
            Task {
                _ = await checker.check(ip: "192.0.2.1", mailFrom: "user@fuzz.test", helo: "fuzz.test")
                done.signal()
            }
            done.wait()
        },
        // DNS answers as the resolver reads them, for each record type it asks for.
        "dns-answer": { bytes in
            for type in [DNSRecordType.a, .aaaa, .mx, .txt, .ptr, .ns] { _ = LiveResolver.parse(bytes, type, name: "fuzz.test") }
        },
        // SASL: PLAIN, LOGIN and SCRAM-SHA-256 server exchanges fed the client's messages.
        "sasl": { bytes in
            let messages = bytes.split(separator: 0, maxSplits: 3, omittingEmptySubsequences: false).map(Array.init)
            for mechanism in SASLMechanismName.allCases {
                var server = SASLServer(mechanism: mechanism, serverNonce: "fuzznonce", fakeSaltKey: [1, 2, 3])
                var step = server.start(initialResponse: messages.first)
                for message in messages.dropFirst() {
                    switch step {
                    case .challenge: step = server.respond(message)
                    case .checkPassword: step = server.passwordChecked(false)
                    case .needCredentials:
                        step = server.credentials(SCRAMCredentials(iterations: 1, salt: [1], storedKey: Array(repeating: 7, count: 32),
                                                                   serverKey: Array(repeating: 9, count: 32)))
                    default: break
                    }
                }
            }
        },
        // The config file (TOML and Tern's checks on every value).
        "config": { bytes in
            _ = try? TernConfiguration.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.toml",
                                             baseDirectory: URL(fileURLWithPath: "/nonexistent"))
        },
    ]
}

/// libFuzzer's entry: the target named by TERN_FUZZ_TARGET.
nonisolated(unsafe) var selected: (@Sendable ([UInt8]) -> Void)?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected?(bytes)
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The executable's main (SwiftPM names it after the module and points `main` at it): picks the target, then hands
/// over to libFuzzer's driver with the command line (corpus folders, -runs=, -max_total_time=, …).
@_cdecl("TernFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    let name = ProcessInfo.processInfo.environment["TERN_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTargets.all[name] else {
        FileHandle.standardError.write(Data("set TERN_FUZZ_TARGET to one of: \(FuzzTargets.all.keys.sorted().joined(separator: " "))\n".utf8))
        return 64
    }
    selected = target
    var c = argc
    var v = argv
    return runDriver(&c, &v, fuzzOne)
}
