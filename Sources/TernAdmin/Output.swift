
import DKIM
import Deliverability
import Intake
import Foundation
import Logging
import MailAuth
import MailCore
import MailDNS
import MailMessage
import MailStore
import TernConfig


/// A one-line progress bar on standard error.
public final class ProgressBar {
    public let total: Int
    public let enabled: Bool
    public var lastPercent = -1

    public init(total: Int, enabled: Bool) {
        self.total = max(total, 1)
        self.enabled = enabled
    }

    /// Lines in the file (rows, give or take quoted line breaks), counted fast for the bar's scale.
    public static func countLines(_ path: String) -> Int {
        guard let h = FileHandle(forReadingAtPath: path) else { return 0 }
        defer { try? h.close() }
        var n = 0
        while let chunk = try? h.read(upToCount: 1 << 20), !chunk.isEmpty {
            n += chunk.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        }
        return max(n - 1, 0)
    }

    public func update(_ done: Int) {
        guard enabled else { return }
        let percent = min(100, done * 100 / total)
        guard percent != lastPercent else { return }
        lastPercent = percent
        let width = 40, filled = percent * width / 100
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(percent)%  \(done) rows"
        FileHandle.standardError.write(Data(line.utf8))
    }

    public func finish(_ done: Int) {
        guard enabled else { return }
        update(total)
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// A command that could not do its work for a reason outside its arguments (a port taken, a file unreadable): said
/// without the usage text, exit status 1.
public struct CommandFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Prints a value as JSON the way the check commands do: indented, keys sorted.
public func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

public func choosePassword(_ given: String?, fromStdin: Bool) throws -> (String, Bool) {
    if fromStdin {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw CommandFailure("no password on standard input") }
        return (line, false)
    }
    if let given {
        guard !given.isEmpty else { throw CommandFailure("the password is empty") }
        return (given, false)
    }
    return (PasswordHash.generatePassword(), true)
}
