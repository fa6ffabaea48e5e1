-- wrk script for e2e/bench/proxy.sh: POSTs the file $BENCH_BODY_FILE (read once per wrk
-- thread, so the body is generated once, not per request) with Content-Type
-- $BENCH_CONTENT_TYPE, and ends with one machine-readable line:
--   BENCH_RESULT requests=N duration_us=N rps=X p50_ms=X p99_ms=X connect=N read=N write=N status=N timeout=N
-- (status counts responses with a status >= 400, as wrk's "Non-2xx or 3xx responses").
-- Defining no request/response function keeps wrk on its fast path: one pre-built request.

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set")
local f = assert(io.open(body_file, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d rps=%.2f p50_ms=%.3f p99_ms=%.3f connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
