import Foundation
import Logging
import MailCore
import MailStore
import MailStoreSQLite
import Sieve
@testable import SieveDelivery
import Testing
@testable import Intake

/// Step 3b, filters: each recipient's active Sieve script decides where its copy goes, in the commit that gives the 250.
@Suite struct FilteringTests {
    static let start = PipelineTests.start
    let alice = AccountID(1), bob = AccountID(2)

    func run(_ account: AccountID, _ recipient: String, _ actions: [SieveAction], error: SieveError? = nil) -> FilterRun {
        FilterRun(account: account, recipient: recipient, result: SieveResult(actions: actions, error: error))
    }

    @Test func thePlanFilesKeepsRedirectsAndDiscardsPerAccount() {
        let base = [DeliveryTarget(account: alice), DeliveryTarget(account: bob)]
        // alice files into a mailbox she has and one she has not (kept in INBOX instead), bob's script discards.
        var plan = FilterPlan(base: base, runs: [
            run(alice, "alice@here.test", [.fileinto(mailbox: "Lists", create: false), .fileinto(mailbox: "Nowhere", create: false)]),
            run(bob, "bob@here.test", []),
        ], mailboxes: [alice: ["INBOX", "Lists"], bob: ["INBOX"]])
        #expect(plan.targets == [DeliveryTarget(account: alice, mailbox: "Lists"), DeliveryTarget(account: alice)])
        #expect(plan.creates.isEmpty && plan.redirects.isEmpty)
        #expect(plan.notes == ["<alice@here.test>: filed into \"Lists\"; kept in INBOX: no mailbox \"Nowhere\"", "<bob@here.test>: discarded"])
        #expect(plan.filtered == [alice, bob])

        // An account without a script keeps the plan's target; :create names the mailbox to make; a redirect is a copy.
        plan = FilterPlan(base: base, runs: [
            run(alice, "alice@here.test", [.fileinto(mailbox: "New/Sub", create: true), .redirect(address: "x@far.test"), .keep]),
        ], mailboxes: [alice: ["INBOX"]])
        #expect(plan.targets == [DeliveryTarget(account: alice, mailbox: "New/Sub"), DeliveryTarget(account: alice), DeliveryTarget(account: bob)])
        #expect(plan.creates == [FilterPlan.Mailbox(account: alice, name: "New/Sub")])
        #expect(plan.redirects == [FilterPlan.Redirect(from: "alice@here.test", to: "x@far.test", account: alice)])

        // A redirect that would loop keeps the message; so does a failed script (its actions are the implicit keep).
        plan = FilterPlan(base: base, runs: [
            run(alice, "Alice@here.test", [.redirect(address: "x@far.test")]),
            run(bob, "bob@here.test", [.keep], error: SieveError(SievePosition(line: 3, column: 5), "more than 4 redirects")),
        ], mailboxes: [:], looping: ["alice@here.test"])
        #expect(plan.targets == base && plan.redirects.isEmpty)
        #expect(plan.notes[0].contains("would loop") && plan.notes[1].contains("script error at line 3, column 5: more than 4 redirects"))

        // Spam: the checks' Junk target is where a keep files it; "INBOX" by name is INBOX in any case.
        let junk = [DeliveryTarget(account: alice, specialUse: .junk)]
        plan = FilterPlan(base: junk, runs: [run(alice, "alice@here.test", [.keep, .fileinto(mailbox: "inbox", create: false)])],
                          mailboxes: [alice: ["INBOX"]])
        #expect(plan.targets == [DeliveryTarget(account: alice, specialUse: .junk), DeliveryTarget(account: alice, mailbox: "INBOX")])
    }

    @Test func loopsAreFoundInTheDeliveredToFields() {
        let fields = [(name: "Delivered-To", value: " <Alice@Here.test>"), (name: "delivered-to", value: "bob@here.test"), (name: "To", value: "c@x")]
        let found = FilterPlan.deliveredTo(fields)
        #expect(found.addresses == ["alice@here.test", "bob@here.test"] && !found.everyone)
        #expect(FilterPlan.deliveredTo(Array(repeating: (name: "Delivered-To", value: "z@z"), count: 21)).everyone)
    }

