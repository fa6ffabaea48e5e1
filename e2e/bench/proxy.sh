#!/usr/bin/env bash
# make bench-proxy: what the transparent proxy path costs.
#
# Starts a real OpenSearch node (e2e/opensearch/node.sh), mlsidecar in front of it and, as the
# yardsticks, nginx as a plain keep-alive reverse proxy and a bare Go httputil.ReverseProxy
# (e2e/bench/goproxy) in front of it too. Then runs the same wrk
# load against all four - a small _search and a _bulk of 1,000 small documents - and prints
# requests/s and latency percentiles per target, the ratios mlsidecar/direct, /nginx and /goproxy,
# and the latency mlsidecar adds. Measures, never asserts; exits non-zero only if a run failed or
# saw errors.
#
# Everything (node, proxies, wrk) shares this machine's CPUs, so absolute numbers say little;
# compare the ratios, and run on an otherwise idle machine.
#
# Environment:
#   MLSIDECAR_BIN    binary to benchmark (default: built from this checkout into a temp dir)
#   BENCH_DURATION   measured duration of each run          default 15s
#   BENCH_WARMUP     warm-up per target and workload        default 5s (0 = none)
#   BENCH_ROUNDS     measured runs per target and workload  default 3 (medians are reported)
#   BENCH_SEARCH_THREADS / BENCH_SEARCH_CONNS               default 2 / 16
#   BENCH_BULK_THREADS / BENCH_BULK_CONNS                   default 2 / 4
#   BENCH_BULK_DOCS  documents per _bulk request            default 1000
#   OS_HEAP          as for node.sh                         default 1g
#   BENCH_KEEP_TMP=1 keep the temp dir (configs, logs, raw wrk output)
set -euo pipefail
export LC_ALL=C   # decimal points in printf/awk

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_DIR=$ROOT/e2e/bench
NODE_SH=$ROOT/e2e/opensearch/node.sh

DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
SEARCH_THREADS=${BENCH_SEARCH_THREADS:-2}
SEARCH_CONNS=${BENCH_SEARCH_CONNS:-16}
BULK_THREADS=${BENCH_BULK_THREADS:-2}
BULK_CONNS=${BENCH_BULK_CONNS:-4}
BULK_DOCS=${BENCH_BULK_DOCS:-1000}
export OS_HEAP=${OS_HEAP:-1g}
export OS_HTTP_PORT=0   # a free port, whatever the caller's environment says
export OS_FRESH=1       # empty data directory: every run starts from the same state

TARGETS=(direct mlsidecar goproxy nginx)
WORKLOADS=(search bulk)

say() { echo "bench-proxy: $*" >&2; }
die() { say "$*"; exit 1; }

# --- prerequisites -----------------------------------------------------------------------------

missing=()
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ -z "${MLSIDECAR_BIN:-}" ] && ! command -v go >/dev/null 2>&1; then missing+=(go); fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "missing: ${missing[*]}"
  say "on Debian/Ubuntu: apt-get install -y wrk nginx curl"
  exit 1
fi
[ -f "$NODE_SH" ] || die "no $NODE_SH"

