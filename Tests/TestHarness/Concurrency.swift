import Foundation
import Synchronization

/// A count shared between a test and the threads or tasks it starts.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    @discardableResult public func increment(by amount: Int = 1) -> Int {
        value.add(amount, ordering: .relaxed).newValue
    }
    public var count: Int { value.load(ordering: .relaxed) }
}

/// Thread-safe collection of anything.
public final class Collector<T: Sendable>: Sendable {
    private let storage = Mutex<[T]>([])
    public init() {}
    public func append(_ item: T) { storage.withLock { $0.append(item) } }
    public var items: [T] { storage.withLock { $0 } }
}

public final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set() { value.store(true, ordering: .sequentiallyConsistent) }
    public var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

/// Starts `count` threads running `body(index)` and returns a function that joins them.
/// Blocking clients run on plain threads, never on the cooperative pool (2 threads on
/// a 2-core machine).
public func startThreads(_ count: Int, stackKiB: Int = 512, _ body: @escaping @Sendable (Int) -> Void) -> () -> Void {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = stackKiB * 1024
        thread.start()
    }
    return { group.wait() }
}

/// Polls `probe` until it gives a value; throws after `seconds`. For waiting on work
/// that, when broken, never answers (a test must fail, not hang).
public func waitFor<T>(
    _ what: String, within seconds: Int = 10, _ probe: () throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if let value = try probe() { return value }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TestSetupError("timed out after \(seconds) s waiting for \(what)")
}

/// A loopback TCP port that was free a moment ago.
public func freePort() throws -> Int {
    let (fd, port) = try boundSocket()
    close(fd)
    return port
}

/// A loopback port that accepts connections (the kernel completes them) and never
/// reads or answers: a receiver that hangs. Close the descriptor to stop it.
public func silentListener() throws -> (fd: Int32, port: Int) {
    let (fd, port) = try boundSocket()
    guard listen(fd, 64) == 0 else {
        close(fd)
        throw TestSetupError("listen: errno \(errno)")
    }
    return (fd, port)
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel chose.
private func boundSocket() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSetupError("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// Runs blocking `body` (a `RawClient`, say) on a thread of its own and awaits it, so
/// that an async test never blocks the cooperative pool the server's handlers run on.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Reads and discards everything that arrives on `descriptors` (streams a test opened
/// and must keep reading, or the server drops them) on a thread of its own, until stopped.
public final class Drain: Sendable {
    private let stopped = Flag()

    public init(_ descriptors: [Int32]) {
        Thread.detachNewThread { [stopped] in
            var polled = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            var sink = [UInt8](repeating: 0, count: 64 * 1024)
            while !stopped.isSet {
                guard poll(&polled, nfds_t(polled.count), 100) > 0 else { continue }
                for index in polled.indices where polled[index].revents != 0 {
                    if recv(polled[index].fd, &sink, sink.count, Int32(MSG_DONTWAIT)) == 0 { polled[index].fd = -1 }
                }
            }
        }
    }

    public func stop() { stopped.set() }
}
