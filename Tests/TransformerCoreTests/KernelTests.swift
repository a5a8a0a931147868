import Foundation
import XCTest

@testable import TransformerCore

final class KernelTests: EveryPathTestCase {
    /// exp of 16 floats through the active path's vector exp.
    func vexp(_ x: [Float]) -> [Float] {
        var v = x
        v.withUnsafeMutableBufferPointer { Kernels.active.exp16($0.baseAddress!) }
        return v
    }

    func testVectorExpAgainstFoundation() {
        forEachPath {
            // Relative error over the whole useful range, including the clamps at both ends.
            var worst: Double = 0
            var x: Float = -87
            while x < 88 {
                let lanes = (0..<16).map { x + Float($0) * 0.0137 }
                let got = vexp(lanes)
                for i in 0..<16 {
                    let want = Foundation.exp(Double(lanes[i]))
                    worst = max(worst, abs(Double(got[i]) - want) / want)
                }
                x += 0.21
            }
            XCTAssertLessThan(worst, 5e-7)
            let extremes = vexp([-1000, -90, -87.5, 0, 1, 89, 1000, -.infinity, 0, 0, 0, 0, 0, 0, 0, 0])
            XCTAssertEqual(extremes[0], 0); XCTAssertEqual(extremes[1], 0); XCTAssertEqual(extremes[7], 0)
            XCTAssertEqual(extremes[3], 1)
            XCTAssertTrue(extremes[5].isFinite && extremes[6].isFinite, "large inputs saturate instead of overflowing to inf/NaN")
            XCTAssertTrue(vexp([Float](repeating: .nan, count: 16))[0].isNaN, "a NaN is passed on, not clamped into a finite value")
        }
    }

    func testHugePageBuffersAreZeroedAlignedAndUsable() {
        for count in [0, 5, (2 << 20) / 4 - 1, 3 << 20] {
            let b = FloatBuffer(count: count, hugePages: true)
            XCTAssertEqual(b.count, count)
            if count * 4 >= 2 << 20 {
                XCTAssertEqual(Int(bitPattern: b.pointer) % (2 << 20), 0, "a buffer of a huge page or more starts on one")
            } else {
                XCTAssertEqual(Int(bitPattern: b.pointer) % 64, 0)
            }
            XCTAssertTrue(UnsafeBufferPointer(start: b.pointer, count: count).allSatisfy { $0 == 0 })
            if count > 0 { b[count - 1] = 7; XCTAssertEqual(b.array.last, 7) }
        }
    }

    func testVectorHelpersAgainstScalarLoops() {
        forEachPath {
            // Lengths around every lane count (4, 8, 16) and the two-vector unroll of dot.
            var rng = SeededRandom(seed: 12)
            let k = Kernels.active
            for n in [1, 3, 4, 5, 8, 15, 16, 17, 31, 32, 33, 47, 100] {
                let x = (0..<n).map { _ in rng.uniformFloat() * 4 - 2 }, y = (0..<n).map { _ in rng.uniformFloat() * 4 - 2 }
                let dotRef = zip(x, y).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                XCTAssertEqual(Double(k.dot(x, y, n)), dotRef, accuracy: 1e-5, "dot n \(n)")
                XCTAssertEqual(k.maxElement(x, n), x.max()!, "max n \(n)")
                var e = [Float](repeating: 0, count: n)
                let sum = k.expShiftSum(x, 0.5, &e, n)
                for i in 0..<n { XCTAssertEqual(e[i], expf(x[i] - 0.5), accuracy: 1e-6 * max(1, e[i])) }
                XCTAssertEqual(Double(sum), x.reduce(0.0) { $0 + Foundation.exp(Double($1) - 0.5) }, accuracy: 1e-5)
                var z = y
                k.axpy(0.75, x, &z, n)
                for i in 0..<n { XCTAssertEqual(z[i], y[i] + 0.75 * x[i], accuracy: 1e-6) }
                XCTAssertEqual(k.sumOfSquares(x, n), x.reduce(0.0) { $0 + Double($1) * Double($1) }, accuracy: 1e-9)
            }
        }
    }

    func testTanhAndSoftmaxRow() {
        forEachPath {
            var us: [Float] = [-30, -3, -0.5, 0, 0.25, 2, 40, -1e-3, 1e-3, 7, -7, 0.9, -0.9, 15, -15, 3.5]
            let inputs = us
            us.withUnsafeMutableBufferPointer { Kernels.active.tanh16($0.baseAddress!) }
            for (u, got) in zip(inputs, us) { XCTAssertEqual(got, tanhf(u), accuracy: 2e-6, "tanh \(u)") }
            // Masked softmax: disallowed keys get probability 0; the rest sums to 1.
            var row: [Float] = [0.5, 2, -1, 3, 9, 9]
            let mask: [UInt8] = [1, 0, 1, 1, 1, 1]
            row.withUnsafeMutableBufferPointer { r in
                mask.withUnsafeBufferPointer { m in maskedSoftmaxRow(r.baseAddress!, m.baseAddress!, 3, 6) }
            }
            XCTAssertEqual(row[1], 0)
            XCTAssertEqual(row[4], 0); XCTAssertEqual(row[5], 0)
            let z = exp(0.5) + exp(-1) + exp(3)
            XCTAssertEqual(row[3], Float(exp(3) / z), accuracy: 1e-6)
            XCTAssertEqual(row[0] + row[2] + row[3], 1, accuracy: 1e-6)
        }
    }
}

/// SHA-256 against FIPS 180-4 test vectors and `sha256sum`-style chunking.
final class SHA256Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testChunkedEqualsWhole() {
        let data = Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })
        var s = SHA256()
        var i = 0
        for n in [1, 63, 64, 65, 200, 607] { s.update(data[i..<(i + n)]); i += n }
        XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(), SHA256.hex(data))
    }
}

final class TerminalSafeTests: XCTestCase {
    func testEscapesControlSequencesAndInvalidUTF8() {
        XCTAssertEqual(TerminalSafe.escape("a\u{1B}[31mred\u{1B}]0;title\u{07}"), "a\\e[31mred\\e]0;title\\x07")
        XCTAssertEqual(TerminalSafe.escape("x\ry\u{8}z\u{7F}"), "x\\ry\\x08z\\x7f")
        XCTAssertEqual(TerminalSafe.escape("line\nnext\ttab"), "line\nnext\ttab")
        XCTAssertEqual(TerminalSafe.escape("line\nnext", keepNewlines: false), "line\\nnext")
        XCTAssertEqual(TerminalSafe.escape("back\\slash"), "back\\\\slash")
        XCTAssertEqual(TerminalSafe.escape("\u{9B}2J \u{202E}evil"), "\\u{9B}2J \\u{202E}evil")
        XCTAssertEqual(TerminalSafe.escape("日本 😀 é"), "日本 😀 é")
        XCTAssertEqual(TerminalSafe.escape(bytes: [0x61, 0xFF, 0xC3, 0x28, 0xE6, 0x97]), "a\\xff\\xc3(\\xe6\\x97")
        XCTAssertEqual(TerminalSafe.escape(bytes: [0xC0, 0x80, 0xED, 0xA0, 0x80]), "\\xc0\\x80\\xed\\xa0\\x80", "overlong and surrogate forms")
        // Nothing below 0x20 except newline and tab ever survives.
        let all = TerminalSafe.escape(bytes: (0..<256).map(UInt8.init))
        XCTAssertFalse(all.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) })
    }
}
