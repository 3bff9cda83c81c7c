#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that, unlike
# requests per second on a shared machine, repeats to within a few instructions, so that a
# change to the request path can be weighed before it is timed. The gateway runs under
# valgrind in front of an nginx upstream on loopback; it serves N1 and then N2 plain GETs
# (kept-alive, 4 connections) in two runs, and the difference of the two totals divided by
# N2 - N1 leaves start-up out. The kernel's share is not counted.
#
# Usage: benches/proxy_instructions.sh [N1=1000] [N2=11000]
#   GATEHOUSE_BIN=path/to/gatehouse (default: target/release/gatehouse)
#   PROXY=nginx counts nginx as the proxy instead (one process, keep-alive to the upstream), for
#   a yardstick measured the same way
# Needs: valgrind nginx python3 curl (apt-get install -y valgrind nginx python3 curl)
set -u
n1=${1:-1000}; n2=${2:-11000}
for t in valgrind callgrind_annotate nginx python3 curl; do
  command -v $t >/dev/null || { echo "missing: $t (apt-get install -y valgrind nginx python3 curl)"; exit 2; }
done
bin=${GATEHOUSE_BIN:-target/release/gatehouse}
proxy=${PROXY:-gatehouse}
[ "$proxy" = nginx ] || [ -x "$bin" ] || { echo "no gatehouse binary at $bin (cargo build --release)"; exit 2; }
dir=$(mktemp -d)
cleanup() { for f in "$dir"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; sleep 0.3; rm -rf "$dir"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port); gw=$(port)
cat > "$dir/up.conf" <<C
worker_processes 1; daemon off; pid $dir/up.pidfile; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:$up; location / { return 200 "hello from upstream\n"; } } }
C
nginx -c "$dir/up.conf" & echo $! > "$dir/up.pid"
mkdir -p "$dir/res"
printf 'middleware:\n  rate_limiting:\n    default_limit: 0\n' > "$dir/gateway.yaml"
cat > "$dir/res/bench.yaml" <<C
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayUpstream
metadata: {name: bench, namespace: default}
spec: {endpoints: ["http://127.0.0.1:$up"]}
---
apiVersion: gatehouse.dev/v1alpha1
kind: GatewayRoute
metadata: {name: bench, namespace: default}
spec: {path: "/*", upstream: bench}
C
cat > "$dir/load.py" <<'P'
import socket, sys, threading
port, n, conns = int(sys.argv[1]), int(sys.argv[2]), 4
req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
def worker(k):
    s = socket.create_connection(("127.0.0.1", port)); buf = b""
    for _ in range(k):
        s.sendall(req)
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                length = 0
                for line in buf[:i].lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(buf) >= i + 4 + length:
                    if not buf.startswith(b"HTTP/1.1 200"):
                        raise SystemExit("not a 200: %r" % buf[:40])
                    buf = buf[i + 4 + length:]; break
            d = s.recv(65536)
            if not d: raise SystemExit("connection closed")
            buf += d
threads = [threading.Thread(target=worker, args=(n // conns,)) for _ in range(conns)]
[t.start() for t in threads]; [t.join() for t in threads]
P
cat > "$dir/px.conf" <<C
worker_processes 1; daemon off; master_process off; pid $dir/px.pidfile; error_log /dev/null;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000;
  upstream up { server 127.0.0.1:$up; keepalive 128; }
  server { listen 127.0.0.1:$gw; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
# Total instructions of one proxy run that serves `$1` requests.
measure() {
  rm -f "$dir"/cg.*
  if [ "$proxy" = nginx ]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" nginx -c "$dir/px.conf" > "$dir/gw.log" 2>&1 &
    echo $! > "$dir/gw.pid"
  else
    GATEWAY_SERVER_HTTP_PORT=$gw GATEWAY_ADMIN_PORT=$(port) GATEWAY_METRICS_PORT=$(port) GATEWAY_SERVER_HTTPS_PORT=$(port) \
      GATEWAY_LOG_LEVEL=warn GATEWAY_WORKER_THREADS=1 \
      valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$bin" run --config "$dir/gateway.yaml" \
        --resources "$dir/res" > "$dir/gw.log" 2>&1 & echo $! > "$dir/gw.pid"
  fi
  for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$gw/" && break; sleep 0.2; done
  python3 "$dir/load.py" "$gw" "$1" || exit 1
  # (nginx writes its profile on a graceful stop, QUIT; the gateway on INT)
  if [ "$proxy" = nginx ]; then kill -QUIT "$(cat "$dir/gw.pid")"; else kill -INT "$(cat "$dir/gw.pid")"; fi
  wait "$(cat "$dir/gw.pid")" 2>/dev/null; rm -f "$dir/gw.pid"
  grep -h '^totals:' "$dir"/cg.* | awk '{s += $2} END {print s}'
}
a=$(measure "$n1"); b=$(measure "$n2")
echo "$proxy: instructions per request (user space): $(( (b - a) / (n2 - n1) ))  [runs of $n1 and $n2 requests]"
