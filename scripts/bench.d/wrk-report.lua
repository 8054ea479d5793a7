-- Shared by every scripts/bench wrk run: counts answers whose status is not the expected one
-- (wrk.expect, default 200) per thread, and prints one machine-readable RESULT line.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    unexpected = 0
    expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
end

function response(status, headers, body)
    if status ~= expect then
        unexpected = unexpected + 1
    end
end

function done(summary, latency, requests)
    local bad = 0
    for _, t in ipairs(threads) do
        bad = bad + (t:get("unexpected") or 0)
    end
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d unexpected=%d socket_errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad,
        e.connect + e.read + e.write + e.timeout))
end
