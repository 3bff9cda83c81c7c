#!/usr/bin/env bash
# The cost of rate limiting under load, memory and Redis stores. Same setup as
# ../shared/bench/compare.sh (nginx upstream on CPU 0 with wrk, gatehouse pinned to CPU 1 with
# one worker). Each gateway serves a plain route and the same route with a `rateLimit` high
# enough never to refuse (100,000,000 per minute, keyed by IP, so every request decides on one
# bucket); rounds alternate plain and limited so both rows come from the same moments. The
# Redis gateway uses a throwaway redis-server on loopback (unpinned; REDIS_CPU=N pins it).
#
# Usage: benches/ratelimit_load.sh [seconds=8] [connections=64] [rounds=3]
#   GATEHOUSE_BIN (default target/release/gatehouse), BENCH_PORT_BASE (default 19780: BASE for
#   the upstream, BASE+1 for redis, BASE+10..13 and BASE+20..23 for the two gateways).
#   Needs nginx, wrk, taskset, curl, redis-server. Quote ratios, not absolute figures.
set -u
for t in nginx wrk taskset curl redis-server; do command -v $t >/dev/null || { echo "missing: $t"; exit 2; }; done
secs=${1:-8}; conns=${2:-64}; rounds=${3:-3}
bin=${GATEHOUSE_BIN:-target/release/gatehouse}
port=${BENCH_PORT_BASE:-19780}
dir=$(mktemp -d)
cleanup() { for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT
cat > "$dir/up.conf" <<C
worker_processes 1; daemon off; pid $dir/up.pidfile; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$port; location / { return 200 "hello from upstream\n"; } } }
C
taskset -c 0 nginx -c "$dir/up.conf" & echo $! > "$dir/up.pid"
if [ -n "${REDIS_CPU:-}" ]; then pin="taskset -c $REDIS_CPU"; else pin=""; fi
$pin redis-server --bind 127.0.0.1 --port $((port+1)) --save "" --appendonly no --dir "$dir" \
  --logfile "$dir/redis.log" >/dev/null 2>&1 </dev/null & echo $! > "$dir/redis-server.pid"
mkdir -p "$dir/res"
cat > "$dir/res/bench.yaml" <<C
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {name: bench, namespace: default}
spec: {endpoints: ["http://127.0.0.1:$port"]}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: plain, namespace: default}
spec: {path: "/plain/*", upstream: bench}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: limited, namespace: default}
spec: {path: "/limited/*", upstream: bench, rateLimit: {requests: 100000000, window: 60s}}
C
printf 'middleware:\n  rate_limiting:\n    default_limit: 0\n' > "$dir/memory.yaml"
printf 'middleware:\n  rate_limiting:\n    default_limit: 0\n    storage: {type: Redis, url: "redis://127.0.0.1:%s"}\n' \
  $((port+1)) > "$dir/redis.yaml"
start() { # name config base
  GATEWAY_SERVER_HTTP_PORT=$3 GATEWAY_ADMIN_PORT=$(($3+1)) GATEWAY_METRICS_PORT=$(($3+2)) GATEWAY_SERVER_HTTPS_PORT=$(($3+3)) \
  GATEWAY_LOG_LEVEL=warn GATEWAY_WORKER_THREADS=1 \
    taskset -c 1 "$bin" run --config "$2" --resources "$dir/res" >"$dir/$1.log" 2>&1 & echo $! > "$dir/$1.pid"
}
run() { # name url
  local out rps p50 p99 err
  out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${secs}"s --latency "$2" 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}'); p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  err=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ')
  printf "%-16s rps=%-10s p50=%-9s p99=%-9s %s\n" "$1" "$rps" "$p50" "$p99" "$err" >&2
  echo "$rps"
}
for store in memory redis; do
  base=$((port+10)); [ $store = redis ] && base=$((port+20))
  start $store "$dir/$store.yaml" $base
  sleep 2
  hdr=$(curl -s -D - -o /dev/null http://127.0.0.1:$base/limited/x | tr -d '\r' | grep -i '^ratelimit-remaining' || true)
  echo "$store: plain $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$base/plain/x), limited $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$base/limited/x) ($hdr)"
  for i in $(seq "$rounds"); do
    a=$(run "$store plain" http://127.0.0.1:$base/plain/x)
    b=$(run "$store limited" http://127.0.0.1:$base/limited/x)
    echo "$store round $i: limited/plain = $(awk -v a="$a" -v b="$b" 'BEGIN{ if (a>0) printf "%.3f", b/a; else print "n/a" }')"
  done
  kill "$(cat "$dir/$store.pid")"; rm -f "$dir/$store.pid"; sleep 0.5
done
