/// Limits that keep a hostile template from exhausting the stack, the memory or the time of the
/// process that reads it: nesting of expressions and of blocks, the text any value or the
/// output may grow to, and the steps a rendering may take.
enum Limits {
    static let nesting = 64
    /// The depth of an expression's tree: a parenthesis, list, call argument, `not` or `-`
    /// counts 4 (each costs several parser frames), each further operand of a chain such as
    /// `a + b + c`, `x.y.z` or `x | f | g` counts 1.
    static let expression = 256
    static let textBytes = 16 << 20
    /// Steps of rendering: a tag or loop iteration counts 1, and so does each item of a list
    /// (and each 256 bytes of a text) that an operator, filter or call makes.
    static let steps = 2_000_000
}
