#!/usr/bin/env bash
# HTTPS cost through the proxy, side by side with nginx terminating the same certificate, on
# loopback. Two figures per proxy:
#   keep-alive  wrk over kept-alive connections: plain HTTP and HTTPS requests per second
#   handshakes  wrk with "Connection: close": every request is a new TLS connection (full
#               handshake, no resumption), so requests per second = new handshakes per second
# Each proxy runs pinned to CPU 1 with one worker; wrk and the upstream share CPU 0.
# Quote ratios from one run (the machine is shared and noisy), not absolute figures.
#
# Usage: benches/tls.sh [seconds=8] [connections=64]
#   GATEHOUSE_BIN=path/to/gatehouse (default: target/release/gatehouse)
# Needs: nginx wrk openssl taskset (apt-get install -y nginx wrk openssl util-linux)
set -u
secs=${1:-8}; conns=${2:-64}
for t in nginx wrk openssl taskset; do command -v $t >/dev/null || { echo "missing: $t (apt-get install -y nginx wrk openssl)"; exit 2; }; done
bin=${GATEHOUSE_BIN:-target/release/gatehouse}
[ -x "$bin" ] || { echo "no gatehouse binary at $bin (cargo build --release)"; exit 2; }
dir=$(mktemp -d)
cleanup() { for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT

# One ECDSA P-256 certificate for localhost, served by both proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || { echo "openssl failed"; exit 2; }

cat > "$dir/up.conf" <<C
worker_processes 1; daemon off; pid $dir/up.pidfile; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:18080; location / { return 200 "hello from upstream\n"; } } }
C
cat > "$dir/px.conf" <<C
worker_processes 1; daemon off; pid $dir/px.pidfile; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  upstream up { server 127.0.0.1:18080; keepalive 128; }
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache off; ssl_session_tickets off;
  server { listen 127.0.0.1:18081; listen 127.0.0.1:18443 ssl;
    ssl_certificate $dir/tls.crt; ssl_certificate_key $dir/tls.key;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
taskset -c 0 nginx -c "$dir/up.conf" & echo $! > "$dir/up.pid"
taskset -c 1 nginx -c "$dir/px.conf" & echo $! > "$dir/px.pid"

mkdir -p "$dir/res"
cat > "$dir/gateway.yaml" <<C
server:
  tls:
    default_certificate: {secret_ref: {name: bench-tls, namespace: default}}
middleware:
  rate_limiting:
    default_limit: 0
C
{
  printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: default}\ntype: kubernetes.io/tls\nstringData:\n'
  printf '  tls.crt: |\n'; sed 's/^/    /' "$dir/tls.crt"
  printf '  tls.key: |\n'; sed 's/^/    /' "$dir/tls.key"
  cat <<C
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {name: bench, namespace: default}
spec: {endpoints: ["http://127.0.0.1:18080"]}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: bench, namespace: default}
spec:
  path: "/*"
  upstream: bench
  tls: {secretName: bench-tls}
C
} > "$dir/res/bench.yaml"
GATEWAY_SERVER_HTTP_PORT=18090 GATEWAY_ADMIN_PORT=18091 GATEWAY_METRICS_PORT=18092 GATEWAY_SERVER_HTTPS_PORT=18093 \
GATEWAY_LOG_LEVEL=warn GATEWAY_WORKER_THREADS=1 \
  taskset -c 1 "$bin" run --config "$dir/gateway.yaml" --resources "$dir/res" >"$dir/gh.log" 2>&1 & echo $! > "$dir/gh.pid"
sleep 2

tck=$(getconf CLK_TCK)
cpu() { # pid -> CPU ticks used by it and its children (nginx master + worker)
  local t=0 p
  for p in $1 $(pgrep -P "$1"); do
    [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat)))
  done
  echo $t
}
# bench pid url [wrk args...] -> "rps requests-per-proxy-cpu-second errors"
bench() {
  local pid=$1 url=$2; shift 2
  local c0 c1 out rps errs
  c0=$(cpu "$pid")
  out=$(taskset -c 0 wrk -t1 -c"$conns" -d"${secs}"s "$@" "$url" 2>&1)
  c1=$(cpu "$pid")
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ')
  awk -v r="$rps" -v s="$secs" -v d=$((c1 - c0)) -v t="$tck" -v e="$errs" \
    'BEGIN { printf "%s %.0f %s\n", r, (d > 0 ? r * s / (d / t) : 0), e }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "rps: wrk's requests/s; per-cpu-s: requests per CPU-second the proxy used (the per-core figure)"
printf "%-10s %-10s %-13s %-10s %-13s %-16s %-16s %s\n" proxy "http rps" "http/cpu-s" "https rps" "https/cpu-s" "https/http(cpu)" "new-TLS conns/s" "conns/cpu-s"
for p in nginx:18081:18443:px gatehouse:18090:18093:gh; do
  IFS=: read -r name http https pidf <<<"$p"
  pid=$(cat "$dir/$pidf.pid")
  read -r prps pcpu perr <<<"$(bench "$pid" "http://localhost:$http/")"
  read -r trps tcpu terr <<<"$(bench "$pid" "https://localhost:$https/")"
  read -r hrps hcpu herr <<<"$(bench "$pid" "https://localhost:$https/" -H "Connection: close")"
  printf "%-10s %-10s %-13s %-10s %-13s %-16s %-16s %s\n" "$name" "$prps" "$pcpu" "$trps" "$tcpu" "$(ratio "$tcpu" "$pcpu")" "$hrps" "$hcpu"
  for e in "$perr" "$terr" "$herr"; do [ -n "$e" ] && echo "  $name: $e"; done
done
