#!/usr/bin/env bash
# Throughput and latency of the mqtt5 broker on each transport (mqtt, mqtts,
# ws, wss, quic), side by side with Mosquitto on the transports it has, and
# the QUIC stream strategies of client and broker. Writes the tables into
# docs/benchmarks.md between <!-- bench-transports:begin --> and
# <!-- bench-transports:end --> (the text around them stays).
#
# Each run gets a freshly started broker pinned to core 0 (taskset) with
# every listener of its kind open; `mqtt5 bench` runs pinned to the last core
# (core 1 on two cores). Per scenario the brokers alternate which goes first,
# REPS times. TLS uses a throw-away CA and server certificate for
# 127.0.0.1/localhost made with openssl in OUT.
#
# Environment:
#   REPS=3          repetitions per transport, scenario and broker
#   DURATION=5s     measurement time of each run
#   WARMUP=1s       warm-up before it
#   RATE=5000       total msg/s of the latency scenario
#   TRANSPORTS=""   run only these transport rows (space-separated names of
#                   transports.tsv: mqtt mqtts ws wss quic quic-dpt quic-single quic-bctl)
#   SCENARIOS=""    run only these scenario names (fanin-q0 fanin-q1 latency-q1)
#   DOC=docs/benchmarks.md  ("" to skip writing it; any other path works, a
#                   missing file gets the markers appended)
#   OUT=<temp dir>  where certificates, logs and JSON results go (kept)
#   NOTE=""         a sentence for the conditions line of the doc
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
RATE=${RATE:-5000}
TRANSPORTS=${TRANSPORTS:-}

BENCH_NAME=bench-transports
# shellcheck source=scripts/lib/bench.sh
. scripts/lib/bench.sh

# --- prerequisites ------------------------------------------------------------

need_mosquitto
command -v openssl >/dev/null 2>&1 || apt_install openssl
need taskset util-linux
need timeout coreutils
need go "the Go toolchain"
[ "$NPROC" -ge 2 ] || die "needs at least 2 cores (broker on core 0, load on another)"

# Hard bound of one bench run: measurement, warm-up, 2 s grace, connecting.
RUN_LIMIT=$(($(seconds "$DURATION") + $(seconds "$WARMUP") + 40))

bench_build

# --- certificates ---------------------------------------------------------------

CA="$OUT/ca.crt"
CERT="$OUT/server.crt"
KEY="$OUT/server.key"
cat >"$OUT/certs.sh" <<'EOF'
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=mqtt5-bench-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.crt
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -keyout server.key -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >server.ext
openssl x509 -req -days 2 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile server.ext -out server.crt
EOF
log "making a CA and a server certificate for 127.0.0.1/localhost"
(cd "$OUT" && bash -e certs.sh >certs.log 2>&1) || die "openssl failed: $(tail -n 3 "$OUT/certs.log")"
openssl verify -CAfile "$CA" "$CERT" >/dev/null || die "server certificate does not verify"
# Mosquitto drops privileges to its own user when started as root; let it
# read the certificates.
chmod 755 "$OUT"
chmod 644 "$CA" "$CERT" "$KEY"

# --- broker configurations ------------------------------------------------------

# mosquitto_conf WITH_WS WITH_WSS: the template, ports as @MQTT@ @MQTTS@ @WS@ @WSS@.
mosquitto_conf() {
  echo "listener @MQTT@ 127.0.0.1"
  printf 'listener @MQTTS@ 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n' "$CA" "$CERT" "$KEY"
  [ "$1" = yes ] && printf 'listener @WS@ 127.0.0.1\nprotocol websockets\n'
  [ "$2" = yes ] && printf 'listener @WSS@ 127.0.0.1\nprotocol websockets\ncafile %s\ncertfile %s\nkeyfile %s\n' "$CA" "$CERT" "$KEY"
  mosquitto_common
}

