import Foundation
import MailCore
import MailStore
import Logging
import PostgresNIO

/// Domains, accounts and aliases on PostgreSQL, following the same rules as the SQLite backend (`DirectoryRules`).
extension PostgresMailStore: Directory {
    public func addDomain(_ name: String) async throws {
        let domain = Domain.canonical(try Domain.validate(name, allowUTF8: true))
        let now = clock.now.timeIntervalSince1970
        try await changingDirectory { [self] db in
            let added = try await execute("""
                INSERT INTO domain(name, created) VALUES (\(domain), \(now)) ON CONFLICT (name) DO NOTHING RETURNING 1
                """, on: db)
            if added == 0 { throw StoreError.alreadyExists("domain \(domain)") }
        }
    }

    public func removeDomain(_ name: String) async throws {
        let domain = Domain.canonical(name)
        try await changingDirectory { [self] db in
            guard try await execute("DELETE FROM domain WHERE name = \(domain) RETURNING 1", on: db) > 0 else {
                throw StoreError.notFound("domain \(domain)")
            }
        }
    }

    public func domains() async throws -> [DomainInfo] {
        try await all("""
            SELECT d.name, d.created,
              (SELECT count(*) FROM account a WHERE a.domain_id = d.id),
              (SELECT count(*) FROM alias x WHERE x.domain_id = d.id)
            FROM domain d ORDER BY d.name
            """, as: (String, Double, Int64, Int64).self).map {
            DomainInfo(name: $0.0, created: Date(timeIntervalSince1970: $0.1), accounts: Int($0.2), aliases: Int($0.3))
        }
    }

    public func addAccount(_ address: EmailAddress, password: String) async throws -> AccountID {
        let hash = PasswordHash.make(password: password).encoded
        let local = address.localPart.lowercased(), domain = address.normalizedDomain
        let now = clock.now.timeIntervalSince1970
        return try await changingDirectory { [self] db in
            // The domain's row locked: an alias of the same name cannot be added meanwhile.
            guard let domainID = try await one("SELECT id FROM domain WHERE name = \(domain) FOR UPDATE", on: db, as: Int64.self) else {
                throw StoreError.notFound("domain \(domain) (add it first with `tern domain add \(domain)`)")
            }
            if try await one("SELECT id FROM alias WHERE domain_id = \(domainID) AND localpart = \(local)", on: db, as: Int64.self) != nil {
                throw StoreError.alreadyExists("alias \(local)@\(domain)")
            }
            guard let account = try await one("""
                INSERT INTO account(domain_id, localpart, password, created) VALUES (\(domainID), \(local), \(hash), \(now))
                ON CONFLICT (domain_id, localpart) DO NOTHING RETURNING id
                """, on: db, as: Int64.self) else {
                throw StoreError.alreadyExists("account \(local)@\(domain)")
            }
            _ = try await Self.createMailbox(db, account: account, name: "INBOX", specialUse: nil, now: now, logger: logger)
            for role in SpecialUse.allCases {
                _ = try await Self.createMailbox(db, account: account, name: role.defaultName, specialUse: role, now: now, logger: logger)
            }
            try await execute("INSERT INTO subscription(account_id, name) SELECT account_id, name FROM mailbox WHERE account_id = \(account)", on: db)
            return account
        }
    }

    public func removeAccount(_ address: EmailAddress) async throws {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        try await changingDirectory { [self] db in
            guard try await execute("""
                DELETE FROM account WHERE localpart = \(local) AND domain_id = (SELECT id FROM domain WHERE name = \(domain)) RETURNING 1
                """, on: db) > 0 else { throw StoreError.notFound("account \(local)@\(domain)") }
        }
    }

    public func setPassword(_ address: EmailAddress, password: String) async throws {
        let hash = PasswordHash.make(password: password).encoded
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        try await changingDirectory { [self] db in
            guard try await execute("""
                UPDATE account SET password = \(hash)
                WHERE localpart = \(local) AND domain_id = (SELECT id FROM domain WHERE name = \(domain)) RETURNING 1
                """, on: db) > 0 else { throw StoreError.notFound("account \(local)@\(domain)") }
        }
    }

