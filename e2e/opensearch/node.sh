#!/usr/bin/env bash
# A real single-node OpenSearch 2.19.x for e2e tests, built from Maven Central jars (see README.md).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: node.sh <command>

commands:
  fetch    build the launcher and resolve the jars (mvn package + dependency:build-classpath
           -> target/cp.txt); skipped when target/cp.txt and target/classes are newer than
           pom.xml and src/ and every jar is present (OS_REBUILD=1 forces a rebuild); with
           WITH_ML/WITH_KNN also unpacks the plugin zips into $OS_HOME, once per home
  start    start the node in the background (writes $OS_HOME/node.pid, log: $OS_HOME/logs/stdout.log)
  wait     wait until HTTP is bound and cluster health is yellow (up to OS_WAIT_SECS); with
           WITH_ML=1 also until _cat/plugins lists opensearch-ml and _plugins/_ml/stats answers 200;
           prints "ready at http://HOST:PORT" and writes HOST:PORT to $OS_HOME/http.addr
  stop     SIGTERM (+SIGCONT) the node this script started, SIGKILL after 30 s
  run      fetch (if needed), start, wait, then stay in the foreground until SIGINT/SIGTERM, then stop
  status   print the address and exit 0 if the node started from $OS_HOME is running
  pause    SIGSTOP the node (simulate a hung upstream)
  resume   SIGCONT the node

environment:
  OS_HOME       node home (config/, data/, logs/)    default: <this dir>/target/os-home
  OS_HTTP_PORT  HTTP port, 0 = pick a free one       default: 0
  OS_HEAP       -Xms/-Xmx                            default: 512m (1g with WITH_ML=1)
  OS_FRESH      1 = wipe $OS_HOME/data on start      default: 0 (keep data across restarts)
  OS_WAIT_SECS  timeout of "wait"                    default: 180
  OS_JAVA_OPTS  extra JVM flags
  OS_REBUILD    1 = force "fetch" to rebuild
  MVN_OFFLINE   1 = run Maven with -o
  JAVA_HOME     default: /usr/lib/jvm/java-17-openjdk-amd64 if present
  WITH_ML=1     genuine ML Commons: job-scheduler + ml-commons plugin zips unpacked into
                $OS_HOME/plugins; "start" writes only_run_on_ml_node false, memory thresholds 100 and
                connector.private_ip_enabled true to opensearch.yml, and no trusted endpoints (ML
                Commons' default list applies; PUT /_cluster/settings can set
                plugins.ml_commons.trusted_connector_endpoints_regex at run time);
                default OS_HOME <this dir>/target/os-home-ml
  OS_ML_TRUSTED_REGEX  with WITH_ML=1: a JSON array of regexes written as
                plugins.ml_commons.trusted_connector_endpoints_regex, e.g. '["^http://127\\.0\\.0\\.1:9999/.*$"]'
  WITH_KNN=1    also unpack the k-NN zip, painless becomes a module bundle (untested hook)
  WITH_SECURITY=1  security plugin: HTTP basic auth (plain http), TLS transport; "fetch" unpacks the
                plugin and, like "start", writes certs + config into $OS_HOME/config (once);
                default OS_HOME <this dir>/target/os-home-security; users in security/internal_users.yml
  OS_AUTH       user:password for the health check of "wait"  default: admin:admin-E2e-pass1 with
                WITH_SECURITY=1, none otherwise
EOF
}

D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)     # holds pom.xml + src
if [ -z "${JAVA_HOME:-}" ] && [ -d /usr/lib/jvm/java-17-openjdk-amd64 ]; then
  JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
export JAVA_HOME
if [ "${WITH_SECURITY:-0}" = 1 ]; then
  W=${OS_HOME:-$D/target/os-home-security}
  AUTH=${OS_AUTH:-admin:admin-E2e-pass1}
