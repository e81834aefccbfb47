#!/usr/bin/env bash
# Compare the mqtt5 broker with Mosquitto using `mqtt5 bench`, and write the
# tables into docs/benchmarks.md (between the bench-compare markers; the
# hand-written text around them stays).
#
# Every scenario runs against both brokers in one go, alternating which
# broker goes first, REPS times. Each run gets a freshly started broker, so
# runs do not inherit each other's state (and idle memory is measured from a
# clean process). Two tables:
#   pinned    broker on core 0, load generator on core 1 (taskset)
#   unpinned  broker and load generator both free to use every core
#
# Environment:
#   REPS=3          repetitions per scenario and broker (at least 3 for the doc)
#   DURATION=10s    measurement time of each run
#   WARMUP=1s       warm-up before it
#   IDLE_CONNS=10000  connections of the idle scenario
#   TABLES="pinned unpinned"
#   SCENARIOS=""    run only these scenario names (space-separated)
#   DOC=docs/benchmarks.md  ("" to skip writing it)
#   OUT=<temp dir>  where the JSON results go (kept)
#   NOTE=""         a sentence for the conditions line of the doc
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REPS=${REPS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
IDLE_CONNS=${IDLE_CONNS:-10000}
TABLES=${TABLES:-"pinned unpinned"}
SCENARIOS=${SCENARIOS:-}
DOC=${DOC-docs/benchmarks.md}
OUT=${OUT:-$(mktemp -d /tmp/mqtt5-bench-compare.XXXXXX)}
NOTE=${NOTE:-}
PAYLOAD=64
PROTOCOL=5

log() { echo "== $*" >&2; }
die() { echo "bench-compare: $*" >&2; exit 1; }

# --- brokers and cleanup ----------------------------------------------------

BROKER_PID=""
cleanup() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  log "installing mosquitto"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq mosquitto >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
# Debian starts a system mosquitto on 1883; we use our own ports, so it may stay.
command -v taskset >/dev/null 2>&1 || die "taskset (util-linux) is required"
command -v go >/dev/null 2>&1 || die "go is required"

NPROC=$(nproc)
if [ "$NPROC" -lt 2 ]; then
  log "only $NPROC core: skipping the pinned table"
  TABLES=${TABLES//pinned/}
fi
# Core 0 for the broker, the last core for the load (core 1 on two cores).
LOAD_CORE=$((NPROC - 1))

# File descriptors: the generator holds IDLE_CONNS sockets, the broker as many.
want_fds=$((IDLE_CONNS + 1024))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
have_fds=$(ulimit -n)
if [ "$have_fds" != unlimited ] && [ "$have_fds" -lt "$want_fds" ]; then
  die "ulimit -n is $have_fds, need $want_fds for $IDLE_CONNS connections (raise the hard limit or lower IDLE_CONNS)"
fi
# Ephemeral ports for the client side of the idle connections.
if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
  read -r plo phi </proc/sys/net/ipv4/ip_local_port_range
  if [ $((phi - plo)) -lt $((IDLE_CONNS + 1000)) ]; then
    die "ip_local_port_range $plo-$phi is too small for $IDLE_CONNS connections (sysctl -w net.ipv4.ip_local_port_range='1024 65000')"
  fi
fi

BIN="$OUT/mqtt5"
log "building mqtt5 and benchreport into $OUT"
mkdir -p "$OUT"
go build -o "$BIN" ./cmd/mqtt5
go build -o "$OUT/benchreport" ./internal/bench/benchreport

# Broker ports come from below the ephemeral range, where the thousands of
# client sockets of the idle runs (and their TIME_WAIT) cannot be.
PORT_LO=10000
PORT_HI=${plo:-32768}
PORT_HI=$((PORT_HI - 1))
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((PORT_LO + RANDOM % (PORT_HI - PORT_LO)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

wait_port() { # port pid
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# start_broker KIND PIN PORT LOG: sets BROKER_PID; fails if it does not listen.
start_broker() {
  local kind=$1 pin=$2 port=$3 logf=$4
  local prefix=()
  [ "$pin" = pinned ] && prefix=(taskset -c 0)
  case $kind in
  mqtt5)
    MQTT5_LIMITS_MAX_CONNECTIONS_PER_IP=-1 "${prefix[@]}" "$BIN" broker --listen "127.0.0.1:$port" --sys-interval 0 --log-level warn --no-persistence --max-queued-messages 1000000 --max-queued-bytes -1 >"$logf" 2>&1 &
    ;;
  mosquitto)
    local conf="$OUT/mosquitto-$port.conf"
    sed "s/@PORT@/$port/" "$OUT/mosquitto.conf.in" >"$conf"
    "${prefix[@]}" "$MOSQUITTO" -c "$conf" >"$logf" 2>&1 &
    ;;
  esac
  BROKER_PID=$!
  if ! wait_port "$port" "$BROKER_PID"; then
    cleanup
    return 1
  fi
}

# Mosquitto's configuration: nothing persisted, queues and in-flight windows
# at least as large as mqtt5's defaults (1024 in flight per client), so that
# neither broker is throttled by a smaller limit than the other.
cat >"$OUT/mosquitto.conf.in" <<'EOF'
listener @PORT@ 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 1024
max_connections -1
set_tcp_nodelay true
connection_messages false
log_dest stderr
log_type error
log_type warning
EOF

# --- scenarios ---------------------------------------------------------------

# name TAB label TAB metrics TAB bench arguments
cat >"$OUT/scenarios.tsv" <<EOF
fanin-q0	fan-in QoS 0 (4→1)	throughput	fan-in --qos 0 --publishers 4
fanin-q1	fan-in QoS 1 (4→1, window 20)	throughput	fan-in --qos 1 --publishers 4 --window 20
fanout-q0	fan-out QoS 0 (1→50)	throughput	fan-out --qos 0 --subscribers 50
p2p-q1	point-to-point QoS 1 (50 pairs)	throughput	p2p --qos 1 --pairs 50 --window 20
latency-q1	latency, fan-in QoS 1 at 10,000 msg/s	p99,p50	latency --qos 1 --publishers 4 --rate 10000 --window 20
idle	idle connections ($IDLE_CONNS)	bytes_per_conn,connect_rate	idle --connections $IDLE_CONNS
EOF
if [ -n "$SCENARIOS" ]; then
  awk -F'\t' -v keep=" $SCENARIOS " 'index(keep, " " $1 " ")' "$OUT/scenarios.tsv" >"$OUT/scenarios.tmp"
  mv "$OUT/scenarios.tmp" "$OUT/scenarios.tsv"
fi
printf 'mqtt5\tmqtt5\nmosquitto\tMosquitto\n' >"$OUT/brokers.tsv"
: >"$OUT/tables.tsv"
for t in $TABLES; do
  case $t in
  pinned) printf 'pinned\tBroker on one core, load generator on another\tEach broker is pinned to core 0 and `mqtt5 bench` to core %s with `taskset`, so the broker has exactly one core and the generator another.\n' "$LOAD_CORE" >>"$OUT/tables.tsv" ;;
  unpinned) printf 'unpinned\tBroker and load generator sharing all %s cores\tNo pinning: the broker may use every core (the scaling figure), and the load generator competes with it for them.\n' "$NPROC" >>"$OUT/tables.tsv" ;;
  *) die "unknown table $t" ;;
  esac
