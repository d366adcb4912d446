
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

/// The embedded default's first run: a domain, a user and a password to try, kept in `<data>/first-login.txt`
/// (mode 0600) so the summary can show it on every start until the password is changed.
public enum FirstRun {
    public static let domain = "tern.test"
    public static let user = "me"

    public struct Login: Codable {
        public var address: String
        public var password: String
    }

    public static func file(_ data: URL) -> URL { data.appendingPathComponent("first-login.txt") }

    public static func prepare(store: any MailStore, dataDirectory: URL) async throws -> Login? {
        if let data = FileManager.default.contents(atPath: file(dataDirectory).path),
           let login = try? JSONDecoder().decode(Login.self, from: data) {
            return login
        }
        guard try await store.domains().isEmpty else { return nil }
        try await store.addDomain(domain)
        _ = try await DKIMKeys.generate(store: store, domain: domain)
        let password = PasswordHash.generatePassword()
        let address = EmailAddress(localPart: user, domain: domain)
        _ = try await store.addAccount(address, password: password)
        try await store.addAlias("postmaster@\(domain)", targets: [address])
        let login = Login(address: address.canonical, password: password)
        FileManager.default.createFile(atPath: file(dataDirectory).path, contents: try JSONEncoder().encode(login),
                                       attributes: [.posixPermissions: 0o600])
        return login
    }

    public static func forget(address: String, dataDirectory: URL) {
        guard let data = FileManager.default.contents(atPath: file(dataDirectory).path),
              let login = try? JSONDecoder().decode(Login.self, from: data), login.address == address else { return }
        try? FileManager.default.removeItem(at: file(dataDirectory))
    }
}
