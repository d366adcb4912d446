import Foundation
import Intake
import Logging
import MailCore
import MailDelivery
import ServerCore
import MailStore
import ServiceLifecycle
import TernConfig

/// The listeners as a service: they were bound before the group runs (so that the summary can name the ports); at
/// graceful shutdown they stop taking connections and drain the open ones (`limits.shutdown_grace`).
public struct ListenerService: Service {
    public let server: TernServer
    public let grace: Duration

    public init(server: TernServer, grace: Duration) {
        self.server = server
        self.grace = grace
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await server.stop(grace: grace)
    }
}

/// The outbound queue as a service: it runs until graceful shutdown. A delivery cut short is sent again after the
/// next start (at most a duplicate, never a loss).
public struct QueueService: Service {
    public let queue: OutboundQueue

    public init(queue: OutboundQueue) { self.queue = queue }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await queue.run() }
    }
}

/// The installation's upkeep, every hour: the delivery log kept to `log.delivery_retention`, and the rate counters
/// and greylisting triplets that no longer count forgotten. Run by one node of an installation at a time: each round
/// first claims the job in the store (on PostgreSQL every node shares the claim; a node that dies leaves it to the
/// others when its claim runs out).
public struct Housekeeping: Service {
    public let store: any MailStore
    public let config: TernConfiguration
    public let clock: any WallClock
    public let logger: Logger
    /// This node's name in the claim (unique per process).
    public let node: String
    public static let interval: TimeInterval = 3600
    static let job = "housekeeping"

    public init(store: any MailStore, config: TernConfiguration, clock: any WallClock, logger: Logger, node: String) {
        self.store = store
        self.config = config
        self.clock = clock
        self.logger = logger
        self.node = node
    }

    /// What one round did: nil when another node holds the job.
    public struct Round: Sendable, Equatable {
        public var deliveryEvents = 0
        public var policyEntries = 0
    }

    /// One round: claims the job for a little under an interval (the next round of the same node takes it again) and
    /// does the work when the claim is this node's.
    public func runOnce() async throws -> Round? {
        let now = clock.now
        guard try await store.claimJob(Self.job, holder: node, until: now.addingTimeInterval(Self.interval - 60), now: now) else {
            return nil
        }
        var round = Round()
        if let retention = config.deliveryLogRetention {
            round.deliveryEvents = try await store.pruneDeliveryLog(before: now.addingTimeInterval(-retention.seconds))
        }
        round.policyEntries = try await store.prunePolicyState(rule: InboundChecks.greylistRule(config.checks), now: now)
        return round
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    if let round = try await runOnce(), round.deliveryEvents > 0 {
                        logger.info("delivery log pruned", metadata: ["events": "\(round.deliveryEvents)"])
                    }
                } catch {
                    logger.error("housekeeping failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(Self.interval))
            }
        }
        // Stopping: the claim ends now, so another node need not wait out the hour.
        _ = try? await releaseClaim()
    }

    /// Ends this node's claim on the job (a claim held by another node is left alone).
    @discardableResult
    public func releaseClaim() async throws -> Bool {
        let now = clock.now
        return try await store.claimJob(Self.job, holder: node, until: now, now: now)
    }
}

extension TernServer {
    /// Runs the services of a started server until SIGTERM or SIGINT, then shuts them down in reverse order: the
    /// listeners drain first (no new mail comes in), then log pruning and the outbound queue stop.
    public func run(queue: OutboundQueue, store: any MailStore, config: TernConfiguration, clock: any WallClock,
                    logger: Logger, node: String) async throws {
        var services: [any Service] = [QueueService(queue: queue)]
        services.append(Housekeeping(store: store, config: config, clock: clock, logger: logger, node: node))
        services.append(ListenerService(server: self, grace: config.shutdownGrace))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