elif [ "${WITH_ML:-0}" = 1 ]; then
  W=${OS_HOME:-$D/target/os-home-ml}   # a plain home must not load the plugins by accident
  AUTH=${OS_AUTH:-}
else
  W=${OS_HOME:-$D/target/os-home}
  AUTH=${OS_AUTH:-}
fi
mkdir -p "$W" && W=$(cd "$W" && pwd)                # absolute, so the pid check below matches
PORT=${OS_HTTP_PORT:-0}
if [ "${WITH_ML:-0}" = 1 ]; then HEAP=${OS_HEAP:-1g}; else HEAP=${OS_HEAP:-512m}; fi
WAIT_SECS=${OS_WAIT_SECS:-180}
CP_FILE=$D/target/cp.txt
PID_FILE=$W/node.pid
LOG=$W/logs/stdout.log
OS_VERSION=2.19.6
PAINLESS="lang-painless,opensearch-scripting-painless-spi,antlr4-runtime,asm,asm-util,asm-tree,asm-commons,asm-analysis"
MVN=(mvn -q -B -Dstyle.color=never -f "$D/pom.xml")
if [ "${MVN_OFFLINE:-0}" = 1 ]; then MVN+=(-o); fi

log() { echo "node.sh: $*" >&2; }
# Maven 3.8 prints stray ANSI resets even with -q -B; strip them (pipefail keeps mvn's exit code).
mvn_() { "${MVN[@]}" "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; }

# --- fetch -----------------------------------------------------------------------------------

# The launcher and target/cp.txt (shared by every home). WITH_KNN=1 builds a class path without
# painless (it becomes a module bundle), so a build is fresh only for the same choice.
base_is_fresh() {
  [ "${OS_REBUILD:-0}" = 1 ] && return 1
  [ -s "$CP_FILE" ] && [ -f "$D/target/classes/e2e/TestNode.class" ] || return 1
  if [ "${WITH_KNN:-0}" = 1 ]; then
    ! grep -q '/lang-painless-[0-9]' "$CP_FILE" || return 1
  else
    grep -q '/lang-painless-[0-9]' "$CP_FILE" || return 1
  fi
  [ -z "$(find "$D/pom.xml" "$D/src" -newer "$CP_FILE" -print -quit)" ] || return 1
  [ -z "$(find "$D/src" -newer "$D/target/classes/e2e/TestNode.class" -print -quit)" ] || return 1
  local j; local IFS=:
  for j in $(cat "$CP_FILE"); do [ -f "$j" ] || return 1; done   # e.g. ~/.m2 wiped
  return 0
}

# A bundle directory with its descriptor and jars (an interrupted unpack leaves less).
bundle_ok() { [ -f "$1/plugin-descriptor.properties" ] && [ -n "$(find "$1" -name '*.jar' -print -quit)" ]; }
ml_present()  { bundle_ok "$W/plugins/opensearch-job-scheduler" && bundle_ok "$W/plugins/opensearch-ml"; }
knn_present() { bundle_ok "$W/plugins/opensearch-knn" && bundle_ok "$W/modules/lang-painless"; }

build_is_fresh() {
  base_is_fresh || return 1
  if [ "${WITH_ML:-0}" = 1 ]; then ml_present || return 1; fi
  if [ "${WITH_KNN:-0}" = 1 ]; then knn_present || return 1; fi
  return 0
}

fetch() {
  if build_is_fresh; then
    log "build is up to date ($CP_FILE)"
  else
    if base_is_fresh; then log "launcher is up to date ($CP_FILE)"; else build; fi
    if [ "${WITH_ML:-0}" = 1 ] && { [ "${OS_REBUILD:-0}" = 1 ] || ! ml_present; }; then ml_fetch; fi
    if [ "${WITH_KNN:-0}" = 1 ] && { [ "${OS_REBUILD:-0}" = 1 ] || ! knn_present; }; then knn_fetch; fi
  fi
  if [ "${WITH_SECURITY:-0}" = 1 ]; then security_fetch; fi
}

build() {
  local excl=()
  if [ "${WITH_KNN:-0}" = 1 ]; then excl=(-DexcludeArtifactIds="$PAINLESS"); fi
  log "building launcher and resolving jars (a first run downloads ~90 MB into ~/.m2)"
  mvn_ package dependency:build-classpath \
    -Dmdep.outputFile="$CP_FILE" -Dmdep.includeScope=runtime "${excl[@]}"
  touch "$CP_FILE"          # build-classpath leaves an unchanged file untouched
  if [ -d "$W/plugins" ]; then prune_dupes; fi   # the new class path may cover more plugin jars
}

# Unpacks afresh into this home: its markers would skip an unpack into directories wiped by hand.
ml_fetch() {
  log "unpacking job-scheduler and ml-commons into $W/plugins (~360 MB)"
  rm -rf "$W/plugins/opensearch-job-scheduler" "$W/plugins/opensearch-ml"
  rm -f "$W"/.mvn-markers/*opensearch-job-scheduler* "$W"/.mvn-markers/*opensearch-ml-plugin*
  mvn_ dependency:unpack@ml-plugins -Dnode.home="$W"
  prune_dupes
}

knn_fetch() {
  log "unpacking k-NN into $W/plugins, painless into $W/modules"
  rm -rf "$W/plugins/opensearch-knn" "$W/modules/lang-painless"
  rm -f "$W"/.mvn-markers/*opensearch-knn*
  mvn_ dependency:unpack@knn-plugin -Dnode.home="$W"
  painless_module
  prune_dupes
}

painless_module() {         # lang-painless as a bundle (k-NN extends it)
  local m="$W/modules/lang-painless"; mkdir -p "$m"
  mvn_ dependency:copy-dependencies -DincludeArtifactIds="$PAINLESS" -DoutputDirectory="$m"
  printf '%s\n' "description=lang-painless assembled from Maven jars" "version=$OS_VERSION" "name=lang-painless" \
    "classname=org.opensearch.painless.PainlessPlugin" "java.version=11" "opensearch.version=$OS_VERSION" \
    > "$m/plugin-descriptor.properties"
}

prune_dupes() {             # drop plugin jars whose artifact is already on the launcher class path
  tr ':' '\n' < "$CP_FILE" | xargs -n1 basename | sed -E 's/-[0-9][^/]*\.jar$//' | sort -u > "$W/.core-artifacts"
  local j b
  for j in "$W"/plugins/*/*.jar; do
    [ -f "$j" ] || continue
    b=$(basename "$j" | sed -E 's/-[0-9][^/]*\.jar$//')
    if grep -qx "$b" "$W/.core-artifacts"; then log "prune $j"; rm -f "$j"; fi
  done
}

# --- WITH_SECURITY=1 ---------------------------------------------------------------------------

SEC_PLUGIN=opensearch-security
SEC_DN_SUFFIX="OU=e2e,O=mlsidecar"    # certs: CN=e2e-root-ca / CN=node-0 / CN=admin + this

security_fetch() {          # idempotent: unpack once per home, then (re)write config
  local p="$W/plugins/$SEC_PLUGIN" v
  if [ -f "$p/plugin-descriptor.properties" ]; then
    log "security plugin already unpacked ($p)"
  else
    mvn_ dependency:unpack@security-plugin -Dnode.home="$W" \
      ${OS_SECURITY_VERSION:+-Dos.security.version="$OS_SECURITY_VERSION"}
    # The 2.19.6.0 zip is not on Maven Central: run the newest 2.19 one against core $OS_VERSION.
    v=$(sed -n 's/^opensearch\.version=//p' "$p/plugin-descriptor.properties")
    if [ "$v" != "$OS_VERSION" ]; then
      log "security plugin built for $v: pinning its descriptor to opensearch.version=$OS_VERSION"
      sed -i "s/^opensearch\.version=.*/opensearch.version=$OS_VERSION/" "$p/plugin-descriptor.properties"
    fi
    prune_dupes
  fi
  security_config
}

security_certs() {          # once per home: root CA, node cert, admin cert (PKCS#8 keys), 10 years
  local c="$W/config" t
  if [ -s "$c/e2e-root-ca.pem" ] && [ -s "$c/e2e-node.pem" ] && [ -s "$c/e2e-node-key.pem" ] \
     && [ -s "$c/e2e-admin.pem" ] && [ -s "$c/e2e-admin-key.pem" ]; then return 0; fi
  log "generating e2e CA, node and admin certificates in $c"
  t=$(mktemp -d "$W/.certs.XXXXXX")
  (
    cd "$t"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout e2e-root-ca-key.pem -out e2e-root-ca.pem \
      -subj "/O=mlsidecar/OU=e2e/CN=e2e-root-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    for n in node admin; do
      openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "e2e-$n-key.pem"   # PKCS#8
      openssl req -new -key "e2e-$n-key.pem" -out "e2e-$n.csr" \
        -subj "/O=mlsidecar/OU=e2e/CN=$([ $n = node ] && echo node-0 || echo admin)"
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment"
        if [ $n = node ]; then
          echo "extendedKeyUsage=serverAuth,clientAuth"
          echo "subjectAltName=DNS:localhost,DNS:node-0,IP:127.0.0.1"
        else
          echo "extendedKeyUsage=clientAuth"
        fi
      } > "e2e-$n.ext"
      openssl x509 -req -sha256 -days 3650 -in "e2e-$n.csr" -CA e2e-root-ca.pem -CAkey e2e-root-ca-key.pem \
        -set_serial "0x$(openssl rand -hex 16)" -extfile "e2e-$n.ext" -out "e2e-$n.pem"
    done
    chmod 600 ./*-key.pem
  ) > "$t/openssl.log" 2>&1 || { log "openssl failed:"; cat "$t/openssl.log" >&2; rm -rf "$t"; return 1; }
  mkdir -p "$c"
  mv -f "$t"/e2e-root-ca.pem "$t"/e2e-root-ca-key.pem "$t"/e2e-node.pem "$t"/e2e-node-key.pem \
    "$t"/e2e-admin.pem "$t"/e2e-admin-key.pem "$c/"
  rm -rf "$t"
}

security_config() {         # certs once; security/*.yml -> config/opensearch-security/ (read at first init)
  [ -f "$W/plugins/$SEC_PLUGIN/plugin-descriptor.properties" ] \
    || { log "security plugin not unpacked in $W/plugins: run 'WITH_SECURITY=1 $0 fetch' first"; return 1; }
  security_certs
  mkdir -p "$W/config/opensearch-security"
  cp -f "$D"/security/*.yml "$W/config/opensearch-security/"
  chmod -R go-rwx "$W/config"   # else the plugin warns about every file
}

security_yml() {            # the opensearch.yml part of WITH_SECURITY=1
  cat <<EOF
plugins.security.ssl.transport.pemcert_filepath: e2e-node.pem
plugins.security.ssl.transport.pemkey_filepath: e2e-node-key.pem
plugins.security.ssl.transport.pemtrustedcas_filepath: e2e-root-ca.pem
plugins.security.ssl.transport.enforce_hostname_verification: false
plugins.security.ssl.http.enabled: false
plugins.security.audit.type: noop
plugins.security.allow_default_init_securityindex: true
plugins.security.authcz.admin_dn: ["CN=admin,$SEC_DN_SUFFIX"]
plugins.security.nodes_dn: ["CN=node-0,$SEC_DN_SUFFIX"]
plugins.security.restapi.roles_enabled: ["all_access", "security_rest_api_access"]
plugins.security.enable_snapshot_restore_privilege: true
plugins.security.check_snapshot_restore_write_privileges: true
plugins.security.system_indices.enabled: true
plugins.security.system_indices.indices: [".plugins-ml-agent", ".plugins-ml-config", ".plugins-ml-connector", ".plugins-ml-controller", ".plugins-ml-model-group", ".plugins-ml-model", ".plugins-ml-task", ".plugins-ml-conversation-meta", ".plugins-ml-conversation-interactions", ".plugins-ml-memory-meta", ".plugins-ml-memory-message", ".plugins-ml-stop-words", ".opendistro-job-scheduler-lock"]
EOF
}

# --- WITH_ML=1 --------------------------------------------------------------------------------

# No trusted endpoints unless asked for: trusting every local port would let any connector reach
# any service on the machine. Tests trust their own double, here or at run time.
ml_yml() {
  cat <<'EOF'
plugins.ml_commons.only_run_on_ml_node: false
plugins.ml_commons.native_memory_threshold: 100
plugins.ml_commons.jvm_heap_memory_threshold: 100
plugins.ml_commons.disk_free_space_threshold: 0
plugins.ml_commons.connector.private_ip_enabled: true
EOF
  if [ -n "${OS_ML_TRUSTED_REGEX:-}" ]; then
    printf 'plugins.ml_commons.trusted_connector_endpoints_regex: %s\n' "$OS_ML_TRUSTED_REGEX"
  fi
}

# Ready once the plugin is listed and its stats answer (its REST handlers are up).
ml_ready() {
  local addr=$1
  curl -fsS --max-time 10 ${AUTH:+-u "$AUTH"} "http://$addr/_cat/plugins?h=component" 2>/dev/null \
    | grep -qx 'opensearch-ml' || return 1
  curl -fsS -o /dev/null --max-time 10 ${AUTH:+-u "$AUTH"} "http://$addr/_plugins/_ml/stats" 2>/dev/null
}

# --- process helpers -------------------------------------------------------------------------

# True if pid is running (a zombie, exited but not yet reaped by its parent, counts as gone).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$st" != Z ]
}

# Prints the pid from $PID_FILE if that process is alive and is our launcher for this home.
our_pid() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "e2e.TestNode $W " || return 1
  fi
  echo "$pid"
}

# --- start / wait / stop ---------------------------------------------------------------------

start() {
  local pid
  if pid=$(our_pid); then log "already running (pid $pid, home $W)"; return 1; fi
  [ -s "$CP_FILE" ] || { log "not built: run '$0 fetch' first"; return 1; }
  if [ "${OS_FRESH:-0}" = 1 ]; then rm -rf "$W/data"; fi
  mkdir -p "$W/config" "$W/logs"
  rm -f "$W/logs/http.ports" "$W/http.addr" "$PID_FILE"
  if [ -f "$LOG" ]; then mv -f "$LOG" "$LOG.prev"; fi
  if [ "${WITH_SECURITY:-0}" = 1 ]; then security_config
  elif [ -d "$W/plugins/$SEC_PLUGIN" ]; then log "note: $W has the security plugin: use WITH_SECURITY=1"; fi
  if [ "${WITH_ML:-0}" != 1 ] && [ -d "$W/plugins/opensearch-ml" ]; then log "note: $W has ML Commons: use WITH_ML=1"; fi
  if [ "${WITH_ML:-0}" = 1 ] || [ "${WITH_SECURITY:-0}" = 1 ]; then : > "$W/config/opensearch.yml"; fi
  if [ "${WITH_SECURITY:-0}" = 1 ]; then security_yml >> "$W/config/opensearch.yml"; chmod 600 "$W/config/opensearch.yml"; fi
  if [ "${WITH_ML:-0}" = 1 ]; then ml_yml >> "$W/config/opensearch.yml"; fi
  local jvm=(-Xms"$HEAP" -Xmx"$HEAP" -Xss1m -Dfile.encoding=UTF-8 -Djava.awt.headless=true -Djna.nosys=true
    -XX:-OmitStackTraceInFastThrow -XX:+ShowCodeDetailsInExceptionMessages
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true -Dio.netty.recycler.maxCapacityPerThread=0
    -Dio.netty.allocator.numDirectArenas=0 -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true
    -Djava.locale.providers=SPI,COMPAT -Dopensearch.distribution.type=tar -Dopensearch.bundled_jdk=false
    -Dopensearch.set.netty.runtime.available.processors=false -Djava.io.tmpdir="$W/tmp")
  mkdir -p "$W/tmp"
  # shellcheck disable=SC2206
  local extra=(${OS_JAVA_OPTS:-})
  nohup "$JAVA" "${jvm[@]}" "${extra[@]}" -cp "$D/target/classes:$(cat "$CP_FILE")" \
    e2e.TestNode "$W" "$PORT" > "$LOG" 2>&1 < /dev/null &
  NODE_PID=$!
  echo "$NODE_PID" > "$PID_FILE"
  log "started pid $NODE_PID (home $W, http.port $PORT, heap $HEAP)"
}

wait_ready() {
  local pid deadline addr
  pid=$(cat "$PID_FILE" 2>/dev/null) || { log "no pid file $PID_FILE: not started"; return 1; }
  deadline=$((SECONDS + WAIT_SECS))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! alive "$pid"; then
      log "node (pid $pid) died; last log lines:"; tail -n 60 "$LOG" >&2 || true; return 1
    fi
    if [ -s "$W/logs/http.ports" ]; then
      addr=$(head -n1 "$W/logs/http.ports")
      if curl -fsS -o /dev/null --max-time 10 ${AUTH:+-u "$AUTH"} \
          "http://$addr/_cluster/health?wait_for_status=yellow&timeout=5s" 2>/dev/null \
          && { [ "${WITH_ML:-0}" != 1 ] || ml_ready "$addr"; }; then
        echo "$addr" > "$W/http.addr"
        echo "ready at http://$addr"
        return 0
      fi
    fi
    sleep 0.5
  done
  log "timed out after ${WAIT_SECS}s; last log lines:"; tail -n 60 "$LOG" >&2 || true
  return 1
}

stop() {
  local pid i
  if ! pid=$(our_pid); then rm -f "$PID_FILE"; log "not running"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true      # shutdown hook closes the node
  kill -CONT "$pid" 2>/dev/null || true      # in case it was paused
  for i in $(seq 1 150); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    log "pid $pid still alive after 30s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
  fi
  # reap it if it is our child (run), so the port and node.lock are free on return
  wait "$pid" 2>/dev/null || true
  rm -f "$PID_FILE" "$W/http.addr"
  log "stopped pid $pid"
}

status() {
  local pid
  if pid=$(our_pid); then echo "running pid $pid at http://$(cat "$W/http.addr" 2>/dev/null || echo '?')"; return 0; fi
  echo "not running"; return 1
}

signal_node() {
  local pid
  pid=$(our_pid) || { log "not running"; return 1; }
  kill "-$1" "$pid"
}

run() {
  fetch
  start
  trap 'stop; exit 130' INT
  trap 'stop; exit 143' TERM
  if ! wait_ready; then stop; exit 1; fi
  log "running in the foreground; Ctrl-C stops it"
  local rc=0
  wait "$NODE_PID" || rc=$?
  # only reached if the node exited by itself (signals go through the traps)
  log "node exited on its own (rc $rc); last log lines:"; tail -n 60 "$LOG" >&2 || true
  rm -f "$PID_FILE"
  exit 1
}

case "${1:-}" in
  fetch)  fetch ;;
  start)  start ;;
  wait)   wait_ready ;;
  stop)   stop ;;
  run)    run ;;
  status) status ;;
  pause)  signal_node STOP ;;
  resume) signal_node CONT ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
