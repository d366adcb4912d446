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
            #expect(await first?.line()?.hasPrefix("220 mx.test ") == true)
            let second = try #require(LoopbackLines(port: s.port))
            #expect(await second.line() == "421 4.7.0 mx.test Too many connections from your address, try again later")
            #expect(await second.line() == nil)
            // Each listener counts its own connections: POP3 answers as POP3 does.
            let pop = try #require(LoopbackLines(port: s.port(of: .pop3)))
            #expect(await pop.line()?.hasPrefix("+OK") == true)
            let pop2 = try #require(LoopbackLines(port: s.port(of: .pop3)))
            #expect(await pop2.line() == "-ERR [SYS/TEMP] Too many connections from your address, try again later")
            // The slot is given back when the connection ends.
            first?.send("QUIT")
            #expect(await first?.line()?.hasPrefix("221") == true)
            first = nil
            var greeted = false
            for _ in 0..<50 where !greeted {
                let again = try #require(LoopbackLines(port: s.port))
                greeted = await again.line()?.hasPrefix("220 ") == true
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
        #expect(await idle.line()?.hasPrefix("220 ") == true)
        idle.send("EHLO client.test")
        while let line = await idle.line(), line.hasPrefix("250-") {}
        idle.send("MAIL FROM:<a@remote.test>")
        #expect(await idle.line()?.hasPrefix("250") == true)
        let port = s.port
        try await s.stop(grace: .seconds(10))
        #expect(await idle.line() == "421 4.3.2 mx.test Service shutting down, try again later")
        #expect(await idle.line() == nil)
        #expect(LoopbackLines(port: port) == nil)
        #expect(registry.count == 0)
    }

    @Test func aFullListenerMakesRoomByClosingTheLongestWaitingStranger() async throws {
        let s = try await InProcessServer.start { $0.limits.maxConnections = 2 }
        do {
            // A client in a transaction (trusted), then an idle stranger: the listener is full.
            let busy = try #require(LoopbackLines(port: s.port))
            #expect(await busy.line()?.hasPrefix("220 ") == true)
            busy.send("HELO client.test")
            #expect(await busy.line()?.hasPrefix("250") == true)
            busy.send("MAIL FROM:<a@remote.test>")
            #expect(await busy.line()?.hasPrefix("250") == true)
            let idle = try #require(LoopbackLines(port: s.port))
            #expect(await idle.line()?.hasPrefix("220 ") == true)
            // A newcomer gets in; the stranger that waited longest goes, the client in its transaction stays.
            let newcomer = try #require(LoopbackLines(port: s.port))
            #expect(await newcomer.line()?.hasPrefix("220 ") == true)
            #expect(await idle.line() == "421 4.3.2 mx.test Too many connections, try again later")
            #expect(await idle.line() == nil)
            busy.send("RCPT TO:<alice@example.test>")
            #expect(await busy.line()?.hasPrefix("250") == true)
            // When every connection is trusted, nobody is pushed out: the next one is refused.
            newcomer.send("HELO other.test")
            #expect(await newcomer.line()?.hasPrefix("250") == true)
            newcomer.send("MAIL FROM:<b@remote.test>")
            #expect(await newcomer.line()?.hasPrefix("250") == true)
            var refused = false
            for _ in 0..<50 where !refused {
                // The stranger's slot is given back when its connection has closed: until then a third is refused too.
                let late = try #require(LoopbackLines(port: s.port))
                let line = await late.line()
                if line == "421 4.3.2 mx.test Too many connections, try again later" { refused = true } else { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(refused)
        }
        try await s.stop()
    }

    @Test func ipv6ClientsAreCountedByTheirSlash64() {
        #expect(ConnectionLimiter.key("2001:db8:1:2:aaaa::1") == ConnectionLimiter.key("2001:db8:1:2:bbbb:cccc:dddd:eeee"))
        #expect(ConnectionLimiter.key("2001:db8:1:2::1") == "2001:db8:1:2::/64")
        #expect(ConnectionLimiter.key("2001:db8:1:3::1") != ConnectionLimiter.key("2001:db8:1:2::1"))
        #expect(ConnectionLimiter.key("::ffff:192.0.2.7") == "192.0.2.7")
        #expect(ConnectionLimiter.key("192.0.2.7") == "192.0.2.7")
        let limiter = ConnectionLimiter(maxTotal: 10, maxPerAddress: 2)
        #expect(limiter.acquire("2001:db8:1:2::1") == .accepted)
        #expect(limiter.acquire("2001:db8:1:2::2") == .accepted)
        #expect(limiter.acquire("2001:db8:1:2::3") == .tooManyFromAddress)
        #expect(limiter.acquire("2001:db8:1:9::3") == .accepted)
    }
}
