#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A detached POSIX thread running one closure: the home for blocking librdkafka calls.
final class KafkaThread: Sendable {
    private let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
    }

    func start() {
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            #if canImport(Darwin)
            let me = Unmanaged<KafkaThread>.fromOpaque(raw).takeRetainedValue()
            #else
            let me = Unmanaged<KafkaThread>.fromOpaque(raw!).takeRetainedValue()
            #endif
            me.body()
            return nil
        }, unmanaged.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }
}
