import Foundation

/// Test data shipped in the repository (Tests/Fixtures, each folder with its licence; see its README.md). No test reads
/// a file outside the repository: scripts/check-test-paths fails the test run if one tries.
public enum Fixtures {
    /// Tests/Fixtures, found from this file's place in the tree.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A file or folder under Tests/Fixtures.
    public static func url(_ relativePath: String) -> URL { root.appendingPathComponent(relativePath) }

    /// The visible files of a fixture folder, sorted by name.
    public static func files(in relativePath: String) -> [URL] {
        let dir = url(relativePath)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
    }
}
