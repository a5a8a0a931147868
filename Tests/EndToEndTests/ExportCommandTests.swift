import Foundation
import TransformerCore
import XCTest

/// `rlhf export` writes the float type the base model was published in: a BF16 folder comes
/// back out as BF16 (bit for bit, for the untrained base), an F32 one as F32, unless --dtype says
/// otherwise; and large weights are sharded.
final class ExportCommandTests: ScratchFolderTestCase {
    static let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures/hf/tiny-gpt2")

    /// The tiny Hugging Face GPT-2 with its weights converted to `dtype` (names and order kept).
    func publishedCopy(_ dtype: SafeTensorsDType) throws -> URL {
        let out = dir.appendingPathComponent("published-\(dtype.rawValue)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: Self.hf.appendingPathComponent(f), to: out.appendingPathComponent(f))
        }
        let src = try SafeTensorsFile(url: Self.hf.appendingPathComponent("model.safetensors"))
        // Buffers that stay valid until the file is written.
        let buffers = try src.names.map { n -> UnsafeMutableBufferPointer<Float> in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: src.entries[n]!.count)
            try src.read(n, into: b)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let outs = zip(src.names, buffers).map { n, b in
            SafeTensorsOutput(name: n, shape: src.entries[n]!.shape, data: UnsafeBufferPointer(b), dtype: dtype)
        }
        try SafeTensorsWriter.write(outs, to: out.appendingPathComponent("model.safetensors"))
        return out
    }

    func testBF16InBF16OutAndDTypeOverride() throws {
        let published = try publishedCopy(.BF16)
        let run = dir.appendingPathComponent("run").path
        try rlhf(["init", "--run", run, "--base", published.path])
        let out = dir.appendingPathComponent("out")
        XCTAssertTrue(try rlhf(["export", "--run", run, "--model", "base", "-o", out.path]).stdout.contains("as BF16"))
        let original = try SafeTensorsFile(url: published.appendingPathComponent("model.safetensors"))
        let exported = try SafeTensorsFile(url: out.appendingPathComponent("model.safetensors"))
        XCTAssertEqual(Set(exported.entries.values.map(\.dtype)), [.BF16])
        for name in original.names {
            let mine = exported.entries[name] != nil ? name : (name.hasPrefix("transformer.") ? name : "transformer." + name)
            XCTAssertEqual(Array(try exported.rawBytes(mine)), Array(try original.rawBytes(name)), "\(name) comes back bit for bit")
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["torch_dtype"] as? String, "bfloat16")

        // The policy exports as the base was published; --dtype overrides.
        let policyOut = dir.appendingPathComponent("policy")
        try rlhf(["export", "--run", run, "-o", policyOut.path])
        XCTAssertEqual(Set(try SafeTensorsFile(url: policyOut.appendingPathComponent("model.safetensors")).entries.values.map(\.dtype)), [.BF16])
        try rlhf(["export", "--run", run, "--dtype", "f32", "-o", policyOut.path])
        XCTAssertEqual(Set(try SafeTensorsFile(url: policyOut.appendingPathComponent("model.safetensors")).entries.values.map(\.dtype)), [.F32])
        try rlhf(["export", "--run", run, "--dtype", "fp8", "-o", policyOut.path], expect: 2)

        // An F32 base exports as F32, and --max-shard-size shards it.
        let run32 = dir.appendingPathComponent("run32").path
        try rlhf(["init", "--run", run32, "--base", Self.hf.path])
        let sharded = dir.appendingPathComponent("sharded")
        XCTAssertTrue(try rlhf(["export", "--run", run32, "--max-shard-size", "20KB", "-o", sharded.path]).stdout.contains("as F32 in 8 shards"))
        let weights = try WeightFiles.open(folder: sharded)
        XCTAssertEqual(weights.floatDType, .F32)
        try rlhf(["export", "--run", run32, "--max-shard-size", "lots", "-o", sharded.path], expect: 2)
    }
}