# --- processes and cleanup ---------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-proxy.XXXXXX")
# nginx workers drop root privileges (user nobody) and must reach the files in here.
chmod 755 "$TMP"
# The node's home lives here too, not under e2e/opensearch/target/, which "mvn clean" (run by
# node.sh fetch or by hand) may delete under a running node.
export OS_HOME=$TMP/os-home
NODE_PID=
SIDECAR_PID=
NGINX_PID=

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ]; then
    say "failed (exit $rc); last log lines:"
    for f in "$TMP/mlsidecar.log" "$TMP/nginx/error.log" "$OS_HOME/logs/stdout.log"; do
      [ -s "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
  fi
  if [ -n "$NGINX_PID" ]; then kill -TERM "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; fi
  if [ -n "$SIDECAR_PID" ]; then kill -TERM "$SIDECAR_PID" 2>/dev/null; wait "$SIDECAR_PID" 2>/dev/null; fi
  if [ -n "${GOPROXY_PID:-}" ]; then kill -TERM "$GOPROXY_PID" 2>/dev/null; wait "$GOPROXY_PID" 2>/dev/null; fi
  if [ -n "$NODE_PID" ]; then
    bash "$NODE_SH" stop >/dev/null 2>&1
    # node.sh finds the node by its pid file; should that be gone, stop it by pid.
    if kill -0 "$NODE_PID" 2>/dev/null; then
      kill -TERM "$NODE_PID" 2>/dev/null
      for _ in $(seq 1 60); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.5; done
      kill -KILL "$NODE_PID" 2>/dev/null
    fi
  fi
  if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nothing listens on now. Another process may take it before we bind it, so every
# start below checks that its server really came up, and retries with a new port.
free_port() {
  local p _
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

# wait_http URL PID: until URL answers 2xx, while PID is alive, for at most 30 s.
wait_http() {
  local url=$1 pid=$2 deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

# utime+stime of the given pids, in clock ticks.
cpu_ticks() {
  local total=0 p stat f
  for p in "$@"; do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<< "${stat##*) }"      # f[0] is field 3 (state): utime is f[11], stime f[12]
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# pids whose CPU time is the proxy's: mlsidecar itself; the nginx master and its workers.
proxy_pids() {
  case $1 in
    mlsidecar) echo "$SIDECAR_PID" ;;
    goproxy) echo "$GOPROXY_PID" ;;
    nginx) echo "$NGINX_PID"; ps -o pid= --ppid "$NGINX_PID" 2>/dev/null | tr -d ' ' || true ;;
  esac
}

# --- OpenSearch node ---------------------------------------------------------------------------

say "starting the OpenSearch node (OS_HOME=$OS_HOME, heap $OS_HEAP)"
bash "$NODE_SH" fetch >&2
bash "$NODE_SH" start >&2
NODE_PID=$(cat "$OS_HOME/node.pid")
bash "$NODE_SH" wait >&2
NODE_ADDR=$(cat "$OS_HOME/http.addr")
NODE_URL=http://$NODE_ADDR

# --- mlsidecar ---------------------------------------------------------------------------------

if [ -n "${MLSIDECAR_BIN:-}" ]; then
  SIDECAR_BIN=$(realpath "$MLSIDECAR_BIN")
  [ -x "$SIDECAR_BIN" ] || die "MLSIDECAR_BIN=$MLSIDECAR_BIN is not an executable"
else
  say "building mlsidecar"
  SIDECAR_BIN=$TMP/mlsidecar
  (cd "$ROOT" && go build -o "$SIDECAR_BIN" ./cmd/mlsidecar)
fi

# --log-level warn keeps request logging out of the measurement; the "started" line with the
# bound addresses is info, hence ports chosen here rather than port 0.
for attempt in 1 2 3 4 5; do
  SIDECAR_PORT=$(free_port); SIDECAR_INTERNAL_PORT=$(free_port)
  "$SIDECAR_BIN" --listen-address "127.0.0.1:$SIDECAR_PORT" \
    --internal-listen-address "127.0.0.1:$SIDECAR_INTERNAL_PORT" \
    --upstream "$NODE_URL" --log-level warn 2>>"$TMP/mlsidecar.log" &
  SIDECAR_PID=$!
  if wait_http "http://127.0.0.1:$SIDECAR_INTERNAL_PORT/-/ready" "$SIDECAR_PID"; then break; fi
  kill -TERM "$SIDECAR_PID" 2>/dev/null || true; wait "$SIDECAR_PID" 2>/dev/null || true; SIDECAR_PID=
  [ "$attempt" -lt 5 ] || die "mlsidecar did not become ready"
done
SIDECAR_URL=http://127.0.0.1:$SIDECAR_PORT

# --- goproxy: a bare httputil.ReverseProxy, the Go yardstick --------------------------------------

(cd "$ROOT" && go build -o "$TMP/goproxy" ./e2e/bench/goproxy)
for attempt in 1 2 3 4 5; do
  GOPROXY_PORT=$(free_port)
  "$TMP/goproxy" "127.0.0.1:$GOPROXY_PORT" "$NODE_URL" 2>>"$TMP/goproxy.log" &
  GOPROXY_PID=$!
  if wait_http "http://127.0.0.1:$GOPROXY_PORT/" "$GOPROXY_PID"; then break; fi
  kill -TERM "$GOPROXY_PID" 2>/dev/null || true; wait "$GOPROXY_PID" 2>/dev/null || true; GOPROXY_PID=
  [ "$attempt" -lt 5 ] || die "goproxy did not come up"
done
GOPROXY_URL=http://127.0.0.1:$GOPROXY_PORT

# --- nginx -------------------------------------------------------------------------------------

mkdir -p "$TMP/nginx/temp"
write_nginx_conf() {
  cat > "$TMP/nginx/nginx.conf" <<EOF
# Plain keep-alive reverse proxy: the yardstick for mlsidecar's forwarding path.
daemon off;
master_process on;
# auto = one worker per CPU. mlsidecar's Go runtime also runs on every CPU (GOMAXPROCS = CPUs),
# so both proxies get the same CPU budget; worker_processes 1 would cap nginx at one core
# while mlsidecar may use two, and on a 2-core machine that is the difference being measured.
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    client_body_temp_path $TMP/nginx/temp/body;
    proxy_temp_path $TMP/nginx/temp/proxy;
    fastcgi_temp_path $TMP/nginx/temp/fastcgi;
    uwsgi_temp_path $TMP/nginx/temp/uwsgi;
    scgi_temp_path $TMP/nginx/temp/scgi;

    # Like mlsidecar: client connections are never closed after N requests (nginx's default
    # keepalive_requests is 1000, which would make wrk reconnect), idle ones live long.
    keepalive_timeout 300s;
    keepalive_requests 1000000;

    upstream opensearch {
        server $NODE_ADDR;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }

    server {
        listen 127.0.0.1:$1;
        client_max_body_size 0;

        location / {
            proxy_pass http://opensearch;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The X-Forwarded-* headers mlsidecar adds (ReverseProxy SetXForwarded).
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }
    }
}
EOF
}
for attempt in 1 2 3 4 5; do
  NGINX_PORT=$(free_port)
  write_nginx_conf "$NGINX_PORT"
  nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>>"$TMP/nginx/error.log" &
  NGINX_PID=$!
  if wait_http "http://127.0.0.1:$NGINX_PORT/" "$NGINX_PID"; then break; fi
  kill -TERM "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; NGINX_PID=
  [ "$attempt" -lt 5 ] || die "nginx did not come up"