    @Test func redirectsAreCopiesQueuedInTheSameCommitAndADiscardStoresNothing() throws {
        let envelope = IntakeEnvelope(mailFrom: "s@remote.test", recipients: [.init(address: "alice@here.test")], envelopeID: "E1")
        let plan = RoutingPlan(envelope: envelope, routes: [.local([alice])])
        let bytes = Array("Return-Path: <s@remote.test>\r\nSubject: x\r\n\r\nhi\r\n".utf8)
        let prepared = Prepared(content: .inline(bytes), messageID: "m@x")
        let filter = FilterPlan(base: plan.targets, runs: [run(alice, "alice@here.test", [.redirect(address: "x@far.test"), .keep])],
                                mailboxes: [:])
        var ids = ["R1"]
        let (deliveries, log) = try IntakeCommit.filtered(
            plan: plan, prepared: prepared, filter: filter, queueID: "Q1", now: Self.start, received: "from x",
            redirected: { r in try FilterPlan.redirectCopy(.inline(bytes), from: r.from, skip: 30, blobs: BlobStore(root: URL(fileURLWithPath: "/nonexistent"), tmp: URL(fileURLWithPath: "/nonexistent"))) },
            newID: { ids.removeFirst() })
        #expect(log.isEmpty && deliveries.count == 2)
        #expect(deliveries[0].queueID == "Q1" && deliveries[0].targets == [DeliveryTarget(account: alice)] && !deliveries[0].isQueued)
        #expect(deliveries[0].log.map(\.kind) == [.received, .filtered])
        #expect(deliveries[0].log.last?.detail == "<alice@here.test>: redirected to <x@far.test>; kept in INBOX")
        let copy = deliveries[1]
        #expect(copy.queueID == "R1" && copy.targets.isEmpty && copy.remoteRecipients.map(\.address) == ["x@far.test"])
        #expect(copy.envelope.mailFrom == "s@remote.test" && copy.envelope.envelopeID == nil)
        guard case .inline(let redirected) = copy.content else { Issue.record("not inline"); return }
        #expect(String(decoding: redirected, as: UTF8.self) == "Delivered-To: alice@here.test\r\nSubject: x\r\n\r\nhi\r\n")
        // The original's line names the copy; the copy's own links back to it.
        #expect(copy.log.map(\.queueID) == ["Q1", "R1"] && copy.log.map(\.kind) == [.filtered, .queued] && copy.log[1].related == "Q1")
        #expect(copy.log[0].detail == "redirected by <alice@here.test> to <x@far.test> as R1")

        // Discarded by the only recipient: no delivery at all, only the log lines.
        let discard = FilterPlan(base: plan.targets, runs: [run(alice, "alice@here.test", [])], mailboxes: [:])
        let nothing = try IntakeCommit.filtered(plan: plan, prepared: prepared, filter: discard, queueID: "Q2", now: Self.start, received: "from x",
                                            redirected: { _ in .inline([]) }, newID: { "-" })
        #expect(nothing.deliveries.isEmpty && nothing.log.map(\.kind) == [.received, .filtered])
        #expect(nothing.log.last?.detail == "<alice@here.test>: discarded")
    }

    // MARK: whole, on a real store

    static let script = """
        require ["fileinto", "mailbox"];
        if header :contains "subject" "[list]" { fileinto :create "Lists"; stop; }
        if address :is "from" "boss@remote.test" { redirect "phone@far.test"; keep; }
        if header :is "subject" "junk" { discard; }
        if header :is "subject" "many" {
          redirect "a@far.test"; redirect "b@far.test"; redirect "c@far.test"; redirect "d@far.test"; redirect "e@far.test";
        }
        """

    func message(_ rig: PipelineTests.Rig, id: String, to recipients: [String] = ["team@here.test"]) -> IncomingMessage {
        let routes: [RecipientRoute] = recipients.map { $0 == "team@here.test" ? .local([rig.alice, rig.bob]) : .local([rig.alice]) }
        return IncomingMessage(source: .mx, envelope: IntakeEnvelope(mailFrom: "s@remote.test", recipients: recipients.map { .init(address: $0) }),
                               routes: routes, queueID: id, arrived: Self.start, received: "from x.test",
                               returnPathLength: "Return-Path: <s@remote.test>\r\n".utf8.count, logger: rig.logger)
    }

    func mailbox(_ rig: PipelineTests.Rig, _ account: AccountID, _ name: String) async throws -> [String] {
        guard let box = try await rig.store.mailboxes(account: account).first(where: { $0.name == name }) else { return [] }
        var out: [String] = []
        for m in try await rig.store.messages(mailbox: box.id) {
            out.append(String(decoding: try await rig.store.content(of: m.messageID), as: UTF8.self))
        }
        return out
    }

