# shellcheck shell=bash
# Shared by scripts/bench-compare.sh and scripts/bench-transports.sh: building
# the binaries, installing Mosquitto, free loopback ports, starting and
# stopping one broker at a time (optionally pinned with taskset), running
# `mqtt5 bench` against it, the alternation of the brokers and the common
# lines of meta.tsv. Source it after `set -euo pipefail`, with BENCH_NAME
# (for messages and the default OUT) and DURATION set.

# --- settings common to the scripts (environment, see each script) -------------

REPS=${REPS:-3}
WARMUP=${WARMUP:-1s}
SCENARIOS=${SCENARIOS:-}
DOC=${DOC-docs/benchmarks.md}
OUT=${OUT:-$(mktemp -d "/tmp/mqtt5-$BENCH_NAME.XXXXXX")}
NOTE=${NOTE:-}
PAYLOAD=64
PROTOCOL=5
# The flags of every `mqtt5 bench` run besides the scenario's.
BENCH_COMMON=(--protocol "$PROTOCOL" --payload "$PAYLOAD" --duration "$DURATION" --warmup "$WARMUP" --quiet)

log() { echo "== $*" >&2; }
die() {
  echo "${BENCH_NAME:-bench}: $*" >&2
  exit 1
}

# --- the broker of the current run ------------------------------------------

BROKER_PID=""
# stop_broker ends the broker of the current run: TERM, then KILL after 5 s.
stop_broker() {
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}
trap stop_broker EXIT
trap 'stop_broker; exit 130' INT TERM

# --- prerequisites ------------------------------------------------------------

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  log "installing $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}
need() { # command what-for
  command -v "$1" >/dev/null 2>&1 || die "$1 ($2) is required"
}
# need_mosquitto installs Mosquitto when missing and sets MOSQUITTO. Debian
# starts a system mosquitto on 1883; the runs use their own ports, so it may
# stay.
need_mosquitto() {
  if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then apt_install mosquitto; fi
  MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
}

# bench_build builds mqtt5 (BIN) and benchreport into OUT.
bench_build() {
  mkdir -p "$OUT"
  BIN="$OUT/mqtt5"
  log "building mqtt5 and benchreport into $OUT"
  go build -o "$BIN" ./cmd/mqtt5
  go build -o "$OUT/benchreport" ./internal/bench/benchreport
}

# --- cores ----------------------------------------------------------------------

NPROC=$(nproc)
# Core 0 for the broker, the last core for the load (core 1 on two cores).
LOAD_CORE=$((NPROC - 1))

# pin CORES sets PIN to the taskset prefix of a command bound to CORES
# (a taskset list such as 0 or 0,1), or to nothing when CORES is empty.
PIN=()
pin() {
  PIN=()
  if [ -n "$1" ]; then PIN=(taskset -c "$1"); fi
}

# --- ports ------------------------------------------------------------------------

# Broker ports come from below the ephemeral range, where client sockets
# (and their TIME_WAIT) cannot be. EPHEMERAL_LO/HI is that range.
PORT_LO=10000
EPHEMERAL_LO=32768
EPHEMERAL_HI=60999
if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
  read -r EPHEMERAL_LO EPHEMERAL_HI </proc/sys/net/ipv4/ip_local_port_range
