import Foundation
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

/// Keeps the delivery log to `log.delivery_retention`: at start and every hour.
public struct DeliveryLogPruner: Service {
    public let store: any MailStore
    public let retention: Duration
    public let clock: any WallClock
    public let logger: Logger

    public init(store: any MailStore, retention: Duration, clock: any WallClock, logger: Logger) {
        self.store = store
        self.retention = retention
        self.clock = clock
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let removed = try await store.pruneDeliveryLog(before: clock.now.addingTimeInterval(-retention.seconds))
                    if removed > 0 { logger.info("delivery log pruned", metadata: ["events": "\(removed)"]) }
                } catch {
                    logger.error("cannot prune the delivery log", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(3600))
            }
        }
    }
}

extension TernServer {
    /// Runs the services of a started server until SIGTERM or SIGINT, then shuts them down in reverse order: the
    /// listeners drain first (no new mail comes in), then log pruning and the outbound queue stop.
    public func run(queue: OutboundQueue, store: any MailStore, config: TernConfiguration, clock: any WallClock,
                    logger: Logger) async throws {
        var services: [any Service] = [QueueService(queue: queue)]
        if let retention = config.deliveryLogRetention {
            services.append(DeliveryLogPruner(store: store, retention: retention, clock: clock, logger: logger))
        }
        services.append(ListenerService(server: self, grace: config.shutdownGrace))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
