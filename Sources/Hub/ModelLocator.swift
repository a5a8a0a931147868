import Foundation

/// Finds the folder a model argument (`--model`, `--base`) names, by ``ModelReference``'s rule:
/// a path is a folder on this machine; a Hub id `ORG/NAME` is looked up in the shared cache and
/// pulled into it when missing (never with `HF_HUB_OFFLINE=1`).
public enum ModelLocator {
    /// The folder, and for a Hub model where it came from (`hub`). `log` receives one-line notes.
    public static func locate(
        _ argument: String, environment: @autoclosure () throws -> HubEnvironment = try HubEnvironment.current(),
        log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    ) throws -> (folder: URL, hub: PulledModel?) {
        switch ModelReference.parse(argument) {
        case .folder(let path):
            let home = FileManager.default.homeDirectoryForCurrentUser
            return (URL(fileURLWithPath: HubEnvironment.expandTilde(path, home: home)), nil)
        case .hub(let repo):
            let env = try environment()
            let client = HubClient(environment: env)
            let cache = HubCache(root: env.cache)
            if let (folder, commit) = cache.model(repo, revision: "main") {
                log("\(repo): commit \(commit) from the Hugging Face cache (\(cache.root.path))")
                return (folder, PulledModel(folder: folder, repo: repo, revision: "main", commit: commit, bytesFetched: 0))
            }
            if env.offline {
                throw HubError(
                    "\(argument) is not in the Hugging Face cache (\(cache.root.path)) and HF_HUB_OFFLINE is set; unset it to pull the model, or give a local folder as ./\(argument)"
                )
            }
            log(
                "\(repo) is not in the Hugging Face cache; pulling it from \(env.endpoint.absoluteString) (a local folder of that name would be written ./\(argument))"
            )
            do {
                let pulled = try client.pull(repo)
                return (pulled.folder, pulled)
            } catch let e as HubError where e.description.hasPrefix("no model ") {
                throw HubError("\(e.description); nor is there a local folder \(argument)")
            }
        }
    }
}
