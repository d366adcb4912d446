import TernAdmin
import ArgumentParser
import DKIM
import Foundation
import MailCore
import MailDNS
import MailMessage
import MailStore
import StoreFactory
import TernConfig


struct DKIMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dkim", abstract: "Manage the DKIM keys that sign outgoing mail.",
                                                    subcommands: [Generate.self, List.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new RSA-2048 and Ed25519 key pair for a domain; the newest pair signs from then on.",
            discussion: "Publish the printed TXT records before the old ones are removed (key rotation: both stay in DNS for a while).")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            let domain = Domain.canonical(domain)
            guard try await store.domains().contains(where: { $0.name == domain }) else {
                throw ValidationError("\(domain) is not a domain of this server (tern domain add \(domain))")
            }
            for key in try await DKIMKeys.generate(store: store, domain: domain) {
                print(ZoneRecords.txt("\(key.selector)._domainkey.\(domain).", key.dnsRecord))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List DKIM keys (the newest of each algorithm signs).")
        @OptionGroup var options: ConfigOption
        @Argument var domain: String?
        func run() async throws {
            let (_, store) = try await options.openStore()
            for r in try await store.dkimKeys(domain: domain.map { Domain.canonical($0) }) {
                print("\(r.domain)\t\(r.selector)\t\(r.algorithm)\tcreated \(ISO8601DateFormatter().string(from: r.created))")
            }
        }
    }
}


struct DNSRecordsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns-records",
        abstract: "Print the DNS records to publish for a domain, in zone-file form.",
        discussion: "MX, the host's A/AAAA, SPF, DKIM (the signing keys), DMARC, MTA-STS and TLS-RPT, and the PTR that the server's address should have. Addresses come from --ipv4/--ipv6 (the server's public addresses); without them the A/AAAA/PTR lines are left for you to fill in.")
    @OptionGroup var options: ConfigOption
    @Argument var domain: String
    @Option(help: "The server's public IPv4 address.") var ipv4: String?
    @Option(help: "The server's public IPv6 address.") var ipv6: String?

    func run() async throws {
        let (config, store) = try await options.openStore()
        let domain = Domain.canonical(domain)
        guard try await store.domains().contains(where: { $0.name == domain }) else {
            throw ValidationError("\(domain) is not a domain of this server (tern domain add \(domain))")
        }
        if let ipv4, !AddressLiteral.isIPv4(ipv4) { throw ValidationError("\(ipv4) is not an IPv4 address") }
        if let ipv6, !AddressLiteral.isIPv6(ipv6) { throw ValidationError("\(ipv6) is not an IPv6 address") }
        let keys = try await DKIMKeys.active(store: store, domain: domain)
        print(DNSRecords.zone(domain: domain, host: config.hostname, ipv4: ipv4, ipv6: ipv6, keys: keys, now: store.clock.now), terminator: "")
    }
}


struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue", abstract: "Inspect and manage the outbound queue.",
                                                    subcommands: [List.self, Show.self, Retry.self, Delete.self])

    static func describe(_ r: QueuedRecipient) -> String {
        switch r.status {
        case .delivered: return "delivered"
        case .failed: return "failed"
        case .pending: return r.attempts == 0 ? "waiting" : "deferred"
        }
    }

    static func time(_ d: Date) -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: d)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per queued message: id, age, size, sender, recipients and their state.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Machine-readable output (JSON lines).") var json = false
        func run() async throws {
            let (_, store) = try await options.openStore()
            let messages = try await store.queuedMessages(dueBy: nil, after: 0, limit: 1_000_000)
            if messages.isEmpty && !json { print("the queue is empty"); return }
            for m in messages {
                if json {
                    let obj: [String: Any] = [
                        "id": m.queueID, "from": m.envelope.mailFrom, "size": m.size, "created": QueueCommand.time(m.created),
                        "recipients": m.recipients.map { r -> [String: Any] in
                            var o: [String: Any] = ["address": r.address, "state": QueueCommand.describe(r), "attempts": r.attempts,
                                                    "next_attempt": QueueCommand.time(r.nextAttempt)]
                            if let l = r.lastReply { o["last_reply"] = l }
                            return o
                        },
                    ]
                    print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
                    continue
                }
                let age = Int(store.clock.now.timeIntervalSince(m.created))
                print("\(m.queueID)  \(m.size) octets  \(age / 3600)h\(age % 3600 / 60)m old  from <\(m.envelope.mailFrom)>")
                for r in m.recipients {
                    var line = "    \(r.address)  \(QueueCommand.describe(r)), \(r.attempts) attempt\(r.attempts == 1 ? "" : "s")"
                    if r.status == .pending { line += ", next \(QueueCommand.time(r.nextAttempt))" }
                    print(line)
                    if let reply = r.lastReply { print("      last reply: \(reply)") }
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Everything about one queued message, and its header.")
        @OptionGroup var options: ConfigOption
        @Argument var id: String
        func run() async throws {
            let (_, store) = try await options.openStore()
            guard let m = try await store.queuedMessage(queueID: id) else { throw ValidationError("no queued message \(id)") }
            print("queue id     \(m.queueID)")
            print("from         <\(m.envelope.mailFrom)>")
            print("size         \(m.size) octets")
            print("queued       \(QueueCommand.time(m.created))")
            if let e = m.envelope.envelopeID { print("envelope id  \(e)") }
            for r in m.recipients {
                print("recipient    \(r.address)")
                print("  state      \(QueueCommand.describe(r))")
                print("  attempts   \(r.attempts)")
                if let t = r.lastAttempt { print("  last try   \(QueueCommand.time(t))\(r.remoteHost.map { " at \($0)" } ?? "")") }
                if let l = r.lastReply { print("  last reply \(l)") }
                if r.status == .pending { print("  next try   \(QueueCommand.time(r.nextAttempt))") }
            }
            let content = try await store.content(of: m.messageID)
            let end = RawHeader.end(content)
            print("\n" + String(decoding: content[..<end], as: UTF8.self), terminator: "")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Try a message (or every message) again now.",
                                                        discussion: "A running server is told at once (SIGUSR1 to the pid in <data>/serve.lock).")
        @OptionGroup var options: ConfigOption
        @Argument(help: "A queue id; all messages when omitted.") var id: String?
        func run() async throws {
            let (config, store) = try await options.openStore()
            let n = try await store.retryQueued(queueID: id)
            // Wake the running server's queue, as postqueue -f does Postfix's; without one the next start sends them.
            if let pid = StoreFactory.runningServer(config.dataDirectory) { _ = kill(pid, SIGUSR1) }
            if let id, n == 0 { throw ValidationError("no queued message \(id) with recipients left to try") }
            print("\(n) message\(n == 1 ? "" : "s") due now")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a message from the queue without telling its sender.")
        @OptionGroup var options: ConfigOption
        @Argument var id: String
        func run() async throws {
            let (config, store) = try await options.openStore()
            guard try await store.deleteQueued(queueID: id) else { throw ValidationError("no queued message \(id)") }
            if config.keepsDeliveryLog {
                try await store.log([DeliveryEvent(at: store.clock.now, queueID: id, kind: .deleted, detail: "removed from the queue by tern queue delete; no bounce sent")])
            }
            print("deleted \(id)")
        }
    }
}
