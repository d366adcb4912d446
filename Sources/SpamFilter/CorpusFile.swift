import Foundation
import MailMessage

/// A message as labelled spam corpora keep it (the SpamAssassin public corpus: one file a message, after an mbox
/// "From " line), read for scoring as it was received: the corpus evaluation (bench/spam) and the filter's unit tests
/// read their files the same way.
public struct CorpusMessage {
    public var features: MessageFeatures
    /// When the corpus owner's server received it (the newest Received field): the "now" the date rules would have seen.
    public var received: Date?

    public init(fileContents data: [UInt8]) {
        var bytes = data
        // The mbox "From " line is not part of the message.
        if bytes.starts(with: Array("From ".utf8)), let nl = bytes.firstIndex(of: 10) { bytes.removeSubrange(...nl) }
        if let field = MIMEParser.parse(bytes).header("Received"), let semi = field.lastIndex(of: ";") {
            received = RFC5322Date.parse(String(field[field.index(after: semi)...]))
        }
        features = MessageFeatures(message: bytes)
    }
}
