import Foundation
import TernConfig
import TernTestSupport
import Testing

/// Runs blocking socket clients on a thread of their own (the server's tasks keep the cooperative pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { k in
        Thread { k.resume(with: Result { try body() }) }.start()
    }
}

/// An in-process server with IMAP; `body` runs on a thread of its own against its port, and every problem it returns
/// fails the test.
func withIMAPServer(_ body: @escaping @Sendable (_ port: Int) throws -> [String]) async throws {
    let s = try await InProcessServer.start { $0.listen[.imap] = [ListenAddress(host: "127.0.0.1", port: 0)] }
    let port = s.port(of: .imap)
    let problems = try await onThread { try body(port) }
    #expect(problems.isEmpty, "\(problems)")
    try await s.stop()
}

/// A tagged OK, or a problem named `what`.
func expectOK(_ r: (untagged: [IMAPResponseLine], tagged: String), _ what: String, _ problems: inout [String]) {
    if !r.tagged.hasPrefix("OK") { problems.append("\(what): \(r.tagged)") }
}

/// RFC 7162 §3.2.10 (with its errata): a session that sends MODSEQ values while it holds back an expunge with a lower
/// one (FETCH, STORE and SEARCH may not report expunges, RFC 9051 §7.5.1) says a HIGHESTMODSEQ below that expunge, so
/// that a QRESYNC client that takes its sync point from what it was told, loses the connection and selects the mailbox
/// again hears of the expunge in VANISHED (EARLIER).
@Suite struct IMAPSyncPointTests {
    static func number(after marker: String, in text: String) -> UInt64? {
        text.range(of: marker).flatMap { UInt64(text[$0.upperBound...].prefix { $0.isNumber }) }
    }

    @Test func heldBackExpungeKeepsTheSyncPointBelowIt() async throws {
        try await withIMAPServer { port in
            var problems: [String] = []
            let b = try ModelIMAPClient(port: port)
            expectOK(try b.command("LOGIN alice@example.test pw"), "B LOGIN", &problems)
            for n in 1...3 {
                expectOK(try b.command("APPEND INBOX", literal: Array("Subject: \(n)\r\n\r\nbody \(n)\r\n".utf8)), "APPEND", &problems)
            }
            let a = try ModelIMAPClient(port: port)
            expectOK(try a.command("LOGIN alice@example.test pw"), "A LOGIN", &problems)
            expectOK(try a.command("ENABLE QRESYNC"), "ENABLE", &problems)
            let selected = try a.command("SELECT INBOX")
            let validity = selected.untagged.lazy.compactMap { Self.number(after: "[UIDVALIDITY ", in: $0.text) }.first ?? 0

            // B expunges UID 1, then flags UID 2: the flag change's MODSEQ is above the expunge's.
            expectOK(try b.command("SELECT INBOX"), "B SELECT", &problems)
            expectOK(try b.command("UID STORE 1 +FLAGS (\\Deleted)"), "B STORE", &problems)
            expectOK(try b.command("UID EXPUNGE 1"), "B EXPUNGE", &problems)
            let status = try b.command("STATUS INBOX (HIGHESTMODSEQ)")
            guard let expungeModSeq = status.untagged.lazy.compactMap({ Self.number(after: "HIGHESTMODSEQ ", in: $0.text) }).first else {
                return ["no HIGHESTMODSEQ in \(status.untagged.map(\.text))"]
            }
            expectOK(try b.command("UID STORE 2 +FLAGS (\\Flagged)"), "B STORE", &problems)

            // A's FETCH may not report the expunge; it tells of the flag change with its MODSEQ, and of a sync point
            // below the expunge.
            let fetch = try a.command("FETCH 1:* (FLAGS)")
            let lines = fetch.untagged.map(\.text)
            if lines.contains(where: { $0.hasPrefix("* VANISHED") || $0.hasSuffix(" EXPUNGE") }) { problems.append("expunge during FETCH: \(lines)") }
            let told = lines.compactMap { Self.number(after: "MODSEQ (", in: $0) }.max() ?? 0
            if told <= expungeModSeq { problems.append("the flag change was not told above the expunge (\(told) ≤ \(expungeModSeq)): \(lines)") }
            let codes = lines.filter { $0.hasPrefix("* OK [HIGHESTMODSEQ ") }.compactMap { Self.number(after: "[HIGHESTMODSEQ ", in: $0) }
            guard let syncPoint = codes.last else { return problems + ["no HIGHESTMODSEQ while the expunge is held back: \(lines)"] }
            if syncPoint >= expungeModSeq { problems.append("sync point \(syncPoint) not below the held expunge's \(expungeModSeq)") }

            // The connection is lost; from that sync point a new session hears of the expunge and of the flag change.
            let again = try ModelIMAPClient(port: port)
            expectOK(try again.command("LOGIN alice@example.test pw"), "LOGIN", &problems)
            expectOK(try again.command("ENABLE QRESYNC"), "ENABLE", &problems)
            let resync = try again.command("SELECT INBOX (QRESYNC (\(validity) \(syncPoint) 1:3))")
            let resyncLines = resync.untagged.map(\.text)
            if !resyncLines.contains("* VANISHED (EARLIER) 1") { problems.append("no VANISHED (EARLIER) 1: \(resyncLines)") }
            if !resyncLines.contains(where: { $0.contains("FETCH (") && $0.contains("UID 2") && $0.contains("\\Flagged") }) {
                problems.append("UID 2's flag change not reported: \(resyncLines)")
            }

            // Once A may report the expunge, it does, and says no sync point of its own any more.
            let noop = try a.command("NOOP")
            let noopLines = noop.untagged.map(\.text)
            if !noopLines.contains("* VANISHED 1") { problems.append("NOOP did not report the expunge: \(noopLines)") }
            if noopLines.contains(where: { $0.hasPrefix("* OK [HIGHESTMODSEQ ") }) { problems.append("sync point after the expunge was told: \(noopLines)") }
            return problems
        }
    }
}

