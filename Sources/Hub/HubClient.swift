import Foundation
import TransformerCore

#if canImport(Glibc)
import Glibc
#endif

/// A model folder pulled from the Hub or found in the cache.
public struct PulledModel: Sendable {
    /// The snapshot folder in the cache (or the plain folder written with `-o`).
    public var folder: URL
    /// The repository.
    public var repo: RepoName
    /// The branch, tag or commit asked for.
    public var revision: String
    /// The exact commit the files are from (40 hexadecimal digits).
    public var commit: String
    /// Bytes fetched over the network by this pull (0 when the cache held everything).
    public var bytesFetched: Int
}

/// Fetches model folders from the Hugging Face Hub into the shared cache.
///
/// Only the repository's own files are requested: the API's listing of the repository at the
/// revision, then each file a model folder needs from `ENDPOINT/ORG/NAME/resolve/COMMIT/FILE`,
/// following the Hub's redirects to its storage. The token goes only to the endpoint's own host:
/// a redirect to any other host is followed without the Authorization header, as the Python
/// client does. Each large file is written to `blobs/ETAG.incomplete` under the blob's lock,
/// resumed with an HTTP range request when it is there from an interrupted pull, checked against
/// the SHA-256 the Hub published, and only then renamed to its final name.
public final class HubClient {
    /// The settings.
    public let environment: HubEnvironment
    /// The cache written and read.
    public let cache: HubCache
    /// Attempts per file when the connection fails (cut, timeout, 5xx); each continues where the
    /// last stopped.
    public var attempts = 4
    /// Seconds before the first retry; doubled each time.
    public var retryDelay: TimeInterval = 1
    /// Progress on standard error.
    public var showProgress = true
    /// Where one-line notes go (what is fetched, found, verified, waited for); nil: standard
    /// error, above the progress bar.
    public var log: ((String) -> Void)?

    private let http: HTTPClient
    private var bar: ProgressBar?

    /// A client for `environment`.
    public init(environment: HubEnvironment) {
        self.environment = environment
        cache = HubCache(root: environment.cache)
        http = HTTPClient(timeout: environment.timeout)
    }

    /// Pulls `repo` at `revision` into the cache (files already there are not fetched again), and
    /// with `output` also writes a plain copy of the folder there (replacing it whole).
    public func pull(_ repo: RepoName, revision: String = "main", output: URL? = nil) throws -> PulledModel {
        try HubCache.checkRevision(revision)
        var result: PulledModel
        if environment.offline {
            guard let (folder, commit) = cache.model(repo, revision: revision) else {
                throw HubError(
                    "HF_HUB_OFFLINE is set and the cache (\(cache.root.path)) holds no complete copy of \(repo) at \(revision); unset HF_HUB_OFFLINE to pull it"
                )
            }
            note("\(repo) (\(revision)): commit \(commit) from the cache (offline)")
            result = PulledModel(folder: folder, repo: repo, revision: revision, commit: commit, bytesFetched: 0)
        } else {
            result = try fetch(repo, revision: revision)
        }
        if let output {
            try writePlainFolder(result.folder, to: output)
            note("wrote \(output.path)")
            result.folder = output
        }
        return result
    }

    // MARK: - Fetching