fi
PORT_HI=$((EPHEMERAL_LO - 1))

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
udp_bound() { # port
  local hex
  hex=$(printf ':%04X ' "$1")
  cat /proc/net/udp /proc/net/udp6 2>/dev/null | awk '{print $2" "}' | grep -q -- "$hex"
}
USED_PORTS=""
# pick_port VAR: a port free for TCP and UDP, distinct from USED_PORTS
# (reset it before picking the ports of one broker).
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((PORT_LO + RANDOM % (PORT_HI - PORT_LO)))
    if ! tcp_open "$p" && ! udp_bound "$p" && [[ " $USED_PORTS " != *" $p "* ]]; then
      USED_PORTS="$USED_PORTS $p"
      printf -v "$1" '%s' "$p"
      return
    fi
  done
  die "no free port found"
}
# wait_until PID COMMAND...: until COMMAND succeeds (true) or process PID is
# gone (false), 5 s at most.
wait_until() {
  local pid=$1
  shift
  for _ in $(seq 1 100); do
    if "$@"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
wait_tcp() { wait_until "$2" tcp_open "$1"; }  # port pid: until the port accepts
wait_udp() { wait_until "$2" udp_bound "$1"; } # port pid: until the port is bound

# --- brokers --------------------------------------------------------------------

# Flags of every mqtt5 broker run: nothing persisted, queues large enough
# not to throttle.
MQTT5_BROKER_FLAGS=(--sys-interval 0 --log-level warn --no-persistence --max-queued-messages 1000000 --max-queued-bytes -1)

# start_mqtt5 CORES LOG ARGS...: mqtt5 broker ARGS plus the common flags in
# the background (BROKER_PID), bound to CORES (empty: unbound). The load
# generator connects from one address: no per-address connection limit.
start_mqtt5() {
  local cores=$1 logf=$2
  shift 2
  pin "$cores"
  MQTT5_LIMITS_MAX_CONNECTIONS_PER_IP=-1 "${PIN[@]}" "$BIN" broker "$@" "${MQTT5_BROKER_FLAGS[@]}" >"$logf" 2>&1 </dev/null &
  BROKER_PID=$!
}

# mosquitto_common: Mosquitto's settings of every run: nothing persisted,
# queues and in-flight windows at least as large as mqtt5's defaults (1024
# in flight per client), so that neither broker is throttled by a smaller
# limit than the other.
mosquitto_common() {
  cat <<'EOF'
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
}

# start_mosquitto CORES CONF LOG: Mosquitto in the background (BROKER_PID).
start_mosquitto() {
  pin "$1"
  "${PIN[@]}" "$MOSQUITTO" -c "$2" >"$3" 2>&1 </dev/null &
  BROKER_PID=$!
}

# start_retry BROKER LOG COMMAND...: runs COMMAND (which starts a broker and
# fails when it does not listen) up to 3 times.
start_retry() {
  local broker=$1 logf=$2 tries=0
  shift 2
  until "$@"; do
    tries=$((tries + 1))
    if [ "$tries" -ge 3 ]; then
      log "FAILED: $broker did not start: $(tail -n 2 "$logf")"
      return 1
    fi
  done
}

# --- runs -------------------------------------------------------------------------

# broker_order REP: odd repetitions run mqtt5 first, even ones Mosquitto,
# so slow drift of the machine does not always favour the same broker.
broker_order() {
  if [ $(($1 % 2)) = 1 ]; then echo "mqtt5 mosquitto"; else echo "mosquitto mqtt5"; fi
}

# keep_rows NAMES < TSV: the lines whose first field is one of NAMES
# (space-separated), all of them when NAMES is empty.
keep_rows() {
  if [ -z "$1" ]; then
    cat
  else
    awk -F'\t' -v keep=" $1 " 'index(keep, " " $1 " ")'
  fi
}

# has_metric NAME METRICS: whether the comma-separated METRICS include NAME.
has_metric() { [[ ",$2," == *",$1,"* ]]; }

# seconds DURATION: the seconds of a Go duration such as 5s, 500ms or 1m
# (rounded up).
seconds() {
  case $1 in
  *ms) echo $(((${1%ms} + 999) / 1000)) ;;
  *s) echo "${1%s}" | cut -d. -f1 ;;
  *m) echo $((${1%m} * 60)) ;;
  *) echo "$1" ;;
  esac
}

# run_bench BASE CORES LIMIT LABEL ARGS...: mqtt5 bench ARGS against the
# broker of the current run, bound to CORES, killed after LIMIT seconds (0:
# no limit); writes BASE.json, BASE.txt and BASE.err. On failure it says
# so under LABEL, removes BASE.json and fails.
run_bench() {
  local base=$1 cores=$2 limit=$3 label=$4
  shift 4
  local bound=()
  if [ "$limit" -gt 0 ]; then bound=(timeout -k 5 "$limit"); fi
  pin "$cores"
  if ! "${bound[@]}" "${PIN[@]}" "$BIN" bench "$@" --pid "$BROKER_PID" --json "$base.json" >"$base.txt" 2>"$base.err" </dev/null; then
    log "FAILED: $label: $(tail -n 3 "$base.err" | tr '\n' ' ')"
    rm -f "$base.json"
    return 1
  fi
}

# summary BASE LABEL FIELDS: one log line of the fields (a regular
# expression of line names) of BASE.txt, when the run left a result.
summary() {
  if [ -s "$1.json" ]; then
    log "$2: $(grep -E "^  ($3) " "$1.txt" | sed 's/^ *//' | tr -s ' ' | paste -sd ';' -)"
  fi
}

# --- report -----------------------------------------------------------------------

# meta_common START_DATE: the first lines of meta.tsv (date, machine,
# kernel, Go, mqtt5).
meta_common() {
  local cpu_model
  cpu_model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)
  printf 'Date\t%s\n' "$1"
  printf 'Machine\t%s cores (nproc), %s, %s MiB RAM\n' "$NPROC" "${cpu_model:-unknown CPU}" "$(awk '/MemTotal/ {printf "%d", $2/1024}' /proc/meminfo 2>/dev/null || echo '?')"
  printf 'Kernel\t%s\n' "$(uname -sr)"
  printf 'Go\t%s\n' "$(go version | awk '{print $3}')"
  printf 'mqtt5\t%s\n' "$("$BIN" version | head -n1)"
}

# report MODE FILE DOC: renders OUT with benchreport -mode MODE into
# OUT/FILE and, when DOC is not empty, into DOC between the markers of that
# mode.
report() {
  "$OUT/benchreport" -mode "$1" -dir "$OUT" >"$OUT/$2"
  if [ -n "$3" ]; then
    "$OUT/benchreport" -mode "$1" -dir "$OUT" -doc "$3"
    log "updated $3"
  fi
}
