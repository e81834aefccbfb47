#!/usr/bin/env bash
# Installs the third-party programs the test suite talks to, when missing:
# the Mosquitto broker and clients, the Chromium browser (Debian
# packages; Chromium runs MQTT.js in a page for the WebSocket tests),
# iproute2 (ip and tc, for the network-fault tests in internal/netfault),
# and the npm packages under test/node. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
{ command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } &&
  { command -v tc >/dev/null 2>&1 || [ -x /usr/sbin/tc ] || [ -x /sbin/tc ]; } || need_apt+=(iproute2)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-peers: installing ${need_apt[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      echo "install-peers: need root (or sudo) to install ${need_apt[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# A packaged mosquitto may start a system instance on 1883; tests use random
# ports, so it is harmless, but stop it to keep the machine quiet.
if command -v service >/dev/null 2>&1 && pgrep -x mosquitto >/dev/null 2>&1; then
  service mosquitto stop >/dev/null 2>&1 || true
fi

if [ -f test/node/package.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d test/node/node_modules ] || [ test/node/package.json -nt test/node/node_modules ]; then
    echo "install-peers: npm install in test/node"
    (cd test/node && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