done
NGINX_URL=http://127.0.0.1:$NGINX_PORT

url_of() {
  case $1 in
    direct) echo "$NODE_URL" ;;
    mlsidecar) echo "$SIDECAR_URL" ;;
    goproxy) echo "$GOPROXY_URL" ;;
    nginx) echo "$NGINX_URL" ;;
  esac
}

# --- data --------------------------------------------------------------------------------------

# node_api METHOD PATH [curl args...]: a request straight to the node; fails on HTTP >= 400.
node_api() {
  local method=$1 path=$2; shift 2
  curl -fsS -X "$method" -H 'Content-Type: application/json' "$NODE_URL$path" "$@"
}
INDEX_SETTINGS='{"settings":{"number_of_shards":1,"number_of_replicas":0}}'

printf '%s' '{"query":{"match_all":{}},"size":1}' > "$TMP/search.json"
awk -v n="$BULK_DOCS" 'BEGIN {
  for (i = 1; i <= n; i++) {
    print "{\"index\":{}}"
    printf "{\"title\":\"document %d\",\"n\":%d,\"tag\":\"t%d\",\"price\":%.2f,\"ts\":\"2025-01-01T00:00:%02dZ\"}\n", i, i, i % 10, i * 0.25, i % 60
  }
}' > "$TMP/bulk.ndjson"

say "preparing index bench ($BULK_DOCS docs)"
node_api PUT /bench -d "$INDEX_SETTINGS" -o /dev/null
curl -fsS -X POST -H 'Content-Type: application/x-ndjson' "$NODE_URL/bench/_bulk?refresh=true" \
  --data-binary "@$TMP/bulk.ndjson" -o "$TMP/prepare.json"
grep -q '"errors":false' "$TMP/prepare.json" || die "preparing index bench failed: $(head -c 500 "$TMP/prepare.json")"

# A fresh bench-bulk index before every bulk run, so no run indexes into a bigger index
# (more segments, more merging) than another.
reset_bulk_index() {
  curl -sS -o /dev/null -X DELETE "$NODE_URL/bench-bulk"
  node_api PUT /bench-bulk -d "$INDEX_SETTINGS" -o /dev/null
}

path_of() { case $1 in search) echo /bench/_search ;; bulk) echo /bench-bulk/_bulk ;; esac; }
body_of() { case $1 in search) echo "$TMP/search.json" ;; bulk) echo "$TMP/bulk.ndjson" ;; esac; }
type_of() { case $1 in search) echo application/json ;; bulk) echo application/x-ndjson ;; esac; }

