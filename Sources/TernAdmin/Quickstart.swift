import Foundation

/// What `tern quickstart` writes: the config, the service user, the systemd unit.
public enum Quickstart {
    public static func binaryPath() -> String {
        let arg0 = CommandLine.arguments.first ?? "tern"
        if arg0.contains("/") { return URL(fileURLWithPath: arg0).standardizedFileURL.path }
        return "/usr/local/bin/tern"
    }

    /// The system user `name`, made with useradd when missing (a system account with its own group, no login shell).
    public static func systemUser(_ name: String, home: URL) throws -> String {
        if (try? ServiceAccount.lookup(user: name, group: nil)) != nil { return name }
        let useradd = Process()
        useradd.executableURL = URL(fileURLWithPath: "/usr/sbin/useradd")
        useradd.arguments = ["--system", "--user-group", "--no-create-home", "--home-dir", home.path, "--shell", "/usr/sbin/nologin", name]
        try useradd.run()
        useradd.waitUntilExit()
        guard useradd.terminationStatus == 0 else { throw CommandFailure("useradd \(name) failed (status \(useradd.terminationStatus))") }
        print("created the system user \(name)")
        return name
    }

    public static func configText(host: String, data: URL, configDirectory: URL, loopback: Bool, nameservers: [String], blocklists: [String],
                           user: String?) -> String {
        func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        func listen(_ port: Int) -> String { loopback ? list(["127.0.0.1:0"]) : list(["0.0.0.0:\(port)", "[::]:\(port)"]) }
        let dataPath = data.path.hasPrefix(configDirectory.path + "/") ? String(data.path.dropFirst(configDirectory.path.count + 1)) : data.path
        var out = "# Written by tern quickstart; every setting and its default: tern config example.\n"
        out += "hostname = \"\(host)\"\ndata = \"\(dataPath)\"\n"
        if let user { out += "# Started as root, tern serve binds its ports and then runs as this user.\nuser = \"\(user)\"\n" }
        out += "\n[listen]\n"
        for (service, port) in [("smtp", 25), ("submission", 587), ("submissions", 465), ("imap", 143), ("imaps", 993), ("pop3", 110), ("pop3s", 995)] {
            out += "\(service) = \(listen(port))\n"
        }
        out += "\n[tls]\n# A self-signed certificate is made at first start while these are empty.\ncertificate = \"\"\nkey = \"\"\n"
        if !nameservers.isEmpty { out += "\n[dns]\nnameservers = \(list(nameservers))\n" }
        out += "\n[checks]\nblocklists = \(list(blocklists))\n"
        return out
    }

    public static func systemdUnit(binary: String, config: String, data: String) -> String {
        """
        [Unit]
        Description=Tern mail server
        After=network-online.target
        Wants=network-online.target

        [Service]
        ExecStart=\(binary) serve --config \(config)
        User=tern
        Group=tern
        AmbientCapabilities=CAP_NET_BIND_SERVICE
        ReadWritePaths=\(data)
        NoNewPrivileges=true
        ProtectSystem=strict
        ProtectHome=true
        PrivateTmp=true
        Restart=on-failure
        LimitNOFILE=65536

        [Install]
        WantedBy=multi-user.target

        """
    }
}
