#!/usr/bin/env bash
# The whole test suite: installs the test peers, then vet, gofmt, the race
# tests of every package (long tests included) and a short pass of every
# fuzz target. FUZZTIME (default 20000x: executions, not seconds, so a
# pass never ends on a deadline mid-input) sets the length of each pass;
# FUZZTIME=0 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-20000x}

bash scripts/install-peers.sh

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "== go build (commands and examples)"
go build ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz targets, $FUZZTIME each"
  for f in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
    for target in $(grep -h '^func Fuzz' "$f"/*_test.go | sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' | sort -u); do
      echo "-- $f $target"
      go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$f" >/tmp/mqtt5-fuzz.log 2>&1 || {
        cat /tmp/mqtt5-fuzz.log >&2
        exit 1
      }
    done
  done
fi
echo "== all tests passed"
