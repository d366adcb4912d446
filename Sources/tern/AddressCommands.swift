import TernAdmin
import ArgumentParser
import CSV
import Deliverability
import DNSResolverLive
import Foundation
import MailDNS

/// `tern check address ADDRESS…`: each address's verdict; exit 0 only when every one is valid.
struct CheckAddress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "address",
        abstract: "Check email addresses: syntax (RFC 5321/6531, as the SMTP server parses it), normalisation, and with --dns whether the domain takes mail.",
        discussion: "Exits 0 only when every address given is valid.")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The addresses.") var addresses: [String]
    @Flag(help: "Also look up each domain: it exists, has MX or address records, and no null MX.") var dns = false
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() async throws {
        let resolver = dns ? try DomainLookups(options: options) : nil
        var verdicts: [AddressVerdict] = []
        var routes: [MailRoute?] = []
        for a in addresses {
            var v = AddressCheck.check(a)
            var route: MailRoute?
            if let resolver, let domain = v.asciiDomain {
                route = await resolver.route(domain)
                v.apply(route!)
            }
            verdicts.append(v)
            routes.append(route)
        }
        if json {
            try printJSON(zip(verdicts, routes).map { v, r in AddressJSON(v, r) })
        } else {
            for (v, r) in zip(verdicts, routes) {
                if let problem = v.problem {
                    print("invalid  \(v.input)\n         \(problem)")
                } else {
                    var line = "valid    \(v.input)"
                    if v.normalized != v.input { line += "  →  \(v.normalized ?? "")" }
                    if !v.notes.isEmpty { line += "  (\(v.notes.joined(separator: "; ")))" }
                    print(line)
                    if v.smtputf8 { print("         needs SMTPUTF8 (internationalised local part)") }
                    if let r, let domain = v.asciiDomain { print("         domain: \(r.summary(for: domain))") }
                }
            }
        }
        if verdicts.contains(where: { !$0.isValid }) { throw ExitCode(1) }
    }
}

/// Domain lookups for address lists: each domain once (a bounded cache), with the configured nameservers.
actor DomainLookups {
    let resolver: LiveResolver
    var cache: [String: MailRoute] = [:]
    static let cacheLimit = 200_000

    init(options: ConfigOption) throws {
        resolver = try options.resolver()
    }

    /// Where mail for `domain` (A-label form) goes, as RFC 5321 §5.1 chooses it.
    func route(_ domain: String) async -> MailRoute {
        if let r = cache[domain] { return r }
        var random = SystemRandomNumberGenerator()
        let r = await RouteSelection.route(for: domain, resolver: resolver, random: &random)
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[domain] = r
        return r
    }
}

