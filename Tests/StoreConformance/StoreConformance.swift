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
        Case(name: "large contents: spooled, stored and read back whole", body: largeContent),
        Case(name: "rename: children follow, INBOX's messages move and INBOX stays", body: rename),
        Case(name: "subscriptions and the mailbox tree, with observers told", body: subscriptionsAndObservers),
        Case(name: "\\Recent: claimed once, by the first session", body: recent),
        Case(name: "MULTIAPPEND: all or none", body: allOrNone),
        Case(name: "targets: special-use mailboxes, duplicates stored once", body: targets),
        Case(name: "queue: retry, delete, delay notices and bounces in one commit", body: queueControls),
        Case(name: "DKIM keys and Bayes counts", body: keysAndBayes),
        Case(name: "garbage: content kept while referenced, gone after", body: garbage),
        Case(name: "message counts and content references follow every way a message comes, goes and moves", body: countsAndReferences),
        Case(name: "queue leases: concurrent runners split the due recipients; a lease ends", body: leases),
        Case(name: "rate limits: an hour's count, concurrent takers never exceed it, the next hour weighs the last", body: rates),
        Case(name: "greylisting: wait, pass after the delay within the window, remembered, pruned", body: greylisting),
        Case(name: "job claims: one holder at a time; another after the claim ends", body: jobClaims),
        Case(name: "concurrent deliveries: one to a missing mailbox fails alone", body: failureAmongConcurrent),
        Case(name: "concurrent STOREs, COPYs and EXPUNGEs on one mailbox: every change once, each its own MODSEQ; a failing one alone", body: concurrentWrites),
        Case(name: "queue leases renewed by their runner hold past the first lease; finished ones are not renewed", body: leaseRenewal),
        Case(name: "Sieve scripts: one active at a time, the active one kept, renamed with its state, gone with the account", body: sieveScripts),
        Case(name: "active scripts for delivery: cached, every change seen at the next read; flags per target", body: activeScripts),
        Case(name: "what scripts remember: one claim per key and period, concurrent claims give one winner, forgotten, pruned", body: sieveSeen),
        Case(name: "IMAP's EXPUNGE removes only what is flagged \\Deleted when it runs, whatever the caller last saw", body: expungeOnlyDeleted),
    ]

    static func expungeOnlyDeleted(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (alice, inbox) = try await account(store)
        var uids: [UID] = []
        for n in 0..<4 { uids.append(try await deliver(store, alice, n, at: clock.now)) }
        // Session A saw 0, 1 and 2 flagged \Deleted; session B has since cleared 1's flag.
        _ = try await store.storeFlags(mailbox: inbox, uids: Array(uids[0...2]), operation: .add, flags: .deleted, keywords: [], unchangedSince: nil)
        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[1]], operation: .remove, flags: .deleted, keywords: [], unchangedSince: nil)
        let removed = try await store.expunge(mailbox: inbox, uids: Array(uids[0...2]), onlyDeleted: true)
        if removed != [uids[0], uids[2]] { problems.append("removed \(removed.map(\.rawValue)), not [\(uids[0].rawValue), \(uids[2].rawValue)]") }
        let left = try await store.messages(mailbox: inbox).map(\.uid)
        if left != [uids[1], uids[3]] { problems.append("left \(left.map(\.rawValue)): the message whose \\Deleted was cleared must stay") }
        // An expunge that removes nothing changes nothing, MODSEQ included; a set of many UIDs (UID EXPUNGE 1:*, here
        // with UIDs that do not exist) removes the flagged ones among them.
        let before = try await store.mailboxChanges(mailbox: inbox, since: nil).highestModSeq
        if try await !store.expunge(mailbox: inbox, uids: [uids[1], uids[3]], onlyDeleted: true).isEmpty { problems.append("unflagged messages went") }
        if try await store.mailboxChanges(mailbox: inbox, since: nil).highestModSeq != before { problems.append("an expunge of nothing raised MODSEQ") }
        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[3]], operation: .add, flags: .deleted, keywords: [], unchangedSince: nil)
        let many = (1...200).map { UID(UInt32($0)) }
        if try await store.expunge(mailbox: inbox, uids: many, onlyDeleted: true) != [uids[3]] { problems.append("a large set did not remove its one flagged message") }
        if try await store.messages(mailbox: inbox).map(\.uid) != [uids[1]] { problems.append("a large set removed more than its flagged message") }
        // Without the condition (POP3, MOVE) a message goes whatever its flags.
        if try await store.expunge(mailbox: inbox, uids: [uids[1]]) != [uids[1]] { problems.append("an unflagged message was not removed unconditionally") }
        return problems
    }

    static func sieveSeen(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let now = clock.now, day = now.addingTimeInterval(86400)
        if try await !store.markSieveSeen("k1", until: day, now: now) { problems.append("a new key was not claimed") }
        if try await store.markSieveSeen("k1", until: day, now: now.addingTimeInterval(3600)) { problems.append("a current key claimed twice") }
        if try await store.sieveSeen(["k1", "k2"], now: now) != ["k1"] { problems.append("seen keys") }
        // Its period over, the key is free again (and taken for a new period).
        if try await !store.markSieveSeen("k1", until: day.addingTimeInterval(86400), now: day) { problems.append("an expired key not claimed") }
        if try await store.sieveSeen(["k1"], now: day.addingTimeInterval(3600)) != ["k1"] { problems.append("the new period not kept") }
        try await store.forgetSieveSeen("k1")
        if try await !store.sieveSeen(["k1"], now: now).isEmpty { problems.append("a forgotten key still seen") }
        // Ten claims at once for one key: one winner.
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<10 { group.addTask { try await store.markSieveSeen("race", until: day, now: now) } }
            var n = 0
            for try await won in group where won { n += 1 }
            return n
        }
        if wins != 1 { problems.append("\(wins) concurrent claims won") }
        _ = try await store.markSieveSeen("old", until: now.addingTimeInterval(60), now: now)
        _ = try await store.prunePolicyState(rule: GreylistRule(delay: 300, window: 86400, remember: 30 * 86400), now: now.addingTimeInterval(120))
        if try await store.markSieveSeen("old", until: day, now: now) == false { problems.append("a pruned key still held") }
        return problems
    }

    static func activeScripts(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store, "alice")
        let (b, _) = try await account(store, "bob")
        func expect(_ wanted: [AccountID: String], _ what: String) async throws {
            if try await store.activeScripts(accounts: [a, b, a]) != wanted { problems.append("activeScripts after \(what)") }
            // Read once, the answer is the cache's (for every account asked) and the same.
            if let cached = store.cachedActiveScripts(accounts: [a, b]), cached != wanted { problems.append("cached scripts after \(what)") }
        }
        try await expect([:], "none")
        try await store.putScript(account: a, name: "one", content: "keep;")
        try await expect([:], "a script put, none active")
        try await store.activateScript(account: a, name: "one")
        try await expect([a: "keep;"], "activation")
        try await store.putScript(account: a, name: "one", content: "discard;")
        try await expect([a: "discard;"], "the active script replaced")
        try await store.putScript(account: b, name: "x", content: "stop;")
        try await store.activateScript(account: b, name: "x")
        try await expect([a: "discard;", b: "stop;"], "a second account's activation")
        try await store.renameScript(account: b, from: "x", to: "y")
        try await expect([a: "discard;", b: "stop;"], "a rename")
        try await store.activateScript(account: a, name: nil)
        try await expect([b: "stop;"], "deactivation")
        if store.cachedActiveScripts(accounts: [a, b]) == nil { problems.append("nothing cached after a read") }

        // One delivery may give each target its own flags (a script's imap4flags), others the delivery's.
        let receipt = try await store.deliver(Delivery(
            content: .inline(message(1)), envelope: StoredEnvelope(mailFrom: "", recipients: []),
            targets: [DeliveryTarget(account: a, flags: [.flagged], keywords: ["$label1"]), DeliveryTarget(account: b)],
            internalDate: clock.now, flags: [.seen]))
        let stored = try await store.messages(mailbox: inbox)
        if stored.map(\.flags) != [[.flagged]] || stored.map(\.keywords) != [["$label1"]] { problems.append("per-target flags: \(stored)") }
        let bobs = try await store.messages(mailbox: receipt.placements[1].mailbox)
        if bobs.map(\.flags) != [[.seen]] || bobs.map(\.keywords) != [[]] { problems.append("the delivery's flags: \(bobs)") }
        return problems
    }

    static func sieveScripts(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, _) = try await account(store)
        let (b, _) = try await account(store, "bob")
        try await store.putScript(account: a, name: "main", content: "keep;")
        try await store.putScript(account: a, name: "vacation", content: "discard; # été")
        try await store.putScript(account: b, name: "main", content: "stop;")
        if try await store.scripts(account: a) != [SieveScriptInfo(name: "main", active: false, size: 5), SieveScriptInfo(name: "vacation", active: false, size: 16)] {
            problems.append("listing \(try await store.scripts(account: a))")
        }
        if try await store.activeScript(account: a) != nil { problems.append("a script active before any was activated") }
        try await store.activateScript(account: a, name: "main")
        try await store.activateScript(account: a, name: "vacation")
        if try await store.scripts(account: a).filter(\.active).map(\.name) != ["vacation"] { problems.append("not exactly the last activated script active") }
        if try await store.activeScript(account: b) != nil { problems.append("another account's script became active") }
        // Replacing the active script keeps it active, with the new text.
        try await store.putScript(account: a, name: "vacation", content: "keep; keep;")
        if try await store.activeScript(account: a) != "keep; keep;" { problems.append("the active script's new text not served") }
        do {
            try await store.deleteScript(account: a, name: "vacation")
            problems.append("the active script was deleted")
        } catch StoreError.invalid {}
        do {
            try await store.renameScript(account: a, from: "vacation", to: "main")
            problems.append("renamed onto an existing script")
        } catch StoreError.alreadyExists {}
        try await store.renameScript(account: a, from: "vacation", to: "away")
        if try await store.scripts(account: a).filter(\.active).map(\.name) != ["away"] { problems.append("the active script lost its state in a rename") }
        do {
            try await store.activateScript(account: a, name: "missing")
            problems.append("a missing script was activated")
        } catch StoreError.notFound {}
        if try await store.activeScript(account: a) != "keep; keep;" { problems.append("a failed activation changed the active script") }
        try await store.activateScript(account: a, name: nil)
        if try await store.activeScript(account: a) != nil { problems.append("deactivating left a script active") }
        try await store.deleteScript(account: a, name: "away")
        let away = try await store.script(account: a, name: "away"), main = try await store.script(account: a, name: "main")
        if away != nil || main != "keep;" { problems.append("delete removed the wrong script") }
        try await store.removeAccount(try EmailAddress.parse("alice@example.test"))
        _ = try await store.addAccount(try EmailAddress.parse("alice@example.test"), password: "x")
        if let again = try await store.account(try EmailAddress.parse("alice@example.test")), try await !store.scripts(account: again).isEmpty {
            problems.append("scripts outlived their account")
        }
        if try await store.script(account: b, name: "main") != "stop;" { problems.append("another account's script changed") }
        // The script limit holds for sessions storing at once (ManageSieve's QUOTA/MAXSCRIPTS): bob has one script,
        // eight new ones race for a limit of four, and three get in; replacing one at the limit is still allowed.
        let stored = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<8 {
                group.addTask {
                    do {
                        try await store.putScript(account: b, name: "s\(i)", content: "keep;", maxScripts: 4)
                        return true
                    } catch is ScriptLimitReached {
                        return false
                    }
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        let count = try await store.scripts(account: b).count
        if stored != 3 || count != 4 { problems.append("\(stored) of 8 concurrent new scripts stored under a limit of 4 (\(count) in all)") }
        do {
            try await store.putScript(account: b, name: "main", content: "keep;", maxScripts: 4)
        } catch {
            problems.append("replacing a script at the limit: \(error)")
        }
        // Activations at once: each succeeds, and one script is active after them.
        let names = try await store.scripts(account: b).map(\.name)
        let activations = await withTaskGroup(of: String?.self) { group in
            for i in 0..<8 {
                group.addTask {
                    do { try await store.activateScript(account: b, name: names[i % names.count]); return nil } catch { return "\(error)" }
                }
            }
            return await group.reduce(into: [String]()) { if let e = $1 { $0.append(e) } }
        }
        if !activations.isEmpty { problems.append("activations at once failed: \(activations.prefix(2))") }
        if try await store.scripts(account: b).filter(\.active).count != 1 { problems.append("not one script active after activations at once") }
        // Without a limit, every one of many stored at once is stored and answered as such.
        let (c, _) = try await account(store, "carol")
        let failures = await withTaskGroup(of: String?.self) { group in
            for i in 0..<16 {
                group.addTask {
                    do { try await store.putScript(account: c, name: "s\(i)", content: "keep;"); return nil } catch { return "\(error)" }
                }
            }
            return await group.reduce(into: [String]()) { if let e = $1 { $0.append(e) } }
        }
        if !failures.isEmpty { problems.append("scripts stored at once failed: \(failures.prefix(2))") }
        if try await store.scripts(account: c).count != 16 { problems.append("\(try await store.scripts(account: c).count) of 16 scripts stored at once") }
        return problems
    }

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
        // A copy that must take every message it names (IMAP COPY and MOVE): one of them gone, nothing copied or moved.
        let u3 = try await deliver(store, a, 3, at: clock.now)
        let before = try await store.mailboxChanges(mailbox: archive, since: nil)
        for move in [false, true] {
            do {
                _ = try await store.copy(from: inbox, uids: [u3, u2], to: archive, move: move, all: true)
                problems.append("a copy with an expunged message succeeded (move \(move))")
            } catch let e as MessagesExpunged {
                if e.uids != [u2] { problems.append("MessagesExpunged named \(e.uids), not [\(u2)]") }
            }
        }
        let after = try await store.mailboxChanges(mailbox: archive, since: nil)
        if after.changed.count != before.changed.count || after.uidNext != before.uidNext || after.highestModSeq != before.highestModSeq {
            problems.append("a refused copy changed the target")
        }
        if try await store.messages(mailbox: inbox).map(\.uid) != [u1, u3] { problems.append("a refused move changed the source") }
        // Without `all`, what is there is copied.
        if try await store.copy(from: inbox, uids: [u3, u2], to: archive, move: false).pairs.map(\.0) != [u3] { problems.append("a partial copy") }
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

    static func largeContent(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        // Above the inline limit: written to the spool as a session would, then delivered by key.
        var big = Array("From: a@remote.test\r\nSubject: big\r\n\r\n".utf8)
        for i in 0..<(store.inlineLimit / 50 + 40_000) { big += Array("line \(i) of a large message, padded out to length\r\n".utf8) }
        let (tmp, handle) = try store.blobs.makeTempFile()
        try handle.write(contentsOf: big)
        let key = BlobStore.newKey()
        try store.blobs.commit(tempFile: tmp, handle: handle, key: key)
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
        let receipt = try await store.deliver(Delivery(content: .blob(key: key, size: big.count), envelope: envelope,
                                                       targets: [DeliveryTarget(account: a)], internalDate: clock.now))
        let small = try await deliver(store, a, 7, at: clock.now)
        if try await store.content(of: receipt.messageID) != big { problems.append("a large content read back differs") }
        let listed = try await store.messages(mailbox: inbox)
        if listed.first?.size != big.count { problems.append("a large message listed with size \(String(describing: listed.first?.size)), not \(big.count)") }
        let both = try await store.contents(of: listed.map(\.messageID))
        if both[receipt.messageID] != big || both[listed.first { $0.uid == small }!.messageID] != message(7) {
            problems.append("contents(of:) of a large and a small message differ from what was stored")
        }
        if try await store.usage(account: a) != Int64(big.count + message(7).count) { problems.append("usage does not count the large message") }
        // Read in pieces, as FETCH and RETR stream a large message: every range, across the backend's own chunk
        // boundaries (1 MiB on PostgreSQL) and past the end, gives exactly those octets.
        let reader = try await store.openContent(of: receipt.messageID)
        if reader.size != big.count { problems.append("a reader reports size \(reader.size), not \(big.count)") }
        for range in [0..<10, (1 << 20) - 5..<(1 << 20) + 5, 100..<(2 << 20) + 1, big.count - 3..<big.count + 100, big.count..<big.count + 1] {
            let expected = Array(big[range.clamped(to: 0..<big.count)])
            if try await reader.read(range) != expected { problems.append("a large content's range \(range) reads back differently") }
        }
        var streamed: [UInt8] = [], pieces = 0
        try await reader.pieces(pieceSize: 300_000) { streamed += $0; pieces += 1 }
        if streamed != big || pieces != (big.count + 299_999) / 300_000 { problems.append("a large content streamed in \(pieces) pieces differs") }
        let smallReader = try await store.openContent(of: listed.first { $0.uid == small }!.messageID)
        if try await smallReader.read(0..<1_000_000) != message(7) { problems.append("a small content read through a reader differs") }
        return problems
    }

    static func rename(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        _ = try await store.createMailbox(account: a, name: "Work")
        _ = try await store.createMailbox(account: a, name: "Work/2026")
        _ = try await store.createMailbox(account: a, name: "Workshop")
        _ = try await deliver(store, a, 1, at: clock.now, mailbox: "Work/2026")
        try await store.renameMailbox(account: a, from: "Work", to: "Jobs")
        let names = Set(try await store.mailboxes(account: a).map(\.name))
        if !names.isSuperset(of: ["Jobs", "Jobs/2026", "Workshop"]) || names.contains("Work") || names.contains("Work/2026") {
            problems.append("after renaming Work to Jobs: \(names.sorted())")
        }
        if let child = try await store.mailboxState(account: a, name: "Jobs/2026"), try await store.messages(mailbox: child.id).count != 1 {
            problems.append("a renamed child lost its message")
        }
        await expectStoreError("renaming onto an existing mailbox", &problems) { try await store.renameMailbox(account: a, from: "Jobs", to: "Workshop") }
        await expectStoreError("renaming a missing mailbox", &problems) { try await store.renameMailbox(account: a, from: "Nothing", to: "Else") }
        // INBOX: its messages go to the new mailbox, INBOX stays, empty, under a new UIDVALIDITY.
        let before = try await store.mailboxes(account: a).first { $0.id == inbox }!
        _ = try await deliver(store, a, 2, at: clock.now)
        _ = try await deliver(store, a, 3, at: clock.now)
        try await store.renameMailbox(account: a, from: "INBOX", to: "Old mail")
        guard let old = try await store.mailboxState(account: a, name: "Old mail") else { return problems + ["renaming INBOX made no mailbox"] }
        if try await store.messages(mailbox: old.id).count != 2 { problems.append("INBOX's messages did not move") }
        let after = try await store.mailboxes(account: a).first { $0.id == inbox }
        if after == nil || after!.messages != 0 || after!.uidValidity == before.uidValidity { problems.append("INBOX after its rename: \(String(describing: after))") }
        if old.state.uidNext.rawValue < 3 { problems.append("the mailbox made from INBOX starts below INBOX's UIDNEXT") }
        // Its MODSEQs go on from the highest its messages carry (RFC 7162: a change never gets a lower one).
        let moved = try await store.messages(mailbox: old.id)
        let highest = moved.map(\.modSeq.rawValue).max() ?? 0
        if old.state.highestModSeq.rawValue < highest { problems.append("HIGHESTMODSEQ \(old.state.highestModSeq) below its messages' \(highest)") }
        if let first = moved.first {
            _ = try await store.storeFlags(mailbox: old.id, uids: [first.uid], operation: .add, flags: .seen, keywords: [], unchangedSince: nil)
            let changed = try await store.messages(mailbox: old.id).first { $0.uid == first.uid }!
            if changed.modSeq.rawValue <= highest { problems.append("a change after the rename got MODSEQ \(changed.modSeq), not above \(highest)") }
        }
        let uid = try await deliver(store, a, 4, at: clock.now)
        if uid.rawValue <= 2 { problems.append("INBOX reuses UID \(uid) after its rename") }
        return problems
    }

    static func subscriptionsAndObservers(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let trees = Recorder<AccountID>(), boxes = Recorder<MailboxID>()
        store.observeMailboxTree { trees.add($0) }
        store.observeChanges { boxes.add($0) }
        let subscribed = try await store.subscriptions(account: a)
        if !subscribed.contains("INBOX") { problems.append("a new account's INBOX is not subscribed: \(subscribed)") }
        try await store.setSubscribed(account: a, name: "Not yet made", true)
        try await store.setSubscribed(account: a, name: "Not yet made", true)
        if try await store.subscriptions(account: a).filter({ $0 == "Not yet made" }).count != 1 { problems.append("a subscription listed twice or not at all") }
        try await store.setSubscribed(account: a, name: "Not yet made", false)
        if try await store.subscriptions(account: a).contains("Not yet made") { problems.append("an unsubscribed name still listed") }
        let made = try await store.createMailbox(account: a, name: "Fresh")
        if try await store.createMailbox(account: a, name: "Fresh") != made { problems.append("creating an existing mailbox made another") }
        if try await store.createMailbox(account: a, name: "inbox") != inbox { problems.append("\"inbox\" is not INBOX") }
        _ = try await deliver(store, a, 1, at: clock.now)
        try await store.deleteMailbox(account: a, name: "Fresh")
        await expectStoreError("deleting INBOX", &problems) { try await store.deleteMailbox(account: a, name: "INBOX") }
        if !trees.values.contains(a) { problems.append("mailbox tree observers not told") }
        if !boxes.values.contains(inbox) || !boxes.values.contains(made) { problems.append("change observers told of \(boxes.values), not INBOX and the deleted mailbox") }
        return problems
    }

    static func recent(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        for i in 0..<3 { _ = try await deliver(store, a, i, at: clock.now) }
        let next = try await store.mailboxChanges(mailbox: inbox, since: nil).uidNext
        if try await store.unclaimedRecent(mailbox: inbox) != 3 { problems.append("STATUS RECENT \(try await store.unclaimedRecent(mailbox: inbox)), not 3") }
        // EXAMINE tells without claiming; then two sessions SELECT at once: exactly one gets the three.
        if try await store.claimRecent(mailbox: inbox, below: next, claim: false) != UID(1) { problems.append("EXAMINE does not see the recent ones") }
        // The state SELECT reads may tell the first unclaimed UID; when it does, it is the store's.
        if let known = try await store.mailboxState(account: a, name: "INBOX")?.state.firstRecent, known != UID(1) {
            problems.append("the mailbox state tells \(known) as the first unclaimed UID, not 1")
        }
        let firsts = try await withThrowingTaskGroup(of: UID.self) { group in
            for _ in 0..<4 { group.addTask { try await store.claimRecent(mailbox: inbox, below: next, claim: true) } }
            var all: [UID] = []
            for try await f in group { all.append(f) }
            return all
        }
        if firsts.filter({ $0 == UID(1) }).count != 1 || firsts.filter({ $0 == next }).count != 3 { problems.append("concurrent claims gave \(firsts)") }
        if try await store.unclaimedRecent(mailbox: inbox) != 0 { problems.append("recent messages left after a claim") }
        if let known = try await store.mailboxState(account: a, name: "INBOX")?.state.firstRecent, known != next {
            problems.append("after the claim the mailbox state tells \(known) as the first unclaimed UID, not \(next)")
        }
        return problems
    }

    static func allOrNone(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [])
        let good = Delivery(content: .inline(message(1)), envelope: envelope, targets: [DeliveryTarget(account: a)], internalDate: clock.now)
        let bad = Delivery(content: .inline(message(2)), envelope: envelope, targets: [DeliveryTarget(account: a, mailbox: "No such")],
                           internalDate: clock.now)
        do {
            _ = try await store.deliverAll([good, bad])
            problems.append("a batch with a missing mailbox was stored")
        } catch {}
        if try await !store.messages(mailbox: inbox).isEmpty { problems.append("part of a failed batch was stored") }
        let receipts = try await store.deliverAll([good, good])
        let uids = receipts.map { $0.placements[0].1 }
        if uids.count != 2 || uids[0] >= uids[1] { problems.append("a batch's UIDs \(uids) do not ascend in its order") }
        return problems
    }

    static func targets(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let junk = try await store.mailboxes(account: a).first { $0.specialUse == .junk }!
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [])
        var d = Delivery(content: .inline(message(1)), envelope: envelope,
                         targets: [DeliveryTarget(account: a, specialUse: .junk), DeliveryTarget(account: a), DeliveryTarget(account: a)],
                         internalDate: clock.now)
        d.flags = .seen
        d.keywords = ["$Junk"]
        let receipt = try await store.deliver(d)
        if Set(receipt.placements.map(\.0)) != [junk.id, inbox] || receipt.placements.count != 2 { problems.append("placements \(receipt.placements)") }
        let stored = try await store.messages(mailbox: junk.id).first
        if stored?.flags != .seen || stored?.keywords != ["$Junk"] || stored?.internalDate != clock.now { problems.append("stored as \(String(describing: stored))") }
        // One target with flags, keywords and log lines (the common delivery), then one to a mailbox that does not exist:
        // refused whole, nothing stored or logged.
        var one = Delivery(content: .inline(message(2)), envelope: envelope, targets: [DeliveryTarget(account: a, mailbox: "INBOX")],
                           internalDate: clock.now.addingTimeInterval(-60))
        one.flags = [.flagged]
        one.keywords = ["work"]
        one.log = [DeliveryEvent(at: clock.now, queueID: "QT1", messageID: "m2@remote.test", kind: .received, detail: "from a"),
                   DeliveryEvent(at: clock.now, queueID: "QT1", kind: .stored, detail: "INBOX")]
        let placed = try await store.deliver(one)
        let m2 = try await store.messages(mailbox: inbox).last
        if placed.placements.map(\.0) != [inbox] || m2?.uid != placed.placements.first?.1 || m2?.flags != [.flagged] || m2?.keywords != ["work"]
            || m2?.internalDate != clock.now.addingTimeInterval(-60) {
            problems.append("one-target delivery stored as \(String(describing: m2))")
        }
        if try await store.content(of: placed.messageID) != message(2) { problems.append("one-target delivery's content differs") }
        let logged = try await store.deliveryLog(id: "m2@remote.test")
        if logged.map(\.kind) != [.received, .stored] || logged.first?.messageID != "m2@remote.test" || logged.last?.messageID != nil {
            problems.append("one-target delivery's log \(logged)")
        }
        var missing = Delivery(content: .inline(message(3)), envelope: envelope, targets: [DeliveryTarget(account: a, mailbox: "Nowhere")],
                               internalDate: clock.now)
        missing.log = [DeliveryEvent(at: clock.now, queueID: "QT2", kind: .stored, detail: "Nowhere")]
        await expectStoreError("delivery to a mailbox that does not exist", &problems) { _ = try await store.deliver(missing) }
        if try await !store.deliveryLog(id: "QT2").isEmpty { problems.append("a refused delivery left log lines") }
        if try await store.mailboxState(account: a, name: "INBOX")?.state.uidNext != UID(rawValue: m2!.uid.rawValue + 1) {
            problems.append("a refused delivery moved INBOX's next UID")
        }
        return problems
    }

    static func queueControls(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let queued = Recorder<Int>()
        store.observeQueue { queued.add(1) }
        let start = clock.now
        let rcpt = StoredEnvelope.Recipient(address: "x@remote.test", notify: ["FAILURE", "DELAY"], originalRecipient: "rfc822;x@remote.test")
        let envelope = StoredEnvelope(mailFrom: "alice@example.test", recipients: [rcpt])
        for id in ["QA", "QB"] {
            _ = try await store.deliver(Delivery(content: .inline(message(1)), envelope: envelope, targets: [], internalDate: start,
                                                 remoteRecipients: [rcpt], queueID: id))
        }
        if queued.values.isEmpty { problems.append("queue observers not told") }
        guard let qa = try await store.queuedMessage(queueID: "QA") else { return ["QA not queued"] }
        if qa.recipients.first?.notify != ["FAILURE", "DELAY"] || qa.recipients.first?.originalRecipient != "rfc822;x@remote.test"
            || qa.envelope.mailFrom != "alice@example.test" || qa.size != message(1).count {
            problems.append("queued as \(qa)")
        }
        let due = try await store.queuedMessages(dueBy: start, after: 0, limit: 10)
        if due.first?.content != message(1) { problems.append("a small queued message comes without its content") }
        if try await store.queuedMessages(dueBy: nil, after: qa.id, limit: 10).map(\.queueID) != ["QB"] { problems.append("after: does not skip") }
        let later = start.addingTimeInterval(3600)
        _ = try await store.recordAttempts([DeliveryAttempt(recipientID: qa.recipients[0].id, outcome: .deferred(until: later), reply: "451", remoteHost: nil)],
                                           completing: qa.id)
        if try await store.retryQueued(queueID: "QA") != 1 { problems.append("retry of one message did not count one") }
        if try await !store.queuedMessages(dueBy: start, after: 0, limit: 10).contains(where: { $0.queueID == "QA" }) { problems.append("retried message not due") }
        if try await store.retryQueued(queueID: nil) != 2 { problems.append("retry of all did not count two") }
        // A delay notice and the mark that it was sent: one commit, once.
        let notice = Delivery(content: .inline(message(9)), envelope: StoredEnvelope(mailFrom: "", recipients: []),
                              targets: [DeliveryTarget(account: a)], internalDate: start)
        try await store.noteDelay(id: qa.id, notification: notice)
        try await store.noteDelay(id: qa.id, notification: notice)
        if try await store.messages(mailbox: inbox).count != 1 { problems.append("a delay notice stored \(try await store.messages(mailbox: inbox).count) times") }
        if try await store.queuedMessage(queueID: "QA")?.delayNotified != true { problems.append("the delay notice was not marked") }
        // A bounce replaces the message in one commit; completing it again stores nothing more.
        _ = try await store.recordAttempts([DeliveryAttempt(recipientID: qa.recipients[0].id, outcome: .failed, reply: "550 no", remoteHost: "mx")],
                                           completing: qa.id)
        try await store.completeQueued(id: qa.id, notification: notice)
        try await store.completeQueued(id: qa.id, notification: notice)
        if try await store.messages(mailbox: inbox).count != 2 { problems.append("a bounce stored other than once") }
        if try await store.queuedMessage(queueID: "QA") != nil { problems.append("a bounced message stays queued") }
        if try await !store.deleteQueued(queueID: "QB") { problems.append("deleting a queued message said there was none") }
        if try await store.deleteQueued(queueID: "QB") { problems.append("deleting it again said it was there") }
        if try await store.nextQueueAttempt() != nil { problems.append("an empty queue has a next attempt") }
        return problems
    }

    static func keysAndBayes(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, _) = try await account(store)
        let k1 = DKIMKeyRecord(domain: "example.test", selector: "s1", algorithm: "ed25519-sha256", privateKey: "PEM1", created: clock.now)
        let k2 = DKIMKeyRecord(domain: "example.test", selector: "s2", algorithm: "rsa-sha256", privateKey: "PEM2", created: clock.now.addingTimeInterval(60))
        let k3 = DKIMKeyRecord(domain: "other.test", selector: "s1", algorithm: "rsa-sha256", privateKey: "PEM3", created: clock.now)
        for k in [k1, k2, k3] { try await store.addDKIMKey(k) }
        await expectStoreError("adding a selector twice", &problems) { try await store.addDKIMKey(k1) }
        if try await store.dkimKeys(domain: "example.test") != [k2, k1] { problems.append("a domain's keys, newest first: \(try await store.dkimKeys(domain: "example.test"))") }
        if try await store.dkimKeys(domain: nil).count != 3 { problems.append("every domain's keys not listed") }
        try await store.removeDKIMKey(domain: "example.test", selector: "s1")
        await expectStoreError("removing a missing key", &problems) { try await store.removeDKIMKey(domain: "example.test", selector: "s1") }
        // Bayes: trained once per message and way; retraining the other way moves the counts over.
        if try await !store.trainBayes(owner: nil, key: "m1", tokens: [1, 2, 2, 3], spam: true) { problems.append("first training changed nothing") }
        if try await store.trainBayes(owner: nil, key: "m1", tokens: [1, 2, 3], spam: true) { problems.append("training twice the same way changed something") }
        _ = try await store.trainBayes(owner: a, key: "m2", tokens: [2, 4], spam: false)
        var counts = try await store.bayesCounts(owner: a, tokens: [1, 2, 4, 9])
        if counts.spamMessages != 1 || counts.hamMessages != 1 || counts.tokens[2]?.spam != 1 || counts.tokens[2]?.ham != 1
            || counts.tokens[9] != nil || counts.tokens[1]?.spam != 1 {
            problems.append("counts for the account plus global: \(counts.spamMessages)/\(counts.hamMessages) \(counts.tokens)")
        }
        if try await store.bayesCounts(owner: nil, tokens: [4]).tokens[4] != nil { problems.append("an account's counts leak into the global ones") }
        if try await !store.trainBayes(owner: nil, key: "m1", tokens: [1, 2, 3], spam: false) { problems.append("retraining the other way changed nothing") }
        counts = try await store.bayesCounts(owner: nil, tokens: [1])
        if counts.spamMessages != 0 || counts.hamMessages != 1 || counts.tokens[1]?.spam != 0 || counts.tokens[1]?.ham != 1 {
            problems.append("after retraining as ham: \(counts.spamMessages)/\(counts.hamMessages) \(counts.tokens)")
        }
        let global = try await store.bayesTraining(owner: nil, key: "m1"), own = try await store.bayesTraining(owner: a, key: "m1")
        if global != false || own != nil {
            problems.append("how m1 was trained is misreported")
        }
        return problems
    }

    static func garbage(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let other = try await store.createMailbox(account: a, name: "Other")
        let uid = try await deliver(store, a, 1, at: clock.now)
        let id = try await store.messages(mailbox: inbox)[0].messageID
        _ = try await store.copy(from: inbox, uids: [uid], to: other, move: false)
        _ = try await store.expunge(mailbox: inbox, uids: [uid])
        try await store.collectGarbage()
        if try await store.content(of: id) != message(1) { problems.append("content removed while a copy still refers to it") }
        let copy = try await store.messages(mailbox: other)[0].uid
        _ = try await store.expunge(mailbox: other, uids: [copy])
        try await store.collectGarbage()
        if try await store.contents(of: [id])[id] != nil { problems.append("content kept after its last reference went") }
        return problems
    }
}

