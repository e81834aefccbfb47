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
# With SCALING=1, each throughput scenario also runs with the broker and the
# load generator both bound to the same two cores (0 and 1), right after its
# pinned run, and a scaling table (pinned, both cores, ratio, per broker) is
# written between the bench-scaling markers.
#
# Environment:
#   REPS=3          repetitions per scenario and broker (at least 3 for the doc)
#   DURATION=10s    measurement time of each run
#   WARMUP=1s       warm-up before it
#   IDLE_CONNS=10000  connections of the idle scenario
#   TABLES="pinned unpinned"
#   SCALING=0       1: add the both-cores runs and the scaling table (adds
#                   pinned to TABLES when missing)
#   SCENARIOS=""    run only these scenario names (space-separated)
#   DOC=docs/benchmarks.md  ("" to skip writing it; any other path works, a
#                   missing file gets the markers appended)
#   OUT=<temp dir>  where the JSON results go (kept)
#   NOTE=""         a sentence for the conditions line of the doc
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
IDLE_CONNS=${IDLE_CONNS:-10000}
TABLES=${TABLES:-"pinned unpinned"}
SCALING=${SCALING:-0}

BENCH_NAME=bench-compare
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

# --- prerequisites ------------------------------------------------------------

need_mosquitto
need taskset util-linux
need go "the Go toolchain"

if [ "$NPROC" -lt 2 ]; then
  [ "$SCALING" = 1 ] && die "SCALING=1 needs at least 2 cores"
  log "only $NPROC core: skipping the pinned table"
  TABLES=${TABLES//pinned/}
fi
case $SCALING in
0) ;;
1) case " $TABLES " in *" pinned "*) ;; *) TABLES="pinned $TABLES" ;; esac ;;
*) die "SCALING must be 0 or 1" ;;
esac
# The scaling runs bind broker and load to the cores of the pinned runs.
BOTH_CORES="0,$LOAD_CORE"

# File descriptors: the generator holds IDLE_CONNS sockets, the broker as many.
want_fds=$((IDLE_CONNS + 1024))
ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
have_fds=$(ulimit -n)
if [ "$have_fds" != unlimited ] && [ "$have_fds" -lt "$want_fds" ]; then
  die "ulimit -n is $have_fds, need $want_fds for $IDLE_CONNS connections (raise the hard limit or lower IDLE_CONNS)"
fi
# Ephemeral ports for the client side of the idle connections.
if [ $((EPHEMERAL_HI - EPHEMERAL_LO)) -lt $((IDLE_CONNS + 1000)) ]; then
  die "ip_local_port_range $EPHEMERAL_LO-$EPHEMERAL_HI is too small for $IDLE_CONNS connections (sysctl -w net.ipv4.ip_local_port_range='1024 65000')"
fi

bench_build

# table_cores TABLE: the cores of the broker (BROKER_CORES) and of the load
# generator (LOAD_CORES) in TABLE; empty is unbound.
table_cores() {
  case $1 in
  pinned) BROKER_CORES=0 LOAD_CORES=$LOAD_CORE ;;
  both) BROKER_CORES=$BOTH_CORES LOAD_CORES=$BOTH_CORES ;;
  *) BROKER_CORES="" LOAD_CORES="" ;;
  esac
}

# start_broker KIND TABLE LOG: a fresh broker on a free port (PORT, BROKER_PID);
# fails if it does not listen.
start_broker() {
  local kind=$1 logf=$3
  table_cores "$2"
  USED_PORTS=""
  pick_port PORT
  case $kind in
  mqtt5) start_mqtt5 "$BROKER_CORES" "$logf" --listen "127.0.0.1:$PORT" ;;
  mosquitto)
    local conf="$OUT/mosquitto-$PORT.conf"
    sed "s/@PORT@/$PORT/" "$OUT/mosquitto.conf.in" >"$conf"
    start_mosquitto "$BROKER_CORES" "$conf" "$logf"
    ;;
  esac
  wait_tcp "$PORT" "$BROKER_PID" || {
    stop_broker
    return 1
  }
}

{
  echo "listener @PORT@ 127.0.0.1"
  mosquitto_common
} >"$OUT/mosquitto.conf.in"

# --- scenarios ---------------------------------------------------------------

