import Foundation
import XCTest

@testable import RunStore
@testable import TransformerCore

/// `rlhf init --base BASE --adapter DIR`: a PEFT LoRA adapter made by the peft library, merged
/// into the base, gives the run a base whose logits are PeftModel's.
final class AdapterCommandTests: ScratchFolderTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerCoreTests/Fixtures")

    func testInitMergesAPeftAdapter() throws {
        let ref =
            try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("peft/peft_reference.json")))
            as! [String: Any]
        for (name, base) in [("llama-lora", "hf/arch/llama-tiny"), ("gpt2-lora", "hf/tiny-gpt2")] {
            let run = dir.appendingPathComponent(name).path
            let out = try rlhf([
                "init", "--run", run, "--base", Self.fixtures.appendingPathComponent(base).path,
                "--adapter", Self.fixtures.appendingPathComponent("peft/\(name)").path,
            ])
            XCTAssertTrue(out.stdout.contains("merged in: LoRA r="), out.stdout)
            let model = try ModelFolder.load(URL(fileURLWithPath: run).appendingPathComponent("checkpoints/base"))
            let r = ref[name] as! [String: Any]
            let tokens = (r["tokens"] as! [[Int]]).map { $0.map(Int32.init) }
            let expected = (r["logits"] as! [[[Double]]]).flatMap { $0.flatMap { $0.map(Float.init) } }
            let batch = TokenBatch(leftPadding: tokens, pad: 0)
            let acts = Activations(config: model.model.config, batch: batch.batch, length: batch.length)
            model.model.forward(batch, acts)
            var worst: Float = 0
            for i in 0..<expected.count { worst = max(worst, abs(acts.logits.pointer[i] - expected[i])) }
            XCTAssertLessThanOrEqual(worst, 1e-4, "\(name): the run's base computes what PeftModel computes")
            let store = try RunStore(folder: URL(fileURLWithPath: run))
            XCTAssertTrue(try store.latestModel(role: .base)?.note?.contains("adapter") == true)
        }
        // An adapter of another model, or no adapter at all: refused, and no run is left behind.
        let bad = try rlhf(
            [
                "init", "--run", path("bad"), "--base", Self.fixtures.appendingPathComponent("hf/arch/llama-tiny").path,
                "--adapter", Self.fixtures.appendingPathComponent("peft/gpt2-lora").path,
            ], expect: 1)
        XCTAssertTrue(bad.stderr.contains("not a projection of a llama block"), bad.stderr)
        try rlhf(["init", "--run", path("bad"), "--base", "random:S", "--adapter", path("nowhere")], expect: 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad")))
    }

    func path(_ s: String) -> String { dir.appendingPathComponent(s).path }
}
