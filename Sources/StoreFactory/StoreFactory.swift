import Foundation
import MailCore
import MailStore
import MailStoreSQLite
import TernConfig

/// Makes the installation's store from its configuration: the one place that names a backend. Everything else —
/// the server, the admin commands — holds `any MailStore`.
public enum StoreFactory {
    /// The store the configuration names: today the embedded SQLite store in `data_directory` (a PostgreSQL backend
    /// joins here, issue 21).
    public static func open(_ config: TernConfiguration, clock: any WallClock) throws -> any MailStore {
        try SQLiteMailStore(dataDirectory: config.dataDirectory, clock: clock)
    }
}
