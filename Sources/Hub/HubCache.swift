import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The shared Hugging Face cache, laid out as huggingface_hub lays it out, so that transformers,
/// `hf download` and rlhf each find what the others fetched:
///
///     ROOT/models--ORG--NAME/blobs/ETAG                  the bytes, named by their ETag
///                                                         (the SHA-256 of a large file,
///                                                         the git blob id of a small one)
///     ROOT/models--ORG--NAME/snapshots/COMMIT/FILE       a relative symbolic link to ../../blobs/ETAG
///     ROOT/models--ORG--NAME/refs/REVISION               the commit a branch or tag named
///     ROOT/.locks/models--ORG--NAME/ETAG.lock            held (flock) while a blob is written
public struct HubCache: Sendable {
    /// The cache's root folder.
    public let root: URL

    /// The cache at `root`.
    public init(root: URL) { self.root = root }

    /// `models--ORG--NAME`.
    public func repoFolder(_ repo: RepoName) -> URL { root.appendingPathComponent(repo.cacheFolderName) }
    /// Where a blob lives.
    public func blob(_ repo: RepoName, etag: String) -> URL { repoFolder(repo).appendingPathComponent("blobs").appendingPathComponent(etag) }
    /// The snapshot folder of a commit.
    public func snapshot(_ repo: RepoName, commit: String) -> URL {
        repoFolder(repo).appendingPathComponent("snapshots").appendingPathComponent(commit)
    }
    /// The file holding the commit a revision names.
    public func refFile(_ repo: RepoName, revision: String) -> URL {
        repoFolder(repo).appendingPathComponent("refs").appendingPathComponent(revision)
    }
    /// The lock file of a blob.
    public func lockFile(_ repo: RepoName, etag: String) -> URL {
        root.appendingPathComponent(".locks").appendingPathComponent(repo.cacheFolderName).appendingPathComponent("\(etag).lock")
    }

    /// Refuses revisions that could leave the cache's folders (`..`, absolute paths) or that are
    /// not a branch, tag or commit name.
    public static func checkRevision(_ revision: String) throws {
        let parts = revision.split(separator: "/", omittingEmptySubsequences: false)
        let legal = revision.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }
        guard !revision.isEmpty, revision.count <= 255, legal, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw HubError("--revision \(revision) is not a branch, tag or commit name")
        }
    }

    /// The commit a revision names in the cache: itself when it is a full commit id, else what
    /// refs/REVISION holds.
    public func commit(_ repo: RepoName, revision: String) -> String? {
        if RepoListing.isCommitHash(revision) { return revision }
        guard let data = FileManager.default.contents(atPath: refFile(repo, revision: revision).path),
            let s = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), RepoListing.isCommitHash(s)
        else { return nil }
        return s
    }

    /// A complete model folder of the cache for a revision, without any network: the snapshot
    /// of the commit the revision names, holding config.json and its weights (model.safetensors,
    /// or the index and every shard it names), each entry resolving to a file. Nil otherwise.
    public func model(_ repo: RepoName, revision: String) -> (folder: URL, commit: String)? {
        guard let commit = commit(repo, revision: revision) else { return nil }
        let folder = snapshot(repo, commit: commit)
        func present(_ name: String) -> Bool { FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) }
        guard present("config.json") else { return nil }
        if present(ModelFiles.weights) { return (folder, commit) }
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent(ModelFiles.index).path),
            let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let map = obj["weight_map"] as? [String: Any]
        else { return nil }
        let shards = Set(map.values.compactMap { $0 as? String })
        guard !shards.isEmpty, shards.allSatisfy({ !$0.contains("/") && present($0) }) else { return nil }
        return (folder, commit)
    }

    /// Records that `revision` names `commit` (nothing for a revision that is the commit itself),
    /// written under a temporary name and renamed, as the Python client does.
    public func writeRef(_ repo: RepoName, revision: String, commit: String) throws {
        guard revision != commit else { return }
        let file = refFile(repo, revision: revision)
        if self.commit(repo, revision: revision) == commit { return }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let tmp = file.deletingLastPathComponent().appendingPathComponent(
            ".\(file.lastPathComponent).\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp")
        do {
            try Data(commit.utf8).write(to: tmp)
            guard rename(tmp.path, file.path) == 0 else { throw HubError("\(file.path): cannot write (\(String(cString: strerror(errno))))") }
        } catch {
            unlink(tmp.path)
            throw error
        }
    }

    /// Points snapshots/COMMIT/PATH at blobs/ETAG with a relative link, made under a temporary
    /// name and renamed over any older entry.
    public func link(_ repo: RepoName, commit: String, path: String, etag: String) throws {
        let entry = snapshot(repo, commit: commit).appendingPathComponent(path)
        let dir = entry.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // From snapshots/COMMIT/(subfolders/)FILE up to the repository folder, then into blobs.
        let depth = path.split(separator: "/").count + 1
        let target = String(repeating: "../", count: depth) + "blobs/" + etag
        if let existing = try? FileManager.default.destinationOfSymbolicLink(atPath: entry.path), existing == target { return }
        let tmp = dir.appendingPathComponent(".\(entry.lastPathComponent).\(getpid())-\(UInt32.random(in: 0...UInt32.max)).tmp")
        guard symlink(target, tmp.path) == 0 else { throw HubError("\(entry.path): cannot make a link (\(String(cString: strerror(errno))))") }
        guard rename(tmp.path, entry.path) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp.path)
            throw HubError("\(entry.path): cannot make a link (\(why))")
        }
    }
}

/// An exclusive advisory lock on a file (flock), the kind the Python client's filelock takes, so
/// that an rlhf pull and a Python download of the same blob wait for each other.
final class FileLock {
    private let fd: Int32

    /// Takes the lock on `url` (created if missing), calling `waiting` once if another process
    /// holds it, then blocking until it is free.
    init(_ url: URL, waiting: () -> Void) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HubError("\(url.path): cannot open the lock file (\(String(cString: strerror(errno))))") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting()
            while flock(fd, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                let why = String(cString: strerror(errno))
                close(fd)
                throw HubError("\(url.path): cannot take the lock (\(why))")
            }
        }
    }

    deinit {
        _ = flock(fd, LOCK_UN)
        close(fd)
    }
}
