import TernAdmin
import ArgumentParser
import DNSResolverLive
import Foundation
import MailCore
import MailDNS

/// `tern route DOMAIN`: where Tern would deliver mail for a domain, from DNS, as the queue will choose it.
struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Show where mail for a domain goes: its MX hosts in the order Tern tries them, with their addresses.",
        discussion: "Uses the nameservers of the config (dns.nameservers) or the system's. Exit status 0: a route; 1: none (the mail would bounce); 2: DNS failed temporarily (the mail would wait).")
    @OptionGroup var options: ConfigOption
    @Argument(help: "The domain (Unicode names are converted to A-labels).") var domain: String

    func run() async throws {
        let config = try options.load()
        let resolver = LiveResolver(config: config)
        guard let ascii = IDNA.toASCII(domain), !ascii.isEmpty else { throw ValidationError("\"\(domain)\" is not a domain name") }
        let name = ascii.lowercased()
        var rng = SystemRandomNumberGenerator()
        switch await RouteSelection.route(for: name, resolver: resolver, random: &rng) {
        case .hosts(let hosts):
            print("mail for \(name) goes to, in order:")
            for h in hosts {
                let kind = h.isImplicitMX(of: name) ? "(no MX: the domain's own address)" : "MX \(h.preference)"
                print("  \(h.name)  \(kind)  \(h.addresses.joined(separator: " "))")
            }
        case .nullMX:
            print("\(name) publishes a null MX (RFC 7505): it accepts no mail; Tern bounces mail for it at once")
            throw ExitCode(1)
        case .noRoute(let reason):
            print("no route: \(reason); Tern bounces mail for it")
            throw ExitCode(1)
        case .temporaryFailure(let reason):
            print("temporary failure: \(reason); Tern keeps such mail queued and tries again")
            throw ExitCode(2)
        }
    }
}
