-- wrk script for scripts/bench-serve: POST /v1/events with unique event ids.
--   wrk -s events.lua URL -- MODE PREFIX [SIZE]
-- MODE `batch`: SIZE events (default 100) per request as application/x-ndjson;
-- MODE `single`: one event per request as application/json.
-- Ids are PREFIX-THREAD-N-K (N counts this thread's requests, K the line), so
-- no id repeats within a run, nor across runs with different PREFIXes. Every
-- event is a compliant device (outcome no_action), so no provider is called.
-- At the end, one machine-readable line, as report.lua prints.

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local parts, slots, counter = {}, {}, 0

function init(args)
  local mode, prefix, size = args[1], args[2], tonumber(args[3] or "100")
  if mode == "single" then
    size = 1
    wrk.headers["Content-Type"] = "application/json"
  elseif mode == "batch" then
    wrk.headers["Content-Type"] = "application/x-ndjson"
  else
    error("events.lua: MODE is batch or single, not " .. tostring(mode))
  end
  wrk.method = "POST"
  -- The body as fixed pieces around one slot per line for the request's tag,
  -- so request() only fills the slots and concatenates.
  for k = 0, size - 1 do
    local user = string.format("user-%d-%d@example.com", tid, k)
    parts[#parts + 1] = '{"id":"' .. prefix .. "-" .. tid .. "-"
    parts[#parts + 1] = ""
    slots[#slots + 1] = #parts
    parts[#parts + 1] = string.format(
      '-%d","time":"2026-11-27T10:15:00Z","device":{"id":"dev-%d-%d","state":"active","platform":"ios"},'
        .. '"user":{"upn":"%s","email":"%s"},"compliance":{"compliant":true}}%s',
      k, tid, k, user, user, mode == "batch" and "\n" or "")
  end
end

function request()
  counter = counter + 1
  local tag = tostring(counter)
  for _, slot in ipairs(slots) do
    parts[slot] = tag
  end
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