# start_broker KIND DELIVERY LOG: sets BROKER_PID and the P_* ports; fails
# if a listener does not come up.
start_broker() {
  local kind=$1 delivery=$2 logf=$3
  USED_PORTS=""
  pick_port P_MQTT; pick_port P_MQTTS; pick_port P_WS; pick_port P_WSS; pick_port P_QUIC
  local tcp=("$P_MQTT" "$P_MQTTS")
  case $kind in
  mqtt5)
    start_mqtt5 0 "$logf" --listen "mqtt://127.0.0.1:$P_MQTT" --listen "mqtts://127.0.0.1:$P_MQTTS" \
      --listen "ws://127.0.0.1:$P_WS/mqtt" --listen "wss://127.0.0.1:$P_WSS/mqtt" --listen "quic://127.0.0.1:$P_QUIC" \
      --tls-cert "$CERT" --tls-key "$KEY" --quic-delivery "$delivery"
    tcp+=("$P_WS" "$P_WSS")
    ;;
  mosquitto)
    local conf="$OUT/mosquitto-$P_MQTT.conf"
    sed "s/@MQTT@/$P_MQTT/; s/@MQTTS@/$P_MQTTS/; s/@WS@/$P_WS/; s/@WSS@/$P_WSS/" "$OUT/mosquitto.conf.in" >"$conf"
    start_mosquitto 0 "$conf" "$logf"
    [ "$MOSQ_WS" = yes ] && tcp+=("$P_WS")
    [ "$MOSQ_WSS" = yes ] && tcp+=("$P_WSS")
    ;;
  esac
  local p
  for p in "${tcp[@]}"; do
    wait_tcp "$p" "$BROKER_PID" || { stop_broker; return 1; }
  done
  if [ "$kind" = mqtt5 ]; then
    wait_udp "$P_QUIC" "$BROKER_PID" || { stop_broker; return 1; }
  fi
}

# Which websocket listeners Mosquitto starts with (a build without
# libwebsockets refuses the configuration).
MOSQ_WS=no MOSQ_WSS=no
for try in "yes yes" "yes no" "no no"; do
  read -r MOSQ_WS MOSQ_WSS <<<"$try"
  mosquitto_conf "$MOSQ_WS" "$MOSQ_WSS" >"$OUT/mosquitto.conf.in"
  if start_broker mosquitto - "$OUT/mosquitto-probe.log"; then
    stop_broker
    break
  fi
  log "mosquitto does not start with ws=$MOSQ_WS wss=$MOSQ_WSS: $(tail -n 2 "$OUT/mosquitto-probe.log" | tr '\n' ' ')"
  [ "$try" = "no no" ] && die "mosquitto does not start"
done
log "mosquitto listeners: mqtt mqtts$([ "$MOSQ_WS" = yes ] && echo ' ws')$([ "$MOSQ_WSS" = yes ] && echo ' wss')"

# --- transports and scenarios ----------------------------------------------------

# name TAB label TAB mosquitto has it TAB scheme TAB bench flags TAB broker --quic-delivery
cat >"$OUT/transports.all" <<EOF
mqtt	mqtt:// (TCP)	yes	mqtt	-	per_topic
mqtts	mqtts:// (TLS over TCP)	yes	mqtts	--cafile CA	per_topic
ws	ws:// (WebSocket)	$MOSQ_WS	ws	-	per_topic
wss	wss:// (WebSocket over TLS)	$MOSQ_WSS	wss	--cafile CA	per_topic
quic	quic:// (multistream, defaults)	no	quic	--cafile CA --quic-strategy control_only	per_topic
quic-dpt	quic:// multistream, client data_per_topic, broker per_topic	no	quic	--cafile CA --quic-strategy data_per_topic	per_topic
quic-single	quic:// single stream (--quic-single)	no	quic	--cafile CA --quic-single	per_topic
quic-bctl	quic:// multistream, client control_only, broker control_only	no	quic	--cafile CA --quic-strategy control_only	control_only
EOF
keep_rows "$TRANSPORTS" <"$OUT/transports.all" >"$OUT/transports.run"
cut -f1-3 "$OUT/transports.run" >"$OUT/transports.tsv"

# name TAB label TAB metrics TAB bench arguments
keep_rows "$SCENARIOS" >"$OUT/scenarios.tsv" <<EOF
fanin-q0	fan-in QoS 0 (4→1)	throughput	fan-in --qos 0 --publishers 4 --window 20
fanin-q1	fan-in QoS 1 (4→1, window 20)	throughput	fan-in --qos 1 --publishers 4 --window 20
latency-q1	latency, fan-in QoS 1 at $RATE msg/s	p50,p99	latency --qos 1 --publishers 4 --rate $RATE --window 20
EOF
printf 'mqtt5\tmqtt5\nmosquitto\tMosquitto\n' >"$OUT/brokers.tsv"

