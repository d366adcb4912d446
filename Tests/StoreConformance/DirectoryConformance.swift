import Foundation
import MailCore
import MailStore
import TernTestSupport

/// What every backend's directory must do (domains, accounts, aliases, recipient resolution), over the `Directory`
/// protocol alone: run against SQLite and PostgreSQL with the same code. A case gets a new, empty directory on a
/// manual clock and returns what it found wrong.
public enum DirectoryConformance {
    public typealias Factory = @Sendable (ManualClock) async throws -> any Directory

    public struct Case: Sendable, CustomStringConvertible {
        public let name: String
        let body: @Sendable (any Directory, ManualClock) async throws -> [String]
        public var description: String { name }

        public func run(_ factory: Factory) async throws -> [String] {
            let clock = ManualClock(Date(timeIntervalSince1970: 2_000_000_000))
            return try await body(try await factory(clock), clock)
        }
    }

    public static let cases: [Case] = [
        Case(name: "domains: added once, listed with their counts, removed with what they hold", body: domains),
        Case(name: "accounts: created with their mailboxes, passwords checked and changed", body: accounts),
        Case(name: "aliases: exact, sub-address, catch-all, chains and loops resolve as Postfix's virtual maps", body: aliases),
        Case(name: "concurrent adds of one address: exactly one succeeds", body: concurrentAdds),
        Case(name: "caches: resolutions and verified logins answered again until the directory changes", body: caches),
    ]

    static func address(_ s: String) throws -> EmailAddress { try EmailAddress.parse(s) }

    static func domains(_ d: any Directory, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        try await d.addDomain("Example.TEST")
        try await d.addDomain("other.test")
        await expectStoreError("adding a domain twice (any case)", &problems, matching: { if case .alreadyExists = $0 { true } else { false } }) {
            try await d.addDomain("example.test")
        }
        do {
            try await d.addDomain("not a domain")
            problems.append("an invalid domain was added")
        } catch {}
        _ = try await d.addAccount(try address("alice@example.test"), password: "pw")
        try await d.addAlias("info@example.test", targets: [try address("alice@example.test")])
        let listed = try await d.domains()
        if listed.map(\.name) != ["example.test", "other.test"] { problems.append("domains listed: \(listed.map(\.name))") }
        if let e = listed.first, e.accounts != 1 || e.aliases != 1 || e.created != clock.now {
            problems.append("example.test listed with \(e.accounts) accounts, \(e.aliases) aliases, created \(e.created)")
        }
        try await d.removeDomain("example.test")
        if try await d.domains().map(\.name) != ["other.test"] { problems.append("removed domain still listed") }
        if try await d.account(try address("alice@example.test")) != nil { problems.append("an account outlived its domain") }
        if try await !d.aliases(domain: nil).isEmpty { problems.append("an alias outlived its domain") }
        if try await d.resolve(try address("alice@example.test")) != .notOurDomain { problems.append("a removed domain still resolves") }
        await expectStoreError("removing a missing domain", &problems, matching: { if case .notFound = $0 { true } else { false } }) {
            try await d.removeDomain("example.test")
        }
        return problems
    }

