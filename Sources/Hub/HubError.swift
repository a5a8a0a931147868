import Foundation

/// A failure of the Hub client, said in one line: what went wrong and what to do.
public struct HubError: Error, CustomStringConvertible, Equatable {
    /// The sentence shown to the user.
    public let description: String

    /// A failure with its message.
    public init(_ description: String) { self.description = description }
}
