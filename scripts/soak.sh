#!/usr/bin/env bash
# Soak test of the mqtt5 broker (docs/soak.md): builds mqtt5 and
# mqtt5-soak, starts the broker on loopback with every listener (mqtt,
# mqtts, ws, wss, quic; port 0), persistence and the profiling endpoint,
# runs the mixed workload for DURATION after a warm-up, and compares the
# broker's goroutines, open file descriptors and live heap after the load
# with before it. Prints the summary and the pprof diffs; exits non-zero on
# a lost or duplicated message or on growth beyond the tolerance.
#
# Environment:
#   DURATION=30m       length of the load
#   WARMUP=20s         warm-up before the first snapshot
#   RATE=20            messages/s of each of the 15 publishers
#   CHURN=10s          mean time between reconnections of a churning client
#   OUT=${TMPDIR:-/tmp}/mqtt5-soak-<UTC time>  profiles, diffs, summary,
#                      broker log and data (kept)
#   BROKER_ARGS=""     extra broker arguments (e.g. "--durability batch")
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30m}
WARMUP=${WARMUP:-20s}
RATE=${RATE:-20}
CHURN=${CHURN:-10s}
OUT=${OUT:-${TMPDIR:-/tmp}/mqtt5-soak-$(date -u +%Y%m%dT%H%M%SZ)}
BROKER_ARGS=${BROKER_ARGS:-}

mkdir -p "$OUT/bin"
echo "== building mqtt5 and mqtt5-soak into $OUT/bin"
go build -o "$OUT/bin/mqtt5" ./cmd/mqtt5
go build -o "$OUT/bin/mqtt5-soak" ./internal/soak/cmd/mqtt5-soak

args=()
for a in $BROKER_ARGS; do
  args+=(--broker-arg "$a")
done

echo "== soak: DURATION=$DURATION WARMUP=$WARMUP RATE=$RATE CHURN=$CHURN"
status=0
"$OUT/bin/mqtt5-soak" --broker-bin "$OUT/bin/mqtt5" --out "$OUT" \
  --duration "$DURATION" --warmup "$WARMUP" --rate "$RATE" --churn "$CHURN" \
  --go "$(command -v go)" -v ${args[@]+"${args[@]}"} || status=$?

echo "== output in $OUT (summary.txt, heap-diff.txt, goroutine-diff.txt, profiles, broker/broker.log)"
if [ "$status" -eq 0 ]; then
  echo "== soak passed"
else
  echo "== soak FAILED (exit $status)" >&2
fi
exit "$status"