    public func accounts(domain: String?) async throws -> [AccountInfo] {
        let domain = domain.map(Domain.canonical)
        return try await all("""
            SELECT a.id, a.localpart || '@' || d.name, a.created,
              (SELECT count(*) FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id WHERE b.account_id = a.id),
              (SELECT coalesce(sum(m.size), 0)::bigint FROM mailbox_message mm JOIN mailbox b ON b.id = mm.mailbox_id
                 JOIN message m ON m.id = mm.message_id WHERE b.account_id = a.id)
            FROM account a JOIN domain d ON d.id = a.domain_id
            WHERE \(domain)::text IS NULL OR d.name = \(domain) ORDER BY d.name, a.localpart
            """, as: (Int64, String, Double, Int64, Int64).self).map {
            AccountInfo(id: $0.0, address: $0.1, created: Date(timeIntervalSince1970: $0.2), messages: Int($0.3), bytes: $0.4)
        }
    }

    public func account(_ address: EmailAddress) async throws -> AccountID? {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        return try await one("""
            SELECT a.id FROM account a JOIN domain d ON d.id = a.domain_id WHERE a.localpart = \(local) AND d.name = \(domain)
            """, as: Int64.self)
    }

    public func verifyPassword(_ address: EmailAddress, password: String) async throws -> AccountID? {
        let generation = directoryGeneration
        if let account = verifiedLogins.check(address.canonical, password, generation: generation) { return account }
        guard let (account, hash) = try await credentials(address) else {
            // No such account: the same hash work as a wrong password, so timing does not tell them apart.
            _ = PasswordHash.unknownUser.verify(password)
            return nil
        }
        guard hash.verify(password) else { return nil }
        verifiedLogins.remember(address.canonical, password, account: account, generation: generation)
        return account
    }

    public func cachedLogin(_ address: EmailAddress, password: String) -> AccountID? {
        verifiedLogins.check(address.canonical, password, generation: directoryGeneration)
    }

    /// The directory's generation on this node; nil (nothing cached is trusted) while its change notices are lost.
    var directoryGeneration: Int? { reachable.withLock { $0 } ? resolutions.generation : nil }

    public func credentials(_ address: EmailAddress) async throws -> (AccountID, PasswordHash)? {
        let (local, domain) = (address.localPart.lowercased(), address.normalizedDomain)
        guard let (id, encoded) = try await all("""
            SELECT a.id, a.password FROM account a JOIN domain d ON d.id = a.domain_id WHERE a.localpart = \(local) AND d.name = \(domain)
            """, as: (Int64, String).self).first, let hash = PasswordHash(encoded: encoded) else { return nil }
        return (id, hash)
    }

    public func addAlias(_ source: String, targets: [EmailAddress]) async throws {
        guard !targets.isEmpty else { throw StoreError.invalid("an alias needs at least one target address") }
        let (local, domain) = try DirectoryRules.splitAliasSource(source)
        let targetText = targets.map(\.canonical).joined(separator: "\n")
        try await changingDirectory { [self] db in
            guard let domainID = try await one("SELECT id FROM domain WHERE name = \(domain) FOR UPDATE", on: db, as: Int64.self) else {
                throw StoreError.notFound("domain \(domain)")
            }
            for target in targets {
                let targetDomain = target.normalizedDomain
                guard try await one("SELECT id FROM domain WHERE name = \(targetDomain)", on: db, as: Int64.self) != nil else {
                    throw StoreError.invalid("alias target \(target) is not in a domain served here")
                }
            }
            if !local.isEmpty,
               try await one("SELECT id FROM account WHERE domain_id = \(domainID) AND localpart = \(local)", on: db, as: Int64.self) != nil {
                throw StoreError.alreadyExists("account \(local)@\(domain)")
            }
            try await execute("""
                INSERT INTO alias(domain_id, localpart, targets) VALUES (\(domainID), \(local), \(targetText))
                ON CONFLICT (domain_id, localpart) DO UPDATE SET targets = excluded.targets
                """, on: db)
        }
    }

    public func removeAlias(_ source: String) async throws {
        let (local, domain) = try DirectoryRules.splitAliasSource(source)
        try await changingDirectory { [self] db in
            guard try await execute("""
                DELETE FROM alias WHERE localpart = \(local) AND domain_id = (SELECT id FROM domain WHERE name = \(domain)) RETURNING 1
                """, on: db) > 0 else { throw StoreError.notFound("alias \(source)") }
        }
    }

    public func aliases(domain: String?) async throws -> [AliasInfo] {
        let domain = domain.map(Domain.canonical)
        return try await all("""
            SELECT x.localpart, d.name, x.targets FROM alias x JOIN domain d ON d.id = x.domain_id
            WHERE \(domain)::text IS NULL OR d.name = \(domain) ORDER BY d.name, x.localpart
            """, as: (String, String, String).self).map {
            AliasInfo(source: "\($0.0)@\($0.1)", targets: $0.2.split(separator: "\n").map(String.init))
        }
    }

