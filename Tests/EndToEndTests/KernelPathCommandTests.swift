import Foundation
import XCTest

/// The kernel path as a user meets it: `RLHF_ISA`, `rlhf bench`'s first line and JSON, and a
/// check of the built binary that no code outside the per-instruction-set kernel targets uses an
/// instruction beyond x86-64's baseline.
final class KernelPathCommandTests: ScratchFolderTestCase {
    /// The paths this machine can run, as `Kernels.available` would say, read from /proc/cpuinfo
    /// (nil on an x86-64 system without it, where only the portable path is sure).
    var supportedPaths: [String]? {
        #if os(Linux) && arch(x86_64)
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let flags = Set((info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? "").split(separator: " ").map(String.init))
        var paths: [String] = []
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma"]) {
            if flags.contains("avx512_bf16") { paths.append("avx512bf16") }
            paths.append("avx512")
        }
        if flags.isSuperset(of: ["avx2", "fma", "bmi2", "f16c", "movbe"]) { paths.append("avx2") }
        return paths + ["portable"]
        #elseif arch(x86_64)
        return nil
        #else
        return ["portable"]
        #endif
    }

    func testBenchNamesThePathOnItsFirstLineAndInEveryJSONLine() throws {
        for path in supportedPaths ?? ["portable"] {
            let text = try rlhf(["bench", "--only", "matmul", "--shapes", "16x16x16"], env: ["RLHF_ISA": path])
            let textLines = text.stdout.split(separator: "\n")
            XCTAssertTrue(textLines.first?.hasPrefix("rlhf bench (kernels \(path),") == true, text.stdout)
            // The second line names the CPU, the same name every JSON line carries.
            let cpuLine = textLines.count > 1 ? String(textLines[1]) : ""
            XCTAssertTrue(cpuLine.hasPrefix("cpu "), text.stdout)
            let cpu = cpuLine.dropFirst(3).trimmingCharacters(in: .whitespaces)
            XCTAssertFalse(cpu.isEmpty, text.stdout)
            let json = try rlhf(["bench", "--only", "matmul", "--shapes", "16x16x16,7x9x5", "--json"], env: ["RLHF_ISA": path])
            let lines = json.stdout.split(separator: "\n")
            XCTAssertEqual(lines.count, 3)
            for line in lines {
                let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                XCTAssertEqual(obj?["isa"] as? String, path, String(line))
                XCTAssertEqual(obj?["cpu"] as? String, cpu, String(line))
            }
        }
        // The layout flags are carried into the JSON line and the text.
        let layouts = try rlhf(["bench", "--only", "matmul", "--shapes", "16x16x16", "--a-transposed", "--json"])
        let row = layouts.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .first { $0["what"] as? String == "matmul" }
        XCTAssertEqual(row?["a_transposed"] as? Bool, true, layouts.stdout)
        XCTAssertEqual(row?["b_transposed"] as? Bool, false, layouts.stdout)
        XCTAssertTrue(try rlhf(["bench", "--only", "matmul", "--shapes", "16x16x16", "--a-transposed"]).stdout.contains("16×16×16 Aᵀ"))
        // Without RLHF_ISA the best path is used.
        if let best = supportedPaths?.first {
            let r = try rlhf(["bench", "--only", "matmul", "--shapes", "4x4x4"], env: ["RLHF_ISA": ""])
            XCTAssertTrue(r.stdout.hasPrefix("rlhf bench (kernels \(best),"), r.stdout)
        }
    }

    func testAnUnknownOrUnsupportedPathIsAUsageError() throws {
        let r = try rlhf(["status"], env: ["RLHF_ISA": "avx1024"], expect: 2)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("RLHF_ISA=avx1024") && r.stderr.contains("avx512, avx2 or portable"), r.stderr)
        for path in ["avx512", "avx2"] where !(supportedPaths ?? ["avx512", "avx2"]).contains(path) {
            let r = try rlhf(["bench", "--only", "matmul", "--shapes", "4x4x4"], env: ["RLHF_ISA": path], expect: 2)
            #if arch(x86_64)
            XCTAssertTrue(r.stderr.contains("this CPU lacks"), r.stderr)
            #else
            XCTAssertTrue(r.stderr.contains("kernels are for x86-64 CPUs"), r.stderr)
            #endif
        }
    }

    /// Every function in the binary that holds a VEX or EVEX instruction (AVX, AVX2, FMA,
    /// AVX-512) or a BMI/LZCNT/MOVBE one must belong to the AVX2 or AVX-512 kernel target, whose
    /// specialisations carry its name. Anything else would run on a CPU without those
    /// instructions: a shared generic specialisation that the linker took from a kernel target,
    /// or CPU flags on a target that must have none. And the kernels' entry points call nothing
    /// out of line but the C library's scalar maths.
    func testNoCodeOutsideTheKernelTargetsNeedsMoreThanTheBaseline() throws {
        #if os(Linux) && arch(x86_64)
        // binutils comes with every Linux Swift toolchain's linker
        let objdump = ["/usr/bin/objdump", "/usr/local/bin/objdump"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let objdump else { return XCTFail("objdump (binutils) is not installed") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: objdump)
        p.arguments = ["-d", "--no-show-raw-insn", rlhfBinary.path]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let beyondBaseline: Set<Substring> = [
            "andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "lzcnt", "movbe", "mulx", "pdep", "pext", "rorx", "sarx", "shlx", "shrx",
        ]
        var function: Substring = ""
        var kernelFunctions = 0
        var offenders: [String: String] = [:]
        var functionsSeen = 0
        // The kernels' entry points, as each kernel target specialises them, may call the C
        // library's scalar maths (leftover elements) and nothing else: an ISA hook or a SIMD
        // operation left out of line costs a call per vector (the AVX-512 clamp once did).
        // `sqrtf` is not among them: a square root calls it only under errno semantics, and
        // then a vector square root is one scalar root and branch per lane (AdamW's once was;
        // the kernel targets build with -fno-math-errno, see Package.swift).
        let entryPointMarkers = ["13KernelsAVX5120", "11KernelsAVX20", "15KernelsPortable0"]
        let allowedCalls: Set<Substring> = ["expf", "tanhf", "logf", "fmaf", "expm1f", "log1pf", "memcpy", "memset"]
        var entryPoints = 0
        var outOfLine: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if line.hasSuffix(">:"), let open = line.firstIndex(of: "<") {
                function = line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -2)]
                functionsSeen += 1
                continue
            }
            // "  addr:\tmnemonic operands"
            guard let tab = line.firstIndex(of: "\t") else { continue }
            let instruction = line[line.index(after: tab)...]
            let mnemonic = instruction.prefix { $0 != " " }
            if function.hasPrefix("$s12KernelBodies0A5TableC4make"), entryPointMarkers.contains(where: { function.contains($0) }) {
                entryPoints += 1
                if mnemonic == "call" || mnemonic == "jmp" && instruction.contains("@plt") {
                    // "call   1234 <target>" or "call   *%rax" (a table entry: not expected either)
                    let target = instruction.split(separator: "<").last.map { $0.dropLast() } ?? instruction
                    let name = target.hasSuffix("@plt") ? target.dropLast(4) : target
                    // (a global's addressor, "…vau", hands over a constant table such as the causal mask)
                    if !allowedCalls.contains(name) && !name.hasSuffix("vau"), outOfLine[String(function)] == nil {
                        outOfLine[String(function)] = String(instruction)
                    }
                }
            }
            let vex = mnemonic.hasPrefix("v") && mnemonic != "verr" && mnemonic != "verw"
            guard vex || beyondBaseline.contains(mnemonic) else { continue }
            // The C target's functions for AVX-512, AVX512-BF16 and AVX2 (KernelsBF16.c), each
            // compiled for its instructions by a target attribute and reached only by the run-time
            // choice of path.
            let cKernel = function.hasPrefix("rlhf_bf16_") || function == "rlhf_fp32_peak16" || function == "rlhf_fp32_peak8"
            if function.contains("11KernelsAVX2") || function.contains("13KernelsAVX512") || cKernel {
                kernelFunctions += 1
                continue
            }
            if offenders[String(function)] == nil { offenders[String(function)] = String(instruction) }
        }
        XCTAssertGreaterThan(functionsSeen, 1000, "objdump printed the binary's functions")
        XCTAssertGreaterThan(kernelFunctions, 100, "the kernel targets' vector code was found")
        XCTAssertTrue(
            offenders.isEmpty,
            "functions outside the kernel targets with instructions beyond x86-64: "
                + offenders.prefix(10).map { "\($0.key): \($0.value)" }.joined(separator: "; "))
        XCTAssertGreaterThan(entryPoints, 1000, "the kernel entry points' instructions were found")
        XCTAssertTrue(
            outOfLine.isEmpty,
            "kernel entry points that call out of line: "
                + outOfLine.prefix(10).map { "\($0.key): \($0.value)" }.joined(separator: "; "))
        #endif
    }
}

