/// Where and how to connect. Everything is handed to libpq's `PQconnectdbParams`; nothing is
/// parsed here, so every libpq keyword and URL feature (multi-host, `target_session_attrs`,
/// `sslmode`, …) works.
public struct PostgresConfiguration: Sendable {
    enum Source: Sendable {
        case url(String)
        case parameters([String: String])
    }

    let source: Source

    /// libpq `connect_timeout`, per host tried. Default 5. A `connect_timeout` inside the URL
    /// or the parameters wins.
    public var connectTimeoutSeconds: Int = 5

    /// libpq `application_name`, shown in `pg_stat_activity`. Default `"gpubroker"`. An
    /// `application_name` inside the URL or the parameters wins.
    public var applicationName: String = "gpubroker"

    /// TCP keepalives and libpq `tcp_user_timeout`, so that a connection whose peer went
    /// away (a partition, a database host gone) fails in seconds instead of waiting on the
    /// kernel's retransmission timers (9–25 s measured after a partition healed, 0.05 s with
    /// these). Keepalive probes after 10 s idle, every 3 s, 3 lost ones end the connection;
    /// data unacknowledged for 10 s ends it too. Values inside the URL or the parameters win.
    /// Unix-socket connections ignore them.
    public var tcpDefaults: [String: String] = [
        "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "3", "keepalives_count": "3",
        "tcp_user_timeout": "10000",
    ]

    /// A `postgresql://` URL or a `key=value` connection string, passed to libpq as `dbname`
    /// with `expand_dbname` set.
    public init(url: String) {
        self.source = .url(url)
    }

    /// libpq keywords and values (`host` may be a Unix socket directory).
    public init(parameters: [String: String]) {
        self.source = .parameters(parameters)
    }

    /// Keywords and values in libpq's order (later ones win), and the `expand_dbname` flag.
    var libpqParameters: (keywords: [String], values: [String], expandDBName: Bool) {
        var keywords = ["connect_timeout", "application_name"]
        var values = [String(connectTimeoutSeconds), applicationName]
        for (key, value) in tcpDefaults.sorted(by: { $0.key < $1.key }) {
            keywords.append(key)
            values.append(value)
        }
        switch source {
        case .url(let url):
            keywords.append("dbname")
            values.append(url)
            return (keywords, values, true)
        case .parameters(let parameters):
            for (key, value) in parameters.sorted(by: { $0.key < $1.key }) {
                keywords.append(key)
                values.append(value)
            }
            return (keywords, values, false)
        }
    }
}