    /// Resolution order (as Postfix's virtual maps): exact alias, account, then without `+tag`, then the domain's
    /// catch-all; aliases may point at aliases (`DirectoryRules`). Read in one transaction, so that a change made
    /// meanwhile is seen whole or not at all.
    public func resolve(_ address: EmailAddress) async throws -> RecipientResolution {
        let generation = resolutions.generation
        let result = try await transaction { [self] db in
            try await resolve(db, address.localPart.lowercased(), address.normalizedDomain, depth: 0)
        }
        if reachable.withLock({ $0 }) { resolutions.store(address.canonical, result, computedAt: generation) }
        return result
    }

    /// The answer `resolve` gave before, while this node hears the database's change notices.
    public func cachedResolution(_ address: EmailAddress) -> RecipientResolution? {
        guard reachable.withLock({ $0 }) else { return nil }
        return resolutions.lookup(address.canonical)
    }

    func resolve(_ db: PostgresConnection, _ local: String, _ domain: String, depth: Int) async throws -> RecipientResolution {
        guard let domainID = try await one("SELECT id FROM domain WHERE name = \(domain)", on: db, as: Int64.self) else {
            return .notOurDomain
        }
        for candidate in DirectoryRules.candidates(local) {
            if let targets = try await one("SELECT targets FROM alias WHERE domain_id = \(domainID) AND localpart = \(candidate)",
                                           on: db, as: String.self) {
                return try await expand(db, targets, depth: depth)
            }
            if let id = try await one("SELECT id FROM account WHERE domain_id = \(domainID) AND localpart = \(candidate)", on: db, as: Int64.self) {
                return .local([id])
            }
        }
        if let targets = try await one("SELECT targets FROM alias WHERE domain_id = \(domainID) AND localpart = ''", on: db, as: String.self) {
            return try await expand(db, targets, depth: depth)
        }
        return .unknownUser
    }

    func expand(_ db: PostgresConnection, _ targets: String, depth: Int) async throws -> RecipientResolution {
        guard depth < DirectoryRules.maximumAliasDepth else { return .unknownUser }
        var accounts: [AccountID] = []
        for target in targets.split(separator: "\n") {
            guard let at = target.lastIndex(of: "@") else { continue }
            let r = try await resolve(db, String(target[..<at]), String(target[target.index(after: at)...]), depth: depth + 1)
            if case .local(let ids) = r { accounts.append(contentsOf: ids.filter { !accounts.contains($0) }) }
        }
        return accounts.isEmpty ? .unknownUser : .local(accounts)
    }

    /// A change to domains, accounts or aliases: this node forgets its resolutions at once (the others when the
    /// commit's notice reaches them).
    func changingDirectory<R: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        defer { resolutions.bump() }
        let node = self.node
        return try await transaction { db in
            _ = try await db.query("SELECT set_config('tern.node', \(node), true)", logger: self.logger)
            return try await body(db)
        }
    }

    /// Creates a mailbox. UIDVALIDITY: seconds since 1970, above every value this account's mailboxes ever had (deleted
    /// ones included), so that a client never pairs old UIDs with a new mailbox of the same name.
    static func createMailbox(_ db: PostgresConnection, account: Int64, name: String, specialUse: SpecialUse?, now: Double,
                              logger: Logger) async throws -> Int64 {
        let seconds = Int64(now) & 0xFFFF_FFFF
        // The account's row lock orders concurrent creations in one account.
        let rows = try await db.query("""
            UPDATE account SET last_uidvalidity = greatest(\(seconds), last_uidvalidity + 1,
              coalesce((SELECT max(uidvalidity) + 1 FROM mailbox WHERE account_id = \(account)), 0))
            WHERE id = \(account) RETURNING last_uidvalidity
            """, logger: logger)
        var validity: Int64?
        for try await v in rows.decode(Int64.self) { validity = v }
        guard let validity else { throw StoreError.notFound("account \(account)") }
        let use = specialUse?.rawValue
        for try await id in try await db.query("""
            INSERT INTO mailbox(account_id, name, special_use, uidvalidity) VALUES (\(account), \(name), \(use), \(validity))
            RETURNING id
            """, logger: logger).decode(Int64.self) { return id }
        throw StoreError.invalid("mailbox \(name) was not created")
    }
}
