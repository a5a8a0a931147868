import CPUFeatures
import Foundation

/// A one-line name of the CPU, so that a benchmark's figures say what they were measured on.
///
/// On x86-64 it is the CPUID brand string with the family and model numbers, and for AMD the
/// core generation those numbers identify (a VM often shows only "AMD EPYC", and what Zen 4's
/// half-rate 512-bit FMAs do to the figures is the same on every model of it). On Apple systems
/// it is the brand string; on other Linux systems the `model name` line of `/proc/cpuinfo`,
/// else the machine architecture.
public enum CPUDescription {
    /// This machine's CPU.
    public static let current: String = {
        var vendor = [CChar](repeating: 0, count: 13), brand = [CChar](repeating: 0, count: 49)
        var family: Int32 = 0, model: Int32 = 0
        if rlhf_x86_identity(&vendor, &brand, &family, &model) == 1 {
            return x86(vendor: string(vendor), brand: string(brand), family: Int(family), model: Int(model))
        }
        var apple = [CChar](repeating: 0, count: 128)
        if rlhf_apple_cpu_brand(&apple, Int32(apple.count)) == 1 { return squeezed(string(apple)) }
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let name = modelName(inCPUInfo: text)
        {
            return name
        }
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return machine.isEmpty ? "unknown CPU" : machine
    }()

    /// The description of an x86-64 CPU from what CPUID reports.
    static func x86(vendor: String, brand: String, family: Int, model: Int) -> String {
        let squeezedBrand = squeezed(brand)
        let name = squeezedBrand.isEmpty ? (vendor.isEmpty ? "x86-64" : vendor) : squeezedBrand
        var numbers = "family \(family), model \(model)"
        if vendor == "AuthenticAMD", let core = amdCore(family: family, model: model) { numbers += ": \(core)" }
        return "\(name) (\(numbers))"
    }

    /// The AMD core generation of a CPUID family and model, where the numbers identify one:
    /// family 17h is Zen to Zen 2, 19h Zen 3 and Zen 4 (by model range), 1Ah Zen 5.
    static func amdCore(family: Int, model: Int) -> String? {
        switch family {
        case 0x17: return model >= 0x30 ? "Zen 2" : "Zen or Zen+"
        case 0x19:
            switch model {
            case 0x10...0x1F, 0x60...0x7F, 0xA0...0xAF: return "Zen 4"
            default: return "Zen 3"
            }
        case 0x1A: return model < 0x80 ? "Zen 5" : nil
        default: return nil
        }
    }

    /// The first `model name` value in the text of `/proc/cpuinfo`, if there is one.
    static func modelName(inCPUInfo text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = squeezed(String(line[line.index(after: colon)...]))
            if !value.isEmpty { return value }
        }
        return nil
    }

    /// `s` with runs of white space as one space, trimmed, and nothing outside printable ASCII
    /// (a brand string is ASCII, padded with spaces and NULs).
    static func squeezed(_ s: String) -> String {
        let printable = String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7F }))
        return printable.split(separator: " ").joined(separator: " ")
    }

    private static func string(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
