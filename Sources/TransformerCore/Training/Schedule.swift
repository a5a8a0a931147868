import Foundation

/// A learning-rate schedule: an optional linear warmup, then constant, linear decay or cosine decay.
public struct LearningRateSchedule: Codable, Equatable, Sendable {
    /// The shape after warmup.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case constant, linear, cosine
    }
    /// Shape after warmup.
    public var kind: Kind
    /// Peak learning rate.
    public var peak: Float
    /// Warmup steps (learning rate rises linearly from peak/warmup to peak).
    public var warmupSteps: Int
    /// Total steps; decay reaches `minimum` at this step.
    public var totalSteps: Int
    /// Learning rate at the end of decay.
    public var minimum: Float

    /// A schedule.
    public init(kind: Kind, peak: Float, warmupSteps: Int = 0, totalSteps: Int, minimum: Float = 0) {
        self.kind = kind; self.peak = peak; self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps; self.minimum = minimum
    }

    /// The learning rate for 0-based `step`.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let decaySteps = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(step - warmupSteps) / Float(decaySteps))
        switch kind {
        case .constant: return peak
        case .linear: return peak + (minimum - peak) * progress
        case .cosine: return minimum + (peak - minimum) * 0.5 * (1 + cosf(Float.pi * progress))
        }
    }
}