extension IMAPSyncPointTests {
    /// The same between commands: NOTIFY (selected-delayed) pushes a new message's FETCH with its MODSEQ while an
    /// expunge is held back; the HIGHESTMODSEQ below it comes after that FETCH, with no command to carry it.
    @Test func notifyPushOfANewMessageSaysTheSyncPoint() async throws {
        try await withIMAPServer { port in
            var problems: [String] = []
            let a = try ModelIMAPClient(port: port), b = try ModelIMAPClient(port: port)
            for c in [a, b] { expectOK(try c.command("LOGIN alice@example.test pw"), "LOGIN", &problems) }
            for n in 1...2 { expectOK(try b.command("APPEND INBOX", literal: Array("Subject: \(n)\r\n\r\nbody\r\n".utf8)), "APPEND", &problems) }
            expectOK(try a.command("ENABLE QRESYNC"), "ENABLE", &problems)
            expectOK(try a.command("SELECT INBOX"), "SELECT", &problems)
            expectOK(try a.command("NOTIFY SET (selected-delayed (MessageNew (UID FLAGS) MessageExpunge))"), "NOTIFY", &problems)
            expectOK(try b.command("SELECT INBOX"), "SELECT", &problems)
            expectOK(try b.command("UID STORE 1 +FLAGS (\\Deleted)"), "STORE", &problems)
            expectOK(try b.command("UID EXPUNGE 1"), "EXPUNGE", &problems)
            let status = try b.command("STATUS INBOX (HIGHESTMODSEQ)")
            let expunge = status.untagged.lazy.compactMap { Self.number(after: "HIGHESTMODSEQ ", in: $0.text) }.first ?? 0
            expectOK(try b.command("APPEND INBOX", literal: Array("Subject: 3\r\n\r\nbody\r\n".utf8)), "APPEND", &problems)
            var pushed: [String] = []
            while pushed.count < 10, !(pushed.last?.hasPrefix("* OK [HIGHESTMODSEQ ") ?? false), let line = try? a.readResponseLine() {
                pushed.append(line.text)
            }
            guard let fetch = pushed.firstIndex(where: { $0.contains("FETCH (") && $0.contains("MODSEQ (") }) else {
                return problems + ["no FETCH of the new message: \(pushed)"]
            }
            guard let ok = pushed.lastIndex(where: { $0.hasPrefix("* OK [HIGHESTMODSEQ ") }), ok > fetch,
                  let point = Self.number(after: "[HIGHESTMODSEQ ", in: pushed[ok]) else {
                return problems + ["no HIGHESTMODSEQ after the pushed FETCH: \(pushed)"]
            }
            if point >= expunge { problems.append("sync point \(point) not below the held expunge's \(expunge)") }
            if pushed.contains(where: { $0.hasPrefix("* VANISHED") }) { problems.append("expunge pushed under selected-delayed: \(pushed)") }
            return problems
        }
    }
}

