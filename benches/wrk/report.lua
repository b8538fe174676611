-- wrk script for scripts/bench-serve: the request is wrk's own (method, path and
-- headers from the command line); at the end, one machine-readable line.
-- With WRK_PACE_MS=N in the environment, each connection waits N ms after an
-- answer before its next request: a steady load below saturation.
local pace = tonumber(os.getenv("WRK_PACE_MS") or "")
if pace then
  function delay()
    return pace
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