present() { # names...: those of them in this run
  local n out=""
  for n in "$@"; do
    if cut -f1 "$OUT/transports.run" | grep -qx "$n"; then out="$out $n"; fi
  done
  echo "${out# }"
}
main_rows=$(present mqtt mqtts ws wss quic)
quic_rows=$(present quic quic-dpt quic-single quic-bctl)
: >"$OUT/tables.tsv"
if [ -n "$main_rows" ]; then
  printf 'all\tmqtt5 and Mosquitto per transport\tFour publishers → one subscriber on a wildcard filter, %d-byte payloads, MQTT %s; each broker pinned to core 0, `mqtt5 bench` to core %s. Both brokers run with all their listeners open (mqtt5: mqtt, mqtts, ws, wss, quic; Mosquitto: all but quic) and the certificate of a throw-away CA, which the generator verifies. The quic row uses the defaults: multistream (ALPN MQTT-next), client strategy control_only (publishers and subscriber on the control stream), broker delivery per_topic.\t%s\t-\n' \
    "$PAYLOAD" "$PROTOCOL" "$LOAD_CORE" "$main_rows" >>"$OUT/tables.tsv"
fi
if [ -n "$quic_rows" ] && [ "$quic_rows" != quic ]; then
  case " $quic_rows " in *" quic "*) ;; *) die "the quic strategy rows are compared with the quic row: add quic to TRANSPORTS" ;; esac
  printf 'quic\tQUIC stream strategies (mqtt5 only)\tThe same runs over quic:// with other stream strategies: the client'"'"'s (`mqtt5 bench --quic-strategy`, which the subscriber follows too: with data_per_topic it subscribes on a data stream, and deliveries follow that stream), single-stream mode (`--quic-single`, ALPN mqtt), and the broker'"'"'s delivery to a subscriber on the control stream (`mqtt5 broker --quic-delivery`). The ratio column divides by the first row, the default quic:// of the table above.\t%s\t%s\n' \
    "$quic_rows" quic >>"$OUT/tables.tsv"
fi
[ -s "$OUT/tables.tsv" ] || die "no transport selected"

url_of() { # scheme
  case $1 in
  mqtt) echo "mqtt://127.0.0.1:$P_MQTT" ;;
  mqtts) echo "mqtts://127.0.0.1:$P_MQTTS" ;;
  ws) echo "ws://127.0.0.1:$P_WS/mqtt" ;;
  wss) echo "wss://127.0.0.1:$P_WSS/mqtt" ;;
  quic) echo "quic://127.0.0.1:$P_QUIC" ;;
  esac
}

{
  echo "# throw-away CA and server certificate (in OUT)"
  cat "$OUT/certs.sh"
  echo "# brokers: one fresh process per run, pinned with taskset -c 0; ports are free loopback ports"
  echo "taskset -c 0 mqtt5 broker --listen mqtt://127.0.0.1:P1 --listen mqtts://127.0.0.1:P2 --listen ws://127.0.0.1:P3/mqtt --listen wss://127.0.0.1:P4/mqtt --listen quic://127.0.0.1:P5 --tls-cert server.crt --tls-key server.key --quic-delivery per_topic|control_only ${MQTT5_BROKER_FLAGS[*]}"
  echo "taskset -c 0 mosquitto -c mosquitto.conf"
  mosquitto_conf "$MOSQ_WS" "$MOSQ_WSS" | sed "s|$OUT/||; s/@MQTT@/P1/; s/@MQTTS@/P2/; s/@WS@/P3/; s/@WSS@/P4/; s/^/#   /"
  echo "# load: taskset -c $LOAD_CORE mqtt5 bench SCENARIO ${BENCH_COMMON[*]} --url URL [FLAGS] --pid BROKER_PID --json RESULT.json"
  echo "# SCENARIO:"
  while IFS=$'\t' read -r _ _ _ args; do
    echo "#   $args"
  done <"$OUT/scenarios.tsv"
  echo "# URL [FLAGS] per transport row (broker --quic-delivery for quic rows):"
  P_MQTT=P1 P_MQTTS=P2 P_WS=P3 P_WSS=P4 P_QUIC=P5
  while IFS=$'\t' read -r name _ _ scheme flags delivery; do
    [ "$flags" = - ] && flags="" || flags=" ${flags//CA/ca.crt}"
    echo "#   $name: $(url_of "$scheme")$flags$([ "$scheme" = quic ] && echo "   (broker --quic-delivery $delivery)")"
  done <"$OUT/transports.run"
} >"$OUT/commands.txt"