# Each target answers the exact request wrk sends with 200 and a successful body.
reset_bulk_index
for target in "${TARGETS[@]}"; do
  for w in "${WORKLOADS[@]}"; do
    code=$(curl -sS -o "$TMP/check-$target-$w.json" -w '%{http_code}' -X POST \
      -H "Content-Type: $(type_of "$w")" --data-binary "@$(body_of "$w")" "$(url_of "$target")$(path_of "$w")")
    [ "$code" = 200 ] || die "$w via $target: HTTP $code: $(head -c 500 "$TMP/check-$target-$w.json")"
    case $w in
      search) grep -q "\"total\":{\"value\":$BULK_DOCS," "$TMP/check-$target-$w.json" \
                || die "search via $target: unexpected body: $(head -c 500 "$TMP/check-$target-$w.json")" ;;
      bulk) grep -q '"errors":false' "$TMP/check-$target-$w.json" \
              || die "bulk via $target: item errors: $(head -c 500 "$TMP/check-$target-$w.json")" ;;
    esac
  done
done

# --- load --------------------------------------------------------------------------------------

# wrk_run TARGET WORKLOAD DURATION OUT: runs wrk, leaves its output (with the BENCH_RESULT line) in OUT.
wrk_run() {
  local target=$1 w=$2 duration=$3 out=$4 threads conns
  if [ "$w" = search ]; then threads=$SEARCH_THREADS conns=$SEARCH_CONNS; else threads=$BULK_THREADS conns=$BULK_CONNS; fi
  BENCH_BODY_FILE=$(body_of "$w") BENCH_CONTENT_TYPE=$(type_of "$w") \
    wrk -t"$threads" -c"$conns" -d"$duration" --timeout 10s --latency \
    -s "$BENCH_DIR/post.lua" "$(url_of "$target")$(path_of "$w")" > "$out"
}

# field NAME FILE: a value from the BENCH_RESULT line.
field() {
  awk -v k="$1" '/^BENCH_RESULT / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$2"
}