/// The selected mailbox deleted by another session: the sessions that had it selected end with BYE (as Dovecot's and
/// Cyrus's do) at their next command or, in IDLE, at once; they answered NO to every command until CLOSE before.
@Suite struct IMAPDeletedMailboxTests {
    @Test func sessionsOnADeletedMailboxEndWithBye() async throws {
        try await withIMAPServer { port in
            var problems: [String] = []
            /// The lines until the server closes the connection.
            func linesUntilClosed(_ c: ModelIMAPClient) -> [String] {
                var lines: [String] = []
                while lines.count < 20, let line = try? c.readResponseLine() { lines.append(line.text) }
                return lines
            }
            let owner = try ModelIMAPClient(port: port)
            expectOK(try owner.command("LOGIN alice@example.test pw"), "LOGIN", &problems)
            expectOK(try owner.command("CREATE Projects"), "CREATE", &problems)
            expectOK(try owner.command("APPEND Projects", literal: Array("Subject: p\r\n\r\nbody\r\n".utf8)), "APPEND", &problems)
            let busy = try ModelIMAPClient(port: port), idle = try ModelIMAPClient(port: port)
            for c in [busy, idle] {
                expectOK(try c.command("LOGIN alice@example.test pw"), "LOGIN", &problems)
                expectOK(try c.command("SELECT Projects"), "SELECT", &problems)
            }
            idle.send("i1 IDLE\r\n")
            if let cont = try? idle.readResponseLine(), !cont.text.hasPrefix("+") { problems.append("IDLE: \(cont.text)") }

            expectOK(try owner.command("DELETE Projects"), "DELETE", &problems)
            let idleLines = linesUntilClosed(idle)
            if idleLines.first?.hasPrefix("* BYE Selected mailbox was deleted") != true { problems.append("in IDLE: \(idleLines)") }
            busy.send("b1 FETCH 1 (FLAGS)\r\n")
            let busyLines = linesUntilClosed(busy)
            if busyLines != ["* BYE Selected mailbox was deleted, have to disconnect"] { problems.append("FETCH: \(busyLines)") }
            // The session that deleted it, and the others, go on.
            expectOK(try owner.command("NOOP"), "NOOP", &problems)
            if try owner.command("LIST \"\" Projects").untagged.contains(where: { $0.text.contains("Projects") }) {
                problems.append("Projects still listed")
            }
            return problems
        }
    }
}

/// COPY and MOVE of messages the session still shows but another session expunged: nothing is copied or moved, the
/// expunges are reported, and the answer is NO [EXPUNGEISSUED] (RFC 9051 §6.4.7: a failed COPY leaves the target as
/// it was; RFC 5530; Dovecot's answer). It was OK, with the rest copied, and a client took the message as copied.
@Suite struct IMAPExpungedCopyTests {
    @Test func copyAndMoveOfAnExpungedMessageCopyNothing() async throws {
        try await withIMAPServer { port in
            var problems: [String] = []
            let a = try ModelIMAPClient(port: port), b = try ModelIMAPClient(port: port)
            for c in [a, b] { expectOK(try c.command("LOGIN alice@example.test pw"), "LOGIN", &problems) }
            for n in 1...3 { expectOK(try b.command("APPEND INBOX", literal: Array("Subject: \(n)\r\n\r\nbody\r\n".utf8)), "APPEND", &problems) }
            expectOK(try a.command("SELECT INBOX"), "SELECT", &problems)
            expectOK(try b.command("SELECT INBOX"), "SELECT", &problems)
            func archived() throws -> String {
                try b.command("STATUS Archive (MESSAGES)").untagged.first { $0.text.hasPrefix("* STATUS") }?.text ?? ""
            }
            expectOK(try b.command("UID STORE 1 +FLAGS (\\Deleted)"), "STORE", &problems)
            expectOK(try b.command("UID EXPUNGE 1"), "EXPUNGE", &problems)

            let copy = try a.command("COPY 1:2 Archive")
            if !copy.tagged.hasPrefix("NO [EXPUNGEISSUED]") { problems.append("COPY: \(copy.tagged)") }
            if !copy.untagged.map(\.text).contains("* 1 EXPUNGE") { problems.append("COPY did not report the expunge: \(copy.untagged.map(\.text))") }
            if try archived() != "* STATUS \"Archive\" (MESSAGES 0)" { problems.append("after COPY: \(try archived())") }
            // The session's view is now right: the same messages (UIDs 2 and 3) copy.
            let again = try a.command("COPY 1:2 Archive")
            if !again.tagged.hasPrefix("OK [COPYUID ") { problems.append("COPY again: \(again.tagged)") }

            expectOK(try b.command("UID STORE 2 +FLAGS (\\Deleted)"), "STORE", &problems)
            expectOK(try b.command("UID EXPUNGE 2"), "EXPUNGE", &problems)
            let move = try a.command("UID MOVE 2:3 Archive")
            if !move.tagged.hasPrefix("NO [EXPUNGEISSUED]") { problems.append("MOVE: \(move.tagged)") }
            if try archived() != "* STATUS \"Archive\" (MESSAGES 2)" { problems.append("after MOVE: \(try archived())") }
            let left = try a.command("UID FETCH 1:* (UID)").untagged.map(\.text)
            if left != ["* 1 FETCH (UID 3)"] { problems.append("UID 3 did not stay in INBOX: \(left)") }
            return problems
        }
    }
}
