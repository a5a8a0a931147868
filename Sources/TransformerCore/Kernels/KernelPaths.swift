import CPUFeatures
import Foundation
import KernelBodies
import KernelsBF16
import KernelsPortable

#if arch(x86_64)
import KernelsAVX512
import KernelsAVX2
#endif

/// An instruction-set path of the kernels.
public enum KernelPath: String, CaseIterable, Sendable {
    /// The AVX-512 kernels, with bfloat16 products (`--precision bf16`) on the hardware
    /// instruction `vdpbf16ps` (AVX512-BF16) instead of emulated. In single precision it is the
    /// AVX-512 path.
    case avx512bf16
    /// AVX-512 (x86-64-v4: AVX-512 F, BW, CD, DQ and VL).
    case avx512
    /// AVX2 with FMA (x86-64-v3).
    case avx2
    /// 4-float vectors and no instruction beyond the CPU family's baseline: SSE2 on x86-64, NEON
    /// on arm64.
    case portable

    /// What a CPU needs for this path, in the words of an error message.
    public var requirement: String {
        switch self {
        case .avx512bf16: return "AVX-512 (x86-64-v4) and AVX512-BF16"
        case .avx512: return "AVX-512 (x86-64-v4: AVX-512 F, BW, CD, DQ and VL)"
        case .avx2: return "AVX2 and FMA (x86-64-v3)"
        case .portable: return "nothing beyond the CPU family's baseline"
        }
    }
}

/// A forced path the CPU cannot run, or a path name that does not exist.
public struct KernelPathError: Error, CustomStringConvertible {
    public let description: String
}

/// Which kernels run: the best path the CPU supports, or the one `RLHF_ISA` names.
///
/// Every kernel call goes through `Kernels.active`, one table of entry points compiled for one
/// instruction set. Nothing else in the program is compiled for a particular CPU, so no
/// instruction the CPU lacks is ever executed.
public enum Kernels {
    /// The x86-64 level the CPU and operating system support (0 on other architectures).
    public static let x86Level = Int(rlhf_x86_level())
    /// Whether the CPU runs AVX512-BF16's `vdpbf16ps` (besides x86-64-v4).
    public static let hasAVX512BF16 = rlhf_has_avx512bf16() == 1

    /// Whether this CPU can run `path`.
    public static func supports(_ path: KernelPath) -> Bool {
        #if arch(x86_64)
        switch path {
        case .avx512bf16: return x86Level >= 4 && hasAVX512BF16
        case .avx512: return x86Level >= 4
        case .avx2: return x86Level >= 3
        case .portable: return true
        }
        #else
        return path == .portable
        #endif
    }

    /// The paths this CPU can run, fastest first.
    public static var available: [KernelPath] { KernelPath.allCases.filter(supports) }

    /// The kernel table of a path this CPU supports.
    public static func table(_ path: KernelPath) -> KernelTable {
        precondition(supports(path), "the \(path.rawValue) kernels need \(path.requirement), which this CPU lacks")
        #if arch(x86_64)
        switch path {
        case .avx512bf16, .avx512: return avx512Kernels
        case .avx2: return avx2Kernels
        case .portable: return portableKernels
        }
        #else
        return portableKernels
        #endif
    }

    /// The path `RLHF_ISA` asks for (nil when unset or empty), checked against the CPU.
    public static func requestedPath(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KernelPath? {
        guard let raw = environment["RLHF_ISA"]?.trimmingCharacters(in: .whitespaces).lowercased(), !raw.isEmpty else { return nil }
        guard let path = KernelPath(rawValue: raw) else {
            throw KernelPathError(
                description:
                    "RLHF_ISA=\(raw) is not a kernel path; use avx512bf16, avx512, avx2 or portable (or leave it unset for the best this CPU supports)"
            )
        }
        guard supports(path) else {
            #if arch(x86_64)
            let onX86 = true
            #else
            let onX86 = false
            #endif
            throw KernelPathError(description: refusal(raw, path, onX86: onX86, available: available))
        }
        return path
    }

    /// Why `RLHF_ISA=raw` cannot run here: an x86-64 path asked for on another architecture, or
    /// an x86-64 CPU without the instructions the path needs.
    static func refusal(_ raw: String, _ path: KernelPath, onX86: Bool, available: [KernelPath]) -> String {
        let rest =
            "this machine supports \(available.map(\.rawValue).joined(separator: ", ")) (the default would be \((available.first ?? .portable).rawValue))"
        if !onX86 && path != .portable {
            return "RLHF_ISA=\(raw): the \(path.rawValue) kernels are for x86-64 CPUs, and this is \(machineArchitecture); \(rest)"
        }
        return "RLHF_ISA=\(raw): this CPU lacks \(path.requirement); \(rest)"
    }

    /// The architecture this program was built for, in words.
    static var machineArchitecture: String {
        #if arch(arm64)
        return "an arm64 machine"
        #elseif arch(x86_64)
        return "an x86-64 machine"
        #else
        return "a machine of another architecture"
        #endif
    }

    /// The path in use at start: `RLHF_ISA`'s when set, otherwise the best the CPU supports.
    /// An unusable `RLHF_ISA` stops the program with its message (the `rlhf` command checks it
    /// first, to exit with a usage error instead).
    public static let startPath: KernelPath = {
        do {
            return try requestedPath() ?? available.first ?? .portable
        } catch {
            FileHandle.standardError.write(Data("rlhf: error: \(error)\n".utf8))
            exit(2)
        }
    }()

    /// The kernels every call goes through.
    nonisolated(unsafe) public static private(set) var active: KernelTable = table(startPath)

    /// The path in use (`active` is its table).
    nonisolated(unsafe) public static private(set) var activePath: KernelPath = startPath

    /// The bfloat16 product tile of the active path: the hardware instruction's on
    /// `avx512bf16`, otherwise the path's emulation of it.
    nonisolated(unsafe) public static private(set) var bf16Tile: BF16Tile = bf16Tile(startPath)

    static func bf16Tile(_ path: KernelPath) -> BF16Tile {
        if path == .avx512bf16 {
            return { rows, kp, a, ars, aps, b, c, ldc, mode, bias in
                let m: Int32 = mode == .overwrite ? 0 : (mode == .accumulate ? 1 : 2)
                rlhf_bf16_tile(Int32(rows), kp, a, ars, aps, b, c, ldc, m, bias)
            }
        }
        return table(path).bf16Tile
    }

    /// Runs `body` with `path`'s kernels, then restores the previous ones. For tests and
    /// benchmarks; not for use while other threads run kernels.
    public static func using<T>(_ path: KernelPath, _ body: () throws -> T) rethrows -> T {
        let saved = (active, activePath, bf16Tile)
        active = table(path)
        activePath = path
        bf16Tile = bf16Tile(path)
        defer { (active, activePath, bf16Tile) = saved }
        return try body()
    }
}
