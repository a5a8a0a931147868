/// A key press, decoded from the terminal's bytes.
public enum Key: Equatable, Sendable {
    case char(Character)
    case enter, backspace, escape, up, down, pageUp, pageDown, home, end
    /// Ctrl-C: quit, as a terminal user expects.
    case interrupt
    /// Anything else (including Ctrl-S, Ctrl-Q and Ctrl-Z, which are bound to nothing).
    case other
}
