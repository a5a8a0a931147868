import Foundation

/// What `rlhf sft` reads and writes beside the demonstrations API: the demonstrations that
/// rejection sampling makes, stored all at once.
extension RunStore {
    /// Stores `demonstrations` in one transaction (all or none) and returns their ids in order.
    /// Rejection sampling (`rlhf sft --from rankings`, `--from best-of N`) stores what it picked
    /// this way before training, so a failure leaves none of them behind.
    @discardableResult
    public func submitDemonstrations(_ demonstrations: [NewDemonstration]) throws -> [Int64] {
        if let empty = demonstrations.firstIndex(where: { $0.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
            throw StoreError("demonstration \(empty + 1) of \(demonstrations.count) has no text")
        }
        return try db.transaction {
            try demonstrations.map { try insertDemonstration($0) }
        }
    }

    /// Demonstrations by id (replaced ones included), for a stage run that stored which it
    /// trains on.
    public func demonstrations(ids: [Int64]) throws -> [DemonstrationRecord] {
        let wanted = Set(ids)
        let all = try demonstrations(includeReplaced: true).filter { wanted.contains($0.id) }
        let byId = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0) })
        return try ids.map { id in
            guard let d = byId[id] else { throw StoreError("demonstration #\(id) is no longer in the run") }
            return d
        }
    }
}