    private func fetch(_ repo: RepoName, revision: String) throws -> PulledModel {
        let listing = try listFiles(repo, revision: revision)
        let commit = listing.commit
        let snapshot = cache.snapshot(repo, commit: commit)
        note("\(repo) (\(revision)): commit \(commit); cache \(cache.repoFolder(repo).path)")
        var files = try ModelFiles.select(listing, repo: repo)
        var fetched = 0
        // A sharded model's index first (it is small), to learn the shards and the whole size.
        if let index = files.first(where: { $0.path == ModelFiles.index }) {
            fetched += try fetchFile(index, repo: repo, commit: commit, doneBefore: 0, progressNote: index.path)
            let data = try JSONText.readFile(snapshot.appendingPathComponent(ModelFiles.index), limit: 64 << 20)
            files = files.filter { $0.path != ModelFiles.index } + (try ModelFiles.shards(index: data, listing: listing, repo: repo))
        }
        let total = files.reduce(0) { $0 + ($1.size ?? 0) }
        let bar = ProgressBar("pull \(repo)", bytes: total, enabled: showProgress)
        self.bar = bar
        defer { self.bar = nil }
        var done = 0
        do {
            for (i, file) in files.enumerated() {
                let got = try fetchFile(file, repo: repo, commit: commit, doneBefore: done, progressNote: "\(file.path) (\(i + 1)/\(files.count))")
                fetched += got
                done += file.size ?? got
                bar.update(done)
            }
            try cache.writeRef(repo, revision: revision, commit: commit)
        } catch {
            bar.finish(note: "stopped")
            throw error
        }
        bar.finish(note: fetched == 0 ? "all in the cache already" : "\(files.count) files")
        guard let (folder, _) = cache.model(repo, revision: commit) else {
            throw HubError("\(repo): the snapshot \(snapshot.path) is incomplete after the pull; pull again")
        }
        return PulledModel(folder: folder, repo: repo, revision: revision, commit: commit, bytesFetched: fetched)
    }

    /// The API's listing of the repository at a revision, following the Hub's redirects within
    /// its own host (a renamed repository).
    func listFiles(_ repo: RepoName, revision: String) throws -> RepoListing {
        let rev = revision.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_."))) ?? revision
        var url = URL(string: "\(environment.endpoint.absoluteString)/api/models/\(repo.owner)/\(repo.name)/revision/\(rev)?blobs=true")!
        for _ in 0..<10 {
            var body = Data()
            let r = try withRetries("the file list of \(repo)") {
                body = Data()
                return try http.send("GET", url, headers: authHeaders(for: url)) { _, chunk in body.append(chunk) }
            }
            if r.isRedirect, let loc = URL(string: r.header("location")!, relativeTo: url)?.absoluteURL, sameHost(loc, environment.endpoint) {
                url = loc
                continue
            }
            try check(r, repo: repo, what: "the file list of \(repo) at \(revision)", revision: revision)
            guard r.status == 200 else { throw HubError("\(url.absoluteString): the Hub answered \(r.status) to the file list") }
            return try RepoListing.parse(body, what: "\(repo) at \(revision)")
        }
        throw HubError("\(url.absoluteString): too many redirects")
    }

