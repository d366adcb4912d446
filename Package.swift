// swift-tools-version:6.0
import PackageDescription

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

let package = Package(
    name: "Tern",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tern", targets: ["tern"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/yaslab/CSV.swift.git", from: "2.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Layer 0: pure values
        .target(name: "MailCore"),
        .target(name: "MailMessage", dependencies: ["MailCore"]),
        // Sieve mail filters (RFC 5228): the language, pure, without I/O.
        // Sieve as a language (RFC 5228 and its extensions): the lexer and parser, and the rules a script must keep.
        .target(name: "SieveLanguage", dependencies: ["MailCore", "MailMessage"]),
        // Sieve running: the interpreter, its match types and comparators, variables, dates and the body test.
        .target(name: "Sieve", dependencies: ["SieveLanguage", "MailCore", "MailMessage"]),
        .target(name: "SMTPCodec", dependencies: ["MailCore", .product(name: "NIOCore", package: "swift-nio")]),
        .target(name: "IMAPCodec", dependencies: ["MailCore", .product(name: "NIOCore", package: "swift-nio")]),
        // What an IMAP server sends: the response model, its encoder and a parser reading responses back.
        .target(name: "IMAPResponses", dependencies: ["IMAPCodec", "MailCore"]),
        .target(name: "POP3Codec", dependencies: ["MailCore"]),
        .target(name: "TernConfig", dependencies: ["MailCore", "MailDNS", .product(name: "TOMLKit", package: "TOMLKit")]),
        .target(name: "DKIM", dependencies: [
            "MailMessage",
            .product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        .target(name: "SASL", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "SpamFilter", dependencies: ["MailMessage"]),
        .target(name: "CResolv", linkerSettings: [.linkedLibrary("resolv")]),
        // Layer 1: storage protocols and model, DNS as a protocol and route selection
        .target(name: "MailDNS", dependencies: ["MailCore"]),
        .target(name: "MailAuth", dependencies: ["MailCore", "MailDNS", "MailMessage", "DKIM"]),
        // Address and domain checks for admins (tern check address/addresses/domain).
        .target(name: "Deliverability", dependencies: ["MailCore", "MailMessage", "MailDNS", "MailAuth", "DKIM", "SpamFilter"]),
        .target(name: "MailStore", dependencies: [
            "MailCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // Layer 2: the embedded backend and the network
        // The embedded database's shape (its tables' numbered migrations), as PostgresDatabase is PostgreSQL's.
        .target(name: "SQLiteDatabase", dependencies: ["MailStore", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "MailStoreSQLite", dependencies: [
            "MailCore", "MailStore", "SQLiteDatabase", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // The store on PostgreSQL, for several nodes sharing one installation (issue 21; in slices, not yet in the config).
        // Where the PostgreSQL database is and its tables' numbered migrations; the store's operations on it are above.
        .target(name: "PostgresDatabase", dependencies: [
            "MailStore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "MailStorePostgres", dependencies: [
            "MailCore", "MailStore", "PostgresDatabase",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The one place that names a store backend.
        .target(name: "StoreFactory", dependencies: ["MailCore", "MailStore", "MailStoreSQLite", "MailStorePostgres", "PostgresDatabase", "TernConfig"]),
        .target(name: "DNSResolverLive", dependencies: ["MailCore", "MailDNS", "CResolv", .product(name: "NIOPosix", package: "swift-nio")]),
        // What every protocol's server shares: the context, connection limits and plumbing, TLS material, login
        // throttling, the shared mailbox views.
        .target(name: "ServerCore", dependencies: [
            "MailCore", "MailStore", "TernConfig",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CompressNIO", package: "compress-nio"),
        ] + nio),
        // What IMAP answers from, without I/O: the selected mailbox's view, UID ranges, BODYSTRUCTURE, LIST, SORT keys,
        // message parts, the caches of derived data.
        .target(name: "IMAPMailboxView", dependencies: ["MailCore", "MailMessage", "MailStore", "IMAPCodec", "IMAPResponses"]),
        // IMAP4rev1/rev2 and its extensions over ServerCore.
        .target(name: "IMAPServer", dependencies: [
            "ServerCore", "Intake", "IMAPMailboxView", "MailCore", "MailMessage", "IMAPCodec", "IMAPResponses", "MailStore", "TernConfig", "SpamFilter",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // ManageSieve (RFC 5804) over ServerCore: users' Sieve scripts, checked by the Sieve module.
        .target(name: "ManageSieveServer", dependencies: [
            "ServerCore", "MailCore", "MailStore", "SASL", "Sieve",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // POP3 (RFC 1939, 2449, 5034) over ServerCore.
        .target(name: "POP3Server", dependencies: [
            "ServerCore", "MailCore", "MailStore", "POP3Codec", "SASL", "TernConfig",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // How every message gets in, without I/O of its own: checks, recipient resolution, routing, preparation
        // (submission signing, the port-25 verdict), one durable commit and the reply; for SMTP, submission,
        // `tern sendmail`, `tern import`, the mail tester and Tern's own notices. NIO-free: blocking work runs on
        // what the caller passes in.
        // Sieve at delivery, without I/O: where each recipient's scripts put the message (FilterPlan), the administrator's
        // scripts, vacation replies and rejection notices as messages.
        .target(name: "SieveDelivery", dependencies: ["Sieve", "MailStore", "MailMessage", "MailCore"]),
        .target(name: "Intake", dependencies: [
            "MailCore", "MailMessage", "MailStore", "TernConfig", "MailDNS", "MailAuth", "DKIM", "SpamFilter", "Deliverability", "Sieve", "SieveDelivery",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // How a message leaves: the outbound queue and the SMTP client that empties it.
        .target(name: "MailDelivery", dependencies: [
            "ServerCore", "Intake", "MailCore", "MailMessage", "SMTPCodec", "MailStore", "TernConfig", "MailDNS", "DKIM", "Deliverability",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // SMTP (RFC 5321) on port 25 and submission (RFC 6409, 8314) over ServerCore, handing messages to Intake.
        .target(name: "SMTPServer", dependencies: [
            "ServerCore", "Intake", "MailCore", "MailMessage", "SMTPCodec", "MailStore", "TernConfig", "SASL", "MailAuth",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),
        // The listeners of every protocol, assembled, and the long-running services (listeners, the outbound queue,
        // log pruning) under one structured lifecycle with SIGTERM draining.
        .target(name: "MailServer", dependencies: [
            "ServerCore", "SMTPServer", "IMAPServer", "POP3Server", "ManageSieveServer", "IMAPMailboxView", "Intake", "MailDelivery", "MailCore", "MailAuth", "MailStore", "TernConfig",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ] + nio),
        // What the admin commands do, apart from reading their arguments: DKIM keys and DNS records, the Public
        // Suffix List file, message import, CSV and progress output, the first run's login.
        .target(name: "TernAdmin", dependencies: [
            "MailCore", "MailMessage", "MailStore", "MailDNS", "MailAuth", "DKIM", "TernConfig", "Deliverability", "Intake", "SpamFilter",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Layer 3: the executable
        .executableTarget(name: "tern", dependencies: [
            "MailCore", "MailMessage", "MailStore", "StoreFactory", "ServerCore", "Intake", "MailDelivery", "MailServer", "TernAdmin", "TernConfig", "MailDNS", "DNSResolverLive", "DKIM", "MailAuth", "SpamFilter", "Deliverability", "Sieve", "SieveDelivery",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "CSV", package: "CSV.swift"),
            .product(name: "Logging", package: "swift-log"),
        ] + nio),

        // Measurements that are not tests: the spam filter on a labelled corpus (bench/spam).
        .executableTarget(name: "spam-corpus", dependencies: ["SpamFilter", "MailMessage"], path: "bench/spam/spam-corpus"),

        // What every test target shares: fixtures in Tests/Fixtures, the manual clock, seeded randomness, loopback
        // clients, a scripted remote SMTP server, and the real server in-process (`InProcessServer`).
        .target(name: "TernTestSupport", dependencies: [
            "MailCore", "MailStore", "MailStoreSQLite", "MailStorePostgres", "PostgresDatabase", "ServerCore", "MailServer", "TernConfig",
            .product(name: "Logging", package: "swift-log"), .product(name: "PostgresNIO", package: "postgres-nio"),
        ] + nio, path: "Tests/TernTestSupport"),
        // The store conformance suite: one set of cases over the store protocols, run against every backend.
        .target(name: "StoreConformance", dependencies: ["TernTestSupport", "MailStore", "MailCore"], path: "Tests/StoreConformance"),
        .testTarget(name: "MailCoreTests", dependencies: ["TernTestSupport", "MailCore"]),
        .testTarget(name: "MailMessageTests", dependencies: ["TernTestSupport", "MailMessage"]),
        .testTarget(name: "SieveTests", dependencies: ["Sieve", "SieveLanguage"]),
        .testTarget(name: "ManageSieveTests", dependencies: ["ManageSieveServer"]),
        .testTarget(name: "SMTPCodecTests", dependencies: ["TernTestSupport", "SMTPCodec", "MailCore"]),
        .testTarget(name: "TernConfigTests", dependencies: ["TernTestSupport", "TernConfig"]),
        .testTarget(name: "IMAPCodecTests", dependencies: ["TernTestSupport", "IMAPCodec"]),
        .testTarget(name: "IMAPResponsesTests", dependencies: ["TernTestSupport", "IMAPCodec", "IMAPResponses"]),
        .testTarget(name: "POP3CodecTests", dependencies: ["TernTestSupport", "POP3Codec"]),
        .testTarget(name: "SASLTests", dependencies: ["TernTestSupport", "SASL", "MailStore"]),
        .testTarget(name: "DKIMTests", dependencies: ["TernTestSupport", "DKIM", "MailMessage"]),
        .testTarget(name: "SpamFilterTests", dependencies: ["TernTestSupport", "SpamFilter", "MailMessage"]),
        .testTarget(name: "MailAuthTests", dependencies: ["TernTestSupport", "MailAuth", "MailDNS", "DKIM", "MailMessage", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "DeliverabilityTests", dependencies: ["TernTestSupport", "Deliverability", "MailCore"]),
        .testTarget(name: "MailDNSTests", dependencies: ["TernTestSupport", "MailDNS", "DNSResolverLive"]),
        .testTarget(name: "MailStoreSQLiteTests", dependencies: ["TernTestSupport", "StoreConformance", "MailStoreSQLite", "SQLiteDatabase", "MailStore", "MailCore",
                                                              .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "MailStorePostgresTests", dependencies: [
            "TernTestSupport", "StoreConformance", "MailStorePostgres", "PostgresDatabase", "MailStoreSQLite", "MailStore", "MailCore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
        .testTarget(name: "ServerCoreTests", dependencies: ["TernTestSupport", "ServerCore", "MailCore"]),
        .testTarget(name: "IntakeTests", dependencies: ["TernTestSupport", "Intake", "MailStoreSQLite", "MailStore", "MailCore", "MailDNS", "MailAuth", "MailMessage", "TernConfig", "Sieve", "SieveDelivery", "Deliverability"]),
        .testTarget(name: "MailServerTests", dependencies: ["TernTestSupport", "ServerCore", "IMAPMailboxView", "IMAPServer", "Intake", "SMTPServer", "MailDelivery", "MailServer", "MailMessage", "IMAPCodec", "IMAPResponses", "MailStoreSQLite", "MailStore", "SMTPCodec", "TernConfig", "StoreFactory"] + nio),
    ]
)

// libFuzzer targets for the parsers fed by the network or by mail (scripts/fuzz builds them with
// TERN_FUZZ=1 and -sanitize=fuzzer,address; they are not part of the normal build).
if Context.environment["TERN_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "TernFuzz",
        dependencies: ["MailCore", "MailMessage", "SMTPCodec", "IMAPCodec", "POP3Codec", "SASL", "DKIM", "MailAuth", "MailDNS",
                       "DNSResolverLive", "TernConfig", "Sieve", "SieveLanguage", .product(name: "NIOCore", package: "swift-nio")],
        path: "Fuzz/TernFuzz"))
}
