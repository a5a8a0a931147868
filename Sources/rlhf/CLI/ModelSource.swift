import Foundation
import Hub
import RunStore
import TransformerCore

/// The rule for model arguments, said the same way in every command's help.
let modelArgumentRule = """
    A model is a local folder or a Hugging Face Hub name. An argument that names an existing
    path, or starts with /, ./, ../ or ~, is a folder; otherwise ORG/NAME (one slash, letters,
    digits, - _ .) is a Hub model, taken from the shared Hugging Face cache (HF_HUB_CACHE,
    HF_HOME/hub, ~/.cache/huggingface/hub) and pulled into it when missing, unless
    HF_HUB_OFFLINE=1. Write a local folder of that shape as ./ORG/NAME.
    """

/// The folder a model argument names (see `modelArgumentRule`), and the Hub origin for a Hub model.
func locateModel(_ argument: String) throws -> (folder: URL, origin: ModelOrigin?) {
    let (folder, hub) = try ModelLocator.locate(argument)
    return (folder, hub.map { ModelOrigin(repo: $0.repo.description, revision: $0.revision, commit: $0.commit) })
}

/// Loads `--model DIR|ORG/NAME` for the verification commands.
func loadModelFolder(_ path: String?) throws -> PretrainedModel {
    guard let path else { throw UsageError("--model DIR is required (a model folder or a Hub name ORG/NAME)") }
    let url = try locateModel(path).folder
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
        throw RuntimeError(
            "\(path): no such folder; --model expects a Hugging Face model folder (config.json, model.safetensors, tokenizer files) or a Hub name ORG/NAME"
        )
    }
    return try ModelFolder.load(url)
}

/// Reads a UTF-8 text file, refusing invalid UTF-8 with the offset of the first bad byte.
func readUTF8File(_ path: String, limit: Int = 1 << 30) throws -> String {
    let data = try JSONText.readFile(URL(fileURLWithPath: path), limit: limit)
    if let s = String(data: data, encoding: .utf8) { return s }
    let bytes = [UInt8](data)
    var offset = 0
    var it = bytes.makeIterator()
    var decoder = UTF8()
    loop: while true {
        switch decoder.decode(&it) {
        case .scalarValue(let u): offset += UTF8.width(u)
        case .emptyInput: break loop
        case .error: break loop
        }
    }
    throw RuntimeError("\(path): not valid UTF-8 (first bad byte at offset \(offset))")
}

/// Prints a JSON object given as ordered key/value pairs with already-encoded values.
func jsonLine(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
}

/// A Float as JSON (NaN and infinities as null).
func jsonNumber(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