    /// Fetches one file into the cache and links it into the snapshot. Returns the bytes fetched.
    private func fetchFile(_ file: RepoListing.File, repo: RepoName, commit: String, doneBefore: Int, progressNote: String) throws -> Int {
        let entry = cache.snapshot(repo, commit: commit).appendingPathComponent(file.path)
        if FileManager.default.fileExists(atPath: entry.path) { return 0 } // a link that resolves to a complete blob
        let encoded = file.path.split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }
        let resolveURL = URL(
            string: "\(environment.endpoint.absoluteString)/\(repo.owner)/\(repo.name)/resolve/\(commit)/\(encoded.joined(separator: "/"))")!
        let meta = try metadata(resolveURL, repo: repo, file: file.path)
        guard meta.etag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }), !meta.etag.isEmpty,
            meta.etag.count <= 128
        else {
            throw HubError("\(repo)/\(file.path): the Hub's ETag \(meta.etag) cannot name a cache file")
        }
        let expectedSize = file.size ?? meta.size
        let expectedSHA = file.sha256 ?? (RepoListing.isSHA256(meta.etag) ? meta.etag : nil)
        let blob = cache.blob(repo, etag: meta.etag)
        try FileManager.default.createDirectory(at: blob.deletingLastPathComponent(), withIntermediateDirectories: true)
        let lock = try FileLock(cache.lockFile(repo, etag: meta.etag)) {
            note("  \(file.path): another download of it is under way; waiting for it (\(cache.lockFile(repo, etag: meta.etag).path))")
        }
        var fetched = 0
        if !FileManager.default.fileExists(atPath: blob.path) {
            fetched = try download(
                meta.location, to: blob, expectedSize: expectedSize, sha256: expectedSHA, name: file.path, doneBefore: doneBefore,
                progressNote: progressNote)
        }
        try cache.link(repo, commit: commit, path: file.path, etag: meta.etag)
        withExtendedLifetime(lock) {}
        let size = (try? FileManager.default.attributesOfItem(atPath: blob.path)[.size] as? Int) ?? expectedSize ?? 0
        note(
            "  \(file.path) \(ProgressBar.bytes(Double(size)))"
                + (fetched == 0 ? " (in the cache)" : expectedSHA != nil ? " (SHA-256 verified)" : ""))
        return fetched
    }

    /// What a HEAD of the resolve address says: the ETag naming the blob, the size, and where the
    /// bytes are (the resolve address itself, or the storage address it redirects to).
    private func metadata(_ url: URL, repo: RepoName, file: String) throws -> (etag: String, size: Int?, location: URL) {
        var current = url
        for _ in 0..<10 {
            let r = try withRetries("\(repo)/\(file)") { try http.send("HEAD", current, headers: authHeaders(for: current)) }
            try check(r, repo: repo, what: "\(file) of \(repo)", revision: nil)
            let etag = (r.header("x-linked-etag") ?? r.header("etag")).map(Self.normalizeETag)
            if r.isRedirect, let loc = URL(string: r.header("location")!, relativeTo: current)?.absoluteURL {
                // A redirect within the endpoint's host (a renamed repository) is followed for the
                // metadata; one to another host is the storage: its address is where to GET.
                if sameHost(loc, environment.endpoint) && etag == nil { current = loc; continue }
                guard let etag else { throw HubError("\(current.absoluteString): the Hub's answer has no ETag") }
                return (etag, r.header("x-linked-size").flatMap { Int($0) }, loc)
            }
            guard (200..<300).contains(r.status) else { throw HubError("\(current.absoluteString): the Hub answered \(r.status)") }
            guard let etag else { throw HubError("\(current.absoluteString): the Hub's answer has no ETag (is HF_ENDPOINT a Hub?)") }
            let size = (r.header("x-linked-size") ?? r.header("content-length")).flatMap { Int($0) }
            return (etag, size, current)
        }
        throw HubError("\(url.absoluteString): too many redirects")
    }

    /// Downloads `url` into `blob`, through `blob.incomplete` (resumed when present), verifying the
    /// size and SHA-256 before the rename. Returns the bytes fetched.
    private func download(
        _ url: URL, to blob: URL, expectedSize: Int?, sha256 expected: String?, name: String, doneBefore: Int, progressNote: String
    ) throws -> Int {
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        let fd = open(partial.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HubError("\(partial.path): cannot create (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var have = Int(lseek(fd, 0, SEEK_END))
        if let n = expectedSize, have > n { guard ftruncate(fd, 0) == 0 else { throw HubError("\(partial.path): cannot truncate") }; have = 0 }
        if have > 0 { note("  \(name): resuming at \(ProgressBar.bytes(Double(have))) of an interrupted download") }
        let start = have
        var lastError: Error?
        var delay = retryDelay
        for attempt in 1...max(1, attempts) {
            if let n = expectedSize, have == n { break }
            do {
                try get(url, fd: fd, have: &have, name: name, doneBefore: doneBefore, progressNote: progressNote, size: expectedSize)
                lastError = nil
                break
            } catch let e as Retryable {
                lastError = e.error
                if attempt < attempts {
                    note("  \(name): \(e.error); retrying in \(Int(delay))s from \(ProgressBar.bytes(Double(have)))")
                    Thread.sleep(forTimeInterval: delay)
                    delay *= 2
                }
            }
        }
        if let lastError {
            throw HubError(
                "\(name): \(lastError); the \(ProgressBar.bytes(Double(have))) fetched are kept in \(partial.path) and the next pull resumes there")
        }
        if let n = expectedSize, have != n {
            unlink(partial.path)
            throw HubError("\(name): the server sent \(have) bytes, but the Hub lists \(n); the partial file was deleted; pull again")
        }
        if let expected {
            let got = try SHA256.hex(of: partial)
            guard got == expected else {
                unlink(partial.path)
                throw HubError(
                    "\(name): the downloaded bytes have SHA-256 \(got), but the Hub published \(expected); the file was deleted; pull again, and if it happens again the mirror or the Hub's copy is damaged"
                )
            }
        }
        guard fsync(fd) == 0 else { throw HubError("\(partial.path): fsync failed (\(String(cString: strerror(errno))))") }
        guard rename(partial.path, blob.path) == 0 else { throw HubError("\(blob.path): rename failed (\(String(cString: strerror(errno))))") }
        AtomicFile.syncDirectory(blob.deletingLastPathComponent())
        return have - start
    }

    /// A failure worth another attempt (the connection, a timeout, a 5xx), as opposed to an answer.
    private struct Retryable: Error { let error: Error }

    /// One GET of `url` from byte `have` on, appending to `fd`; follows redirects, dropping the
    /// token on the way to another host. A server that ignores the range and sends the whole
    /// file (200) has it written from the start.
    private func get(_ url: URL, fd: Int32, have: inout Int, name: String, doneBefore: Int, progressNote: String, size: Int?) throws {
        var current = url
        for _ in 0..<10 {
            var headers = authHeaders(for: current)
            if have > 0 { headers["Range"] = "bytes=\(have)-" }
            let asked = have
            var position = have
            var first = true
            let r: HTTPClient.Response
            do {
                r = try http.send("GET", current, headers: headers) { status, chunk in
                    if first {
                        first = false
                        if status == 206, asked > 0 {
                            // Continue where asked (checked against Content-Range after).
                        } else if asked > 0 {
                            guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
                                throw HubError("\(name): cannot restart the partial file")
                            }
                            position = 0
                        }
                    }
                    try chunk.withUnsafeBytes { raw in
                        var p = raw.baseAddress!
                        var left = raw.count
                        while left > 0 {
                            let n = Glibc.write(fd, p, left)
                            if n < 0 {
                                if errno == EINTR { continue }
                                throw HubError("\(name): cannot write to the cache (\(String(cString: strerror(errno))))")
                            }
                            left -= n; p += n
                        }
                    }
                    position += chunk.count
                    self.bar?.update(
                        doneBefore + position, note: progressNote + (size.map { $0 > 0 ? " \(min(100, 100 * position / $0))%" : "" } ?? ""))
                }
            } catch let e as HubError {
                have = position
                throw Retryable(error: e)
            }
            have = position
            if r.isRedirect, let loc = URL(string: r.header("location")!, relativeTo: current)?.absoluteURL {
                current = loc
                continue
            }
            switch r.status {
            case 206:
                if let range = r.header("content-range"), !range.hasPrefix("bytes \(asked)-") {
                    // Not where asked: start over from nothing.
                    _ = ftruncate(fd, 0)
                    _ = lseek(fd, 0, SEEK_SET)
                    have = 0
                    throw Retryable(error: HubError("the server answered the range request from another offset (\(range))"))
                }
                return
            case 200, 416:
                return // 416: nothing left to send; the size check decides
            case 500..<600:
                throw Retryable(error: HubError("\(current.host ?? "the server") answered \(r.status)"))
            default:
                try checkAccess(r, what: name)
                throw HubError("\(current.absoluteString): the server answered \(r.status)")
            }
        }
        throw HubError("\(url.absoluteString): too many redirects")
    }

    /// A note for the user: to `log`, or to standard error above the bar.
    private func note(_ line: String) {
        if let log { return log(line) }
        if let bar { return bar.log(line) }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    // MARK: - Requests

    /// The Authorization header, for the endpoint's own host only.
    private func authHeaders(for url: URL) -> [String: String] {
        guard let token = environment.token, sameHost(url, environment.endpoint) else { return [:] }
        return ["Authorization": "Bearer \(token)"]
    }

    private func sameHost(_ a: URL, _ b: URL) -> Bool {
        a.host?.lowercased() == b.host?.lowercased() && a.scheme?.lowercased() == b.scheme?.lowercased() && (a.port ?? -1) == (b.port ?? -1)
    }

    /// Runs `body` again on connection failures and 5xx answers.
    private func withRetries(_ what: String, _ body: () throws -> HTTPClient.Response) throws -> HTTPClient.Response {
        var delay = retryDelay
        for attempt in 1...max(1, attempts) {
            do {
                let r = try body()
                if (500..<600).contains(r.status) && attempt < attempts {
                    Thread.sleep(forTimeInterval: delay); delay *= 2
                    continue
                }
                return r
            } catch let e as HubError {
                guard attempt < attempts else { throw HubError("\(what): \(e)") }
                note("  \(what): \(e); retrying in \(Int(delay))s")
                Thread.sleep(forTimeInterval: delay); delay *= 2
            }
        }
        throw HubError("\(what): the Hub did not answer")
    }

    /// Turns the Hub's refusals into one line each: gated or private (401/403), missing (404).
    private func check(_ r: HTTPClient.Response, repo: RepoName, what: String, revision: String?) throws {
        if (200..<400).contains(r.status) { return }
        try checkAccess(r, what: what, repo: repo)
        if r.status == 404 {
            let code = r.header("x-error-code")
            if code == "RevisionNotFound", let revision {
                throw HubError("\(repo) has no revision \(revision) (a branch, tag or commit); check --revision")
            }
            if code == "EntryNotFound" || revision == nil { throw HubError("\(what): not found on the Hub (404)") }
            throw HubError(
                "no model \(repo) on the Hub at \(environment.endpoint.absoluteString) (404); check the name, or if it is private set HF_TOKEN")
        }
        if (500..<600).contains(r.status) { throw HubError("\(what): the Hub answered \(r.status); try again later") }
        throw HubError("\(what): the Hub answered \(r.status)")
    }

    private func checkAccess(_ r: HTTPClient.Response, what: String, repo: RepoName? = nil) throws {
        guard r.status == 401 || r.status == 403 else { return }
        let page = repo.map { "\(environment.endpoint.absoluteString)/\($0)" } ?? "the model's page on the Hub"
        if let source = environment.tokenSource {
            throw HubError(
                "\(repo.map(\.description) ?? what) is gated or private and the token from \(source) was refused (\(r.status)): accept the model's licence at \(page) with the account of that token, or use a token with read access"
            )
        }
        throw HubError(
            "\(repo.map(\.description) ?? what) is gated or private (\(r.status)): accept its licence at \(page), create a read token at \(environment.endpoint.absoluteString)/settings/tokens, then set HF_TOKEN=hf_… (or run `hf auth login`)"
        )
    }

    /// The Python client's reading of an ETag: without `W/` and the quotes.
    static func normalizeETag(_ etag: String) -> String {
        var s = Substring(etag)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        return String(s.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
    }

    // MARK: - The plain folder

    /// Copies the snapshot's files (their bytes, not links) into `output`, written whole under a
    /// temporary name and renamed into place.
    private func writePlainFolder(_ snapshot: URL, to output: URL) throws {
        let fm = FileManager.default
        let names = try fm.contentsOfDirectory(atPath: snapshot.path).filter { !$0.hasPrefix(".") }.sorted()
        try AtomicFile.replaceFolder(output) { tmp in
            for name in names {
                let source = snapshot.appendingPathComponent(name).resolvingSymlinksInPath()
                try fm.copyItem(at: source, to: tmp.appendingPathComponent(name))
                let fd = open(tmp.appendingPathComponent(name).path, O_RDONLY | O_CLOEXEC)
                if fd >= 0 { _ = fsync(fd); close(fd) }
            }
        }
    }
}