# name TAB label TAB metrics TAB bench arguments
keep_rows "$SCENARIOS" >"$OUT/scenarios.tsv" <<EOF
fanin-q0	fan-in QoS 0 (4→1)	throughput	fan-in --qos 0 --publishers 4
fanin-q1	fan-in QoS 1 (4→1, window 20)	throughput	fan-in --qos 1 --publishers 4 --window 20
fanout-q0	fan-out QoS 0 (1→50)	throughput	fan-out --qos 0 --subscribers 50
p2p-q1	point-to-point QoS 1 (50 pairs)	throughput	p2p --qos 1 --pairs 50 --window 20
shared-q0	shared-subscription fan-in QoS 0 (4→\$share group of 4)	throughput	shared --qos 0 --publishers 4 --subscribers 4
shared-q1	shared-subscription fan-in QoS 1 (4→\$share group of 4, window 20)	throughput	shared --qos 1 --publishers 4 --subscribers 4 --window 20
latency-q1	latency, fan-in QoS 1 at 10,000 msg/s	p99,p50	latency --qos 1 --publishers 4 --rate 10000 --window 20
idle	idle connections ($IDLE_CONNS)	bytes_per_conn,connect_rate	idle --connections $IDLE_CONNS
EOF
[ -s "$OUT/scenarios.tsv" ] || die "no scenario selected"
printf 'mqtt5\tmqtt5\nmosquitto\tMosquitto\n' >"$OUT/brokers.tsv"
: >"$OUT/tables.tsv"
for t in $TABLES; do
  case $t in
  pinned) printf 'pinned\tBroker on one core, load generator on another\tEach broker is pinned to core 0 and `mqtt5 bench` to core %s with `taskset`, so the broker has exactly one core and the generator another.\n' "$LOAD_CORE" >>"$OUT/tables.tsv" ;;
  unpinned) printf 'unpinned\tBroker and load generator sharing all %s cores\tNo pinning: the broker may use every core (the scaling figure), and the load generator competes with it for them.\n' "$NPROC" >>"$OUT/tables.tsv" ;;
  *) die "unknown table $t" ;;
  esac
done
rm -f "$OUT/scaling.tsv"
if [ "$SCALING" = 1 ]; then
  printf 'pinned\tpinned\tboth\tboth cores\tScaling: one core, then two shared with the load generator\tEach throughput scenario, right after its run with the broker pinned to core 0 and `mqtt5 bench` to core %s, runs again with the broker and `mqtt5 bench` both bound to cores %s (`taskset -c %s` for each), so the broker may use both cores but shares them with the load. The ratio is both cores / pinned for the same broker.\n' \
    "$LOAD_CORE" "$BOTH_CORES" "$BOTH_CORES" >"$OUT/scaling.tsv"
fi

{
  echo "# brokers (one fresh process per run; PORT is a free loopback port)"
  echo "mqtt5 broker --listen 127.0.0.1:PORT ${MQTT5_BROKER_FLAGS[*]}"
  echo "mosquitto -c mosquitto.conf   # $(mosquitto_common | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
  echo "# pinned table: taskset -c 0 <broker>; taskset -c $LOAD_CORE mqtt5 bench ...; unpinned: no taskset"
  if [ "$SCALING" = 1 ]; then
    echo "# scaling (throughput scenarios, after each pinned run): taskset -c $BOTH_CORES <broker>; taskset -c $BOTH_CORES mqtt5 bench ..."
  fi
  echo "# load, per scenario (the idle duration is how long the connections are held)"
  while IFS=$'\t' read -r _ _ _ args; do
    echo "mqtt5 bench $args ${BENCH_COMMON[*]} --url mqtt://127.0.0.1:PORT --pid BROKER_PID --json RESULT.json"
  done <"$OUT/scenarios.tsv"
} >"$OUT/commands.txt"

# --- runs ----------------------------------------------------------------------

run_one() { # table scenario args broker rep
  local table=$1 name=$2 args=$3 broker=$4 rep=$5
  local dir="$OUT/$table/$name"
  mkdir -p "$dir"
  local base="$dir/$broker-$rep"
  start_retry "$broker" "$base.broker.log" start_broker "$broker" "$table" "$base.broker.log" || return 0
  # shellcheck disable=SC2086
  run_bench "$base" "$LOAD_CORES" 0 "$table $name $broker #$rep" $args "${BENCH_COMMON[@]}" --url "mqtt://127.0.0.1:$PORT" || true
  stop_broker
  summary "$base" "$table $name $broker #$rep" 'delivered|latency|broker memory|accounting'
}

START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
for table in $TABLES; do
  for rep in $(seq 1 "$REPS"); do
    order=$(broker_order "$rep")
    while IFS=$'\t' read -r name _ metrics args; do
      for broker in $order; do
        run_one "$table" "$name" "$args" "$broker" "$rep"
        if [ "$table" = pinned ] && [ "$SCALING" = 1 ] && has_metric throughput "$metrics"; then
          run_one both "$name" "$args" "$broker" "$rep"
        fi
      done
    done <"$OUT/scenarios.tsv"
  done
done

# --- report --------------------------------------------------------------------

{
  meta_common "$START_DATE"
  printf 'Mosquitto\t%s\n' "$("$MOSQUITTO" -h 2>/dev/null | head -n1 || true)"
  printf 'Runs\t%s repetition(s) per broker and scenario, %s measured after %s warm-up, MQTT %s, %d-byte payloads, a fresh broker process per run\n' "$REPS" "$DURATION" "$WARMUP" "$PROTOCOL" "$PAYLOAD"
  if [ -n "$NOTE" ]; then printf 'Conditions\t%s\n' "$NOTE"; fi
} >"$OUT/meta.tsv"

report compare report.md "$DOC"
cat "$OUT/report.md"
if [ "$SCALING" = 1 ]; then
  report scaling report-scaling.md "$DOC"
  cat "$OUT/report-scaling.md"
fi
log "results in $OUT"