done

bench_common=(--protocol "$PROTOCOL" --payload "$PAYLOAD" --duration "$DURATION" --warmup "$WARMUP" --quiet)

{
  echo "# brokers (one fresh process per run; PORT is a free loopback port)"
  echo "mqtt5 broker --listen 127.0.0.1:PORT --sys-interval 0 --log-level warn --no-persistence --max-queued-messages 1000000 --max-queued-bytes -1"
  echo "mosquitto -c mosquitto.conf   # $(grep -v '^listener' "$OUT/mosquitto.conf.in" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  echo "# pinned table: taskset -c 0 <broker>; taskset -c $LOAD_CORE mqtt5 bench ...; unpinned: no taskset"
  echo "# load, per scenario (the idle duration is how long the connections are held)"
  while IFS=$'\t' read -r _ _ _ args; do
    echo "mqtt5 bench $args ${bench_common[*]} --url mqtt://127.0.0.1:PORT --pid BROKER_PID --json RESULT.json"
  done <"$OUT/scenarios.tsv"
} >"$OUT/commands.txt"

# --- runs ----------------------------------------------------------------------

run_one() { # table scenario args broker rep
  local table=$1 name=$2 args=$3 broker=$4 rep=$5
  local dir="$OUT/$table/$name"
  mkdir -p "$dir"
  local port tries=0
  while :; do
    port=$(free_port)
    start_broker "$broker" "$table" "$port" "$dir/$broker-$rep.broker.log" && break
    tries=$((tries + 1))
    if [ "$tries" -ge 3 ]; then
      log "FAILED: $broker did not start: $(tail -n 2 "$dir/$broker-$rep.broker.log")"
      return 0
    fi
  done
  local prefix=()
  [ "$table" = pinned ] && prefix=(taskset -c "$LOAD_CORE")
  # shellcheck disable=SC2086
  if ! "${prefix[@]}" "$BIN" bench $args "${bench_common[@]}" --url "mqtt://127.0.0.1:$port" --pid "$BROKER_PID" \
    --json "$dir/$broker-$rep.json" >"$dir/$broker-$rep.txt" 2>"$dir/$broker-$rep.err"; then
    log "FAILED: $table $name $broker #$rep: $(tail -n 3 "$dir/$broker-$rep.err")"
    rm -f "$dir/$broker-$rep.json"
  fi
  cleanup
  if [ -s "$dir/$broker-$rep.json" ]; then
    log "$table $name $broker #$rep: $(grep -E '^  (delivered|latency|broker memory|accounting) ' "$dir/$broker-$rep.txt" | sed 's/^ *//' | tr -s ' ' | paste -sd ';' -)"
  fi
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
for table in $TABLES; do
  for rep in $(seq 1 "$REPS"); do
    # Alternate which broker goes first, so slow drift of the machine does
    # not always favour the same one.
    if [ $((rep % 2)) = 1 ]; then order="mqtt5 mosquitto"; else order="mosquitto mqtt5"; fi
    while IFS=$'\t' read -r name _ _ args; do
      for broker in $order; do
        run_one "$table" "$name" "$args" "$broker" "$rep"
      done
    done <"$OUT/scenarios.tsv"
  done
done

# --- report --------------------------------------------------------------------

cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
{
  printf 'Date\t%s\n' "$START_DATE"
  printf 'Machine\t%s cores (nproc), %s, %s MiB RAM\n' "$NPROC" "${cpu_model:-unknown CPU}" "$(awk '/MemTotal/ {printf "%d", $2/1024}' /proc/meminfo 2>/dev/null || echo '?')"
  printf 'Kernel\t%s\n' "$(uname -sr)"
  printf 'Go\t%s\n' "$(go version | awk '{print $3}')"
  printf 'mqtt5\t%s\n' "$("$BIN" version | head -n1)"
  printf 'Mosquitto\t%s\n' "$("$MOSQUITTO" -h 2>/dev/null | head -n1 || true)"
  printf 'Runs\t%s repetition(s) per broker and scenario, %s measured after %s warm-up, MQTT %s, %d-byte payloads, a fresh broker process per run\n' "$REPS" "$DURATION" "$WARMUP" "$PROTOCOL" "$PAYLOAD"
  if [ -n "$NOTE" ]; then printf 'Conditions\t%s\n' "$NOTE"; fi
} >"$OUT/meta.tsv"

"$OUT/benchreport" -dir "$OUT" >"$OUT/report.md"
if [ -n "$DOC" ]; then
  "$OUT/benchreport" -dir "$OUT" -doc "$DOC"
  log "updated $DOC"
fi
cat "$OUT/report.md"
log "results in $OUT"
