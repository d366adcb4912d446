import Foundation
import MailCore
import MailStore
import TernTestSupport

/// What every mail store backend must do, written once over the store protocols (`MailStore`) and run against each
/// backend with the same code: SQLite now, PostgreSQL later (issue 21). A case gets a new, empty store on a manual
/// clock and returns what it found wrong (nothing, when the backend conforms).
public enum StoreConformance {
    /// Makes a new, empty store that reads time from `clock`.
    public typealias Factory = @Sendable (ManualClock) async throws -> any MailStore

    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        let body: @Sendable (any MailStore, ManualClock) async throws -> [String]
        public var description: String { name }

        /// Runs the case on a new store from `factory`; returns the failures.
        public func run(_ factory: Factory) async throws -> [String] {
            let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
            return try await body(try await factory(clock), clock)
        }
    }

    public static let cases: [Case] = [
        Case(name: "UIDs strictly increase under concurrent delivery", body: uidsUnderConcurrency),
        Case(name: "MODSEQ grows with every change and deltas report it", body: modSeqAndDeltas),
        Case(name: "flags and keywords: add, remove, replace, UNCHANGEDSINCE", body: flagOperations),
        Case(name: "copy and move keep content and flags under new UIDs", body: copyAndMove),
        Case(name: "quota usage follows what the mailboxes hold", body: usage),
        Case(name: "a mailbox deleted and created again is a new mailbox", body: mailboxIdentity),
        Case(name: "outbound queue: due times, attempts, completion", body: queue),
        Case(name: "delivery log: kept in order, pruned by age", body: deliveryLog),
    ]

    // MARK: helpers

    static func account(_ store: any MailStore, _ local: String = "alice") async throws -> (AccountID, MailboxID) {
        if try await store.domains().isEmpty { try await store.addDomain("example.test") }
        let a = try await store.addAccount(try EmailAddress.parse("\(local)@example.test"), password: "pw-\(local)")
        let inbox = try await store.mailboxes(account: a).first { $0.name == "INBOX" }!
        return (a, inbox.id)
    }

    static func message(_ n: Int, size: Int = 0) -> [UInt8] {
        Array("From: a@remote.test\r\nSubject: message \(n)\r\n\r\n\(String(repeating: "x", count: size))body \(n)\r\n".utf8)
    }

    static func deliver(_ store: any MailStore, _ account: AccountID, _ n: Int, at date: Date, mailbox: String? = nil) async throws -> UID {
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
        let receipt = try await store.deliver(Delivery(content: .inline(message(n)), envelope: envelope,
                                                       targets: [DeliveryTarget(account: account, mailbox: mailbox)], internalDate: date))
        return receipt.placements[0].uid
    }

    // MARK: cases

    static func uidsUnderConcurrency(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let now = clock.now
        let uids = try await withThrowingTaskGroup(of: [UID].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var mine: [UID] = []
                    for i in 0..<25 { mine.append(try await deliver(store, a, t * 100 + i, at: now)) }
                    return mine
                }
            }
            var all: [UID] = []
            for try await part in group {
                // Each writer's own UIDs come out in the order it delivered.
                if part != part.sorted() { problems.append("one writer's UIDs not increasing: \(part.map(\.rawValue))") }
                all += part
            }
            return all
        }
        if Set(uids).count != 200 { problems.append("\(200 - Set(uids).count) UIDs handed out twice") }
        let stored = try await store.messages(mailbox: inbox).map(\.uid)
        if stored.count != 200 || stored != stored.sorted() || Set(stored) != Set(uids) { problems.append("the mailbox holds \(stored.count) messages, not the 200 delivered in UID order") }
        let state = try await store.mailboxChanges(mailbox: inbox, since: nil)
        if let top = stored.last, state.uidNext.rawValue <= top.rawValue { problems.append("UIDNEXT \(state.uidNext.rawValue) not above \(top.rawValue)") }
        return problems
    }

    static func modSeqAndDeltas(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        var uids: [UID] = []
        for i in 0..<3 { uids.append(try await deliver(store, a, i, at: clock.now)) }
        let before = try await store.mailboxChanges(mailbox: inbox, since: nil).highestModSeq
        let (changed, _) = try await store.storeFlags(mailbox: inbox, uids: [uids[1]], operation: .add, flags: .seen, keywords: [], unchangedSince: nil)
        guard let c = changed.first, c.modSeq > before else { return ["STORE did not raise MODSEQ above \(before)"] }
        var delta = try await store.mailboxChanges(mailbox: inbox, since: before)
        if delta.changed.map(\.uid) != [uids[1]] { problems.append("delta since \(before): \(delta.changed.map(\.uid.rawValue)), not [\(uids[1].rawValue)]") }
        if delta.highestModSeq != c.modSeq { problems.append("HIGHESTMODSEQ \(delta.highestModSeq) is not the change's \(c.modSeq)") }
        // A STORE that changes nothing does not move MODSEQ.
        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[1]], operation: .add, flags: .seen, keywords: [], unchangedSince: nil)
        if try await store.mailboxChanges(mailbox: inbox, since: nil).highestModSeq != c.modSeq {
            problems.append("a STORE that changed nothing raised MODSEQ")
        }
        _ = try await store.expunge(mailbox: inbox, uids: [uids[0]])
        delta = try await store.mailboxChanges(mailbox: inbox, since: c.modSeq)
        if delta.expunged != [uids[0]] { problems.append("expunged since \(c.modSeq): \(delta.expunged.map(\.rawValue))") }
        if delta.highestModSeq <= c.modSeq { problems.append("EXPUNGE did not raise HIGHESTMODSEQ") }
        if try await store.expunged(mailbox: inbox, since: before) != [uids[0]] { problems.append("expunged(since:) misses the expunge") }
        return problems
    }

    static func flagOperations(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let u = try await deliver(store, a, 1, at: clock.now)
        func flags() async throws -> (MessageFlags, Set<String>) {
            let m = try await store.messages(mailbox: inbox).first { $0.uid == u }!
            return (m.flags, Set(m.keywords))
        }
        _ = try await store.storeFlags(mailbox: inbox, uids: [u], operation: .add, flags: [.seen, .flagged], keywords: ["$Work", "Later"], unchangedSince: nil)
        if try await flags() != ([.seen, .flagged], ["$Work", "Later"]) { problems.append("add: \(try await flags())") }
        _ = try await store.storeFlags(mailbox: inbox, uids: [u], operation: .remove, flags: .flagged, keywords: ["Later"], unchangedSince: nil)
        if try await flags() != ([.seen], ["$Work"]) { problems.append("remove: \(try await flags())") }
        let (r, _) = try await store.storeFlags(mailbox: inbox, uids: [u], operation: .replace, flags: .answered, keywords: ["Done"], unchangedSince: nil)
        if try await flags() != ([.answered], ["Done"]) { problems.append("replace: \(try await flags())") }
        // UNCHANGEDSINCE below the message's MODSEQ: refused, nothing changed (RFC 7162 §3.1.3).
        let old = ModSeq(rawValue: r[0].modSeq.rawValue - 1)
        let (changed, failed) = try await store.storeFlags(mailbox: inbox, uids: [u], operation: .add, flags: .deleted, keywords: [], unchangedSince: old)
        if !changed.isEmpty || failed != [u] { problems.append("UNCHANGEDSINCE \(old.rawValue): changed \(changed.count), failed \(failed.map(\.rawValue))") }
        if try await flags().0.contains(.deleted) { problems.append("a refused conditional STORE changed the flags") }
        return problems
    }

    static func copyAndMove(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let archive = try await store.createMailbox(account: a, name: "Kept")
        let u1 = try await deliver(store, a, 1, at: clock.now), u2 = try await deliver(store, a, 2, at: clock.now)
        _ = try await store.storeFlags(mailbox: inbox, uids: [u1], operation: .add, flags: .flagged, keywords: ["$Tag"], unchangedSince: nil)
        let (pairs, validity) = try await store.copy(from: inbox, uids: [u1], to: archive, move: false)
        let target = try await store.mailboxes(account: a).first { $0.id == archive }!
        if validity != target.uidValidity { problems.append("COPY answered UIDVALIDITY \(validity) for a mailbox with \(target.uidValidity)") }
        guard pairs.count == 1, pairs[0].0 == u1 else { return ["COPY pairs \(pairs)"] }
        let copy = try await store.messages(mailbox: archive).first { $0.uid == pairs[0].1 }
        let original = try await store.messages(mailbox: inbox).first { $0.uid == u1 }!
        if copy?.flags != original.flags || copy.map({ Set($0.keywords) }) != Set(original.keywords) { problems.append("the copy lost flags or keywords") }
        if let copy, try await store.content(of: copy.messageID) != message(1) { problems.append("the copy's content differs") }
        let (moved, _) = try await store.copy(from: inbox, uids: [u2], to: archive, move: true)
        if try await store.messages(mailbox: inbox).contains(where: { $0.uid == u2 }) { problems.append("MOVE left the message in the source") }
        if moved.count != 1 || moved[0].1.rawValue <= pairs[0].1.rawValue { problems.append("MOVE's new UID \(moved) not above the copy's") }
        if try await store.expunged(mailbox: inbox, since: ModSeq(rawValue: 0)) != [u2] { problems.append("MOVE not recorded as an expunge of the source") }
        return problems
    }

    static func usage(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let (b, _) = try await account(store, "bob")
        var uids: [UID] = []
        for i in 0..<4 { uids.append(try await deliver(store, a, i, at: clock.now)) }
        let sizes = try await store.messages(mailbox: inbox).reduce(0) { $0 + $1.size }
        if try await store.usage(account: a) != Int64(sizes) { problems.append("usage \(try await store.usage(account: a)), messages hold \(sizes)") }
        if try await store.usage(account: b) != 0 { problems.append("another account's mail counted for bob") }
        let one = try await store.messages(mailbox: inbox)[0].size
        _ = try await store.expunge(mailbox: inbox, uids: [uids[0]])
        if try await store.usage(account: a) != Int64(sizes - one) { problems.append("usage after expunge \(try await store.usage(account: a)), not \(sizes - one)") }
        return problems
    }

    static func mailboxIdentity(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, _) = try await account(store)
        let first = try await store.createMailbox(account: a, name: "Projects")
        _ = try await deliver(store, a, 1, at: clock.now, mailbox: "Projects")
        let v1 = try await store.mailboxes(account: a).first { $0.id == first }!.uidValidity
        try await store.deleteMailbox(account: a, name: "Projects")
        let second = try await store.createMailbox(account: a, name: "Projects")
        let box = try await store.mailboxes(account: a).first { $0.id == second }!
        if second == first { problems.append("the new mailbox has the deleted one's id") }
        if box.uidValidity == v1 { problems.append("UIDVALIDITY \(v1.rawValue) used again in the same second") }
        if try await !store.messages(mailbox: second).isEmpty { problems.append("the new mailbox shows the deleted one's messages") }
        return problems
    }

    static func queue(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        _ = try await account(store)
        let start = clock.now
        let rcpts: [StoredEnvelope.Recipient] = [.init(address: "x@remote.test"), .init(address: "y@other.test")]
        let envelope = StoredEnvelope(mailFrom: "alice@example.test", recipients: rcpts)
        _ = try await store.deliver(Delivery(content: .inline(message(1)), envelope: envelope, targets: [], internalDate: start,
                                             remoteRecipients: rcpts, queueID: "QC1"))
        guard let queued = try await store.queuedMessage(queueID: "QC1") else { return ["the queued message is not in the queue"] }
        if queued.recipients.map(\.domain).sorted() != ["other.test", "remote.test"] { problems.append("recipient domains \(queued.recipients.map(\.domain))") }
        if try await store.queuedMessages(dueBy: start, after: 0, limit: 10).map(\.queueID) != ["QC1"] { problems.append("a new message is not due at once") }
        let x = queued.recipients.first { $0.address == "x@remote.test" }!, y = queued.recipients.first { $0.address == "y@other.test" }!
        let later = start.addingTimeInterval(60)
        var finished = try await store.recordAttempts([DeliveryAttempt(recipientID: x.id, outcome: .delivered, reply: "250 OK", remoteHost: "mx.remote.test"),
                                                       DeliveryAttempt(recipientID: y.id, outcome: .deferred(until: later), reply: "451 later", remoteHost: nil)],
                                                      completing: queued.id)
        if finished != nil { problems.append("finished with a recipient still pending") }
        if try await !store.queuedMessages(dueBy: start, after: 0, limit: 10).isEmpty { problems.append("due before its retry time") }
        if try await store.nextQueueAttempt() != later { problems.append("next attempt \(String(describing: try await store.nextQueueAttempt())), not \(later)") }
        clock.set(later)
        let again = try await store.queuedMessages(dueBy: later, after: 0, limit: 10)
        let yAgain = again.first?.recipients.first { $0.id == y.id }
        if yAgain?.attempts != 1 || yAgain?.lastReply != "451 later" || yAgain?.status != .pending { problems.append("after one deferral: \(String(describing: yAgain))") }
        finished = try await store.recordAttempts([DeliveryAttempt(recipientID: y.id, outcome: .failed, reply: "550 no", remoteHost: "mx.other.test")],
                                                  completing: queued.id)
        guard let done = finished else { return problems + ["not finished once every recipient has a final result"] }
        if done.recipients.map(\.status).sorted(by: { $0.rawValue < $1.rawValue }) != [.delivered, .failed] { problems.append("final statuses \(done.recipients.map(\.status))") }
        try await store.completeQueued(id: done.id, notification: nil)
        if try await store.queuedMessage(queueID: "QC1") != nil { problems.append("a completed message stays in the queue") }
        // The queue was left empty: a new message still gets a higher id (the runner scans above the newest it saw).
        var next = Delivery(content: .inline(message(2)), envelope: envelope, targets: [], internalDate: later, remoteRecipients: rcpts, queueID: "QC2")
        _ = try await store.deliver(next)
        if let q2 = try await store.queuedMessage(queueID: "QC2"), q2.id <= done.id { problems.append("queue id \(q2.id) reused after \(done.id)") }
        // A local recipient that asked for NOTIFY=SUCCESS enters the queue already delivered, for its notice.
        next = Delivery(content: .inline(message(3)), envelope: envelope, targets: [], internalDate: later, queueID: "QC3")
        next.deliveredNotices = [.init(address: "alice@example.test", notify: ["SUCCESS"])]
        _ = try await store.deliver(next)
        let notice = try await store.queuedMessage(queueID: "QC3")
        if notice?.isFinished != true || notice?.recipients.first?.status != .delivered || notice?.recipients.first?.notify != ["SUCCESS"] {
            problems.append("a delivered-notice recipient is queued as \(String(describing: notice?.recipients))")
        }
        if try await !store.queuedMessages(dueBy: later, after: 0, limit: 10).contains(where: { $0.queueID == "QC3" }) {
            problems.append("a message waiting only for its success notice is not listed for the runner")
        }
        return problems
    }

    static func deliveryLog(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let t0 = clock.now
        try await store.log([DeliveryEvent(at: t0, queueID: "L1", kind: .received, detail: "from <a@remote.test>"),
                             DeliveryEvent(at: t0.addingTimeInterval(1), queueID: "L1", kind: .stored, detail: "INBOX"),
                             DeliveryEvent(at: t0.addingTimeInterval(2), queueID: "L2", kind: .received, detail: "other")])
        try await store.log([DeliveryEvent(at: t0.addingTimeInterval(86400), queueID: "L1", kind: .deleted, detail: "later")])
        let l1 = try await store.deliveryLog(id: "L1")
        if l1.map(\.kind) != [.received, .stored, .deleted] { problems.append("L1's events \(l1.map(\.kind))") }
        let pruned = try await store.pruneDeliveryLog(before: t0.addingTimeInterval(3600))
        if pruned != 3 { problems.append("pruned \(pruned) events, not the 3 older than an hour") }
        if try await store.deliveryLog(id: "L1").map(\.kind) != [.deleted] { problems.append("pruning removed the wrong events") }
        return problems
    }
}
