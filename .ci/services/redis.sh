#!/usr/bin/env bash
# Starts a throwaway redis-server for the tests: loopback only, a free port, no persistence,
# in a temp dir. Installs the Debian package when the binary is missing. Idempotent: a server
# started earlier by this script and still answering is reused.
#
#   .ci/services/redis.sh [start]  -> prints GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:PORT,
#                                     REDIS_PID=PID and # STOP=<command> (scripts/test.sh reads them)
#   eval "$(.ci/services/redis.sh)" -> exports the first two into the calling shell
#   .ci/services/redis.sh stop PID  -> stops that server (and removes its temp dir)
set -euo pipefail
# scripts/test.sh gives each run a folder of its own (GATEHOUSE_SERVICES_RUN), so that two
# suites running at once never reuse, or stop, each other's server.
state=${GATEHOUSE_SERVICES_RUN:-${TMPDIR:-/tmp}}/gatehouse-test-redis
if [ "${1:-}" = "stop" ]; then
  pid=${2:?usage: redis.sh stop PID}
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if [ -f "$state/pid" ] && [ "$(cat "$state/pid")" = "$pid" ]; then rm -rf "$state"; fi
  exit 0
fi
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq redis-server >/dev/null; }
fi
if [ -f "$state/pid" ] && [ -f "$state/port" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null \
   && redis-cli -p "$(cat "$state/port")" ping 2>/dev/null | grep -q PONG; then
  echo "export GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:$(cat "$state/port")"
  echo "export REDIS_PID=$(cat "$state/pid")"
  exit 0  # reused: whoever started it stops it
fi
rm -rf "$state"; mkdir -p "$state"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
  || echo $((20000 + RANDOM % 20000)))
redis-server --bind 127.0.0.1 --port "$port" --dir "$state" --save "" --appendonly no \
  --daemonize no --protected-mode yes --logfile "$state/redis.log" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
redis-cli -p "$port" ping 2>/dev/null | grep -q PONG || { echo "redis-server did not start (see $state/redis.log)" >&2; exit 1; }
echo "$pid" > "$state/pid"; echo "$port" > "$state/port"
echo "export GATEHOUSE_TEST_REDIS_URL=redis://127.0.0.1:$port"
echo "export REDIS_PID=$pid"
echo "# STOP=bash $0 stop $pid"
