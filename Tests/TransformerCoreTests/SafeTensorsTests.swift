import Foundation
import XCTest

@testable import TransformerCore

final class SafeTensorsTests: XCTestCase {
    func testWriteReadRoundTripAllFloatTypes() throws {
        let dir = temporaryFolder()
        let url = dir.appendingPathComponent("t.safetensors")
        let a: [Float] = (0..<24).map { Float($0) * 0.37 - 3 }
        let b: [Float] = [1.5, -2.25, 65504, 1e-3]
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try SafeTensorsWriter.write(
                    [
                        SafeTensorsOutput(name: "a", shape: [2, 3, 4], data: pa),
                        SafeTensorsOutput(name: "b16", shape: [4], data: pb, dtype: .F16),
                        SafeTensorsOutput(name: "bb16", shape: [2, 2], data: pb, dtype: .BF16),
                        SafeTensorsOutput(name: "empty", shape: [0, 3], data: UnsafeBufferPointer(start: pb.baseAddress, count: 0)),
                    ], metadata: ["format": "pt", "note": "ünï"], to: url)
            }
        }
        let f = try SafeTensorsFile(url: url)
        XCTAssertEqual(f.metadata, ["format": "pt", "note": "ünï"])
        XCTAssertEqual(f.names, ["a", "b16", "bb16", "empty"])
        XCTAssertEqual(f.entries["a"]?.shape, [2, 3, 4])
        XCTAssertEqual(try f.floats("a"), a)
        // 1e-3 rounds to the binary16 0x1419 (numpy: np.float32(1e-3).astype(np.float16)).
        XCTAssertEqual(try f.floats("b16"), [1.5, -2.25, 65504, 0.0010004043579101562])
        // 65504 rounds up to 65536 in BF16; 1e-3 = 0x3A83126F rounds down to 0x3A83.
        XCTAssertEqual(try f.floats("bb16"), [1.5, -2.25, 65536, 0.00099945068])
        XCTAssertEqual(try f.floats("empty"), [])
        XCTAssertEqual(try Data(contentsOf: url).count % 8, 0)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(leftovers, ["t.safetensors"], "no temporary file is left behind")
    }

    func testReadsF16AndBF16WrittenByPython() throws {
        let d = hfGolden["dtypes"] as! [String: Any]
        let f16 = try SafeTensorsFile(url: fixtureURL("hf/f16.safetensors"))
        XCTAssertEqual(f16.metadata["kind"], "f16")
        XCTAssertEqual(f16.entries["x"]?.dtype, .F16)
        XCTAssertEqual(try f16.floats("x"), (d["f16"] as! [NSNumber]).map(\.floatValue))
        let bf16 = try SafeTensorsFile(url: fixtureURL("hf/bf16.safetensors"))
        XCTAssertEqual(bf16.entries["x"]?.dtype, .BF16)
        XCTAssertEqual(try bf16.floats("x"), (d["bf16"] as! [NSNumber]).map(\.floatValue))
        XCTAssertEqual(try bf16.floats("y"), (d["values"] as! [NSNumber]).prefix(6).map(\.floatValue))
    }

    func testBFloat16RoundingMatchesTorch() throws {
        // Writing BF16 rounds to nearest even, as torch's .to(torch.bfloat16) did for the fixture.
        let d = hfGolden["dtypes"] as! [String: Any]
        let values = (d["values"] as! [NSNumber]).map(\.floatValue)
        let expected = (d["bf16"] as! [NSNumber]).map(\.floatValue)
        for (v, e) in zip(values, expected) {
            XCTAssertEqual(Float(bitPattern: UInt32(SafeTensorsWriter.bfloat16Bits(v)) << 16), e, "\(v)")
        }
    }

    /// `n` zero bytes.
    func zeros(_ n: Int) -> [UInt8] { [UInt8](repeating: 0, count: n) }

    /// A file: 8-byte length, header, data.
    func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: (declaredLength ?? UInt64(header.utf8.count)).littleEndian) { out += $0 }
        return out + Array(header.utf8) + data
    }

    func testMalformedFilesAreRejectedWithTheFileAndTensorNamed() throws {
        let dir = temporaryFolder()
        let ok = #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        let cases: [(String, [UInt8], [String])] = [
            ("empty", [], ["too short"]),
            ("short", [1, 2, 3], ["too short"]),
            ("length-beyond-file", file(header: ok, data: zeros(8), declaredLength: 1000), ["beyond the end"]),
            ("length-absurd", file(header: ok, declaredLength: UInt64.max), ["beyond the end"]),
            ("not-json", file(header: "{\"w\": [", data: []), ["not valid JSON"]),
            ("not-utf8", [8, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D], ["not valid UTF-8"]),
            ("not-object", file(header: "[1,2]   "), ["not a JSON object"]),
            (
                "offsets-outside", file(header: #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0]),
                ["tensor w", "outside"]
            ),
            (
                "offsets-reversed", file(header: #"{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: [0, 0, 0, 0]),
                ["tensor w", "outside"]
            ),
            (
                "overlap",
                file(
                    header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    data: zeros(12)), ["tensor b", "overlap"]
            ),
            ("gap", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: zeros(8)), ["tensor a", "gap"]),
            ("trailing", file(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: zeros(8)), ["belong to no tensor"]),
            (
                "size-mismatch", file(header: #"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: zeros(8)),
                ["tensor w", "needs 12 bytes"]
            ),
            (
                "absurd-shape",
                file(
                    header: #"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#, data: zeros(8)),
                ["tensor w", "more elements than the file holds"]
            ),
            (
                "huge-shape",
                file(header: #"{"w":{"dtype":"F32","shape":[100000000000],"data_offsets":[0,8]}}"#, data: zeros(8)),
                ["tensor w", "more elements"]
            ),
            (
                "negative-dim", file(header: #"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: zeros(8)),
                ["tensor w", "non-negative"]
            ),
            ("fraction-dim", file(header: #"{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: zeros(8)), ["tensor w"]),
            (
                "unknown-dtype", file(header: #"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, data: zeros(8)),
                ["tensor w", "unknown dtype Q4"]
            ),
            ("missing-offsets", file(header: #"{"w":{"dtype":"F32","shape":[2]}}"#, data: zeros(8)), ["tensor w", "data_offsets"]),
            ("bad-metadata", file(header: #"{"__metadata__":{"a":1}}"#), ["__metadata__"]),
            ("entry-not-object", file(header: #"{"w":3}"#), ["tensor w"]),
            (
                "too-many-dims", file(header: #"{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
                ["tensor w", "dimensions"]
            ),
        ]
        for (name, bytes, needles) in cases {
            let url = dir.appendingPathComponent("\(name).safetensors")
            try Data(bytes).write(to: url)
            XCTAssertThrowsError(try SafeTensorsFile(url: url), name) { e in
                XCTAssertTrue(e is FormatError, "\(name): \(e)")
                let m = "\(e)"
                XCTAssertTrue(m.contains(url.path), "\(name): message does not name the file: \(m)")
                for n in needles { XCTAssertTrue(m.contains(n), "\(name): expected '\(n)' in: \(m)") }
            }
        }
        XCTAssertThrowsError(try SafeTensorsFile(url: dir.appendingPathComponent("missing.safetensors"))) { e in
            XCTAssertTrue("\(e)".contains("no such file"), "\(e)")
        }
        // A valid file, for contrast; reading a non-float tensor as floats is refused.
        let url = dir.appendingPathComponent("ints.safetensors")
        try Data(file(header: #"{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: zeros(8))).write(to: url)
        let f = try SafeTensorsFile(url: url)
        XCTAssertThrowsError(try f.floats("i")) { e in XCTAssertTrue("\(e)".contains("tensor i is I64"), "\(e)") }
    }

    func testRandomCorruptionNeverCrashes() throws {
        // Flip bytes of a valid file's header at random: every result either loads consistently or
        // throws a FormatError.
        let dir = temporaryFolder()
        let url = dir.appendingPathComponent("v.safetensors")
        let vals: [Float] = (0..<10).map(Float.init)
        try vals.withUnsafeBufferPointer { p in
            try SafeTensorsWriter.write([SafeTensorsOutput(name: "a", shape: [2, 5], data: p)], to: url)
        }
        let good = [UInt8](try Data(contentsOf: url))
        var rng = SeededRandom(seed: 9)
        let bad = dir.appendingPathComponent("bad.safetensors")
        for _ in 0..<500 {
            var b = good
            for _ in 0..<(1 + rng.int(below: 3)) { b[rng.int(below: min(b.count, 80))] = UInt8(rng.int(below: 256)) }
            if rng.int(below: 4) == 0 { b.removeLast(rng.int(below: 20)) }
            try Data(b).write(to: bad)
            do {
                let f = try SafeTensorsFile(url: bad)
                for n in f.names where f.entries[n]!.dtype.isFloatLoadable { _ = try f.floats(n) }
            } catch is FormatError {
            }
        }
    }
}
