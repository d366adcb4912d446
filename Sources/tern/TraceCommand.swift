import TernAdmin
import ArgumentParser
import Deliverability
import Foundation
import MailStore

/// `tern trace MESSAGE-ID|QUEUE-ID`: the journey of a message through this server, from the delivery log.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show what happened to a message here: received from whom, the checks, stored or queued, every delivery attempt with the remote reply, delivered or bounced.",
        discussion: """
            Give the queue id (in the 250 reply to DATA, the Received field Tern added, the logs and `tern queue list`) \
            or the Message-ID (with or without angle brackets). Bounces, delay notices and tester reports this message \
            caused are listed under their own queue ids. Events are kept for log.delivery_retention (30 days by default). \
            Exit 1 when the log has nothing for the id.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "A queue id or a Message-ID.") var id: String
    @Flag(help: "Print JSON instead of text.") var json = false

    struct Event: Encodable {
        var at: String, queueID: String, messageID: String?, event: String, detail: String
    }

    func run() async throws {
        let (config, store) = try await options.openStore()
        if !config.keepsDeliveryLog {
            FileHandle.standardError.write(Data("note: log.delivery_retention is 0, so no new events are logged\n".utf8))
        }
        let events = try await store.deliveryLog(id: id.trimmingCharacters(in: .whitespaces))
        let iso = ISO8601DateFormatter()
        if json {
            try printJSON(events.map { Event(at: iso.string(from: $0.at), queueID: $0.queueID, messageID: $0.messageID, event: $0.kind.rawValue, detail: $0.detail) })
        } else if !events.isEmpty {
            print(Self.render(events), terminator: "")
        }
        if events.isEmpty {
            FileHandle.standardError.write(Data("nothing in the delivery log for \(id)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func render(_ events: [DeliveryEvent]) -> String {
        var out = ""
        var order: [String] = []
        for e in events where !order.contains(e.queueID) { order.append(e.queueID) }
        for queueID in order {
            let mine = events.filter { $0.queueID == queueID }
            out += "queue id \(queueID)"
            // What came from a message or a client (its Message-ID, addresses, names) never goes raw to the terminal.
            if let mid = mine.compactMap(\.messageID).first { out += "  Message-ID <\(mid.escapingControls())>" }
            out += "\n"
            var previous: Date?
            for e in mine {
                var delay = ""
                if let previous, e.at.timeIntervalSince(previous) >= 1 { delay = "  (+\(ReceivedPath.duration(e.at.timeIntervalSince(previous))))" }
                out += "  \(ReceivedPath.timestamp(e.at)) UTC  \(e.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(e.detail.escapingControls())\(delay)\n"
                previous = e.at
            }
            out += "\n"
        }
        return out
    }
}
