import Foundation
import TernConfig
import TernTestSupport
import Testing
@testable import ServerCore

/// The connection lifecycle on the real server in-process: limits refused in the protocol's own words, the per-address
/// count given back when a connection ends, and draining at shutdown.
@Suite(.serialized) struct LifecycleTests {
    @Test func limitsAreRefusedInTheProtocolsWordsAndFreedAtClose() async throws {
        let s = try await InProcessServer.start { config in
            config.limits.maxConnectionsPerAddress = 1
            config.listen[.pop3] = [ListenAddress(host: "127.0.0.1", port: 0)]
        }
        do {
            var first: LoopbackLines? = try #require(LoopbackLines(port: s.port))
            #expect(first?.readLine()?.hasPrefix("220 mx.test ") == true)
            let second = try #require(LoopbackLines(port: s.port))
            #expect(second.readLine() == "421 4.7.0 mx.test Too many connections from your address, try again later")
            #expect(second.readLine() == nil)
            // Each listener counts its own connections: POP3 answers as POP3 does.
            let pop = try #require(LoopbackLines(port: s.port(of: .pop3)))
            #expect(pop.readLine()?.hasPrefix("+OK") == true)
            let pop2 = try #require(LoopbackLines(port: s.port(of: .pop3)))
            #expect(pop2.readLine() == "-ERR [SYS/TEMP] Too many connections from your address, try again later")
            // The slot is given back when the connection ends.
            first?.send("QUIT")
            #expect(first?.readLine()?.hasPrefix("221") == true)
            first = nil
            var greeted = false
            for _ in 0..<50 where !greeted {
                let again = try #require(LoopbackLines(port: s.port))
                greeted = again.readLine()?.hasPrefix("220 ") == true
                if !greeted { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(greeted)
        }
        try await s.stop()
    }

    @Test func shutdownEndsIdleSessionsAndTakesNoNewOnes() async throws {
        let s = try await InProcessServer.start()
        let registry = s.connections
        let idle = try #require(LoopbackLines(port: s.port))
        #expect(idle.readLine()?.hasPrefix("220 ") == true)
        idle.send("EHLO client.test")
        while let line = idle.readLine(), line.hasPrefix("250-") {}
        idle.send("MAIL FROM:<a@remote.test>")
        #expect(idle.readLine()?.hasPrefix("250") == true)
        let port = s.port
        try await s.stop(grace: .seconds(10))
        #expect(idle.readLine() == "421 4.3.2 mx.test Service shutting down, try again later")
        #expect(idle.readLine() == nil)
        #expect(LoopbackLines(port: port) == nil)
        #expect(registry.count == 0)
    }
}
