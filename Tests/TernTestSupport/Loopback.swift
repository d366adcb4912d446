import Foundation
import Glibc

/// Blocking TCP connections to a test server on 127.0.0.1, for the transcript and model tests' own protocol clients.
public enum Loopback {
    /// A connected socket with a receive timeout of `timeout` seconds (a silent server fails the test, never hangs
    /// it), or nil when nothing accepts.
    public static func connect(port: Int, timeout: Int = 10) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }
}

/// A line-at-a-time client over a `Loopback` connection (CRLF or LF line ends), for protocol transcripts. Its reads
/// block: async tests call `line()`, which waits on a thread of its own, never on one of Swift's few cooperative
/// threads (the server answers some commands on those: a test blocking them all would wait for itself). Used by one
/// task at a time.
public final class LoopbackLines: @unchecked Sendable {
    public let fd: Int32
    private var pending: [UInt8] = []

    public init?(port: Int, timeout: Int = 10) {
        guard let fd = Loopback.connect(port: port, timeout: timeout) else { return nil }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends `text` with CRLF.
    public func send(_ text: String) {
        let bytes = Array((text.hasSuffix("\r\n") ? text : text + "\r\n").utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// `readLine`, waited for off the cooperative threads.
    public func line() async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: self.readLine()) }
        }
    }

    /// The next line without its line end; nil when the server closed the connection (or said nothing in time).
    public func readLine() -> String? {
        while true {
            if let i = pending.firstIndex(of: 10) {
                let line = pending[..<i]
                pending.removeFirst(i + 1)
                return String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self)
            }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return nil }
            pending += buf[0..<n]
        }
    }
}
