import XCTest

@testable import TransformerCore

/// binary16 conversions by hand (safetensors F16 in and out), against values worked out from
/// the format's definition and, where Swift has it, against `Float16` (the F16C instructions on
/// x86-64, FCVT on arm64).
final class HalfFloatTests: XCTestCase {
    func testValuesFromTheDefinition() {
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3C00), (-2, 0xC000), (0.5, 0x3800),
            (65504, 0x7BFF), // the largest finite binary16
            (65519.99, 0x7BFF), // below the midpoint to 65536: stays finite
            (65520, 0x7C00), // the midpoint, tie to even: infinity
            (.infinity, 0x7C00), (-.infinity, 0xFC00),
            (0x1p-14, 0x0400), // the smallest normal
            (0x1p-24, 0x0001), // the smallest subnormal
            (0x1p-25, 0x0000), // half of it: tie to even, zero
            (0x1.8p-25, 0x0001), // above the tie: up
            (0x1.8p-24, 0x0002), // 1.5 subnormal steps: tie to even, 2
            (0x1.ff8p-15, 0x03FF), // the largest subnormal
            (0x1.ffap-15, 0x03FF), // below the midpoint to the smallest normal
            (0x1.ffcp-15, 0x0400), // the midpoint: tie to even, the smallest normal
            (1 + 0x1p-11, 0x3C00), // tie between 1 and 1 + 2⁻¹⁰: even, 1
            (1 + 0x1.8p-10, 0x3C02), // tie between 1 + 2⁻¹⁰ and 1 + 2⁻⁹: even
            (0x1p-30, 0x0000), (-0x1p-30, 0x8000),
        ]
        for (x, bits) in cases {
            XCTAssertEqual(HalfFloat.bits(from: x), bits, "\(x)")
        }
        for bits: UInt16 in [0x0000, 0x3C00, 0xC000, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x8001] {
            let x = HalfFloat.float(fromBits: bits)
            XCTAssertEqual(HalfFloat.bits(from: x), bits, "round trip of \(bits)")
        }
        XCTAssertEqual(HalfFloat.float(fromBits: 0x0001), 0x1p-24)
        XCTAssertEqual(HalfFloat.float(fromBits: 0x7BFF), 65504)
        XCTAssertEqual(HalfFloat.float(fromBits: 0xFC00), -.infinity)
        XCTAssertTrue(HalfFloat.float(fromBits: 0x7C01).isNaN)
        XCTAssertTrue(HalfFloat.float(fromBits: 0xFE00).isNaN)
        XCTAssertEqual(HalfFloat.bits(from: .nan) & 0x7E00, 0x7E00, "a quiet NaN")
    }

    #if !(os(macOS) && arch(x86_64))
    /// Every one of the 65,536 bit patterns widens as `Float16` widens it.
    func testEveryHalfWidensAsFloat16Does() {
        for b in 0...UInt16.max {
            let mine = HalfFloat.float(fromBits: b), reference = Float(Float16(bitPattern: b))
            if reference.isNaN {
                XCTAssertTrue(mine.isNaN, "\(b)")
            } else {
                XCTAssertEqual(mine.bitPattern, reference.bitPattern, "\(b)")
            }
        }
    }

    /// Narrowing rounds as `Float16(_:)` does: at every binary16 value, at every midpoint between
    /// neighbours and a float step either side of it, and at a million random floats spread over
    /// all exponents.
    func testNarrowingRoundsAsFloat16Does() {
        func check(_ x: Float) {
            let mine = HalfFloat.bits(from: x), reference = Float16(x)
            if reference.isNaN {
                XCTAssertTrue(HalfFloat.float(fromBits: mine).isNaN, "\(x)")
            } else {
                XCTAssertEqual(mine, reference.bitPattern, "\(x) (\(x.bitPattern))")
            }
        }
        for b in 0...UInt16.max {
            let x = Float(Float16(bitPattern: b))
            guard x.isFinite else { continue }
            let next = Float(Float16(bitPattern: b).nextUp)
            let mid = x / 2 + next / 2 // exact: both are binary16 values
            for y in [x, x.nextUp, x.nextDown, mid, mid.nextUp, mid.nextDown] { check(y) }
        }
        var rng = SeededRandom(seed: 16)
        for _ in 0..<1_000_000 {
            check(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        }
    }
    #endif
}
