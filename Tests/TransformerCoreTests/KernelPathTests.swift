import XCTest

@testable import TransformerCore

/// Choosing the kernel path: what the CPU supports, what `RLHF_ISA` may force, the tile shapes.
final class KernelPathTests: XCTestCase {
    func testAvailablePathsFollowTheCPULevel() {
        let available = Kernels.available
        XCTAssertEqual(available.last, .portable, "the portable path runs everywhere")
        XCTAssertEqual(available, KernelPath.allCases.filter(Kernels.supports), "fastest first, in the order of the cases")
        #if arch(x86_64)
        XCTAssertGreaterThanOrEqual(Kernels.x86Level, 1)
        XCTAssertEqual(Kernels.supports(.avx512), Kernels.x86Level >= 4)
        XCTAssertEqual(Kernels.supports(.avx512bf16), Kernels.x86Level >= 4 && Kernels.hasAVX512BF16)
        XCTAssertEqual(Kernels.supports(.avx2), Kernels.x86Level >= 3)
        // The kernel level agrees with the flags the kernel reports for this CPU.
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flagLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        {
            let flags = Set(flagLine.split(separator: " ").map(String.init))
            if Kernels.supports(.avx2) { XCTAssertTrue(flags.isSuperset(of: ["avx2", "fma", "bmi2", "f16c", "movbe"])) }
            if Kernels.supports(.avx512) { XCTAssertTrue(flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"])) }
            if !flags.contains("avx2") { XCTAssertFalse(Kernels.supports(.avx2)) }
            if !flags.contains("avx512f") { XCTAssertFalse(Kernels.supports(.avx512)) }
            // CPUID's AVX512_BF16 bit is what Linux reports as avx512_bf16.
            XCTAssertEqual(Kernels.supports(.avx512bf16), Kernels.supports(.avx512) && flags.contains("avx512_bf16"))
        }
        #else
        XCTAssertEqual(available, [.portable])
        #endif
    }

    func testRLHFISAForcesOnlyASupportedPath() throws {
        XCTAssertNil(try Kernels.requestedPath([:]))
        XCTAssertNil(try Kernels.requestedPath(["RLHF_ISA": ""]))
        for path in KernelPath.allCases {
            for spelling in [path.rawValue, path.rawValue.uppercased()] {
                if Kernels.supports(path) {
                    XCTAssertEqual(try Kernels.requestedPath(["RLHF_ISA": spelling]), path)
                } else {
                    XCTAssertThrowsError(try Kernels.requestedPath(["RLHF_ISA": spelling])) { error in
                        #if arch(x86_64)
                        XCTAssertTrue("\(error)".contains("this CPU lacks"), "\(error)")
                        #else
                        XCTAssertTrue("\(error)".contains("kernels are for x86-64 CPUs"), "\(error)")
                        #endif
                    }
                }
            }
        }
        XCTAssertThrowsError(try Kernels.requestedPath(["RLHF_ISA": "sse9"])) { error in
            XCTAssertTrue("\(error)".contains("avx512, avx2 or portable"), "\(error)")
        }
    }

    func testRefusalNamesWhatIsMissing() {
        // An x86-64 CPU without AVX-512: the instructions it lacks, and what it can run.
        let x86 = Kernels.refusal("avx512", .avx512, onX86: true, available: [.avx2, .portable])
        XCTAssertEqual(
            x86, "RLHF_ISA=avx512: this CPU lacks \(KernelPath.avx512.requirement); this machine supports avx2, portable (the default would be avx2)")
        // Another architecture: the path is x86-only, whatever this CPU has.
        for path in [KernelPath.avx512, .avx2] {
            let other = Kernels.refusal(path.rawValue, path, onX86: false, available: [.portable])
            XCTAssertTrue(other.hasPrefix("RLHF_ISA=\(path.rawValue): the \(path.rawValue) kernels are for x86-64 CPUs, and this is "), other)
            XCTAssertTrue(other.hasSuffix("this machine supports portable (the default would be portable)"), other)
            XCTAssertFalse(other.contains("lacks"), other)
        }
    }

    func testTileShapesFitEachRegisterFile() {
        for path in Kernels.available {
            let t = Kernels.table(path)
            // avx512bf16 is the AVX-512 table with the hardware bfloat16 tile.
            XCTAssertEqual(t.name, path == .avx512bf16 ? "avx512" : path.rawValue)
            XCTAssertEqual(t.gemmNR, 2 * t.lanes)
            switch path {
            case .avx512, .avx512bf16:
                XCTAssertEqual([t.lanes, t.gemmMR, t.gemmNR, t.decodeNR], [16, 12, 32, 96]) // 24 of 32 zmm
            case .avx2:
                XCTAssertEqual([t.lanes, t.gemmMR, t.gemmNR, t.decodeNR], [8, 6, 16, 24]) // 12 of 16 ymm
            case .portable:
                #if arch(arm64)
                XCTAssertEqual([t.lanes, t.gemmMR, t.gemmNR, t.decodeNR], [4, 12, 8, 24]) // 24 of 32 q
                #else
                XCTAssertEqual([t.lanes, t.gemmMR, t.gemmNR, t.decodeNR], [4, 6, 8, 8]) // 12 of 16 xmm
                #endif
            }
        }
    }

    func testUsingRestoresTheActivePath() {
        let before = Kernels.activePath
        for path in Kernels.available {
            Kernels.using(path) { XCTAssertEqual(Kernels.activePath, path) }
            XCTAssertEqual(Kernels.activePath, before)
        }
    }
}
