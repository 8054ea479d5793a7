import CMicroHTTPD

/// The C callbacks `HTTPServer.start()` gives libmicrohttpd; the `cls` of each is
/// the `ServerCore`, retained by the server for as long as the daemon runs. They
/// use it through `_withUnsafeGuaranteedRef`: that reference keeps it alive, and
/// every MHD thread retaining and releasing the one shared core on every call
/// would bounce its reference count between the cores.
enum MHDCallbacks {
    static let access: MHD_AccessHandlerCallback = {
        cls, connection, url, method, version, uploadData, uploadDataSize, conCls in
        guard let cls, let connection, let uploadDataSize, let conCls else { return .NO }
        return Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { core in
            core.access(
                connection: connection, url: url, method: method, version: version,
                uploadData: uploadData, uploadDataSize: uploadDataSize, conCls: conCls)
        }
    }

    /// MHD_OPTION_NOTIFY_COMPLETED: the request is over (answered or aborted).
    static let completed: MHD_RequestCompletedCallback = { cls, connection, conCls, _ in
        if let connection { ConnectionDeadlines.requestCompleted(connection) }
        guard let cls, let conCls, let raw = conCls.pointee else { return }
        conCls.pointee = nil
        Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.completed(raw) }
    }

    /// MHD_OPTION_NOTIFY_CONNECTION: a connection opens or closes.
    static let connection: MHD_NotifyConnectionCallback = { cls, connection, socketContext, event in
        guard let cls, let connection, let socketContext else { return }
        Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { core in
            if event == .CONNECTION_NOTIFY_STARTED {
                core.connectionStarted(connection, socketContext: socketContext)
            } else {
                core.connectionClosed(socketContext: socketContext)
            }
        }
    }

    /// MHD_OPTION_URI_LOG_CALLBACK: the request line is in; the result becomes `*con_cls`.
    static let requestLine: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?)
        -> UnsafeMutableRawPointer? = { cls, uri, _ in
            guard let cls, let uri else { return nil }
            return Unmanaged<ServerCore>.fromOpaque(cls)._withUnsafeGuaranteedRef { $0.requestLine(uri) }
        }
}
