import Foundation

/// The Hugging Face Hub settings read from the environment, with the Python client's names and
/// defaults, so that rlhf, transformers and `hf download` share one cache and one token.
public struct HubEnvironment: Sendable {
    /// The Hub's address: `HF_ENDPOINT` (a mirror, or a local Hub in tests), default https://huggingface.co.
    public var endpoint: URL
    /// The shared cache: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    public var cache: URL
    /// The access token: `HF_TOKEN`, else the file the Python client's `hf auth login` writes
    /// (`HF_TOKEN_PATH`, else `HF_HOME/token`, else `~/.cache/huggingface/token`).
    public var token: String?
    /// Where the token came from, for messages ("HF_TOKEN" or the file's path).
    public var tokenSource: String?
    /// `HF_HUB_OFFLINE=1`: no network at all; models come from the cache only.
    public var offline: Bool
    /// Seconds without a byte from the server before a request is given up
    /// (`HF_HUB_DOWNLOAD_TIMEOUT`, default 10, as the Python client).
    public var timeout: TimeInterval

    /// The settings as given (tests build them directly).
    public init(endpoint: URL, cache: URL, token: String? = nil, offline: Bool = false, timeout: TimeInterval = 10) {
        self.endpoint = endpoint; self.cache = cache; self.token = token; self.offline = offline; self.timeout = timeout
        tokenSource = token == nil ? nil : "the given token"
    }

    /// Reads the settings from `environment` (the process's by default).
    public static func current(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> HubEnvironment {
        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else { return nil }
            return v
        }
        let home = value("HOME").map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
        let hfHome =
            value("HF_HOME").map { URL(fileURLWithPath: expandTilde($0, home: home)) }
            ?? value("XDG_CACHE_HOME").map { URL(fileURLWithPath: $0).appendingPathComponent("huggingface") }
            ?? home.appendingPathComponent(".cache/huggingface")
        let cache =
            (value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE")).map { URL(fileURLWithPath: expandTilde($0, home: home)) }
            ?? hfHome.appendingPathComponent("hub")
        let endpointText = value("HF_ENDPOINT") ?? "https://huggingface.co"
        guard let endpoint = URL(string: endpointText.hasSuffix("/") ? String(endpointText.dropLast()) : endpointText),
            let scheme = endpoint.scheme?.lowercased(), scheme == "https" || scheme == "http", endpoint.host != nil
        else {
            throw HubError("HF_ENDPOINT \(endpointText) is not an http(s) address; unset it to use https://huggingface.co")
        }
        var env = HubEnvironment(endpoint: endpoint, cache: cache, offline: isTrue(value("HF_HUB_OFFLINE")))
        if let t = value("HF_TOKEN") {
            env.token = t
            env.tokenSource = "HF_TOKEN"
        } else {
            let file = value("HF_TOKEN_PATH").map { URL(fileURLWithPath: expandTilde($0, home: home)) } ?? hfHome.appendingPathComponent("token")
            if let data = FileManager.default.contents(atPath: file.path), data.count < 4096,
                let t = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty
            {
                env.token = t
                env.tokenSource = file.path
            }
        }
        if let t = value("HF_HUB_DOWNLOAD_TIMEOUT") {
            guard let s = Double(t), s > 0, s <= 86_400 else {
                throw HubError("HF_HUB_DOWNLOAD_TIMEOUT \(t) is not a number of seconds between 0 and 86400")
            }
            env.timeout = s
        }
        return env
    }

    /// The Python client's reading of a boolean variable: 1, ON, YES or TRUE, in any case.
    static func isTrue(_ v: String?) -> Bool { ["1", "on", "yes", "true"].contains(v?.lowercased() ?? "") }

    static func expandTilde(_ path: String, home: URL) -> String {
        if path == "~" { return home.path }
        if path.hasPrefix("~/") { return home.path + path.dropFirst() }
        return path
    }
}
