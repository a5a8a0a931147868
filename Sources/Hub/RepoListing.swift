import Foundation

/// A repository at one commit as the Hub's API lists it
/// (`GET /api/models/ORG/NAME/revision/REV?blobs=true`): the commit and every file with its size
/// and, for files kept in large-file storage, the SHA-256 of their bytes.
public struct RepoListing: Equatable, Sendable {
    /// One file of the repository.
    public struct File: Equatable, Sendable {
        /// The path inside the repository (`rfilename`).
        public var path: String
        /// Its size in bytes.
        public var size: Int?
        /// The git blob id (`blobId`): the ETag the Hub gives a file kept in git.
        public var blobId: String?
        /// The SHA-256 the Hub published for a large (LFS) file (`lfs.sha256`); nil for small files.
        public var sha256: String?

        /// A file of the listing.
        public init(path: String, size: Int?, blobId: String?, sha256: String?) {
            self.path = path; self.size = size; self.blobId = blobId; self.sha256 = sha256
        }
    }

    /// The exact commit (`sha`, 40 hexadecimal digits).
    public var commit: String
    /// The files.
    public var files: [File]

    /// Reads the API's JSON answer.
    public static func parse(_ data: Data, what: String) throws -> RepoListing {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw HubError("\(what): the Hub's answer is not a JSON object (is HF_ENDPOINT a Hub?)")
        }
        guard let sha = obj["sha"] as? String, isCommitHash(sha) else {
            throw HubError("\(what): the Hub's answer names no commit (\"sha\")")
        }
        guard let siblings = obj["siblings"] as? [Any] else { throw HubError("\(what): the Hub's answer lists no files (\"siblings\")") }
        var files: [File] = []
        for case let s as [String: Any] in siblings {
            guard let path = s["rfilename"] as? String else { continue }
            let lfs = s["lfs"] as? [String: Any]
            let sha256 = (lfs?["sha256"] as? String ?? lfs?["oid"] as? String).map { $0.lowercased() }
            if let h = sha256, !isSHA256(h) { throw HubError("\(what): the published SHA-256 of \(path) is not 64 hexadecimal digits") }
            files.append(
                File(
                    path: path, size: (s["size"] as? NSNumber)?.intValue ?? (lfs?["size"] as? NSNumber)?.intValue, blobId: s["blobId"] as? String,
                    sha256: sha256))
        }
        return RepoListing(commit: sha, files: files)
    }

    /// 40 lower-case hexadecimal digits: a full git commit id.
    public static func isCommitHash(_ s: String) -> Bool { s.count == 40 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }

    static func isSHA256(_ s: String) -> Bool { s.count == 64 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
}

/// The files a model folder needs, and only those: the configuration, the generation
/// configuration, the tokenizer's files, the chat template, and the safetensors weights (the
/// single `model.safetensors`, or the index and every shard it names). Pickled weights
/// (`.bin`, `.pt`, `.pth`, `.ckpt`, `.pkl`) and files in subfolders are never taken.
public enum ModelFiles {
    /// The small files a folder may hold; those the repository has are taken.
    public static let small = [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
    ]
    /// The weights of an unsharded model.
    public static let weights = "model.safetensors"
    /// The index of a sharded model.
    public static let index = "model.safetensors.index.json"

    /// The paths to fetch from a listing, before the index is read: the small files and either
    /// the single weights file or the index. Throws when the repository has no safetensors weights.
    public static func select(_ listing: RepoListing, repo: RepoName) throws -> [RepoListing.File] {
        let byPath = Dictionary(listing.files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var out = small.compactMap { byPath[$0] }
        guard out.contains(where: { $0.path == "config.json" }) else {
            throw HubError("\(repo) has no config.json at the root: it is not a transformers model repository")
        }
        if let w = byPath[weights] {
            out.append(w)
        } else if let i = byPath[index] {
            out.append(i)
        } else {
            let pickles = listing.files.map(\.path).filter { p in [".bin", ".pt", ".pth", ".ckpt", ".pkl"].contains { p.hasSuffix($0) } }
            throw HubError(
                "\(repo) has no safetensors weights (model.safetensors or model.safetensors.index.json)"
                    + (pickles.isEmpty ? "" : "; it has only pickled weights (\(pickles.prefix(3).joined(separator: ", "))), which rlhf never loads"))
        }
        return out
    }

    /// The shards an index names (`weight_map` values), checked to be plain `.safetensors` file
    /// names at the repository's root that the listing holds.
    public static func shards(index data: Data, listing: RepoListing, repo: RepoName) throws -> [RepoListing.File] {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let map = obj["weight_map"] as? [String: Any] else {
            throw HubError("\(repo): \(index) has no weight_map object")
        }
        let names = Set(map.values.compactMap { $0 as? String }).sorted()
        let byPath = Dictionary(listing.files.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        return try names.map { n in
            guard n.hasSuffix(".safetensors"), !n.contains("/"), !n.hasPrefix(".") else {
                throw HubError("\(repo): \(index) names \(n), which is not a .safetensors file beside it")
            }
            guard let f = byPath[n] else { throw HubError("\(repo): \(index) names \(n), which the repository does not hold") }
            return f
        }
    }
}
