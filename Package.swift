// swift-tools-version:6.2
import PackageDescription

// The hot loops live in KernelBodies as generic bodies and are compiled once per instruction set
// in the kernel targets below; only those targets get CPU flags, and TransformerCore picks one
// at run time (see Sources/TransformerCore/Kernels/KernelPaths.swift). Nothing else is compiled for
// a particular CPU, so one x86-64 build runs on any x86-64 CPU: AVX-512 kernels where the CPU has
// AVX-512 (x86-64-v4), AVX2 where it has AVX2 and FMA (x86-64-v3), the portable ones elsewhere.
// `-Ounchecked` removes overflow traps from index arithmetic in the hot loops.
let unchecked: SwiftSetting = .unsafeFlags(["-Ounchecked"], .when(configuration: .release))

// `-fno-math-errno` for the kernel targets: Swift's `squareRoot()` goes through a C shim that
// clang compiles with the target's -Xcc flags, and with glibc's errno semantics each lane became
// a scalar `sqrtss` with a branch to `sqrtf` for negative inputs, so AdamW's square root was 16
// scalar ones per vector. Without errno it is one `vsqrtps`, correctly rounded like `sqrtss`,
// so the results are the same bits.
let noMathErrno: SwiftSetting = .unsafeFlags(["-Xcc", "-fno-math-errno"])

/// Flags for one instruction-set target: x86 flags only when building on x86-64 (on arm64 those
/// targets compile to nothing).
func isaFlags(_ level: String) -> [SwiftSetting] {
    #if arch(x86_64)
    return [.unsafeFlags(["-Xcc", "-march=\(level)"]), noMathErrno, unchecked]
    #else
    return [noMathErrno, unchecked]
    #endif
}

/// The stages built on the stage layer: each imports StageKit, TransformerCore and RunStore, and no
/// other stage.
let stages = ["Generation", "RewardTraining", "PPO", "DPO", "GRPO", "SFT", "Compare"]

let package = Package(
    name: "rlhf",
    platforms: [.macOS(.v15)], // Synchronization's Atomic
    products: [
        .executable(name: "rlhf", targets: ["rlhf"]),
        .library(name: "TransformerCore", targets: ["TransformerCore"]),
        .library(name: "RunStore", targets: ["RunStore"]),
        // For the libFuzzer harness in Tests/Fuzz (a package of its own).
        .library(name: "FuzzTargets", targets: ["FuzzTargets"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(name: "CPUFeatures"),
        .target(name: "KernelBodies", dependencies: ["CPUFeatures"], swiftSettings: [unchecked]),
        .target(name: "KernelsAVX512", dependencies: ["KernelBodies"], swiftSettings: isaFlags("x86-64-v4")),
        .target(name: "KernelsAVX2", dependencies: ["KernelBodies"], swiftSettings: isaFlags("x86-64-v3")),
        .target(name: "KernelsPortable", dependencies: ["KernelBodies"], swiftSettings: [noMathErrno, unchecked]),
        // `vdpbf16ps` has no Swift spelling: the bfloat16 micro-kernel and the peak loops are C, each
        // function compiled for its instruction set by a target attribute, reached only through the
        // run-time choice of path.
        .target(name: "KernelsBF16"),
        // The chat-template interpreter; `unchecked` as when it was part of TransformerCore, so it compiles the same.
        .target(name: "Jinja", swiftSettings: [unchecked]),
        .target(
            name: "TransformerCore",
            dependencies: ["CPUFeatures", "KernelBodies", "KernelsAVX512", "KernelsAVX2", "KernelsPortable", "KernelsBF16", "Jinja"],
            swiftSettings: [unchecked]
        ),
        .target(
            name: "RunStore",
            dependencies: ["CSQLite"]
        ),
        // What every stage repeats: loading registered models, the preference data, checkpoint
        // and resume bookkeeping, and the settings types' command-line options.
        .target(
            name: "StageKit",
            dependencies: ["TransformerCore", "RunStore"]
        ),
        .target(
            name: "Labeling",
            dependencies: ["StageKit", "TransformerCore", "RunStore"]
        ),
        .target(
            name: "Curves",
            dependencies: ["RunStore"]
        ),
        // The Hugging Face Hub client (`rlhf pull`, Hub names for --model and --base): the only
        // target that imports FoundationNetworking (URLSession, shipped with the toolchain).
        .target(
            name: "Hub",
            dependencies: ["TransformerCore"]
        ),
        .executableTarget(
            name: "rlhf",
            dependencies: [
                "TransformerCore", "RunStore", "StageKit", "Generation", "Labeling", "RewardTraining", "PPO", "DPO", "GRPO", "SFT", "Compare",
                "Curves", "Hub",
            ]
        ),
        // The parsers' fuzz targets; run by the fuzz harness and by FuzzSmokeTests.
        .target(
            name: "FuzzTargets",
            dependencies: ["TransformerCore", "RunStore", "Labeling"],
            path: "Tests/Fuzz/Targets"
        ),
        .testTarget(
            name: "TransformerCoreTests",
            dependencies: ["TransformerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "JinjaTests",
            dependencies: ["Jinja"]
        ),
        .testTarget(
            name: "StageKitTests",
            dependencies: ["StageKit", "RunStore", "TransformerCore"]
        ),
        .testTarget(
            name: "RunStoreTests",
            dependencies: ["RunStore"]
        ),
        .testTarget(
            name: "GenerationTests",
            dependencies: ["Generation", "RunStore", "TransformerCore"]
        ),
        .testTarget(
            name: "LabelingTests",
            dependencies: ["Labeling", "RunStore", "StageKit", "TransformerCore"],
            exclude: ["Fixtures"] // read in place through #filePath
        ),
        .testTarget(
            name: "RewardTrainingTests",
            dependencies: ["RewardTraining", "RunStore", "TransformerCore"]
        ),
        .testTarget(
            name: "PPOTests",
            dependencies: ["PPO", "TransformerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "DPOTests",
            dependencies: ["DPO", "RunStore", "TransformerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "GRPOTests",
            dependencies: ["GRPO", "StageKit", "TransformerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "SFTTests",
            dependencies: ["SFT", "RunStore", "StageKit", "TransformerCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CompareTests",
            dependencies: ["Compare", "RunStore", "StageKit", "TransformerCore"],
            exclude: ["Reference"] // the script that computed the Wilson reference values, and its output
        ),
        .testTarget(
            name: "HubTests",
            dependencies: ["Hub", "TransformerCore"],
            exclude: ["Fixtures"] // the local Hub script and its repositories, read in place through #filePath
        ),
        .testTarget(
            name: "CurvesTests",
            dependencies: ["Curves"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "FuzzSmokeTests",
            dependencies: ["FuzzTargets"],
            path: "Tests/Fuzz/Smoke"
        ),
        // Runs the built `rlhf` binary (a dependency so that it is built; not imported), and holds
        // the tests that drive several stages in-process.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "rlhf", "RunStore", "TransformerCore", "StageKit", "Generation", "Labeling", "RewardTraining", "PPO", "DPO", "GRPO", "SFT",
                "Compare",
            ],
            exclude: ["Fixtures"] // read in place through #filePath
        ),
    ] + stages.map { .target(name: $0, dependencies: ["StageKit", "TransformerCore", "RunStore"]) },
    swiftLanguageModes: [.v5]
)