/// The binary on CPUs this machine is not: under QEMU's user-mode emulation of a Haswell (AVX2
/// and FMA, no AVX-512) and of a Nehalem (SSE4.2, no AVX), it picks the AVX2 and the portable
/// path, computes, and refuses a forced path the emulated CPU lacks. An instruction from a
/// higher set anywhere on the way would end it with SIGILL. Needs `qemu-x86_64` (Debian's
/// qemu-user, which .ci/run installs); without it the test is skipped, except under CI.
final class EmulatedCPUTests: ScratchFolderTestCase {
    func emulate(_ cpu: String, _ args: [String], env: [String: String] = [:]) throws -> CLIResult {
        let qemu = ["/usr/bin/qemu-x86_64", "/usr/local/bin/qemu-x86_64"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let qemu else {
            // CI installs it (.ci/run), so there its absence is a failure, not a reason to skip
            if ProcessInfo.processInfo.environment["CI"] == "true" { throw CLIError.missing("qemu-x86_64: .ci/run should have installed qemu-user") }
            throw XCTSkip("qemu-x86_64 (Debian package qemu-user) is not installed")
        }
        return try runCLI(args, env: env, cwd: dir, launcher: [qemu, "-cpu", cpu])
    }

    func testRunsOnCPUsWithoutAVX512OrWithoutAVX() throws {
        #if os(Linux) && arch(x86_64)
        // GEMM tiles, edges and the decode kernels, then a whole KV-cache sampling run of config S
        // (LayerNorm, attention, GELU, softmax, sampling).
        let work = ["bench", "--only", "matmul,generate", "--config", "S", "--repeat", "1", "--shapes", "64x64x64,8x128x500,100x70x90"]
        for (cpu, path) in [("Haswell-v4", "avx2"), ("Nehalem", "portable")] {
            let r = try emulate(cpu, work, env: ["RLHF_ISA": ""])
            XCTAssertEqual(r.status, 0, "\(cpu): \(r.stderr)")
            XCTAssertTrue(r.stdout.hasPrefix("rlhf bench (kernels \(path),"), "\(cpu): \(r.stdout)")
            XCTAssertTrue(r.stdout.contains("generate S"), "\(cpu): \(r.stdout)")
        }
        let refused = try emulate("Haswell-v4", ["status"], env: ["RLHF_ISA": "avx512"])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("this CPU lacks AVX-512"), refused.stderr)
        let noAVX2 = try emulate("Nehalem", ["status"], env: ["RLHF_ISA": "avx2"])
        XCTAssertEqual(noAVX2.status, 2)
        XCTAssertTrue(noAVX2.stderr.contains("this CPU lacks AVX2"), noAVX2.stderr)
        #endif
    }
}

/// A tool a test needs is missing where it must be present.
enum CLIError: Error { case missing(String) }