extension StoreConformance {
    /// Each mailbox's message count (STATUS MESSAGES, the mailbox list) against the messages it holds, after every kind
    /// of change; a message's content kept while a mailbox or the queue holds it, and gone after the last.
    static func countsAndReferences(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let (b, _) = try await account(store, "bob")
        let kept = try await store.createMailbox(account: a, name: "Kept")
        func check(_ step: String) async throws {
            for account in [a, b] {
                for box in try await store.mailboxes(account: account) {
                    let held = try await store.messages(mailbox: box.id).count
                    if box.messages != held { problems.append("\(step): \(box.name) counts \(box.messages) messages and holds \(held)") }
                }
            }
        }
        var uids: [UID] = []
        for i in 0..<3 { uids.append(try await deliver(store, a, i, at: clock.now)) }
        try await check("deliveries")
        // At once, as sessions deliver (a group commit may share them out).
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<24 { group.addTask { _ = try await deliver(store, i % 3 == 0 ? b : a, 100 + i, at: clock.now, mailbox: i % 3 == 1 ? "Kept" : nil) } }
            try await group.waitForAll()
        }
        try await check("concurrent deliveries")
        // One message to several mailboxes (flags on one, a special-use one of another account) and the queue.
        let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "x@remote.test")])
        let receipt = try await store.deliver(Delivery(
            content: .inline(message(10)), envelope: envelope,
            targets: [DeliveryTarget(account: a), DeliveryTarget(account: a, mailbox: "Kept", flags: [.seen]), DeliveryTarget(account: b, specialUse: .junk)],
            internalDate: clock.now, remoteRecipients: [.init(address: "x@remote.test")], queueID: "QR1"))
        try await check("one message to three mailboxes and the queue")
        _ = try await store.deliverAll([Delivery(content: .inline(message(11)), envelope: envelope, targets: [DeliveryTarget(account: a, mailbox: "Kept")],
                                                 internalDate: clock.now),
                                        Delivery(content: .inline(message(12)), envelope: envelope, targets: [DeliveryTarget(account: a, mailbox: "Kept")],
                                                 internalDate: clock.now)])
        try await check("MULTIAPPEND")
        let (pairs, _) = try await store.copy(from: inbox, uids: Array(uids[0..<2]), to: kept, move: false)
        try await check("COPY")
        _ = try await store.copy(from: inbox, uids: [uids[2]], to: kept, move: true)
        try await check("MOVE")
        _ = try await store.expunge(mailbox: kept, uids: pairs.map(\.1))
        try await check("EXPUNGE")
        try await store.renameMailbox(account: a, from: "INBOX", to: "Old")
        try await check("INBOX renamed (its messages move, INBOX stays)")
        try await store.deleteMailbox(account: a, name: "Kept")
        try await check("a mailbox deleted")
        // Message 10: now in Old (from INBOX), bob's Junk and the queue.
        let id = receipt.messageID
        func stillThere(_ step: String) async throws {
            try await store.collectGarbage()
            if try await store.contents(of: [id])[id] != message(10) { problems.append("\(step): the content went while still held") }
        }
        try await stillThere("a mailbox holding it deleted")
        let old = try await store.mailboxes(account: a).first { $0.name == "Old" }!.id
        let junk = receipt.placements.first { p in p.mailbox != inbox && p.mailbox != kept }!
        _ = try await store.expunge(mailbox: old, uids: try await store.messages(mailbox: old).filter { $0.messageID == id }.map(\.uid))
        _ = try await store.expunge(mailbox: junk.mailbox, uids: [junk.uid])
        try await check("the last mailbox copies expunged")
        try await stillThere("only the queue holding it")
        guard let queued = try await store.queuedMessage(queueID: "QR1") else { return problems + ["the queued copy is missing"] }
        _ = try await store.recordAttempts(queued.recipients.map { DeliveryAttempt(recipientID: $0.id, outcome: .delivered, reply: "250 OK", remoteHost: "mx") },
                                           completing: queued.id)
        try await store.collectGarbage()
        if try await store.contents(of: [id])[id] != nil { problems.append("the content kept after the queue let it go") }
        return problems
    }

    static func leases(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        _ = try await account(store)
        let now = clock.now
        let envelope = StoredEnvelope(mailFrom: "alice@example.test", recipients: [])
        let two: [StoredEnvelope.Recipient] = [.init(address: "x@a.test"), .init(address: "y@b.test")]
        _ = try await store.deliver(Delivery(content: .inline(message(1)), envelope: envelope, targets: [], internalDate: now,
                                             remoteRecipients: two, queueID: "QL1"))
        _ = try await store.deliver(Delivery(content: .inline(message(2)), envelope: envelope, targets: [], internalDate: now,
                                             remoteRecipients: [.init(address: "z@c.test")], queueID: "QL2"))
        func due(_ messages: [QueuedMessage], at t: Date) -> [Int64] {
            messages.flatMap { $0.recipients.filter { $0.status == .pending && $0.nextAttempt <= t }.map(\.id) }
        }
        // Eight runners scan at once: each due recipient goes to exactly one of them.
        let taken = try await withThrowingTaskGroup(of: [Int64].self) { group in
            for _ in 0..<8 { group.addTask { due(try await store.queuedMessages(dueBy: now, after: 0, limit: 10), at: now) } }
            var all: [Int64] = []
            for try await part in group { all += part }
            return all
        }
        if taken.count != 3 || Set(taken).count != 3 { problems.append("concurrent scans took recipients \(taken.sorted()), not each of 3 once") }
        let leaseEnd = now.addingTimeInterval(QueueLease.duration)
        if try await !due(store.queuedMessages(dueBy: now, after: 0, limit: 10), at: now).isEmpty { problems.append("a held recipient is due for another runner") }
        if try await store.nextQueueAttempt() != leaseEnd { problems.append("next attempt \(String(describing: try await store.nextQueueAttempt())), not the lease's end") }
        // A runner gives back one it will not try now: due at once for the next scan, the others still held.
        try await store.releaseLeases([taken[0]])
        if try await due(store.queuedMessages(dueBy: now, after: 0, limit: 10), at: now) != [taken[0]] { problems.append("a released recipient is not due again alone") }
        // The runner that held them died: when the lease ends, another takes them over.
        clock.set(leaseEnd.addingTimeInterval(1))
        let again = try await store.queuedMessages(dueBy: clock.now, after: 0, limit: 10)
        if Set(due(again, at: clock.now)) != Set(taken) { problems.append("after the lease ended, due again: \(due(again, at: clock.now))") }
        // A result frees the recipient: deferred, it is due at its new time for any runner.
        guard let q1 = again.first(where: { $0.queueID == "QL1" }) else { return problems + ["QL1 missing"] }
        let retry = clock.now.addingTimeInterval(60)
        _ = try await store.recordAttempts(q1.recipients.map { DeliveryAttempt(recipientID: $0.id, outcome: .deferred(until: retry), reply: "451", remoteHost: nil) },
                                           completing: q1.id)
        clock.set(retry)
        let later = try await store.queuedMessages(dueBy: retry, after: 0, limit: 10)
        if Set(due(later, at: retry)) != Set(q1.recipients.map(\.id)) { problems.append("deferred recipients not due for a new runner at their time") }
        return problems
    }
}

