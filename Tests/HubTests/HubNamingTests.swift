import Foundation
import XCTest

@testable import Hub

/// The rule that tells a Hub name from a local folder, the cache's and token's places, and what
/// a pull takes from a repository's file list.
final class HubNamingTests: XCTestCase {
    func testAHubNameIsOneSlashOfLegalPartsThatNamesNoLocalPath() {
        let none: (String) -> Bool = { _ in false }
        XCTAssertEqual(
            ModelReference.parse("HuggingFaceTB/SmolLM2-135M-Instruct", exists: none), .hub(RepoName("HuggingFaceTB/SmolLM2-135M-Instruct")!))
        XCTAssertEqual(ModelReference.parse("meta-llama/Llama-3.2-1B", exists: none), .hub(RepoName("meta-llama/Llama-3.2-1B")!))
        XCTAssertEqual(ModelReference.parse("Qwen/Qwen2.5-0.5B-Instruct", exists: none), .hub(RepoName("Qwen/Qwen2.5-0.5B-Instruct")!))
        // An existing path is a folder, whatever its shape.
        XCTAssertEqual(ModelReference.parse("models/smol", exists: { $0 == "models/smol" }), .folder("models/smol"))
        // Explicit paths are folders even when missing.
        for p in ["./org/name", "../org/name", "/org/name", "~/org/name", ".", ".."] {
            XCTAssertEqual(ModelReference.parse(p, exists: none), .folder(p), p)
        }
        // Not one slash, or illegal characters: a folder (reported missing as one).
        for p in ["gpt2", "a/b/c", "org/", "/name", "org//name", "org/na me", "org/name.", "-org/name", "org/na--me", "org/na..me", "org/näme"] {
            XCTAssertEqual(ModelReference.parse(p, exists: none), .folder(p), p)
        }
        XCTAssertNil(RepoName(String(repeating: "a", count: 50) + "/" + String(repeating: "b", count: 50)))
        XCTAssertEqual(RepoName("HuggingFaceTB/SmolLM2-135M")?.cacheFolderName, "models--HuggingFaceTB--SmolLM2-135M")
    }

