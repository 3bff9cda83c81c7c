#!/usr/bin/env bash
# The cost of authentication under load. Same setup as ../shared/bench/compare.sh (nginx upstream on CPU 0 with wrk, gatehouse pinned to CPU 1 with one
# worker), but one gateway serves a plain route and a protected route (HS256, role check,
# X-User-* headers) and wrk alternates between them, so both rows come from the same moments.
#
# Usage: benches/auth_load.sh [seconds=8] [connections=64] [rounds=3]
#   GATEHOUSE_BIN (default target/release/gatehouse), BENCH_PORT_BASE (default 19680: uses
#   BASE for the upstream and BASE+10..13 for the gateway). Needs nginx, wrk, taskset, curl,
#   python3. Quote the ratio of the two rows, not absolute figures (the machine is shared).
set -u
for t in nginx wrk taskset curl python3; do command -v $t >/dev/null || { echo "missing: $t"; exit 2; }; done
secs=${1:-8}; conns=${2:-64}; rounds=${3:-3}
bin=${GATEHOUSE_BIN:-target/release/gatehouse}
port=${BENCH_PORT_BASE:-19680}
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
mkdir -p "$dir/res"
printf 'middleware:\n  rate_limiting:\n    default_limit: 0\n' > "$dir/gateway.yaml"
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
metadata: {name: protected, namespace: default}
spec: {path: "/protected/*", upstream: bench, authRequired: true, requiredRoles: [user]}
C
GATEWAY_SERVER_HTTP_PORT=$((port+10)) GATEWAY_ADMIN_PORT=$((port+11)) GATEWAY_METRICS_PORT=$((port+12)) GATEWAY_SERVER_HTTPS_PORT=$((port+13)) \
GATEWAY_LOG_LEVEL=warn GATEWAY_WORKER_THREADS=1 JWT_SECRET=${JWT_SECRET:-bench-secret} \
  taskset -c 1 "$bin" run --config "$dir/gateway.yaml" --resources "$dir/res" >"$dir/gh.log" 2>&1 & echo $! > "$dir/gh.pid"
# An HS256 token for JWT_SECRET with the role the protected route needs, valid for an hour.
GATEHOUSE_TOKEN=${GATEHOUSE_TOKEN:-$(python3 - "${JWT_SECRET:-bench-secret}" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
p = b(json.dumps({"sub": "bench-user", "exp": int(time.time()) + 3600, "roles": ["user"]}).encode())
print(f"{h}.{p}." + b(hmac.new(sys.argv[1].encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()))
PY
)}
sleep 2
curl -s -o /dev/null -w "check: plain %{http_code}, " http://127.0.0.1:$((port+10))/plain/x
curl -s -o /dev/null -w "protected without token %{http_code}, " http://127.0.0.1:$((port+10))/protected/x
curl -s -o /dev/null -w "with token %{http_code}\n" -H "Authorization: Bearer $GATEHOUSE_TOKEN" http://127.0.0.1:$((port+10))/protected/x
run() { # name url [header]
  local out rps p50 p99 err
  if [ -n "${3:-}" ]; then out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${secs}"s --latency -H "$3" "$2" 2>&1)
  else out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${secs}"s --latency "$2" 2>&1); fi
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}'); p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  err=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ')
  printf "%-10s rps=%-10s p50=%-9s p99=%-9s %s\n" "$1" "$rps" "$p50" "$p99" "$err"
}
for i in $(seq "$rounds"); do
  run plain http://127.0.0.1:$((port+10))/plain/x
  run protected http://127.0.0.1:$((port+10))/protected/x "Authorization: Bearer $GATEHOUSE_TOKEN"
done