# --- runs ----------------------------------------------------------------------

FAILED=0
run_one() { # transport scheme flags delivery scenario args broker rep
  local tname=$1 scheme=$2 flags=$3 delivery=$4 name=$5 args=$6 broker=$7 rep=$8
  local dir="$OUT/$tname/$name"
  mkdir -p "$dir"
  local base="$dir/$broker-$rep"
  if ! start_retry "$broker" "$base.broker.log" start_broker "$broker" "$delivery" "$base.broker.log"; then
    FAILED=$((FAILED + 1))
    return 0
  fi
  local extra=()
  # shellcheck disable=SC2206
  [ "$flags" != - ] && extra=(${flags//CA/$CA})
  # shellcheck disable=SC2086
  run_bench "$base" "$LOAD_CORE" "$RUN_LIMIT" "$tname $name $broker #$rep" $args "${BENCH_COMMON[@]}" --url "$(url_of "$scheme")" "${extra[@]}" ||
    FAILED=$((FAILED + 1))
  stop_broker
  summary "$base" "$tname $name $broker #$rep" 'delivered|latency|broker process|generator cpu|accounting'
}

load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
START_S=$(date +%s)
LOAD_START=$(load_avg)
for rep in $(seq 1 "$REPS"); do
  order=$(broker_order "$rep")
  while IFS=$'\t' read -r tname _ mosq scheme flags delivery; do
    while IFS=$'\t' read -r name _ _ args; do
      for broker in $order; do
        [ "$broker" = mosquitto ] && [ "$mosq" != yes ] && continue
        run_one "$tname" "$scheme" "$flags" "$delivery" "$name" "$args" "$broker" "$rep" </dev/null
      done
    done <"$OUT/scenarios.tsv"
  done <"$OUT/transports.run"
done
LOAD_END=$(load_avg)
ELAPSED=$(($(date +%s) - START_S))

# The load generator's own CPU, from the JSON of every run: busy is its CPU
# time over the cores it may use (one, with taskset).
GEN_SUMMARY=$(for f in "$OUT"/*/*/*.json; do
  [ -f "$f" ] && grep -h '^  generator cpu' "${f%.json}.txt"
done 2>/dev/null | sed -nE 's/.*; ([0-9]+)% of the .*/\1/p' |
  awk '{n++; if ($1 > max) max = $1; if ($1 >= 90) hot++} END {
    if (n == 0) { print "no result"; exit }
    printf "`mqtt5 bench` used at most %d%% of its core in any of the %d runs; %d run(s) at 90%% or more (marked †)\n", max, n, hot
  }')
log "generator: $GEN_SUMMARY"

# --- report --------------------------------------------------------------------

{
  meta_common "$START_DATE"
  printf 'Mosquitto\t%s (listeners: mqtt, mqtts%s%s)\n' "$("$MOSQUITTO" -h 2>/dev/null | head -n1 || true)" \
    "$([ "$MOSQ_WS" = yes ] && echo ', ws')" "$([ "$MOSQ_WSS" = yes ] && echo ', wss')"
  printf 'OpenSSL\t%s\n' "$(openssl version | cut -d' ' -f1-2)"
  printf 'Runs\t%s repetition(s) per broker, transport and scenario, %s measured after %s warm-up, MQTT %s, %d-byte payloads, a fresh broker process per run; %d s in all\n' \
    "$REPS" "$DURATION" "$WARMUP" "$PROTOCOL" "$PAYLOAD" "$ELAPSED"
  printf 'Generator\t%s\n' "$GEN_SUMMARY"
  printf 'Load average\t%s at the start, %s at the end (1, 5, 15 min; the runs themselves keep both cores partly busy)\n' "$LOAD_START" "$LOAD_END"
  if [ -n "$NOTE" ]; then printf 'Conditions\t%s\n' "$NOTE"; fi
} >"$OUT/meta.tsv"

report transports report.md "$DOC"
cat "$OUT/report.md"
log "results in $OUT ($ELAPSED s, $FAILED failed run(s))"