    static func accounts(_ d: any Directory, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        try await d.addDomain("example.test")
        await expectStoreError("an account in a domain not served", &problems, matching: { if case .notFound = $0 { true } else { false } }) {
            _ = try await d.addAccount(try address("bob@elsewhere.test"), password: "pw")
        }
        let alice = try await d.addAccount(try address("Alice@Example.test"), password: "first secret")
        await expectStoreError("adding an account twice", &problems, matching: { if case .alreadyExists = $0 { true } else { false } }) {
            _ = try await d.addAccount(try address("alice@example.test"), password: "pw")
        }
        if try await d.account(try address("ALICE@example.test")) != alice { problems.append("account lookup is not case-insensitive") }
        if try await d.verifyPassword(try address("alice@example.test"), password: "first secret") != alice { problems.append("right password refused") }
        if try await d.verifyPassword(try address("alice@example.test"), password: "wrong") != nil { problems.append("wrong password accepted") }
        if try await d.verifyPassword(try address("nobody@example.test"), password: "first secret") != nil { problems.append("unknown user accepted") }
        try await d.setPassword(try address("alice@example.test"), password: "second secret")
        if try await d.verifyPassword(try address("alice@example.test"), password: "first secret") != nil { problems.append("old password still accepted") }
        if try await d.verifyPassword(try address("alice@example.test"), password: "second secret") != alice { problems.append("new password refused") }
        if let (id, hash) = try await d.credentials(try address("alice@example.test")) {
            if id != alice || !hash.verify("second secret") { problems.append("credentials do not match the account") }
        } else {
            problems.append("no credentials for an account")
        }
        await expectStoreError("setting a missing account's password", &problems, matching: { if case .notFound = $0 { true } else { false } }) {
            try await d.setPassword(try address("nobody@example.test"), password: "x")
        }
        let bob = try await d.addAccount(try address("bob@example.test"), password: "pw")
        let listed = try await d.accounts(domain: "EXAMPLE.test")
        if listed.map(\.address) != ["alice@example.test", "bob@example.test"] || listed.map(\.id) != [alice, bob] {
            problems.append("accounts listed: \(listed.map(\.address))")
        }
        if listed.contains(where: { $0.messages != 0 || $0.bytes != 0 || $0.created != clock.now }) { problems.append("new accounts listed as \(listed)") }
        if try await !d.accounts(domain: "other.test").isEmpty { problems.append("accounts listed for another domain") }
        try await d.removeAccount(try address("alice@example.test"))
        if try await d.account(try address("alice@example.test")) != nil { problems.append("removed account still found") }
        if try await d.resolve(try address("alice@example.test")) != .unknownUser { problems.append("removed account still resolves") }
        await expectStoreError("removing a missing account", &problems, matching: { if case .notFound = $0 { true } else { false } }) {
            try await d.removeAccount(try address("alice@example.test"))
        }
        // A new account of the same name is a new account.
        let again = try await d.addAccount(try address("alice@example.test"), password: "pw")
        if again == alice { problems.append("a re-created account took the old account's id") }
        return problems
    }

    static func aliases(_ d: any Directory, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        try await d.addDomain("example.test")
        try await d.addDomain("second.test")
        let alice = try await d.addAccount(try address("alice@example.test"), password: "pw")
        let bob = try await d.addAccount(try address("bob@second.test"), password: "pw")
        try await d.addAlias("team@example.test", targets: [try address("alice@example.test"), try address("bob@second.test")])
        try await d.addAlias("boss@example.test", targets: [try address("team@example.test")])
        try await d.addAlias("alice+lists@example.test", targets: [try address("bob@second.test")])
        try await d.addAlias("loop1@example.test", targets: [try address("loop2@example.test")])
        try await d.addAlias("loop2@example.test", targets: [try address("loop1@example.test")])
        let cases: [(String, RecipientResolution)] = [
            ("alice@example.test", .local([alice])),
            ("ALICE@EXAMPLE.TEST", .local([alice])),
            ("alice+news@example.test", .local([alice])),        // sub-address: the account without +tag
            ("alice+lists@example.test", .local([bob])),         // an exact alias comes before the sub-address
            ("team@example.test", .local([alice, bob])),
            ("team+x@example.test", .local([alice, bob])),
            ("boss@example.test", .local([alice, bob])),         // an alias of an alias
            ("loop1@example.test", .unknownUser),                // a loop resolves to nobody
            ("nobody@example.test", .unknownUser),
            ("alice@elsewhere.test", .notOurDomain),
        ]
        for (text, expected) in cases {
            let got = try await d.resolve(try address(text))
            if got != expected { problems.append("\(text) resolved to \(got), not \(expected)") }
        }
        // The catch-all takes what nothing else does, and nothing that something else takes.
        try await d.addAlias("@example.test", targets: [try address("bob@second.test")])
        if try await d.resolve(try address("nobody@example.test")) != .local([bob]) { problems.append("the catch-all does not catch") }
        if try await d.resolve(try address("alice@example.test")) != .local([alice]) { problems.append("the catch-all took an account's mail") }
        // An alias is replaced by adding it again; it cannot take an account's name, nor an account an alias's.
        try await d.addAlias("team@example.test", targets: [try address("alice@example.test")])
        if try await d.resolve(try address("team@example.test")) != .local([alice]) { problems.append("re-adding an alias did not replace its targets") }
        await expectStoreError("an alias named as an account", &problems, matching: { if case .alreadyExists = $0 { true } else { false } }) {
            try await d.addAlias("alice@example.test", targets: [try address("bob@second.test")])
        }
        await expectStoreError("an account named as an alias", &problems, matching: { if case .alreadyExists = $0 { true } else { false } }) {
            _ = try await d.addAccount(try address("team@example.test"), password: "pw")
        }
        await expectStoreError("an alias to a domain not served", &problems, matching: { if case .invalid = $0 { true } else { false } }) {
            try await d.addAlias("out@example.test", targets: [try address("someone@elsewhere.test")])
        }
        let listed = try await d.aliases(domain: "example.test").map(\.source)
        let expected = ["@example.test", "alice+lists@example.test", "boss@example.test", "loop1@example.test", "loop2@example.test", "team@example.test"]
        if listed != expected { problems.append("aliases listed: \(listed)") }
        if try await d.aliases(domain: nil).first(where: { $0.source == "team@example.test" })?.targets != ["alice@example.test"] {
            problems.append("an alias listed without its targets")
        }
        try await d.removeAlias("team@example.test")
        if try await d.resolve(try address("team@example.test")) != .local([bob]) { problems.append("a removed alias still resolves (not to the catch-all)") }
        await expectStoreError("removing a missing alias", &problems, matching: { if case .notFound = $0 { true } else { false } }) {
            try await d.removeAlias("team@example.test")
        }
        return problems
    }

