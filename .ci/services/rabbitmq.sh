#!/usr/bin/env bash
# Starts a throwaway RabbitMQ broker for the tests: loopback only, a free AMQP port, its own
# node name, distribution port, data and log folders under a temp dir (so that it clashes with
# no other broker on the machine), no plugins. Installs the Debian package when it is missing.
# Idempotent: a broker started earlier in the same folder and still answering is reused; a
# folder whose broker is gone is started again on the same port (tests restart a broker so).
#
#   .ci/services/rabbitmq.sh [start]  -> prints GATEHOUSE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2f,
#                                        RABBITMQ_PID=PID and # STOP=<command> (scripts/test.sh reads them)
#   eval "$(.ci/services/rabbitmq.sh)" -> exports the first two into the calling shell
#   .ci/services/rabbitmq.sh stop PID  -> stops that broker (and removes its temp dir)
#   GATEHOUSE_RABBITMQ_DIR=/some/dir   -> the folder to use instead of $TMPDIR/gatehouse-test-rabbitmq
set -euo pipefail
state=${GATEHOUSE_RABBITMQ_DIR:-${GATEHOUSE_SERVICES_RUN:-${TMPDIR:-/tmp}}/gatehouse-test-rabbitmq}
if [ "${1:-}" = "stop" ]; then
  pid=${2:?usage: rabbitmq.sh stop PID}
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  if [ -f "$state/pid" ] && [ "$(cat "$state/pid")" = "$pid" ]; then rm -rf "$state"; fi
  exit 0
fi
server=$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server 2>/dev/null | tail -1 || true)
if [ -z "$server" ]; then
  echo "installing rabbitmq-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq rabbitmq-server >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq rabbitmq-server >/dev/null; }
  server=$(ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server | tail -1)
fi
# The Debian package starts a broker of its own where it can; it does not matter here.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
url() { echo "amqp://guest:guest@127.0.0.1:$1/%2f"; }
if [ -f "$state/pid" ] && [ -f "$state/port" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null \
   && listening "$(cat "$state/port")"; then
  echo "export GATEHOUSE_TEST_AMQP_URL=$(url "$(cat "$state/port")")"
  echo "export RABBITMQ_PID=$(cat "$state/pid")"
  exit 0  # reused: whoever started it stops it
fi
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo $((20000 + RANDOM % 20000))
}
if [ -f "$state/port" ] && [ -f "$state/dist_port" ]; then
  port=$(cat "$state/port"); dist=$(cat "$state/dist_port")
else
  rm -rf "$state"; mkdir -p "$state"
  port=$(free_port); dist=$(free_port)
  echo "$port" > "$state/port"; echo "$dist" > "$state/dist_port"
fi
mkdir -p "$state/home" "$state/mnesia" "$state/log"
echo "[]." > "$state/enabled_plugins"; rm -f "$state/beam.pid"
cat > "$state/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
CONF
: > "$state/rabbitmq-env.conf"
(
  export HOME="$state/home"
  export RABBITMQ_NODENAME="gatehouse-test-$port@localhost" RABBITMQ_USE_LONGNAME=false
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$dist"
  export RABBITMQ_MNESIA_BASE="$state/mnesia" RABBITMQ_LOG_BASE="$state/log"
  export RABBITMQ_CONFIG_FILE="$state/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$state/rabbitmq-env.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$state/enabled_plugins" RABBITMQ_PID_FILE="$state/beam.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  exec "$server" >"$state/log/startup.log" 2>&1
) &
pid=$!
for _ in $(seq 600); do
  listening "$port" && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
listening "$port" || { echo "rabbitmq-server did not start (see $state/log)" >&2; tail -20 "$state/log/startup.log" >&2 || true; exit 1; }
# The Erlang VM (a child of the start script) is the broker: its PID is the one to stop.
[ -s "$state/beam.pid" ] && pid=$(cat "$state/beam.pid")
echo "$pid" > "$state/pid"
echo "export GATEHOUSE_TEST_AMQP_URL=$(url "$port")"
echo "export RABBITMQ_PID=$pid"
echo "# STOP=bash $0 stop $pid"
