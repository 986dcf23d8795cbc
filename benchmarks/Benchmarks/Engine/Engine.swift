import Benchmark
import DrawdownCore
import EngineStages

// The engine's stages on the generated 1,000,000-message workload (EngineStages), each
// iteration over the whole file: a loop that only splits lines (the baseline), parse-only,
// apply-only (pre-decoded messages), parse+apply, and the floor of apply (the memory an
// apply touches, no rule: `ApplyFloor`). `ns/event` and `kevents/s` are
// recorded per iteration; compare each to `split lines` of the same run.
// `EngineFigures` prints the same figures (plus the dedupe memory) without this harness.

/// Made once per process, outside any measurement.
enum Fixture {
    static let input: [UInt8] = EngineStages.workload()
    static let events = EngineStages.spec().messages
    static let messages: [Message] = input.withUnsafeBufferPointer { EngineStages.decodeAll($0) }
    static let floorEvents: [ApplyFloor.Event] = ApplyFloor.events(messages)
}

let nsPerEvent = BenchmarkMetric.custom("ns/event", polarity: .prefersSmaller, useScalingFactor: false)
let keventsPerSecond = BenchmarkMetric.custom("kevents/s", polarity: .prefersLarger, useScalingFactor: false)

/// Times `body` between explicit start and stop, and records the per-event figures.
func timed(_ benchmark: Benchmark, _ body: () -> Int) {
    let clock = ContinuousClock()
    benchmark.startMeasurement()
    let start = clock.now
    let result = body()
    let elapsed = clock.now - start
    benchmark.stopMeasurement()
    blackHole(result)
    let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
    benchmark.measurement(nsPerEvent, Int((nanos / Double(Fixture.events)).rounded()))
    benchmark.measurement(keventsPerSecond, Int((Double(Fixture.events) / nanos * 1e6).rounded()))
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .peakMemoryResident, nsPerEvent, keventsPerSecond],
        warmupIterations: 1, maxDuration: .seconds(60), maxIterations: 5)

    Benchmark("split lines (baseline)") { benchmark in
        let input = Fixture.input
        input.withUnsafeBufferPointer { buffer in timed(benchmark) { EngineStages.splitLines(buffer) } }
    }

    Benchmark("parse only") { benchmark in
        let input = Fixture.input
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        input.withUnsafeBufferPointer { buffer in timed(benchmark) { EngineStages.parse(buffer, decoder: &decoder) } }
    }

    Benchmark("apply only") { benchmark in
        let messages = Fixture.messages
        var engine = PartitionEngine()
        timed(benchmark) { EngineStages.apply(messages, engine: &engine) }
    }

    Benchmark("apply floor (no rules)") { benchmark in
        let events = Fixture.floorEvents
        var state = ApplyFloor.State()
        timed(benchmark) { ApplyFloor.run(events, group: EngineStages.warmGroup, state: &state) }
    }

    Benchmark("parse+apply") { benchmark in
        let input = Fixture.input
        var decoder = MessageDecoder(priceBook: Workload.priceBook)
        var engine = PartitionEngine()
        input.withUnsafeBufferPointer { buffer in
            timed(benchmark) { EngineStages.parseAndApply(buffer, decoder: &decoder, engine: &engine) }
        }
    }
}
