import CMicroHTTPD
import Synchronization

/// A response body written while it is sent, for Server-Sent Events and the like: a
/// handler returns an `HTTPResponse` whose `stream` is set (its `body` is ignored),
/// then writes to the stream from any task for as long as it likes.
///
/// libmicrohttpd pulls the body through a content reader
/// (`MHD_create_response_from_callback`, chunked, size unknown). When nothing is
/// waiting the reader suspends the connection (`MHD_suspend_connection`, allowed from
/// a content reader) instead of returning 0 in a busy loop, and `write` or `finish`
/// resumes it. Bytes wait here until the client takes them, at most `limit` of them,
/// so a slow reader costs bounded memory: `write` answers `.full` and the writer
/// decides (typically a last message, written with `force`, and `finish`).
///
/// A suspended connection never times out and its request stays pending, so
/// `HTTPServer.shutdown()` waits for it: finish every stream first. A client that went
/// away is noticed on the next write (write something now and then: a heartbeat).
public final class HTTPStream: Sendable {
    public enum WriteResult: Sendable, Equatable {
        case written
        /// `limit` bytes are already waiting: nothing was added.
        case full
        /// The client went away or the stream was finished.
        case closed
    }

    struct State {
        var pending: [UInt8] = []
        /// Bytes of `pending` already handed to MHD.
        var sent = 0
        var finished = false
        /// MHD destroyed the response: the connection is gone or complete.
        var closed = false
        var suspended = false
        var connection: ConnectionPointer?
    }

    public let limit: Int
    let state = Mutex(State())

    public init(limit: Int = 256 * 1024) {
        self.limit = limit
    }

    /// Appends `bytes` for the client; `force` ignores `limit` (for a last message).
    @discardableResult
    public func write(_ bytes: [UInt8], force: Bool = false) -> WriteResult {
        let (result, resume) = state.withLock { state -> (WriteResult, ConnectionPointer?) in
            if state.closed || state.finished { return (.closed, nil) }
            if !force && state.pending.count - state.sent + bytes.count > limit { return (.full, nil) }
            state.pending.append(contentsOf: bytes)
            return (.written, state.takeSuspended())
        }
        if let resume { MHD_resume_connection(resume.raw) }
        return result
    }

    /// Ends the body once what was written has been sent.
    public func finish() {
        let resume = state.withLock { state -> ConnectionPointer? in
            state.finished = true
            return state.takeSuspended()
        }
        if let resume { MHD_resume_connection(resume.raw) }
    }

    /// True once the client went away or `finish` was called.
    public var isClosed: Bool { state.withLock { $0.closed || $0.finished } }

    /// Bytes written and not yet taken by the client.
    public var waiting: Int { state.withLock { $0.pending.count - $0.sent } }

    /// The content reader, on MHD's thread.
    fileprivate func read(into buffer: UnsafeMutablePointer<CChar>, max: Int) -> Int {
        state.withLock { state in
            let available = state.pending.count - state.sent
            if available > 0 {
                let count = min(available, max)
                state.pending.withUnsafeBytes { bytes in
                    UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + state.sent, byteCount: count)
                }
                state.sent += count
                if state.sent == state.pending.count {
                    state.pending.removeAll(keepingCapacity: state.pending.capacity <= 64 * 1024)
                    state.sent = 0
                } else if state.sent >= 64 * 1024 {
                    // A client that never quite catches up would otherwise keep every byte sent.
                    state.pending.removeFirst(state.sent)
                    state.sent = 0
                }
                return count
            }
            if state.finished { return -1 }  // MHD_CONTENT_READER_END_OF_STREAM
            // Under the lock, so that a write cannot resume before this suspends.
            if let connection = state.connection {
                state.suspended = true
                MHD_suspend_connection(connection.raw)
            }
            return 0
        }
    }

    fileprivate func released() {
        state.withLock { $0.closed = true }
    }
}

extension HTTPStream.State {
    /// The connection to resume, when the reader suspended it.
    mutating func takeSuspended() -> ConnectionPointer? {
        guard suspended else { return nil }
        suspended = false
        return connection
    }
}

extension ServerCore {
    /// Queues a streamed response: chunked, no Content-Length. Owns a reference to the
    /// stream until MHD frees the response.
    func queueStream(_ connection: OpaquePointer, _ response: HTTPResponse, _ stream: HTTPStream) -> MHD_Result {
        stream.state.withLock { $0.connection = ConnectionPointer(raw: connection) }
        let unmanaged = Unmanaged.passRetained(stream)
        guard let mhdResponse = MHD_create_response_from_callback(
            UInt64.max, 16 * 1024,
            { cls, _, buffer, max in
                guard let cls, let buffer else { return -2 }
                return Unmanaged<HTTPStream>.fromOpaque(cls).takeUnretainedValue().read(into: buffer, max: max)
            },
            unmanaged.toOpaque(),
            { cls in
                guard let cls else { return }
                let stream = Unmanaged<HTTPStream>.fromOpaque(cls).takeRetainedValue()
                stream.released()
            })
        else {
            unmanaged.release()
            return .NO
        }
        defer { MHD_destroy_response(mhdResponse) }
        for (name, value) in response.headers where !name.equalsIgnoringCase("Content-Length") {
            _ = name.withCString { name in value.withCString { MHD_add_response_header(mhdResponse, name, $0) } }
        }
        return MHD_queue_response(connection, UInt32(response.status), mhdResponse)
    }
}
