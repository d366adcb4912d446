import Foundation
import MailStore
import SASL
import Testing

@Suite struct SASLTests {
    func credentials(_ password: String, salt: [UInt8], iterations: Int) -> SCRAMCredentials {
        let h = PasswordHash.make(password: password, salt: salt, iterations: iterations)
        return SCRAMCredentials(iterations: h.iterations, salt: h.salt, storedKey: h.storedKey, serverKey: h.serverKey)
    }

    /// The example exchange of RFC 7677 §3 (user "user", password "pencil").
    @Test func scramRFC7677Example() {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        var server = SASLServer(mechanism: .scramSHA256, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        #expect(server.start(initialResponse: Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8)) == .needCredentials(user: "user"))
        let first = server.credentials(credentials("pencil", salt: salt, iterations: 4096))
        #expect(first == .challenge(Array("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".utf8)))
        let final = server.respond(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8))
        #expect(final == .challenge(Array("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".utf8)))
        #expect(server.respond([]) == .success(user: "user"))
    }

    @Test func scramWrongPasswordAndUnknownUser() {
        let salt = Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!)
        let clientFinal = Array("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8)
        var wrong = SASLServer(mechanism: .scramSHA256, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        _ = wrong.start(initialResponse: Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        _ = wrong.credentials(credentials("not pencil", salt: salt, iterations: 4096))
        #expect(wrong.respond(clientFinal) == .failure(malformed: false))

        // An unknown user still gets a server-first message (same shape, stable salt), then fails.
        var unknown = SASLServer(mechanism: .scramSHA256, serverNonce: "abc", fakeSaltKey: [1, 2, 3])
        _ = unknown.start(initialResponse: Array("n,,n=nobody,r=xyz".utf8))
        guard case .challenge(let c) = unknown.credentials(nil) else { Issue.record("no challenge"); return }
        #expect(String(decoding: c, as: UTF8.self).hasPrefix("r=xyzabc,s="))
        #expect(unknown.respond(Array("c=biws,r=xyzabc,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8)) == .failure(malformed: false))

        // A tampered nonce or channel-binding header is a protocol error.
        var tampered = SASLServer(mechanism: .scramSHA256, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
        _ = tampered.start(initialResponse: Array("n,,n=user,r=rOprNGfwEbeRWgbNEkqO".utf8))
        _ = tampered.credentials(credentials("pencil", salt: salt, iterations: 4096))
        #expect(tampered.respond(Array("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".utf8)) == .failure(malformed: true))
        var plus = SASLServer(mechanism: .scramSHA256)
        #expect(plus.start(initialResponse: Array("p=tls-unique,,n=user,r=abc".utf8)) == .failure(malformed: true))
    }

    @Test func scramEscapedUserName() {
        var server = SASLServer(mechanism: .scramSHA256)
        #expect(server.start(initialResponse: Array("n,,n=a=2Cb=3Dc@x.test,r=n1".utf8)) == .needCredentials(user: "a,b=c@x.test"))
        var bad = SASLServer(mechanism: .scramSHA256)
        #expect(bad.start(initialResponse: Array("n,,n=a=2Xb,r=n1".utf8)) == .failure(malformed: true))
    }

    @Test func plain() {
        var s = SASLServer(mechanism: .plain)
        #expect(s.start(initialResponse: Array("\0alice@a.test\0secret".utf8)) == .checkPassword(user: "alice@a.test", password: "secret"))
        #expect(s.passwordChecked(true) == .success(user: "alice@a.test"))
        var noIR = SASLServer(mechanism: .plain)
        #expect(noIR.start(initialResponse: nil) == .challenge([]))
        #expect(noIR.respond(Array("alice@a.test\0alice@a.test\0pw".utf8)) == .checkPassword(user: "alice@a.test", password: "pw"))
        #expect(noIR.passwordChecked(false) == .failure(malformed: false))
        var other = SASLServer(mechanism: .plain)
        #expect(other.start(initialResponse: Array("bob@a.test\0alice@a.test\0pw".utf8)) == .failure(malformed: false))
        var malformed = SASLServer(mechanism: .plain)
        #expect(malformed.start(initialResponse: Array("alice".utf8)) == .failure(malformed: true))
    }

    @Test func login() {
        var s = SASLServer(mechanism: .login)
        #expect(s.start(initialResponse: nil) == .challenge(Array("Username:".utf8)))
        #expect(s.respond(Array("alice@a.test".utf8)) == .challenge(Array("Password:".utf8)))
        #expect(s.respond(Array("pw".utf8)) == .checkPassword(user: "alice@a.test", password: "pw"))
        #expect(s.passwordChecked(true) == .success(user: "alice@a.test"))
    }
}
