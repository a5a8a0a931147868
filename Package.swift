// swift-tools-version:6.0
import PackageDescription

// The compute kernels are written with explicit SIMD16<Float> vectors. Swift only lowers them to
// AVX-512 (zmm registers, vfmadd231ps) when the target CPU has it; for a generic x86-64 target
// every vector FMA becomes a sequence of 128-bit ops or calls to fmaf. znver5 is the CI and
// development machine (AMD Zen 5); `-Ounchecked` removes overflow traps from index arithmetic in
// the hot loops. Checked once in the emitted assembly of `microKernel12x32`: the inner loop is
// vbroadcastss + vfmadd231ps on zmm registers.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "znver5"]),
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "rlhf",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rlhf", targets: ["rlhf"]),
        .library(name: "TransformerCore", targets: ["TransformerCore"]),
        .library(name: "RunStore", targets: ["RunStore"]),
    ],
    targets: [
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .target(
            name: "TransformerCore",
            swiftSettings: kernelFlags
        ),
        .target(
            name: "RunStore",
            dependencies: ["CSQLite"]
        ),
        .target(
            name: "Generation",
            dependencies: ["TransformerCore", "RunStore"],
            swiftSettings: kernelFlags
        ),
        .target(
            name: "Labeling",
            dependencies: ["TransformerCore", "RunStore"]
        ),
        .target(
            name: "RewardTraining",
            dependencies: ["TransformerCore", "RunStore"],
            swiftSettings: kernelFlags
        ),
        .target(
            name: "PPO",
            dependencies: ["TransformerCore", "RunStore"],
            swiftSettings: kernelFlags
        ),
        .target(
            name: "Curves",
            dependencies: ["TransformerCore", "RunStore"]
        ),
        .executableTarget(
            name: "rlhf",
            dependencies: ["TransformerCore", "RunStore", "Generation", "Labeling", "RewardTraining", "PPO", "Curves"],
            swiftSettings: kernelFlags
        ),
        .testTarget(
            name: "TransformerCoreTests",
            dependencies: ["TransformerCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: kernelFlags
        ),
        .testTarget(
            name: "RunStoreTests",
            dependencies: ["RunStore"]
        ),
        .testTarget(
            name: "GenerationTests",
            dependencies: ["Generation", "RunStore", "TransformerCore"],
            swiftSettings: kernelFlags
        ),
        .testTarget(
            name: "LabelingTests",
            dependencies: ["Labeling", "RunStore", "TransformerCore"]
        ),
        .testTarget(
            name: "RewardTrainingTests",
            dependencies: ["RewardTraining", "RunStore", "TransformerCore", "Generation", "Labeling"],
            swiftSettings: kernelFlags
        ),
        .testTarget(
            name: "PPOTests",
            dependencies: ["PPO", "RunStore", "TransformerCore"],
            resources: [.copy("Fixtures")],
            swiftSettings: kernelFlags
        ),
        .testTarget(
            name: "CurvesTests",
            dependencies: ["Curves", "RunStore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["rlhf", "RunStore"],
            swiftSettings: kernelFlags
        ),
    ],
    swiftLanguageModes: [.v5]
)
