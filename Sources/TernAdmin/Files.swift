
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

/// The Public Suffix List in use: <data>/public_suffix_list.dat when `tern psl update` has fetched one, else the
/// built-in copy.
public enum SuffixListFile {
    public static let fileName = "public_suffix_list.dat"
    /// Fewer rules than this means the file is not a real list (an HTML error page, a truncated download).
    public static let minimumRules = 1000

    public static func load(dataDirectory: URL, logger: Logger? = nil) -> PublicSuffixList {
        loadWithSource(dataDirectory: dataDirectory, logger: logger).list
    }

    /// The list, and the file it came from (nil: the built-in one).
    public static func loadWithSource(dataDirectory: URL, logger: Logger? = nil) -> (list: PublicSuffixList, file: URL?) {
        let url = dataDirectory.appendingPathComponent(fileName)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return (.builtIn, nil) }
        let list = PublicSuffixList(text: text)
        guard list.ruleCount >= minimumRules else {
            logger?.warning("ignoring \(url.path): only \(list.ruleCount) rules; using the built-in Public Suffix List")
            return (.builtIn, nil)
        }
        return (list, url)
    }
}

/// Reading a saved message: line ends as SMTP carries them, and what its trace fields say about how it arrived.
public enum MessageText {
    /// Bare LF line ends (as files usually have them) made CRLF; CRLF left alone.
    public static func crlf(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 40)
        var previous: UInt8 = 0
        for b in bytes {
            if b == 10 && previous != 13 { out.append(13) }
            out.append(b)
            previous = b
        }
        return out
    }

    /// The messages of a saved file, CRLF line ends: an mbox (it starts with a "From " line) gives each of its
    /// messages, anything else is one message.
    public static func messages(in bytes: [UInt8]) -> [[UInt8]] {
        if bytes.starts(with: Array("From ".utf8)) {
            let split = Mbox.messages(in: bytes)
            if !split.isEmpty { return split }
        }
        return [crlf(bytes)]
    }

    /// The Return-Path address, and the client address and HELO name of the newest Received field that names one.
    public static func trace(_ message: [UInt8]) -> (returnPath: String?, ip: String?, helo: String?) {
        let fields = RawHeader.fields(message[..<RawHeader.end(message)])
        var returnPath: String?
        if let rp = fields.first(where: { $0.name.caseInsensitiveCompare("Return-Path") == .orderedSame }) {
            let v = String(decoding: rp.raw, as: UTF8.self)
            if let lt = v.firstIndex(of: "<"), let gt = v[lt...].firstIndex(of: ">") { returnPath = String(v[v.index(after: lt)..<gt]) }
        }
        for f in fields where f.name.caseInsensitiveCompare("Received") == .orderedSame {
            let hop = ReceivedPath.parse(f.unfoldedValue)
            if let ip = hop.ip { return (returnPath, ip, hop.from) }
        }
        return (returnPath, nil, nil)
    }
}
