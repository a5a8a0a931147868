import Foundation
import TransformerCore

/// Loads `--model DIR` for the verification commands.
func loadModelFolder(_ path: String?) throws -> PretrainedModel {
    guard let path else { throw UsageError("--model DIR is required") }
    let url = URL(fileURLWithPath: path)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue else {
        throw RuntimeError("\(path): no such folder; --model expects a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer files)")
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
