/// A binary min-heap whose order is given at each call (so it may depend on state that changes
/// between calls, such as the spelling of tokens created by later merges).
struct BinaryHeap<Element> {
    private(set) var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }

    /// Adds `e`; `less(a, b)` says whether a comes out before b.
    mutating func push(_ e: Element, by less: (Element, Element) -> Bool) {
        items.append(e)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            if !less(items[c], items[p]) { break }
            items.swapAt(c, p); c = p
        }
    }

    /// Removes and returns the first element in `less` order.
    mutating func pop(by less: (Element, Element) -> Bool) -> Element? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var p = 0
            while true {
                let l = 2 * p + 1, r = l + 1
                var m = p
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == p { break }
                items.swapAt(p, m); p = m
            }
        }
        return top
    }
}
