// swift-tools-version:6.2
// The libFuzzer harness: a package of its own so that no ordinary build compiles it (libFuzzer
// supplies its `main`). Build and run it with `Tests/Fuzz/run-fuzzers` (see
// Tests/Fuzz/Targets/FuzzTargets.docc/FuzzTargets.md).
import PackageDescription

let package = Package(
    name: "rlhf-fuzz",
    dependencies: [.package(name: "rlhf", path: "../..")],
    targets: [
        .executableTarget(
            name: "rlhf-fuzz",
            dependencies: [.product(name: "FuzzTargets", package: "rlhf")],
            path: "Harness"
        )
    ],
    swiftLanguageModes: [.v5]
)
