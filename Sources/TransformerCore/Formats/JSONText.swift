import Foundation
import Jinja

/// Small helpers for writing JSON by hand (where key order matters, such as a vocabulary written
/// in id order) and for reading JSON objects with clear errors.
public enum JSONText {
    /// `s` as a JSON string literal: quotes, backslashes and control characters escaped, other
    /// characters written as UTF-8.
    public static func quote(_ s: String) -> String { jsonQuote(s) }

    /// Parses `data` as a JSON object; `what` names the source in errors.
    public static func object(_ data: Data, _ what: String) throws -> [String: Any] {
        guard String(data: data, encoding: .utf8) != nil else { throw FormatError("\(what): not valid UTF-8") }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw FormatError("\(what): invalid JSON (\(error.localizedDescription))")
        }
        guard let obj = parsed as? [String: Any] else { throw FormatError("\(what): expected a JSON object at the top level") }
        return obj
    }

    /// Reads a file of at most `limit` bytes, with an error naming it otherwise.
    public static func readFile(_ url: URL, limit: Int = 1 << 30) throws -> Data {
        let attrs: [FileAttributeKey: Any]
        do { attrs = try FileManager.default.attributesOfItem(atPath: url.path) } catch {
            throw FormatError("\(url.path): cannot read (\(FileManager.default.fileExists(atPath: url.path) ? "permission denied" : "no such file"))")
        }
        if let size = attrs[.size] as? Int, size > limit {
            throw FormatError("\(url.path): \(size) bytes is larger than the \(limit)-byte limit for this kind of file")
        }
        // Foundation's Data(contentsOf:) leaks a 4 KiB buffer on an empty file (found by fuzzing).
        if attrs[.type] as? FileAttributeType == .typeRegular, attrs[.size] as? Int == 0 { return Data() }
        do { return try Data(contentsOf: url) } catch { throw FormatError("\(url.path): cannot read (\(error.localizedDescription))") }
    }

    /// A JSON number as an Int, when it is integral.
    public static func int(_ v: Any?) -> Int? {
        if let n = v as? NSNumber, !isBool(n) {
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9e15 else { return nil }
            return Int(d)
        }
        return nil
    }

    /// A JSON number as a Double.
    public static func double(_ v: Any?) -> Double? {
        if let n = v as? NSNumber, !isBool(n) { return n.doubleValue }
        return nil
    }

    /// A JSON boolean (not a number that happens to be 0 or 1).
    public static func bool(_ v: Any?) -> Bool? {
        if let n = v as? NSNumber, isBool(n) { return n.boolValue }
        return nil
    }

    // JSONSerialization gives booleans as NSNumber of C type `c`; numbers are never `c`.
    private static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }
}
