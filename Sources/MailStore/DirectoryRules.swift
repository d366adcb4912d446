import MailCore

/// The directory's rules that do not depend on a backend: how an alias source is written and in which order an
/// address is looked up. Every backend follows them, so that the same address reaches the same mailbox on each.
public enum DirectoryRules {
    /// An alias source `local@domain` (or `@domain`, the domain's catch-all) as its lower-cased local part (empty for
    /// the catch-all) and canonical domain.
    public static func splitAliasSource(_ source: String) throws -> (local: String, domain: String) {
        guard let at = source.lastIndex(of: "@") else { throw StoreError.invalid("alias \(source) must be local@domain or @domain") }
        let local = String(source[..<at]).lowercased()
        let domain = Domain.canonical(try Domain.validate(String(source[source.index(after: at)...])))
        if !local.isEmpty { _ = try EmailAddress.parse(source) }
        return (local, domain)
    }

    /// The local parts to look up for `local`, in order (as Postfix's virtual maps): the address itself, then without
    /// its `+tag`. After them comes the domain's catch-all (local part "").
    public static func candidates(_ local: String) -> [String] {
        var candidates = [local]
        if let plus = local.firstIndex(of: "+"), plus != local.startIndex { candidates.append(String(local[..<plus])) }
        return candidates
    }

    /// Aliases may point at aliases up to this depth; deeper (or a loop) resolves to nobody.
    public static let maximumAliasDepth = 10
}
