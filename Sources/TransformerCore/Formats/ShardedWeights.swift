import Foundation

/// The weights of a model folder: one `model.safetensors`, or the shards that
/// `model.safetensors.index.json` names (Hugging Face's sharded checkpoints:
/// `{"metadata": {"total_size": N}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors", …}}`).
///
/// An index is data, not instructions: every shard it names must be a plain file name in the
/// same folder (no path, no `..`), each named tensor must be in the shard the index gives it,
/// and no tensor may be in two shards. Each shard is validated as `SafeTensorsFile` validates a
/// single file, so nothing is allocated from a declared size before it is checked against the
/// real files.
public final class WeightFiles {
    /// The index file's name.
    public static let indexFile = "model.safetensors.index.json"
    /// The most shards accepted.
    public static let maxShards = 10_000

    /// Tensor names: the shards' in index order, each in file order.
    public let names: [String]
    /// Every tensor.
    public let entries: [String: SafeTensorsEntry]
    /// Names this set of weights in messages (the single file, or the index).
    public let path: String
    /// The shard file names (one entry, `model.safetensors`, when the folder is not sharded).
    public let shardNames: [String]
    private let fileOf: [String: SafeTensorsFile]

    private init(files: [(String, SafeTensorsFile)], path: String) throws {
        var names: [String] = [], entries: [String: SafeTensorsEntry] = [:], fileOf: [String: SafeTensorsFile] = [:]
        for (shard, f) in files {
            for n in f.names {
                if let other = fileOf[n] {
                    throw FormatError("\(path): tensor \(n) is in both \(other.url.lastPathComponent) and \(shard)")
                }
                names.append(n); entries[n] = f.entries[n]; fileOf[n] = f
            }
        }
        self.names = names; self.entries = entries; self.fileOf = fileOf; self.path = path
        self.shardNames = files.map(\.0)
    }

    /// Whether `folder` holds sharded weights (an index) rather than one `model.safetensors`.
    public static func isSharded(_ folder: URL) -> Bool {
        let fm = FileManager.default
        return !fm.fileExists(atPath: folder.appendingPathComponent(ModelFolder.weightsFile).path)
            && fm.fileExists(atPath: folder.appendingPathComponent(indexFile).path)
    }

    /// Opens the weights of `folder`: `model.safetensors` when present, else the index's shards.
    public static func open(folder: URL) throws -> WeightFiles {
        let single = folder.appendingPathComponent(ModelFolder.weightsFile)
        if FileManager.default.fileExists(atPath: single.path) || !isSharded(folder) {
            return try WeightFiles(files: [(ModelFolder.weightsFile, try SafeTensorsFile(url: single))], path: single.path)
        }
        let index = folder.appendingPathComponent(indexFile)
        let what = index.path
        let root = try JSONText.object(JSONText.readFile(index, limit: 64 << 20), what)
        guard let map = root["weight_map"] as? [String: Any] else { throw FormatError("\(what): no \"weight_map\" object") }
        guard !map.isEmpty else { throw FormatError("\(what): the weight_map is empty") }
        var shardOf: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String else { throw FormatError("\(what): the shard of \(JSONText.quote(name)) is not a string") }
            guard isPlainShardName(shard) else {
                throw FormatError("\(what): shard \(JSONText.quote(shard)) is not a plain .safetensors file name in the folder; refusing to read it")
            }
            shardOf[name] = shard
        }
        let shards = Set(shardOf.values).sorted()
        guard shards.count <= maxShards else { throw FormatError("\(what): \(shards.count) shards is more than the \(maxShards) supported") }
        var files: [(String, SafeTensorsFile)] = []
        for shard in shards {
            let url = folder.appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: url.path) else { throw FormatError("\(what): names shard \(shard), which is missing") }
            files.append((shard, try SafeTensorsFile(url: url)))
        }
        let weights = try WeightFiles(files: files, path: what)
        for (name, shard) in shardOf.sorted(by: { $0.key < $1.key }) where weights.fileOf[name]?.url.lastPathComponent != shard {
            throw FormatError("\(what): tensor \(name) is not in \(shard), the shard the index names for it")
        }
        return weights
    }

    /// A shard name an index may use: one path component ending in `.safetensors`.
    static func isPlainShardName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 255 && !s.contains("/") && !s.contains("\\") && !s.contains("\0")
            && s != "." && s != ".." && !s.hasPrefix(".") && s.hasSuffix(".safetensors")
    }

    /// The one float type of all float tensors (F32 when they mix types, or when there are none).
    public var floatDType: SafeTensorsDType {
        let types = Set(entries.values.map(\.dtype).filter(\.isFloatLoadable))
        return types.count == 1 ? types.first! : .F32
    }

    /// Converts tensor `name` to Float into `dest`, which holds exactly its element count.
    public func read(_ name: String, into dest: UnsafeMutableBufferPointer<Float>) throws {
        guard let f = fileOf[name] else { throw FormatError("\(path): no tensor named \(name)") }
        try f.read(name, into: dest)
    }

    /// Tensor `name` converted to Float.
    public func floats(_ name: String) throws -> [Float] {
        guard let f = fileOf[name] else { throw FormatError("\(path): no tensor named \(name)") }
        return try f.floats(name)
    }

    // MARK: Writing

    /// `tensors` in order, cut into shards of at most `maxBytes` each, as huggingface_hub's
    /// splitter (behind save_pretrained) cuts them: a shard closes when the next tensor would
    /// take it over the limit; a tensor over the limit by itself gets a shard of its own at once,
    /// while the shard being filled stays open. One shard without a limit.
    public static func shards(_ tensors: [SafeTensorsOutput], maxBytes: Int?) -> [[SafeTensorsOutput]] {
        guard let maxBytes else { return [tensors] }
        var out: [[SafeTensorsOutput]] = [], current: [SafeTensorsOutput] = []
        var size = 0
        for t in tensors {
            let bytes = t.data.count * t.dtype.size
            if bytes > maxBytes { out.append([t]); continue }
            if size + bytes > maxBytes { out.append(current); current = []; size = 0 }
            current.append(t); size += bytes
        }
        if !current.isEmpty || out.isEmpty { out.append(current) }
        return out
    }

    /// Writes shards `model-0000i-of-0000n.safetensors` and `model.safetensors.index.json`
    /// (`metadata.total_size` in bytes, `weight_map` sorted by name), each file atomically.
    public static func writeSharded(_ shards: [[SafeTensorsOutput]], into folder: URL) throws {
        var map: [(String, String)] = [], total = 0
        for (i, shard) in shards.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
            try SafeTensorsWriter.write(shard, metadata: ["format": "pt"], to: folder.appendingPathComponent(name))
            for t in shard { map.append((t.name, name)); total += t.data.count * t.dtype.size }
        }
        let entries = map.sorted { $0.0 < $1.0 }.map { "    \(JSONText.quote($0.0)): \(JSONText.quote($0.1))" }
        let json = "{\n  \"metadata\": {\n    \"total_size\": \(total)\n  },\n  \"weight_map\": {\n" + entries.joined(separator: ",\n") + "\n  }\n}\n"
        try AtomicFile.write(Data(json.utf8), to: folder.appendingPathComponent(indexFile))
    }
}
