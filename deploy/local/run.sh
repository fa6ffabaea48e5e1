#!/usr/bin/env bash
# `make run`: a local OpenSearch node on 127.0.0.1:9200 and mlsidecar on :9201
# in front of it, until Ctrl-C stops both.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export OS_HOME=${OS_HOME:-$root/.run/opensearch}
export OS_HTTP_PORT=${OS_HTTP_PORT:-9200}
node=$root/e2e/opensearch/node.sh
sidecar_pid=

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$sidecar_pid" ] && kill -0 "$sidecar_pid" 2>/dev/null; then
    kill -TERM "$sidecar_pid" 2>/dev/null || true
    wait "$sidecar_pid" 2>/dev/null || true
  fi
  bash "$node" stop || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bash "$node" fetch
bash "$node" start
bash "$node" wait >/dev/null

# The internal listener (metrics, pprof) answers anyone who reaches it: loopback only.
"$root/bin/mlsidecar" --upstream "http://127.0.0.1:$OS_HTTP_PORT" --authentication none \
  --internal-listen-address 127.0.0.1:9202 "$@" &
sidecar_pid=$!
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "http://127.0.0.1:9202/-/ready" 2>/dev/null; then break; fi
  kill -0 "$sidecar_pid" 2>/dev/null || { echo "mlsidecar exited" >&2; exit 1; }
  sleep 0.1
done

cat <<MSG

  OpenSearch          http://127.0.0.1:$OS_HTTP_PORT
  mlsidecar           http://127.0.0.1:9201   (point clients and Dashboards here)
  mlsidecar internal  http://127.0.0.1:9202   (/metrics, /-/healthy, /-/ready)

  Try: curl localhost:9201/_cluster/health   —   Ctrl-C stops both.

MSG
wait "$sidecar_pid"
