import Foundation
import FuzzTargets

// libFuzzer's entry points. The target is chosen by RLHF_FUZZ_TARGET (one of FuzzTarget's raw
// values), read once.
private let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["RLHF_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("error: set RLHF_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = count > 0 && bytes != nil ? Data(bytes: bytes!, count: count) : Data()
    target.run(data)
    return 0
}
