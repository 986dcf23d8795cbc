import CoreMetrics
import Synchronization

/// A `MetricsFactory` that keeps every value reported, by label and dimensions, for tests
/// (passed as `PipelineConfig.metricsFactory`, so nothing is bootstrapped process-wide).
final class RecordingMetrics: MetricsFactory {
    struct Key: Hashable, CustomStringConvertible {
        var label: String
        var dimensions: [String]
        var description: String { label + (dimensions.isEmpty ? "" : "{" + dimensions.joined(separator: ",") + "}") }
    }

    final class Handler: CounterHandler, RecorderHandler, TimerHandler, Sendable {
        /// Counter: the sum; recorder, gauge, timer: every value.
        let total = Mutex<Int64>(0)
        let values = Mutex<[Double]>([])
        func increment(by amount: Int64) { total.withLock { $0 += amount } }
        func reset() { total.withLock { $0 = 0 } }
        func record(_ value: Int64) { values.withLock { $0.append(Double(value)) } }
        func record(_ value: Double) { values.withLock { $0.append(value) } }
        func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(Double(duration)) } }
    }

    private let handlers = Mutex<[Key: Handler]>([:])

    private func handler(_ label: String, _ dimensions: [(String, String)]) -> Handler {
        let key = Key(label: label, dimensions: dimensions.map { "\($0.0)=\($0.1)" })
        return handlers.withLock { table in
            if let known = table[key] { return known }
            let made = Handler()
            table[key] = made
            return made
        }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { handler(label, dimensions) }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        handler(label, dimensions)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { handler(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}

    /// A counter's total, summed over every dimension set of `label` matching `dimension`
    /// (e.g. `"reason=malformed"`; nil: all).
    func total(_ label: String, _ dimension: String? = nil) -> Int64 {
        handlers.withLock { table in
            table.filter { $0.key.label == label && (dimension.map($0.key.dimensions.contains) ?? true) }
                .reduce(0) { $0 + $1.value.total.withLock { $0 } }
        }
    }

    /// Every value recorded for `label` (any dimensions).
    func values(_ label: String) -> [Double] {
        handlers.withLock { table in
            table.filter { $0.key.label == label }.flatMap { $0.value.values.withLock { $0 } }
        }
    }

    /// The dimension sets seen for `label`.
    func dimensions(_ label: String) -> [[String]] {
        handlers.withLock { table in table.keys.filter { $0.label == label }.map(\.dimensions) }
    }
}
