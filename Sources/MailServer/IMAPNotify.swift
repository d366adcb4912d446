import IMAPCodec
import IMAPResponses
import MailStore

extension IMAPSession {
    func notify(_ spec: NotifySet?, tag: String, _ out: inout IMAPOutput) async throws {
        throw IMAPFailure.bad("not yet")
    }
}