# sorted "V V ...": the values, one a line, ascending.
sorted() { tr ' ' '\n' <<< "$1" | grep . | sort -g; }
# median "V V ...": the middle value (mean of the two middle ones for an even count).
median() {
  sorted "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

CLK_TCK=$(getconf CLK_TCK)
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)
declare -A RPS P50 P99 TICKS SECS ERRS   # per "target,workload"; RPS/P50/P99 list every round
failed=0
for w in "${WORKLOADS[@]}"; do
  if [ "$WARMUP" != 0 ] && [ "$WARMUP" != 0s ]; then
    for target in "${TARGETS[@]}"; do
      say "warm-up   $w via $target ($WARMUP)"
      if [ "$w" = bulk ]; then reset_bulk_index; fi
      wrk_run "$target" "$w" "$WARMUP" "$TMP/warmup-$target-$w.txt"
    done
  fi
  for ((round = 0; round < ROUNDS; round++)); do
    # Each round starts with the next target, so no target is always the one measured on the
    # coldest (or warmest) node.
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
      target=${TARGETS[(i + round) % ${#TARGETS[@]}]}
      if [ "$w" = bulk ]; then reset_bulk_index; fi
      out=$TMP/wrk-$target-$w-$round.txt
      mapfile -t pids < <(proxy_pids "$target")
      t0=$(cpu_ticks "${pids[@]}")
      wrk_run "$target" "$w" "$DURATION" "$out"
      t1=$(cpu_ticks "${pids[@]}")
      grep -q '^BENCH_RESULT ' "$out" || die "no BENCH_RESULT line from wrk for $w via $target: $(cat "$out")"
      [ "$(field requests "$out")" -gt 0 ] || die "no request completed in $w via $target: $(cat "$out")"
      k=$target,$w
      RPS[$k]="${RPS[$k]:-} $(field rps "$out")"
      P50[$k]="${P50[$k]:-} $(field p50_ms "$out")"
      P99[$k]="${P99[$k]:-} $(field p99_ms "$out")"
      TICKS[$k]=$(( ${TICKS[$k]:-0} + t1 - t0 ))
      SECS[$k]=$(awk -v s="${SECS[$k]:-0}" -v us="$(field duration_us "$out")" 'BEGIN { print s + us / 1e6 }')
      errs=0
      for e in connect read write status timeout; do errs=$((errs + $(field "$e" "$out"))); done
      ERRS[$k]=$(( ${ERRS[$k]:-0} + errs ))
      say "round $((round + 1))/$ROUNDS $w via $target: $(field rps "$out") req/s," \
        "p50 $(field p50_ms "$out") ms, p99 $(field p99_ms "$out") ms, errors $errs"
      if [ "$errs" -ne 0 ]; then
        failed=1
        say "errors in $w via $target:"
        grep -E 'Socket errors|Non-2xx|BENCH_RESULT' "$out" >&2 || true
      fi
    done
  done
done
LOADAVG_AFTER=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)

# --- report ------------------------------------------------------------------------------------

declare -A MRPS MP50 MP99
for k in "${!RPS[@]}"; do
  MRPS[$k]=$(median "${RPS[$k]}"); MP50[$k]=$(median "${P50[$k]}"); MP99[$k]=$(median "${P99[$k]}")
done

os_version=$(curl -fsS "$NODE_URL/" | sed -n 's/.*"number" *: *"\([^"]*\)".*/\1/p' | head -n1)
echo
echo "bench-proxy: $(nproc) CPUs, load average $LOADAVG_BEFORE before and $LOADAVG_AFTER after the runs," \
  "OpenSearch ${os_version:-?} (heap $OS_HEAP), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
echo "search: POST /bench/_search {\"query\":{\"match_all\":{}},\"size\":1}, wrk -t$SEARCH_THREADS -c$SEARCH_CONNS -d$DURATION"
echo "bulk:   POST /bench-bulk/_bulk, $BULK_DOCS docs ($(wc -c < "$TMP/bulk.ndjson") bytes), wrk -t$BULK_THREADS -c$BULK_CONNS -d$DURATION"
echo "warm-up $WARMUP per target and workload, then $ROUNDS rounds in rotating target order;"
echo "req/s, p50, p99: median over the rounds (min-max req/s in brackets); proxy cpu: CPU time of the"
echo "proxy process(es) / wall time, in % of one CPU"
echo
printf '%-10s %-8s %11s %19s %9s %9s %10s %7s\n' target workload "req/s" "(min-max)" "p50 ms" "p99 ms" "proxy cpu" errors
for w in "${WORKLOADS[@]}"; do
  for target in "${TARGETS[@]}"; do
    k=$target,$w
    range=$(sorted "${RPS[$k]}" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "(%.1f-%.1f)", lo, hi }')
    cpu=-
    if [ "$target" != direct ]; then
      cpu=$(awk -v t="${TICKS[$k]}" -v hz="$CLK_TCK" -v s="${SECS[$k]}" 'BEGIN { printf "%.0f%%", 100 * (t / hz) / s }')
    fi
    printf '%-10s %-8s %11.1f %19s %9.2f %9.2f %10s %7d\n' "$target" "$w" \
      "${MRPS[$k]}" "$range" "${MP50[$k]}" "${MP99[$k]}" "$cpu" "${ERRS[$k]}"
  done
done
echo
printf '%-8s %17s %16s %18s %24s %20s %20s\n' workload "mlsidecar/direct" "mlsidecar/nginx" "mlsidecar/goproxy" \
  "added p50 ms mlsidecar" "added p50 ms goproxy" "added p50 ms nginx"
for w in "${WORKLOADS[@]}"; do
  awk -v w="$w" -v d="${MRPS[direct,$w]}" -v m="${MRPS[mlsidecar,$w]}" -v n="${MRPS[nginx,$w]}" -v g="${MRPS[goproxy,$w]}" \
      -v dp="${MP50[direct,$w]}" -v mp="${MP50[mlsidecar,$w]}" -v np="${MP50[nginx,$w]}" -v gp="${MP50[goproxy,$w]}" \
      'BEGIN { printf "%-8s %17.3f %16.3f %18.3f %+24.3f %+20.3f %+20.3f\n", w, m / d, m / n, m / g, mp - dp, gp - dp, np - dp }'
done
echo "(ratios of median req/s; added p50 = proxy median p50 - direct median p50;"
echo " goproxy is a bare httputil.ReverseProxy: mlsidecar/goproxy is the cost of the sidecar's own layers)"

if [ "$failed" -ne 0 ]; then
  say "some runs saw socket errors or HTTP errors (see above)"
  exit 1
fi