/// `tern check addresses FILE.csv --column email`: list cleansing. Streams the file (memory grows only with the
/// number of distinct addresses, 16 bytes each, for finding duplicates), writes the kept rows with the address
/// normalised, and the removed rows with the reason.
struct CheckAddresses: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "addresses",
        abstract: "Cleanse a CSV list of addresses: invalid ones and duplicates removed, the rest normalised.",
        discussion: """
            Writes FILE.clean.csv (the kept rows, the address column normalised: domain lower-cased, unneeded quotes \
            and display names removed) and FILE.removed.csv (the removed rows with a reason column), and prints a \
            report. Surrounding spaces in the address column are trimmed. With --dns each distinct domain is looked \
            up once; addresses whose domain does not exist, has no MX or address records, or has a null MX are \
            removed; when DNS does not answer they are kept.
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The CSV file (UTF-8, with a header row).") var file: String
    @Option(help: "The column with the addresses: its header name, or its number (1 = first).") var column = "email"
    @Option(help: "Where the kept rows go (default FILE.clean.csv).") var output: String?
    @Option(help: "Where the removed rows go (default FILE.removed.csv).") var removed: String?
    @Flag(help: "Also check each domain in DNS.") var dns = false
    @Flag(help: "Keep duplicate addresses.") var keepDuplicates = false
    @Flag(inversion: .prefixedNo, help: "Show a progress bar on standard error (default: when it is a terminal).") var progress: Bool?

    func run() async throws {
        guard let stream = InputStream(fileAtPath: file), FileManager.default.fileExists(atPath: file) else {
            throw ValidationError("cannot read \(file)")
        }
        let base = file.hasSuffix(".csv") ? String(file.dropLast(4)) : file
        let cleanPath = output ?? base + ".clean.csv", removedPath = removed ?? base + ".removed.csv"
        let reader: CSVReader
        do { reader = try CSVReader(stream: stream, hasHeaderRow: true) } catch { throw ValidationError("\(file) is not CSV: \(error)") }
        guard let header = reader.headerRow else { throw ValidationError("\(file) has no header row") }
        guard let index = header.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == column.lowercased() })
                ?? Int(column).map({ $0 - 1 }).flatMap({ header.indices.contains($0) ? $0 : nil }) else {
            throw ValidationError("no column \"\(column)\" in the header (\(header.joined(separator: ", ")))")
        }
        let clean = try CSVOut(path: cleanPath), dropped = try CSVOut(path: removedPath)
        try clean.write(header)
        try dropped.write(header + ["reason"])
        let lookups = dns ? try DomainLookups(options: options) : nil
        let showProgress = progress ?? (isatty(2) == 1)
        // The bar's scale costs a pass over the file: only when the bar is shown.
        let bar = ProgressBar(total: showProgress ? ProgressBar.countLines(file) : 0, enabled: showProgress)
        let started = ContinuousClock.now
        var seen = Set<AddressDigest>()
        var rows = 0, kept = 0, normalized = 0
        var reasons: [String: Int] = [:]
        // Rows go in batches so that the batch's new domains can be looked up in parallel.
        var batch: [[String]] = []
        func flush() async throws {
            var verdicts = batch.map { AddressCheck.check($0.indices.contains(index) ? $0[index].trimmingCharacters(in: .whitespaces) : "") }
            if let lookups {
                let domains = Set(verdicts.compactMap(\.asciiDomain))
                let routes = await withTaskGroup(of: (String, MailRoute).self) { group in
                    var found: [String: MailRoute] = [:]
                    var running = 0
                    for d in domains {
                        if running >= 32, let (name, route) = await group.next() {
                            found[name] = route
                            running -= 1
                        }
                        group.addTask { (d, await lookups.route(d)) }
                        running += 1
                    }
                    for await (name, route) in group { found[name] = route }
                    return found
                }
                for i in verdicts.indices {
                    if let domain = verdicts[i].asciiDomain, let route = routes[domain] { verdicts[i].apply(route) }
                }
            }
            for (row, v) in zip(batch, verdicts) {
                rows += 1
                var reason: String?
                if let problem = v.problem {
                    reason = problem
                    reasons[v.problemKind ?? "invalid", default: 0] += 1
                } else if !keepDuplicates, let key = v.duplicateKey, !seen.insert(AddressDigest(key)).inserted {
                    reason = "duplicate of an earlier row"
                    reasons["duplicate", default: 0] += 1
                }
                if let reason {
                    try dropped.write(row + [reason])
                } else {
                    var out = row
                    if out.indices.contains(index), let n = v.normalized {
                        if out[index] != n { normalized += 1 }
                        out[index] = n
                    }
                    try clean.write(out)
                    kept += 1
                }
            }
            batch.removeAll(keepingCapacity: true)
            bar.update(rows)
        }
        while let row = reader.next() {
            batch.append(row)
            if batch.count >= 2000 { try await flush() }
        }
        // On Linux a read past the end of a file stream returns -1, which CSV.swift reports as an error: at the end
        // of the stream it is none.
        if let error = reader.error, stream.streamStatus != .atEnd { throw ValidationError("\(file): \(error)") }
        try await flush()
        try clean.close()
        try dropped.close()
        bar.finish(rows)
        let elapsed = started.duration(to: .now).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        print("\(rows) rows read in \(String(format: "%.1f", seconds)) s: \(kept) kept (\(normalized) normalised), \(rows - kept) removed")
        for (kind, n) in reasons.sorted(by: { $0.value > $1.value }) { print(String(format: "  %9d  ", n) + kind) }
        print("kept:    \(cleanPath)\nremoved: \(removedPath)")
    }
}