    func redirected(_ rig: PipelineTests.Rig, _ id: String) async throws -> [(to: String, content: String)] {
        var out: [(String, String)] = []
        for line in try await rig.store.deliveryLog(id: id) where line.kind == .filtered && line.detail.hasPrefix("redirected by") {
            let copyID = String(line.detail.split(separator: " ").last!)
            let queued = try #require(try await rig.store.queuedMessage(queueID: copyID))
            out.append((queued.recipients.map(\.address).joined(separator: ","), String(decoding: try await rig.store.content(of: queued.messageID), as: UTF8.self)))
        }
        return out
    }

    @Test func eachRecipientsScriptRunsAtDeliveryInTheSameCommit() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "main", content: Self.script)
        try await rig.store.activateScript(account: rig.alice, name: "main")

        // To alice and bob (the team alias): alice's copy goes where her script says, bob's (no script) into INBOX.
        var outcome = await rig.receive(intake, message(rig, id: "L1"), "From: <x@remote.test>\r\nSubject: [list] news\r\n\r\nhi\r\n")
        guard case .committed = outcome else { Issue.record("\(outcome)"); return }
        #expect(try await mailbox(rig, rig.alice, "Lists").count == 1)
        #expect(try await mailbox(rig, rig.alice, "INBOX").isEmpty)
        #expect(try await mailbox(rig, rig.bob, "INBOX").count == 1)
        let log = try await rig.store.deliveryLog(id: "L1")
        #expect(log.contains { $0.kind == .filtered && $0.detail == "<team@here.test>: filed into \"Lists\" (created)" })
        // bob's copy (no script) is the usual "stored" line.
        #expect(log.contains { $0.kind == .stored && $0.detail == "<team@here.test> in INBOX" })

        // Discarded for alice alone: nothing stored, a 250 all the same, and the log says why.
        outcome = await rig.receive(intake, message(rig, id: "D1", to: ["alice@here.test"]), "From: <x@remote.test>\r\nSubject: junk\r\n\r\nx\r\n")
        guard case .committed(_, _, _, let queued) = outcome, !queued else { Issue.record("\(outcome)"); return }
        #expect(outcome.reply.code.rawValue == 250)
        #expect(try await mailbox(rig, rig.alice, "INBOX").isEmpty)
        #expect(try await rig.store.deliveryLog(id: "D1").map(\.detail).contains("<alice@here.test>: discarded"))

        // Redirected (and kept): the copy is queued with a Delivered-To field and without this server's Return-Path.
        outcome = await rig.receive(intake, message(rig, id: "B1", to: ["alice@here.test"]), "From: Boss <boss@remote.test>\r\nSubject: call me\r\n\r\nnow\r\n")
        guard case .committed(_, _, _, true) = outcome else { Issue.record("\(outcome)"); return }
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 1)
        let copies = try await redirected(rig, "B1")
        #expect(copies.count == 1 && copies.first?.to == "phone@far.test")
        #expect(copies.first?.content == "Delivered-To: alice@here.test\r\nFrom: Boss <boss@remote.test>\r\nSubject: call me\r\n\r\nnow\r\n")

        // Already through alice once (her Delivered-To is in it): not redirected again, kept.
        _ = await rig.receive(intake, message(rig, id: "B2", to: ["alice@here.test"]),
                              "Delivered-To: alice@here.test\r\nFrom: boss@remote.test\r\nSubject: again\r\n\r\nnow\r\n")
        #expect(try await redirected(rig, "B2").isEmpty)
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 2)

        // A script that fails at run time (a fifth redirect) keeps the message, whatever it had done before.
        _ = await rig.receive(intake, message(rig, id: "M1", to: ["alice@here.test"]), "From: x@remote.test\r\nSubject: many\r\n\r\nx\r\n")
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 3)
        #expect(try await redirected(rig, "M1").isEmpty)
        #expect(try await rig.store.deliveryLog(id: "M1").contains { $0.kind == .filtered && $0.detail.contains("script error at") })

        // A new script (or none) takes effect at the next message: the store's cache of active scripts forgets.
        try await rig.store.putScript(account: rig.alice, name: "main", content: "discard;")
        _ = await rig.receive(intake, message(rig, id: "N1", to: ["alice@here.test"]), "Subject: y\r\n\r\ny\r\n")
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 3)
        try await rig.store.activateScript(account: rig.alice, name: nil)
        _ = await rig.receive(intake, message(rig, id: "N2", to: ["alice@here.test"]), "Subject: y\r\n\r\ny\r\n")
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 4)
    }

    @Test func aStoredFileIsFilteredAndRedirectedAPieceAtATime() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: #"require "fileinto"; redirect "far@far.test"; fileinto "Archive";"#)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        _ = try await rig.store.createMailbox(account: rig.alice, name: "Archive")
        // Above the inline limit: the message is a file, and so is its redirected copy.
        let body = String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567\r\n", count: 5_000)
        let text = "From: x@remote.test\r\nSubject: big\r\n\r\n" + body
        #expect(text.utf8.count > rig.store.inlineLimit)
        let outcome = await rig.receive(intake, message(rig, id: "F1", to: ["alice@here.test"]), text)
        guard case .committed(_, _, _, true) = outcome else { Issue.record("\(outcome)"); return }
        #expect(try await mailbox(rig, rig.alice, "Archive") == ["Return-Path: <s@remote.test>\r\n" + text])
        #expect(try await mailbox(rig, rig.alice, "INBOX").isEmpty)
        let copies = try await redirected(rig, "F1")
        #expect(copies.count == 1 && copies.first?.content == "Delivered-To: alice@here.test\r\n" + text)
    }

    func queuedNotices(_ rig: PipelineTests.Rig, _ id: String) async throws -> [(to: String, from: String, content: String)] {
        var out: [(String, String, String)] = []
        for line in try await rig.store.deliveryLog(id: id) where line.kind == .filtered && line.detail.contains(" sent to <") {
            let noticeID = String(line.detail.split(separator: " ").last!)
            guard let queued = try await rig.store.queuedMessage(queueID: noticeID) else { continue }
            out.append((queued.recipients.map(\.address).joined(separator: ","), queued.envelope.mailFrom,
                        String(decoding: try await rig.store.content(of: queued.messageID), as: UTF8.self)))
        }
        return out
    }

    /// A vacation reply to a message with a long References field keeps every line within RFC 5322's 998 octets (it
    /// put the original's References and Message-ID on one line, up to 1,800).
    @Test func vacationReplyLinesStayWithinTheLimit() {
        let references = (0..<40).map { "<reference-\($0)-\(String(repeating: "x", count: 20))@lists.example>" }.joined(separator: " ")
        let reply = SieveReplies.vacation(SieveVacation(reason: "away"), original: [("Message-ID", "<m1@remote.test>"), ("References", references),
                                                                                     ("Subject", "hi")],
                                          sender: "s@remote.test", recipient: "alice@example.test", hostname: "mx.example.test", id: "V1",
                                          now: Date(timeIntervalSince1970: 2_000_000_000))
        let text = String(decoding: reply, as: UTF8.self)
        #expect(text.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 })
        // Unfolded, the field names whole ids: the first of the original's, the last ones that fit, then the original.
        let head = text.components(separatedBy: "\r\n\r\n")[0].replacingOccurrences(of: "\r\n ", with: " ")
        let field = head.components(separatedBy: "\r\n").first { $0.hasPrefix("References:") } ?? ""
        let ids = field.dropFirst("References: ".count).split(separator: " ").map(String.init)
        let original = references.split(separator: " ").map(String.init)
        #expect(ids.first == original.first && ids.last == "<m1@remote.test>" && ids.count > 10)
        #expect(Array(ids.dropFirst().dropLast()) == Array(original.suffix(ids.count - 2)))
        // A Message-ID that is no plausible msg-id (here 900 characters of UTF-8) is not echoed at all.
        let odd = SieveReplies.vacation(SieveVacation(reason: "away"), original: [("Message-ID", "<" + String(repeating: "é", count: 900) + "@x>")],
                                        sender: "s@remote.test", recipient: "alice@example.test", hostname: "mx.example.test", id: "V2",
                                        now: Date(timeIntervalSince1970: 2_000_000_000))
        let oddText = String(decoding: odd, as: UTF8.self)
        #expect(oddText.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 998 } && !oddText.contains("In-Reply-To"))
    }

    @Test func vacationRepliesOncePerPeriodAndRejectRefusesOrNotifies() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require ["vacation", "reject"];
            if header :is "subject" "no" { reject "Not today, thanks."; stop; }
            vacation :days 1 :subject "Away" "I am away until Monday.";
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        func incoming(_ id: String, from: String = "s@remote.test", to: [String] = ["alice@here.test"], at: Date = Self.start) -> IncomingMessage {
            var m = message(rig, id: id, to: to)
            m.envelope.mailFrom = from
            m.arrived = at
            return m
        }
        let hello = "From: S <s@remote.test>\r\nTo: alice@here.test\r\nSubject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\nhi\r\n"
        var outcome = await rig.receive(intake, incoming("V1"), hello)
        guard case .committed(_, _, _, false) = outcome else { Issue.record("\(outcome)"); return }
        let replies = try await queuedNotices(rig, "V1")
        #expect(replies.count == 1 && replies.first?.to == "s@remote.test" && replies.first?.from == "")
        let reply = replies.first?.content ?? ""
        #expect(reply.contains("From: <alice@here.test>\r\nTo: <s@remote.test>\r\nSubject: Away\r\n"))
        #expect(reply.contains("In-Reply-To: <m1@remote.test>") && reply.contains("Auto-Submitted: auto-replied (vacation)"))
        #expect(reply.contains(Data("I am away until Monday.".utf8).base64EncodedString()))
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 1)
        // The same sender within the day: no second reply (the log says why); after it, one again.
        _ = await rig.receive(intake, incoming("V2", at: Self.start.addingTimeInterval(3600)), hello)
        #expect(try await queuedNotices(rig, "V2").isEmpty)
        #expect(try await rig.store.deliveryLog(id: "V2").contains { $0.detail.contains("no vacation reply to <s@remote.test>: already replied") })
        _ = await rig.receive(intake, incoming("V3", at: Self.start.addingTimeInterval(90_000)), hello)
        #expect(try await queuedNotices(rig, "V3").count == 1)
        // Never to a list, a bounce, or mail that does not name her.
        _ = await rig.receive(intake, incoming("V4", from: "x@lists.test"), "List-Id: <l.lists.test>\r\nTo: alice@here.test\r\nSubject: l\r\n\r\nx\r\n")
        _ = await rig.receive(intake, incoming("V5", from: ""), "To: alice@here.test\r\nSubject: bounce\r\n\r\nx\r\n")
        _ = await rig.receive(intake, incoming("V6", from: "y@remote.test"), "To: undisclosed-recipients:;\r\nSubject: bcc\r\n\r\nx\r\n")
        for id in ["V4", "V5", "V6"] { #expect(try await queuedNotices(rig, id).isEmpty, "\(id)") }
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 6)

        // Rejected by her script, and she was the only recipient: refused with 550 at SMTP time, nothing stored.
        outcome = await rig.receive(intake, incoming("R1"), "To: alice@here.test\r\nSubject: no\r\n\r\nx\r\n")
        guard case .refused(let refusal) = outcome else { Issue.record("\(outcome)"); return }
        #expect(refusal.encoded() == "550 5.7.1 Not today, thanks.\r\n")
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 6)
        #expect(try await rig.store.deliveryLog(id: "R1").map(\.kind) == [.received, .filtered, .refused])
        // With bob too (the team alias): bob gets it, the sender a rejection notice for alice.
        outcome = await rig.receive(intake, incoming("R2", to: ["team@here.test"]), "To: team@here.test\r\nSubject: no\r\n\r\nx\r\n")
        guard case .committed = outcome else { Issue.record("\(outcome)"); return }
        #expect(try await mailbox(rig, rig.bob, "INBOX").count == 1)
        let notices = try await queuedNotices(rig, "R2")
        #expect(notices.count == 1 && notices.first?.from == "")
        #expect(notices.first?.content.contains("report-type=disposition-notification") == true)
        #expect(notices.first?.content.contains("Disposition: automatic-action/MDN-sent-automatically; deleted") == true)
    }

    /// An intake whose checks send mail from soft.test to Junk (its SPF fails and its DMARC policy is quarantine), and
    /// such a message to alice from a client of port 25.
    static func quarantining(_ rig: PipelineTests.Rig) async throws -> (Intake, @Sendable (String) -> IncomingMessage) {
        let intake = rig.intake { dns in
            dns.txt["soft.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
            dns.txt["_dmarc.soft.test"] = ["v=DMARC1; p=quarantine"]
        }
        let checks = try #require(intake.checks)
        let facts = await checks.connect("198.51.100.7")
        let spf = await checks.mailFrom(client: facts, helo: "x.test", sender: "a@soft.test").spf
        let (alice, logger) = (rig.alice, rig.logger)
        return (intake, { id in
            IncomingMessage(source: .mx, envelope: IntakeEnvelope(mailFrom: "a@soft.test", recipients: [.init(address: "alice@here.test")]),
                            routes: [.local([alice])], queueID: id, arrived: Self.start,
                            client: IntakeClient(address: "198.51.100.7", helo: "x.test", facts: facts, spf: spf),
                            received: "from x.test", returnPathLength: "Return-Path: <a@soft.test>\r\n".utf8.count, logger: logger)
        })
    }

    @Test func spamGoesToJunkThroughTheAfterScriptUnlessTheUserFiledIt() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let (intake, quarantined) = try await Self.quarantining(rig)
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require "fileinto";
            if header :contains "subject" "newsletter" { fileinto "Lists"; }
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        _ = try await rig.store.createMailbox(account: rig.alice, name: "Lists")
        // Her script did not place it: Tern's after script files it where \Junk is.
        _ = await rig.receive(intake, quarantined("J1"), "From: <a@soft.test>\r\nSubject: hello\r\n\r\nx\r\n")
        #expect(try await rig.contents(rig.alice, .junk).count == 1)
        #expect(try await rig.store.deliveryLog(id: "J1").contains { $0.detail == "<alice@here.test>: filed into \"Junk\"" })
        // Her script filed it: it stays where she put it.
        _ = await rig.receive(intake, quarantined("J2"), "From: <a@soft.test>\r\nSubject: newsletter\r\n\r\nx\r\n")
        #expect(try await mailbox(rig, rig.alice, "Lists").count == 1)
        #expect(try await rig.contents(rig.alice, .junk).count == 1)
    }

    @Test func notificationsGoOutByMailButNotForAutomaticMail() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require ["enotify", "variables"];
            if header :matches "subject" "*" { set "s" "${1}"; }
            notify :message "New: ${s}" "mailto:pager@far.test";
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        _ = await rig.receive(intake, message(rig, id: "N1", to: ["alice@here.test"]), "From: x@remote.test\r\nSubject: server down\r\n\r\nx\r\n")
        let sent = try await queuedNotices(rig, "N1")
        #expect(sent.count == 1 && sent.first?.to == "pager@far.test" && sent.first?.from == "")
        #expect(sent.first?.content.contains("Subject: New: server down\r\n") == true)
        #expect(sent.first?.content.contains("Auto-Submitted: auto-notified\r\n") == true)
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 1)
        // No notification about a message that was itself sent automatically (RFC 5436).
        _ = await rig.receive(intake, message(rig, id: "N2", to: ["alice@here.test"]),
                              "From: x@remote.test\r\nAuto-Submitted: auto-generated\r\nSubject: cron\r\n\r\nx\r\n")
        #expect(try await queuedNotices(rig, "N2").isEmpty)
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 2)
    }

    @Test func headerEditsReachThatAccountsCopiesOnly() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require ["editheader", "copy"];
            deleteheader "X-Tracking";
            addheader "X-Sorted" "yes";
            redirect :copy "phone@far.test";
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        let text = "X-Tracking: 123\r\nSubject: hello\r\n\r\nbody\r\n"
        _ = await rig.receive(intake, message(rig, id: "E1"), text)
        #expect(try await mailbox(rig, rig.alice, "INBOX") == ["X-Sorted: yes\r\nReturn-Path: <s@remote.test>\r\nSubject: hello\r\n\r\nbody\r\n"])
        #expect(try await mailbox(rig, rig.bob, "INBOX") == ["Return-Path: <s@remote.test>\r\n" + text])
        let copies = try await redirected(rig, "E1")
        #expect(copies.map(\.content) == ["Delivered-To: team@here.test\r\nX-Sorted: yes\r\nSubject: hello\r\n\r\nbody\r\n"])
        // A stored file is edited into a new one, the body copied a piece at a time.
        let body = String(repeating: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567\r\n", count: 5_000)
        _ = await rig.receive(intake, message(rig, id: "E2", to: ["alice@here.test"]), "X-Tracking: 9\r\nSubject: big\r\n\r\n" + body)
        let big = try await mailbox(rig, rig.alice, "INBOX")
        #expect(big.count == 2 && big.last == "X-Sorted: yes\r\nReturn-Path: <s@remote.test>\r\nSubject: big\r\n\r\n" + body)
    }

    @Test func duplicatesAreRecognisedAcrossDeliveries() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: #"require ["duplicate", "fileinto", "mailbox"]; if duplicate { fileinto :create "Duplicates"; }"#)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        let text = "Message-ID: <same@remote.test>\r\nSubject: twice\r\n\r\nx\r\n"
        _ = await rig.receive(intake, message(rig, id: "D1", to: ["alice@here.test"]), text)
        _ = await rig.receive(intake, message(rig, id: "D2", to: ["alice@here.test"]), text)
        _ = await rig.receive(intake, message(rig, id: "D3", to: ["alice@here.test"]), "Message-ID: <other@remote.test>\r\nSubject: once\r\n\r\nx\r\n")
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 2)
        #expect(try await mailbox(rig, rig.alice, "Duplicates").count == 1)
        // bob has no script: nothing is remembered for him.
        _ = await rig.receive(intake, message(rig, id: "D4", to: ["bob@here.test"]).routedTo(rig.bob), text)
        #expect(try await mailbox(rig, rig.bob, "INBOX").count == 1)
    }

    @Test func theAdministratorsScriptsRunAroundTheUsers() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let folder = rig.dir.appendingPathComponent("sieve-admin")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("here.test"), withIntermediateDirectories: true)
        try #"require ["fileinto", "copy", "mailbox"]; if header :contains "subject" "[audit]" { fileinto :copy :create "Audit"; }"#
            .write(to: folder.appendingPathComponent("before.sieve"), atomically: true, encoding: .utf8)
        try #"require ["fileinto", "mailbox"]; fileinto :create "Sorted";"#
            .write(to: folder.appendingPathComponent("here.test/after.sieve"), atomically: true, encoding: .utf8)
        var config = rig.config
        config.sieveScripts = folder
        let intake = Intake(store: rig.store, config: config, checks: nil, work: InlineWork(), logger: rig.logger)
        // bob has no script of his own: the before script, then the domain's after script.
        _ = await rig.receive(intake, message(rig, id: "A1", to: ["bob@here.test"]).routedTo(rig.bob), "Subject: [audit] q3\r\n\r\nx\r\n")
        #expect(try await mailbox(rig, rig.bob, "Audit").count == 1)
        #expect(try await mailbox(rig, rig.bob, "Sorted").count == 1)
        #expect(try await mailbox(rig, rig.bob, "INBOX").isEmpty)
        // alice's own script stops: the after script does not run for her.
        try await rig.store.putScript(account: rig.alice, name: "s", content: "keep; stop;")
        try await rig.store.activateScript(account: rig.alice, name: "s")
        _ = await rig.receive(intake, message(rig, id: "A2", to: ["alice@here.test"]), "Subject: [audit] q4\r\n\r\nx\r\n")
        #expect(try await mailbox(rig, rig.alice, "Audit").count == 1)
        #expect(try await mailbox(rig, rig.alice, "INBOX").count == 1)
        #expect(try await mailbox(rig, rig.alice, "Sorted").isEmpty)
        // A script with an error is named with its place.
        try "if true {".write(to: folder.appendingPathComponent("before.sieve"), atomically: true, encoding: .utf8)
        #expect(throws: SieveAdminScripts.LoadError.self) { try SieveAdminScripts.load(folder) }
        do { _ = try SieveAdminScripts.load(folder) } catch { #expect("\(error)".contains("before.sieve:1:"), "\(error)") }
    }
}

