import Foundation
import Sieve

/// The administrator's Sieve scripts around the users' own (as Pigeonhole's sieve_before and sieve_after), from the
/// folder `sieve.scripts` names: `before.sieve` and `after.sieve` for every domain, `<domain>/before.sieve` and
/// `<domain>/after.sieve` for one (in place of the general one). Without an after script, Tern's own runs: mail the
/// checks judged spam goes to the Junk mailbox — the same as when no script runs at all.
public struct SieveAdminScripts: Sendable {
    /// By domain (lower case); "" is every domain.
    public var before: [String: SieveScript] = [:]
    public var after: [String: SieveScript] = [:]
    /// The scripts `include :global` names (RFC 6609), from `global/NAME.sieve`.
    public var global: [String: SieveScript] = [:]

    public init() {}

    /// Tern's after script: spam into the mailbox marked \Junk (RFC 8579), or one named Junk.
    public static let defaultAfterText = """
        require ["fileinto", "special-use", "spamtestplus", "relational", "comparator-i;ascii-numeric"];
        if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" {
          fileinto :specialuse "\\\\Junk" "Junk";
        }
        """
    public static let defaultAfter: SieveScript = try! SieveScript.compile(defaultAfterText)

    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads and checks every script in `folder` (nil: none); an error names the file, the line and the column.
    public static func load(_ folder: URL?) throws -> SieveAdminScripts {
        var scripts = SieveAdminScripts()
        guard let folder else { return scripts }
        let files = FileManager.default
        guard files.fileExists(atPath: folder.path) else { throw LoadError(description: "sieve.scripts: \(folder.path) does not exist") }
        var places: [(domain: String, url: URL)] = [("", folder)]
        for name in (try? files.contentsOfDirectory(atPath: folder.path))?.sorted() ?? [] {
            var isFolder: ObjCBool = false
            let url = folder.appendingPathComponent(name)
            guard files.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else { continue }
            if name == "global" {
                for file in (try? files.contentsOfDirectory(atPath: url.path))?.sorted() ?? [] where file.hasSuffix(".sieve") {
                    scripts.global[String(file.dropLast(6))] = try compile(url.appendingPathComponent(file))
                }
            } else {
                places.append((name.lowercased(), url))
            }
        }
        for (domain, url) in places {
            for phase in ["before", "after"] {
                let file = url.appendingPathComponent("\(phase).sieve")
                guard files.fileExists(atPath: file.path) else { continue }
                let script = try compile(file)
                if phase == "before" { scripts.before[domain] = script } else { scripts.after[domain] = script }
            }
        }
        return scripts
    }

    static func compile(_ file: URL) throws -> SieveScript {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { throw LoadError(description: "\(file.path): not UTF-8 text") }
        do throws(SieveError) {
            return try SieveScript.compile(text)
        } catch {
            throw LoadError(description: "\(file.path):\(error.position.line):\(error.position.column): \(error.message)")
        }
    }

    /// The scripts for mail to `domain`: its own, else the general ones; Tern's after script when none is set.
    public func scripts(domain: String) -> (before: [SieveScript], after: [SieveScript]) {
        let d = domain.lowercased()
        return ((before[d] ?? before[""]).map { [$0] } ?? [], [after[d] ?? after[""] ?? Self.defaultAfter])
    }

    /// Whether mail to `domain` must go through the filters even when the user has no script.
    public func applies(to domain: String) -> Bool {
        let d = domain.lowercased()
        return before[d] != nil || before[""] != nil || after[d] != nil || after[""] != nil
    }
}