extension StoreConformance {
    static func rates(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        // At the start of an hour window (2_000_001_600 is a multiple of 3600), so that the test stays inside it.
        clock.set(Date(timeIntervalSince1970: 2_000_001_600))
        let now = clock.now
        // 16 concurrent takers, 80 tries, a limit of 25: exactly 25 allowed.
        let allowed = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var n = 0
                    for _ in 0..<5 where try await store.takeRate("c:192.0.2.1", limit: 25, now: now) { n += 1 }
                    return n
                }
            }
            var total = 0
            for try await n in group { total += n }
            return total
        }
        if allowed != 25 { problems.append("concurrent takers got \(allowed) of a limit of 25") }
        if try await !store.takeRate("c:192.0.2.2", limit: 25, now: now) { problems.append("another key shares the count") }
        // Half an hour into the next window: the full previous window weighs half (12.5), so 12 more are allowed.
        let next = Date(timeIntervalSince1970: (2_000_001_600 / 3600 + 1) * 3600 + 1800)
        var later = 0
        for _ in 0..<20 where try await store.takeRate("c:192.0.2.1", limit: 25, now: next) { later += 1 }
        if later != 12 { problems.append("half an hour into the next window \(later) allowed, not 12") }
        // Two windows on, nothing of the first counts.
        let far = next.addingTimeInterval(7200)
        var fresh = 0
        for _ in 0..<30 where try await store.takeRate("c:192.0.2.1", limit: 25, now: far) { fresh += 1 }
        if fresh != 25 { problems.append("two hours later \(fresh) allowed, not 25") }
        return problems
    }

    static func greylisting(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let rule = GreylistRule(delay: 300, window: 4 * 3600, remember: 30 * 86400)
        let t0 = clock.now, key = "192.0.2.1|a@remote.test|alice@example.test"
        func check(_ at: TimeInterval, _ expected: GreylistVerdict, _ what: String) async throws {
            let v = try await store.greylist(key, rule: rule, now: t0.addingTimeInterval(at))
            if v != expected { problems.append("\(what): \(v), not \(expected)") }
        }
        try await check(0, .wait(seconds: 300), "first attempt")
        try await check(100, .wait(seconds: 200), "retry too early")
        try await check(301, .pass, "retry after the delay")
        try await check(20 * 86400, .pass, "twenty days later (remembered)")
        if try await store.greylist("192.0.2.9|a@remote.test|alice@example.test", rule: rule, now: t0.addingTimeInterval(301)) != .wait(seconds: 300) {
            problems.append("another client shares the triplet")
        }
        // A triplet that came back only after its window starts again.
        let late = "192.0.2.2|b@remote.test|alice@example.test"
        _ = try await store.greylist(late, rule: rule, now: t0)
        if try await store.greylist(late, rule: rule, now: t0.addingTimeInterval(5 * 3600)) != .wait(seconds: 300) {
            problems.append("a retry after the window passed")
        }
        // Concurrent first attempts of one triplet: all wait, and one retry after the delay passes.
        let race = "192.0.2.3|c@remote.test|alice@example.test"
        let verdicts = try await withThrowingTaskGroup(of: GreylistVerdict.self) { group in
            for _ in 0..<8 { group.addTask { try await store.greylist(race, rule: rule, now: t0) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        if verdicts.contains(.pass) { problems.append("a concurrent first attempt passed") }
        if try await store.greylist(race, rule: rule, now: t0.addingTimeInterval(300)) != .pass { problems.append("the raced triplet does not pass after the delay") }
        // Pruning at 40 days: the passed triplet (remembered until 50 days) stays; the waiting ones (window over) go,
        // and so do rate windows from long ago.
        _ = try await store.takeRate("c:192.0.2.1", limit: 5, now: t0)
        let pruned = try await store.prunePolicyState(rule: rule, now: t0.addingTimeInterval(40 * 86400))
        if pruned != 4 { problems.append("pruned \(pruned) entries, not 4 (three triplets and a rate window)") }
        try await check(40 * 86400 + 1, .pass, "the remembered triplet after pruning")
        return problems
    }

    static func failureAmongConcurrent(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let now = clock.now
        let outcomes = try await withThrowingTaskGroup(of: (Int, UID?).self) { group in
            for i in 0..<24 {
                group.addTask {
                    let envelope = StoredEnvelope(mailFrom: "a@remote.test", recipients: [.init(address: "alice@example.test")])
                    var d = Delivery(content: .inline(message(i)), envelope: envelope,
                                     targets: [DeliveryTarget(account: a, mailbox: i == 7 ? "Nowhere" : nil)], internalDate: now)
                    d.log = [DeliveryEvent(at: now, queueID: "QC\(i)", kind: .stored, detail: "x")]
                    do { return (i, try await store.deliver(d).placements.first?.1) } catch { return (i, nil) }
                }
            }
            return try await group.reduce(into: [Int: UID?]()) { $0[$1.0] = $1.1 }
        }
        let failed = outcomes.filter { $0.value == nil }.map(\.key)
        if failed != [7] { problems.append("failed deliveries \(failed.sorted()), not [7]") }
        let stored = try await store.messages(mailbox: inbox).map(\.uid)
        let given = outcomes.compactMap { $0.value }
        if Set(stored) != Set(given) || stored.count != 23 { problems.append("stored UIDs \(stored) against given \(given.sorted())") }
        if try await !store.deliveryLog(id: "QC7").isEmpty { problems.append("the failed delivery left log lines") }
        if try await store.deliveryLog(id: "QC8").count != 1 { problems.append("a delivery beside the failed one lost its log line") }
        return problems
    }

    static func concurrentWrites(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let (a, inbox) = try await account(store)
        let archive = try await store.createMailbox(account: a, name: "Kept")
        var delivered: [UID] = []
        for n in 0..<30 { delivered.append(try await deliver(store, a, n, at: clock.now)) }
        let uids = delivered
        let before = try await store.mailboxChanges(mailbox: inbox, since: nil).highestModSeq
        let errors = try await withThrowingTaskGroup(of: String?.self) { group in
            for i in 0..<20 {
                group.addTask {
                    do {
                        _ = try await store.storeFlags(mailbox: inbox, uids: [uids[i]], operation: .add, flags: .seen, keywords: ["k\(i)"], unchangedSince: nil)
                    } catch { return "STORE \(i): \(error)" }
                    return nil
                }
            }
            for i in 20..<25 {
                group.addTask {
                    do { _ = try await store.copy(from: inbox, uids: [uids[i]], to: archive, move: false) } catch { return "COPY \(i): \(error)" }
                    return nil
                }
            }
            group.addTask {
                do { _ = try await store.expunge(mailbox: inbox, uids: [uids[29]]) } catch { return "EXPUNGE: \(error)" }
                return nil
            }
            // A copy into a mailbox that does not exist fails, and alone.
            group.addTask {
                do {
                    _ = try await store.copy(from: inbox, uids: [uids[25]], to: 987_654_321, move: false)
                    return "a COPY to a missing mailbox succeeded"
                } catch { return nil }
            }
            return try await group.reduce(into: [String]()) { if let e = $1 { $0.append(e) } }
        }
        problems += errors
        let after = try await store.mailboxChanges(mailbox: inbox, since: nil)
        let changed = after.changed.filter { $0.modSeq > before }
        if Set(changed.map(\.uid)) != Set(uids[0..<20]) { problems.append("changed after the STOREs: \(changed.map(\.uid))") }
        if Set(changed.map(\.modSeq)).count != changed.count { problems.append("two STOREs share a MODSEQ") }
        // The EXPUNGE may come before or after the STOREs: HIGHESTMODSEQ is at least every change's, and above the start.
        if after.highestModSeq < changed.map(\.modSeq).max() ?? before || after.highestModSeq <= before {
            problems.append("HIGHESTMODSEQ \(after.highestModSeq) below a change's MODSEQ")
        }
        for m in changed where !(m.flags.contains(.seen) && m.keywords.count == 1) { problems.append("UID \(m.uid) has \(m.flags) \(m.keywords)") }
        if after.changed.contains(where: { $0.uid == uids[29] }) { problems.append("the expunged message is still there") }
        if try await store.messages(mailbox: archive).count != 5 { problems.append("copies: \(try await store.messages(mailbox: archive).map(\.uid))") }
        return problems
    }

    static func leaseRenewal(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        _ = try await account(store)
        let start = clock.now, lease = store.queueLease
        _ = try await store.deliver(Delivery(content: .inline(message(1)), envelope: StoredEnvelope(mailFrom: "alice@example.test", recipients: []),
                                             targets: [], internalDate: start,
                                             remoteRecipients: [.init(address: "x@a.test"), .init(address: "y@b.test")], queueID: "QR1"))
        func due(at t: Date) async throws -> [Int64] {
            try await store.queuedMessages(dueBy: t, after: 0, limit: 10)
                .flatMap { $0.recipients.filter { $0.status == .pending && $0.nextAttempt <= t }.map(\.id) }
        }
        let held = try await due(at: start)
        guard held.count == 2 else { return ["the first scan took \(held)"] }
        let renewedAt = start.addingTimeInterval(lease / 2)
        if Set(try await store.renewLeases(held, until: renewedAt.addingTimeInterval(lease))) != Set(held) { problems.append("a held lease was not renewed") }
        if try await !due(at: start.addingTimeInterval(lease + 1)).isEmpty { problems.append("renewed recipients were taken after the first lease") }
        let q = try await store.queuedMessages(dueBy: nil, after: 0, limit: 10)[0]
        _ = try await store.recordAttempts([DeliveryAttempt(recipientID: held[0], outcome: .delivered, reply: "250", remoteHost: nil)], completing: q.id)
        if try await store.renewLeases(held, until: renewedAt.addingTimeInterval(2 * lease)) != [held[1]] { problems.append("a delivered recipient was renewed") }
        if try await due(at: renewedAt.addingTimeInterval(2 * lease + 1)) != [held[1]] { problems.append("after the renewal ran out, not due again") }
        return problems
    }

    static func jobClaims(_ store: any MailStore, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        let now = clock.now, until = now.addingTimeInterval(3540)
        // Eight nodes claim at once: exactly one gets it.
        let winners = try await withThrowingTaskGroup(of: String?.self) { group in
            for n in 0..<8 { group.addTask { try await store.claimJob("housekeeping", holder: "node \(n)", until: until, now: now) ? "node \(n)" : nil } }
            return try await group.reduce(into: [String]()) { if let w = $1 { $0.append(w) } }
        }
        guard winners.count == 1, let holder = winners.first else { return ["\(winners.count) nodes got the claim"] }
        if try await !store.claimJob("housekeeping", holder: holder, until: until.addingTimeInterval(3600), now: now.addingTimeInterval(60)) {
            problems.append("the holder cannot extend its claim")
        }
        if try await store.claimJob("housekeeping", holder: "other", until: until, now: until.addingTimeInterval(1)) {
            problems.append("another node took an extended claim")
        }
        if try await !store.claimJob("pruning", holder: "other", until: until, now: now) { problems.append("a claim on another job was refused") }
        // The holder died: after its claim ends, another node takes over.
        if try await !store.claimJob("housekeeping", holder: "other", until: until.addingTimeInterval(7200), now: until.addingTimeInterval(3601)) {
            problems.append("no other node could take the job after the claim ended")
        }
        return problems
    }
}

/// Collects what observers were told (observers run on store threads).
public final class Recorder<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Value] = []
    public init() {}
    public func add(_ v: Value) { lock.lock(); list.append(v); lock.unlock() }
    public var values: [Value] { lock.lock(); defer { lock.unlock() }; return list }
    public var isEmpty: Bool { values.isEmpty }
    public func clear() { lock.lock(); list.removeAll(); lock.unlock() }
}

extension Recorder where Value: Equatable {
    public func contains(_ v: Value) -> Bool { values.contains(v) }
}

/// Runs `body` and notes a problem unless it throws a `StoreError` that `matches` (any, by default).
func expectStoreError(_ what: String, _ problems: inout [String], matching matches: (StoreError) -> Bool = { _ in true },
                      _ body: () async throws -> Void) async {
    do {
        try await body()
        problems.append("\(what): no error")
    } catch let e as StoreError where matches(e) {
    } catch {
        problems.append("\(what): \(error)")
    }
}