/// What an outside sender or a script can make of a delivery: never a failed delivery, a mail in another's name, a loop
/// or a reply to spam.
@Suite struct HostileFilteringTests {
    let t = FilteringTests()

    @Test func namesFromTheMessageThatCannotBeMailboxesKeepTheMessage() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require ["fileinto", "mailbox", "variables"];
            if header :matches "x-folder" "*" { fileinto :create "${1}"; }
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        // Empty, an empty level, a wildcard, a control character (written with encoded-character): each kept in INBOX,
        // bob's copy (the team alias) stored as always, the delivery a 250.
        for (i, folder) in ["", "a//b", "x*", "${hex:01}"].enumerated() {
            let header = folder.hasPrefix("${") ? "X-Folder: ok\r\n" : "X-Folder: \(folder)\r\n"
            if folder.hasPrefix("${") {
                try await rig.store.putScript(account: rig.alice, name: "s", content: "require [\"fileinto\", \"mailbox\", \"encoded-character\"]; fileinto :create \"a${hex:01}b\";")
            }
            let outcome = await rig.receive(intake, t.message(rig, id: "C\(i)"), header + "Subject: s\r\n\r\nx\r\n")
            guard case .committed = outcome else { Issue.record("\(folder): \(outcome)"); continue }
            #expect(try await t.mailbox(rig, rig.alice, "INBOX").count == i + 1)
            #expect(try await t.mailbox(rig, rig.bob, "INBOX").count == i + 1)
            #expect(try await rig.store.deliveryLog(id: "C\(i)").contains { $0.detail.contains("cannot be a mailbox name") }, "\(folder)")
        }
        #expect(try await rig.store.mailboxes(account: rig.alice).map(\.name).sorted() == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"])
    }

    @Test func repliesComeOnlyFromTheUsersOwnAddresses() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        let hello = "From: S <s@remote.test>\r\nTo: alice@here.test\r\nSubject: hello\r\n\r\nhi\r\n"
        for (i, (from, shown)) in [("ceo@other.test", "<alice@here.test>"), ("Alice <alice@here.test>", "\"Alice\" <alice@here.test>"),
                                            ("alice@here.test, ceo@other.test", "<alice@here.test>")].enumerated() {
            try await rig.store.putScript(account: rig.alice, name: "s", content: """
                require ["vacation", "enotify"];
                vacation :handle "h\(i)" :from "\(from)" "away";
                notify :from "\(from)" "mailto:pager@far.test";
                """)
            try await rig.store.activateScript(account: rig.alice, name: "s")
            _ = await rig.receive(intake, t.message(rig, id: "F\(i)", to: ["alice@here.test"]), hello)
            let sent = try await t.queuedNotices(rig, "F\(i)")
            #expect(sent.count == 2)
            for notice in sent { #expect(notice.content.contains("From: \(shown)\r\n"), "\(from) → \(notice.content.prefix(400))") }
        }
    }

    @Test func aScriptThatFailsOnSpamKeepsItInJunkAndNoReplyGoesToSpam() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let (intake, quarantined) = try await FilteringTests.quarantining(rig)
        try await rig.store.putScript(account: rig.alice, name: "s", content: """
            require ["vacation", "reject"];
            vacation "away";
            if header :is "subject" "boom" { redirect "a@x.test"; redirect "b@x.test"; redirect "c@x.test"; redirect "d@x.test"; redirect "e@x.test"; }
            if header :is "subject" "no" { reject "no"; }
            """)
        try await rig.store.activateScript(account: rig.alice, name: "s")
        _ = await rig.receive(intake, quarantined("S1"), "From: <a@soft.test>\r\nTo: alice@here.test\r\nSubject: boom\r\n\r\nx\r\n")
        #expect(try await rig.contents(rig.alice, .junk).count == 1)
        #expect(try await t.mailbox(rig, rig.alice, "INBOX").isEmpty)
        _ = await rig.receive(intake, quarantined("S2"), "From: <a@soft.test>\r\nTo: alice@here.test\r\nSubject: hello\r\n\r\nx\r\n")
        #expect(try await t.queuedNotices(rig, "S2").isEmpty)
        #expect(try await rig.store.deliveryLog(id: "S2").contains { $0.detail.contains("no vacation reply to <a@soft.test>: the message was judged spam") })
    }

    @Test func aMessageThatWentRoundTooOftenIsNotRedirectedAgain() async throws {
        let rig = try await PipelineTests.Rig()
        defer { rig.stop() }
        let intake = rig.intake()
        try await rig.store.putScript(account: rig.alice, name: "s", content: "redirect \"phone@far.test\";")
        try await rig.store.activateScript(account: rig.alice, name: "s")
        let hops = String(repeating: "Received: from a.test by b.test; Sat, 5 Dec 2026 10:00:00 +0000\r\n", count: FilterPlan.maxHops + 1)
        _ = await rig.receive(intake, t.message(rig, id: "H1", to: ["alice@here.test"]), hops + "Subject: s\r\n\r\nx\r\n")
        #expect(try await t.redirected(rig, "H1").isEmpty)
        #expect(try await t.mailbox(rig, rig.alice, "INBOX").count == 1)
        _ = await rig.receive(intake, t.message(rig, id: "H2", to: ["alice@here.test"]), "Subject: s\r\n\r\nx\r\n")
        #expect(try await t.redirected(rig, "H2").count == 1)
        // Past RFC 5321 §6.3's threshold the message is refused outright, for every recipient and source.
        let loop = String(repeating: "Received: from a.test by b.test; Sat, 5 Dec 2026 10:00:00 +0000\r\n", count: Intake.maxHops + 1)
        let outcome = await rig.receive(intake, t.message(rig, id: "H3"), loop + "Subject: s\r\n\r\nx\r\n")
        guard case .refused(let reply) = outcome else { Issue.record("\(outcome)"); return }
        #expect(reply.code.rawValue == 554 && reply.enhanced == EnhancedStatusCode(5, 4, 6))
        #expect(try await t.mailbox(rig, rig.bob, "INBOX").isEmpty)
        #expect(try await rig.store.deliveryLog(id: "H3").map(\.kind) == [.refused])
        let fine = String(repeating: "Received: from a.test by b.test; Sat, 5 Dec 2026 10:00:00 +0000\r\n", count: Intake.maxHops)
        guard case .committed = await rig.receive(intake, t.message(rig, id: "H4"), fine + "Subject: s\r\n\r\nx\r\n") else {
            Issue.record("100 hops refused"); return
        }
    }
}

extension IncomingMessage {
    /// The same message with every recipient routed to `account`.
    func routedTo(_ account: AccountID) -> IncomingMessage {
        var m = self
        m.routes = m.routes.map { _ in .local([account]) }
        return m
    }
}
