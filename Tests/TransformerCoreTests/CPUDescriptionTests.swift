import XCTest

@testable import TransformerCore

/// The CPU name `rlhf bench` prints: CPUID decoded as the kernel decodes it, AMD generations by
/// the family and model ranges AMD documents.
final class CPUDescriptionTests: XCTestCase {
    func testAMDGenerationsFollowTheDocumentedFamilyAndModelRanges() {
        // Family 17h: Naples (model 01h), Pinnacle Ridge (08h), Rome (31h), Matisse (71h).
        XCTAssertEqual(CPUDescription.amdCore(family: 0x17, model: 0x01), "Zen or Zen+")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x17, model: 0x08), "Zen or Zen+")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x17, model: 0x31), "Zen 2")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x17, model: 0x71), "Zen 2")
        // Family 19h: Milan (01h) and Vermeer (21h) are Zen 3; Genoa (11h), Raphael (61h),
        // Phoenix (74h) and Bergamo (A0h) are Zen 4.
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x01), "Zen 3")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x21), "Zen 3")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x50), "Zen 3")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x11), "Zen 4")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x61), "Zen 4")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0x74), "Zen 4")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x19, model: 0xA0), "Zen 4")
        // Family 1Ah: Turin (02h) and Granite Ridge (44h).
        XCTAssertEqual(CPUDescription.amdCore(family: 0x1A, model: 0x02), "Zen 5")
        XCTAssertEqual(CPUDescription.amdCore(family: 0x1A, model: 0x44), "Zen 5")
        XCTAssertNil(CPUDescription.amdCore(family: 0x15, model: 0x02), "Bulldozer-era families are not named")
    }

    func testX86DescriptionsNameTheBrandFamilyAndModel() {
        XCTAssertEqual(
            CPUDescription.x86(vendor: "AuthenticAMD", brand: "AMD EPYC", family: 25, model: 17),
            "AMD EPYC (family 25, model 17: Zen 4)")
        XCTAssertEqual(
            CPUDescription.x86(vendor: "GenuineIntel", brand: "  Intel(R) Xeon(R)   Platinum 8488C\u{0}", family: 6, model: 143),
            "Intel(R) Xeon(R) Platinum 8488C (family 6, model 143)", "Intel CPUs are not given a generation")
        XCTAssertEqual(
            CPUDescription.x86(vendor: "GenuineIntel", brand: "", family: 6, model: 85),
            "GenuineIntel (family 6, model 85)", "the vendor stands in for a missing brand string")
        XCTAssertEqual(
            CPUDescription.x86(vendor: "AuthenticAMD", brand: "AMD\u{1B}[2J EPYC", family: 26, model: 2),
            "AMD[2J EPYC (family 26, model 2: Zen 5)", "control characters are dropped")
    }

    func testModelNameIsReadFromCPUInfoText() {
        XCTAssertEqual(CPUDescription.modelName(inCPUInfo: "processor\t: 0\nmodel name\t: Neoverse  V2 \nflags\t: fp\n"), "Neoverse V2")
        XCTAssertNil(CPUDescription.modelName(inCPUInfo: "processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd4f\n"))
    }

    /// CPUID as this code decodes it against `/proc/cpuinfo`, which the Linux kernel fills from
    /// CPUID by its own code: vendor, brand, and the displayed family and model.
    func testThisCPUMatchesWhatTheLinuxKernelReports() throws {
        #if os(Linux) && arch(x86_64)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        func field(_ name: String) -> String? {
            for line in info.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }
        let vendor = try XCTUnwrap(field("vendor_id"))
        let family = try XCTUnwrap(field("cpu family").flatMap { Int($0) })
        let model = try XCTUnwrap(field("model").flatMap { Int($0) })
        let brand = field("model name") ?? ""
        XCTAssertEqual(CPUDescription.current, CPUDescription.x86(vendor: vendor, brand: brand, family: family, model: model))
        #else
        XCTAssertFalse(CPUDescription.current.isEmpty)
        #endif
    }
}
