import XCTest
import Foundation
@testable import TransformerCore

final class KernelTests: XCTestCase {
    func testVectorExpAgainstFoundation() {
        // Relative error over the whole useful range, including the clamps at both ends.
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let lanes = F16((0..<16).map { x + Float($0) * 0.0137 })
            let got = vexp(lanes)
            for i in 0..<16 {
                let want = Foundation.exp(Double(lanes[i]))
                worst = max(worst, abs(Double(got[i]) - want) / want)
            }
            x += 0.21
        }
        XCTAssertLessThan(worst, 5e-7)
        let extremes = vexp(F16([-1000, -90, -87.5, 0, 1, 89, 1000, -.infinity, 0, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertEqual(extremes[0], 0); XCTAssertEqual(extremes[1], 0); XCTAssertEqual(extremes[7], 0)
        XCTAssertEqual(extremes[3], 1)
        XCTAssertTrue(extremes[5].isFinite && extremes[6].isFinite, "large inputs saturate instead of overflowing to inf/NaN")
    }

    func testTanhAndSoftmaxRow() {
        for u: Float in [-30, -3, -0.5, 0, 0.25, 2, 40] {
            XCTAssertEqual(vtanh(F16(repeating: u))[0], tanhf(u), accuracy: 2e-6)
        }
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