    /// What a backend answers from memory (RCPT without a round trip, a repeated login without the slow hash) must
    /// never outlive a change: a new password, a new account or alias, a removed account.
    static func caches(_ d: any Directory, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        try await d.addDomain("example.test")
        let alice = try address("alice@example.test"), bob = try address("bob@example.test")
        let id = try await d.addAccount(alice, password: "first-pw")
        if try await d.verifyPassword(alice, password: "first-pw") != id { problems.append("the right password was refused") }
        if d.cachedLogin(alice, password: "first-pw") != id { problems.append("a verified login is not remembered") }
        if d.cachedLogin(alice, password: "wrong-pw") != nil { problems.append("a wrong password answered from memory") }
        try await d.setPassword(alice, password: "second-pw")
        if d.cachedLogin(alice, password: "first-pw") != nil { problems.append("the old password still logs in after a change") }
        if try await d.verifyPassword(alice, password: "first-pw") != nil { problems.append("the old password verified after a change") }
        // As RCPT does: memory first, then the directory.
        if d.cachedResolution(bob) != nil { problems.append("bob answered from memory before any lookup") }
        if try await d.resolve(bob) != .unknownUser { problems.append("bob resolved before he exists") }
        if d.cachedResolution(bob) != .unknownUser { problems.append("a resolution is not remembered") }
        let bobID = try await d.addAccount(bob, password: "pw")
        if let cached = d.cachedResolution(bob), cached != .local([bobID]) { problems.append("a stale resolution after adding bob: \(cached)") }
        if try await d.resolve(bob) != .local([bobID]) { problems.append("bob does not resolve after he was added") }
        try await d.addAlias("info@example.test", targets: [alice])
        _ = try await d.resolve(try address("info@example.test"))
        try await d.removeAccount(alice)
        if let cached = d.cachedResolution(try address("info@example.test")), cached != .unknownUser {
            problems.append("an alias to a removed account still resolves from memory: \(cached)")
        }
        if d.cachedLogin(alice, password: "second-pw") != nil { problems.append("a removed account still logs in from memory") }
        return problems
    }

    static func concurrentAdds(_ d: any Directory, _ clock: ManualClock) async throws -> [String] {
        var problems: [String] = []
        try await d.addDomain("example.test")
        // Eight writers add the same account (or an alias of its name) at once: one wins, the others are refused.
        let outcomes = await withTaskGroup(of: String.self) { group in
            for i in 0..<8 {
                group.addTask {
                    do {
                        if i % 2 == 0 {
                            _ = try await d.addAccount(try address("carol@example.test"), password: "pw\(i)")
                        } else {
                            try await d.addDomain("example.test")
                        }
                        return "ok"
                    } catch let e as StoreError {
                        if case .alreadyExists = e { return "exists" }
                        return "\(e)"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var all: [String] = []
            for await o in group { all.append(o) }
            return all
        }
        if outcomes.filter({ $0 == "ok" }).count != 1 || outcomes.contains(where: { $0 != "ok" && $0 != "exists" }) {
            problems.append("concurrent adds gave \(outcomes.sorted())")
        }
        if try await d.accounts(domain: nil).count != 1 { problems.append("\(try await d.accounts(domain: nil).count) accounts after concurrent adds") }
        return problems
    }
}
