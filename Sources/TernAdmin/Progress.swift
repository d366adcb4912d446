
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

/// A progress bar on standard error, drawn only when it is a terminal.
public final class Progress {
    public let total: Int
    public let label: String
    public let enabled = isatty(STDERR_FILENO) == 1
    private var lastDrawn = -1

    public init(total: Int, label: String) {
        self.total = total
        self.label = label
    }

    public func update(_ done: Int) {
        guard enabled, total > 0 else { return }
        let percent = done * 100 / total
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        let width = 40, filled = width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
    }

    public func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
