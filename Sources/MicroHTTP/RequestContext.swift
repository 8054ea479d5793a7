import Synchronization

/// What MHD's `*con_cls` holds between the callbacks of one request: a
/// `RequestContext`, or for the common case of a request without a body that is
/// answered on the MHD thread, one of these markers, so such a request allocates
/// no per-request state. Markers are small odd addresses, never a Swift object's.
enum RequestSlot {
    /// The headers were seen (first call) and no body so far.
    static var headersOnly: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1)! }
    /// Answered on the final call, not counted as pending (503 during shutdown).
    static var answered: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x3)! }
    /// Answered on the final call, with the request counted as pending.
    static var answeredCounted: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x5)! }
    /// Set from the request line (`ServerCore.requestLine`): its target is to be
    /// refused with 414 on the first call.
    static var uriTooLong: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x7)! }
}

/// Per-request state for a request with a body, an async handler or an answer
/// queued on the first call: owned by MHD's `*con_cls` (retained until
/// NOTIFY_COMPLETED) and by an async handler's task.
final class RequestContext: Sendable {
    enum Phase {
        case receiving
        /// Routed: an async handler runs, or a response was queued on this call.
        case handling
        /// An async handler's response, to queue on the next call.
        case ready(HTTPResponse)
        case queued
    }

    struct State {
        var phase: Phase
        var body: [UInt8] = []
        var tooLarge = false
        var discarded = 0
        /// NOTIFY_COMPLETED ran: the connection pointer must not be used again.
        var closed = false
        /// This request is counted in `ServerCore`'s pending handlers.
        var counted = false
    }

    let connection: ConnectionPointer
    let state: Mutex<State>

    init(connection: ConnectionPointer, phase: Phase) {
        self.connection = connection
        state = Mutex(State(phase: phase))
    }
}
