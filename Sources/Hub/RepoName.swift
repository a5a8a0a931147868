import Foundation

/// A model repository's name on the Hub, `ORG/NAME`: exactly one slash, each part letters,
/// digits, `-`, `_` and `.`, not starting or ending with `-` or `.`, without `--` or `..`, at most
/// 96 characters in all (the Hub's own rule for repository ids).
public struct RepoName: Hashable, Sendable, CustomStringConvertible {
    /// The owner: a user or an organisation.
    public let owner: String
    /// The repository under that owner.
    public let name: String

    /// `ORG/NAME`.
    public var description: String { "\(owner)/\(name)" }

    /// The cache's folder for the repository: `models--ORG--NAME`.
    public var cacheFolderName: String { "models--\(owner)--\(name)" }

    /// Parses `ORG/NAME`; nil when the text is not a legal repository id.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, text.count <= 96, parts.allSatisfy(Self.isLegalPart) else { return nil }
        owner = String(parts[0]); name = String(parts[1])
    }

    static func isLegalPart(_ part: Substring) -> Bool {
        guard let first = part.first, let last = part.last else { return false }
        let allowed = part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        return allowed && !"-.".contains(first) && !"-.".contains(last) && !part.contains("--") && !part.contains("..")
    }
}

/// What a model argument names. The rule, the same for every command that takes a model:
/// an argument that names an existing file or folder, or starts with `/`, `./`, `../` or `~`, is a
/// local folder; otherwise one that is a legal Hub id `ORG/NAME` (exactly one slash) is a Hub
/// model; anything else is a local folder (and is reported missing as one). A Hub model is found
/// in the shared cache first and pulled only when the cache lacks it.
public enum ModelReference: Equatable, Sendable {
    /// A folder on this machine.
    case folder(String)
    /// A repository on the Hub.
    case hub(RepoName)

    /// Applies the rule to `argument`; `exists` says whether a path exists (the file system by default).
    public static func parse(_ argument: String, exists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) -> ModelReference {
        let explicit = ["/", "./", "../", "~"].contains { argument.hasPrefix($0) } || argument == "." || argument == ".."
        if explicit || exists(argument) { return .folder(argument) }
        if let repo = RepoName(argument) { return .hub(repo) }
        return .folder(argument)
    }
}
