import Foundation

/// One `rlhf` subcommand.
protocol Command {
    /// The word after `rlhf`.
    static var name: String { get }
    /// One line for `rlhf --help`.
    static var summary: String { get }
    /// Full text for `rlhf NAME --help`.
    static var help: String { get }
    /// Runs with the arguments after the command name (never containing --help).
    static func run(_ args: [String]) throws
}

/// Writes to standard error.
func printError(_ s: String) {
    FileHandle.standardError.write((s + "\n").data(using: .utf8)!)
}
