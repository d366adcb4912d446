import Foundation
import Glibc
import Synchronization

/// A remote mail server for tests of Tern's outbound side: listens on 127.0.0.1, speaks just enough SMTP (EHLO,
/// MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS), answers each RCPT TO as `rcptReply` says, and keeps what it was
/// sent. Blocking sockets on threads of its own; every read has a timeout, so a test never hangs on it.
public final class ScriptedSMTPServer: Sendable {
    public let port: Int
    private let listener: Int32
    private let rcptReply: @Sendable (String) -> String
    private let state = Mutex((recipients: [String](), messages: [[UInt8]](), stopped: false))

    /// Every RCPT TO address asked for, in order (accepted or not).
    public var recipientsAsked: [String] { state.withLock { $0.recipients } }
    /// The content of every message accepted.
    public var messages: [[UInt8]] { state.withLock { $0.messages } }

    /// `rcptReply`: the reply line to `RCPT TO:<address>` for an address, such as `250 2.1.5 OK` or `451 4.7.1 Later`.
    public init(rcptReply: @escaping @Sendable (String) -> String) throws {
        self.rcptReply = rcptReply
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    public func stop() {
        state.withLock { $0.stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !state.withLock({ $0.stopped }) {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            Thread { [self] in serve(fd) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        func send(_ line: String) {
            let bytes = Array((line + "\r\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        func readLine() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: 10) {
                    var line = Array(buffer[..<nl])
                    buffer.removeFirst(nl + 1)
                    if line.last == 13 { line.removeLast() }
                    return String(decoding: line, as: UTF8.self)
                }
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = recv(fd, &chunk, chunk.count, 0)
                guard n > 0 else { return nil }
                buffer += chunk[0..<n]
            }
        }
        send("220 remote.test ESMTP scripted")
        var accepted = 0
        while let line = readLine() {
            let verb = line.prefix(4).uppercased()
            switch verb {
            case "EHLO": send("250-remote.test\r\n250-PIPELINING\r\n250 8BITMIME")
            case "HELO": send("250 remote.test")
            case "MAIL": accepted = 0; send("250 2.1.0 OK")
            case "RCPT":
                let address = line.split(separator: "<").dropFirst().first.map { String($0.prefix { $0 != ">" }) } ?? ""
                let reply = rcptReply(address)
                state.withLock { $0.recipients.append(address) }
                if reply.hasPrefix("2") { accepted += 1 }
                send(reply)
            case "DATA":
                guard accepted > 0 else { send("554 5.5.1 No valid recipients"); continue }
                send("354 Go ahead")
                var content: [UInt8] = []
                while let l = readLine(), l != "." { content += Array((l.hasPrefix("..") ? String(l.dropFirst()) : l).utf8) + [13, 10] }
                state.withLock { $0.messages.append(content) }
                send("250 2.0.0 Accepted")
            case "RSET": accepted = 0; send("250 2.0.0 OK")
            case "NOOP": send("250 2.0.0 OK")
            case "QUIT": send("221 2.0.0 Bye"); return
            default: send("502 5.5.2 Not implemented")
            }
        }
    }
}