    func testTheCacheAndTheTokenAreWhereThePythonClientPutsThem() throws {
        let home = try temporaryFolder(self)
        var env = try HubEnvironment.current(["HOME": home.path])
        XCTAssertEqual(env.cache.path, home.appendingPathComponent(".cache/huggingface/hub").path)
        XCTAssertEqual(env.endpoint.absoluteString, "https://huggingface.co")
        XCTAssertNil(env.token)
        XCTAssertFalse(env.offline)
        XCTAssertEqual(env.timeout, 10)

        env = try HubEnvironment.current(["HOME": home.path, "HF_HOME": "/data/hf"])
        XCTAssertEqual(env.cache.path, "/data/hf/hub")
        env = try HubEnvironment.current(["HOME": home.path, "HF_HOME": "/data/hf", "HF_HUB_CACHE": "/fast/hub"])
        XCTAssertEqual(env.cache.path, "/fast/hub")
        env = try HubEnvironment.current(["HOME": home.path, "XDG_CACHE_HOME": "/xdg"])
        XCTAssertEqual(env.cache.path, "/xdg/huggingface/hub")

        // The token file `hf auth login` writes, unless HF_TOKEN is set.
        let tokenFile = home.appendingPathComponent(".cache/huggingface/token")
        try FileManager.default.createDirectory(at: tokenFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("hf_from_file\n".utf8).write(to: tokenFile)
        env = try HubEnvironment.current(["HOME": home.path])
        XCTAssertEqual(env.token, "hf_from_file")
        XCTAssertEqual(env.tokenSource, tokenFile.path)
        env = try HubEnvironment.current(["HOME": home.path, "HF_TOKEN": "hf_env"])
        XCTAssertEqual(env.token, "hf_env")
        XCTAssertEqual(env.tokenSource, "HF_TOKEN")

        for v in ["1", "ON", "yes", "True"] { XCTAssertTrue(try HubEnvironment.current(["HOME": home.path, "HF_HUB_OFFLINE": v]).offline, v) }
        for v in ["0", "", "no"] { XCTAssertFalse(try HubEnvironment.current(["HOME": home.path, "HF_HUB_OFFLINE": v]).offline, v) }
        env = try HubEnvironment.current(["HOME": home.path, "HF_ENDPOINT": "http://127.0.0.1:8080/", "HF_HUB_DOWNLOAD_TIMEOUT": "2.5"])
        XCTAssertEqual(env.endpoint.absoluteString, "http://127.0.0.1:8080")
        XCTAssertEqual(env.timeout, 2.5)
        XCTAssertThrowsError(try HubEnvironment.current(["HOME": home.path, "HF_ENDPOINT": "ftp://mirror"]))
        XCTAssertThrowsError(try HubEnvironment.current(["HOME": home.path, "HF_HUB_DOWNLOAD_TIMEOUT": "soon"]))
    }

    func testAPullTakesTheModelFilesAndNeverPickles() throws {
        func file(_ p: String) -> RepoListing.File { RepoListing.File(path: p, size: 1, blobId: nil, sha256: nil) }
        let repo = RepoName("org/model")!
        let commit = String(repeating: "a", count: 40)
        let listing = RepoListing(
            commit: commit,
            files: [
                "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                "model.safetensors", "pytorch_model.bin", "README.md", ".gitattributes", "original/consolidated.00.pth", "onnx/model.onnx",
                "consolidated.safetensors",
            ].map(file))
        XCTAssertEqual(
            try ModelFiles.select(listing, repo: repo).map(\.path),
            [
                "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                "model.safetensors",
            ])
        let pickles = RepoListing(commit: commit, files: ["config.json", "pytorch_model.bin", "tokenizer.json"].map(file))
        XCTAssertThrowsError(try ModelFiles.select(pickles, repo: repo)) {
            XCTAssertEqual(
                String(describing: $0),
                "org/model has no safetensors weights (model.safetensors or model.safetensors.index.json); it has only pickled weights (pytorch_model.bin), which rlhf never loads"
            )
        }
        // The shards an index names, which must be files beside it that the listing holds.
        let sharded = RepoListing(commit: commit, files: ["config.json", "model.safetensors.index.json", "a.safetensors", "b.safetensors"].map(file))
        let index = Data(#"{"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors", "z": "a.safetensors"}}"#.utf8)
        XCTAssertEqual(try ModelFiles.shards(index: index, listing: sharded, repo: repo).map(\.path), ["a.safetensors", "b.safetensors"])
        for bad in ["../a.safetensors", "sub/a.safetensors", "a.bin", "c.safetensors"] {
            let data = Data(#"{"weight_map": {"x": "\#(bad)"}}"#.utf8)
            XCTAssertThrowsError(try ModelFiles.shards(index: data, listing: sharded, repo: repo), bad)
        }
    }

    func testTheListingIsReadAsTheHubWritesIt() throws {
        let json = """
            {"id": "org/m", "sha": "0123456789abcdef0123456789abcdef01234567", "siblings": [
              {"rfilename": "config.json", "size": 12, "blobId": "b1"},
              {"rfilename": "model.safetensors", "size": 99, "blobId": "b2",
               "lfs": {"sha256": "\(String(repeating: "ab", count: 32))", "size": 99, "pointerSize": 134}}]}
            """
        let l = try RepoListing.parse(Data(json.utf8), what: "org/m")
        XCTAssertEqual(l.commit, "0123456789abcdef0123456789abcdef01234567")
        XCTAssertEqual(
            l.files,
            [
                RepoListing.File(path: "config.json", size: 12, blobId: "b1", sha256: nil),
                RepoListing.File(path: "model.safetensors", size: 99, blobId: "b2", sha256: String(repeating: "ab", count: 32)),
            ])
        XCTAssertThrowsError(try RepoListing.parse(Data("<html>".utf8), what: "org/m"))
        XCTAssertThrowsError(try RepoListing.parse(Data(#"{"sha": "main", "siblings": []}"#.utf8), what: "org/m"))
        XCTAssertEqual(HubClient.normalizeETag("W/\"abc\""), "abc")
        XCTAssertEqual(HubClient.normalizeETag("\"abc\""), "abc")
    }
}
