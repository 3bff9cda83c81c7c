#!/usr/bin/env bash
# Real kube-apiserver (v1.20.2, built from Debian's `kubernetes` source package) + etcd on
# 127.0.0.1, for the Kubernetes-mode tests (tests/kube/).
#
#   .ci/kube-apiserver.sh install   build and cache the binary (skipped when cached)
#   .ci/kube-apiserver.sh start     install if needed, start etcd + kube-apiserver on free
#                                   loopback ports in a temp dir, print
#                                   GATEHOUSE_TEST_KUBECONFIG=... and the PIDs
#   .ci/kube-apiserver.sh stop DIR  stop exactly the processes started for DIR
#   .ci/kube-apiserver.sh apiserver-stop DIR / apiserver-start DIR
#                                   stop / restart only the kube-apiserver of DIR (same port,
#                                   same etcd): the outage test uses these
#
# `start` output is shell-evaluable: eval "$(.ci/kube-apiserver.sh start)".
set -euo pipefail

VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE="${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}"
BIN="$CACHE/kube-apiserver-v1.20.2"
PKGS=(golang-go rsync make etcd-server openssl curl
      golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev)

log() { echo "kube-apiserver.sh: $*" >&2; }

install_packages() {
  local missing=()
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${missing[@]}" >&2
  fi
}

build() {
  install_packages
  if [[ -x "$BIN" ]]; then
    return 0
  fi
  mkdir -p "$CACHE"
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-kube-build.XXXXXX")"
  # Cleared as it fires: a RETURN trap stays set for every later function that returns,
  # where `work` (a local of this one) is unset under `set -u`.
  trap 'rm -rf "${work:-}"; trap - RETURN' RETURN
  log "building kube-apiserver v1.20.2 in $work (several minutes)"
  # A private deb-src list: the system's apt state stays untouched.
  mkdir -p "$work/apt/parts" "$work/apt/lists/partial" "$work/src"
  awk 'BEGIN{RS="";ORS="\n\n"} NR==1{sub(/Types: deb/,"Types: deb-src"); print}' \
    /etc/apt/sources.list.d/debian.sources >"$work/apt/parts/src.sources"
  local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/parts"
              -o "Dir::State::Lists=$work/apt/lists")
  apt-get "${opts[@]}" update -qq >&2
  (cd "$work/src" && apt-get "${opts[@]}" source --download-only "kubernetes=$VERSION" >&2)
  mkdir -p "$work/k8s"
  tar -xzf "$work"/src/kubernetes_*.orig.tar.gz -C "$work/k8s" --strip-components=1
  # Go >= 1.18 faults in the vendored reflect2 v1.0.1: use Debian's current copies.
  local r2="$work/k8s/vendor/github.com/modern-go/reflect2"
  local ji="$work/k8s/vendor/github.com/json-iterator/go"
  rm -f "$r2"/*.go "$r2"/*.s "$ji"/*.go
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$r2"/
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r2"/ 2>/dev/null || true
  cp /usr/share/gocode/src/github.com/json-iterator/go/*.go "$ji"/
  rm -f "$r2"/*_test.go "$ji"/*_test.go
  (cd "$work/k8s" && CGO_ENABLED=0 make WHAT=cmd/kube-apiserver >&2)
  install -m 0755 "$work/k8s/_output/bin/kube-apiserver" "$BIN.tmp"
  mv "$BIN.tmp" "$BIN"
  log "cached $BIN"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  build
  local dir
  dir="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-kube.XXXXXX")"
  local etcd_client etcd_peer api_port
  etcd_client="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"
  mkdir -p "$dir/certs"
  etcd_data_dir "$dir"
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  echo 'admintoken,admin,admin,"system:masters"' >"$dir/tokens.csv"
  # A ServiceAccount identity so tests can prove the RBAC in manifests/ is enough.
  echo 'gatehousetoken,system:serviceaccount:gatehouse-system:gatehouse,gatehouse-sa,"system:serviceaccounts,system:serviceaccounts:gatehouse-system"' >>"$dir/tokens.csv"
  # The ServiceAccount of the chart's release `full` in namespace gatehouse-full
  # (tests/kube/helm_chart.rs; release `gatehouse` in gatehouse-system uses the one above).
  echo 'fulltoken,system:serviceaccount:gatehouse-full:full-gatehouse,gatehouse-full-sa,"system:serviceaccounts,system:serviceaccounts:gatehouse-full"' >>"$dir/tokens.csv"
  local nofsync=()
  # Test data only: skip fsync where this etcd knows the flag (3.4.x accepts it unlisted).
  etcd --unsafe-no-fsync --version >/dev/null 2>&1 && nofsync=(--unsafe-no-fsync)
  setsid etcd --name gatehouse-test --data-dir "$dir/etcd" "${nofsync[@]}" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" \
    --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "gatehouse-test=http://127.0.0.1:$etcd_peer" \
    >"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/etcd.pid"
  echo "$api_port" >"$dir/port"
  echo "$etcd_client" >"$dir/etcd-port"
  launch_apiserver "$dir"
  if ! wait_ready "$dir"; then
    log "kube-apiserver did not become ready; see $dir/apiserver.log"
    stop "$dir"
    exit 1
  fi
  write_kubeconfig "$dir" "$api_port" admintoken >"$dir/kubeconfig"
  write_kubeconfig "$dir" "$api_port" gatehousetoken >"$dir/kubeconfig-sa"
  write_kubeconfig "$dir" "$api_port" fulltoken >"$dir/kubeconfig-full-sa"
  echo "GATEHOUSE_TEST_KUBECONFIG=$dir/kubeconfig"
  echo "GATEHOUSE_TEST_KUBE_DIR=$dir"
  echo "GATEHOUSE_TEST_KUBE_PIDS=\"$(cat "$dir/etcd.pid") $(cat "$dir/apiserver.pid")\""
  echo "export GATEHOUSE_TEST_KUBECONFIG GATEHOUSE_TEST_KUBE_DIR GATEHOUSE_TEST_KUBE_PIDS"
}

# The etcd data of a test cluster is throwaway: keep it in memory (/dev/shm) when possible,
# so that 10,000 writes are not paced by disk syncs. $dir/etcd is a symlink to it then, and
# `stop` removes both.
etcd_data_dir() {
  local dir="$1" shm="${GATEHOUSE_ETCD_TMPFS:-/dev/shm}"
  if [[ -n "$shm" && -d "$shm" && -w "$shm" ]]; then
    local data
    data="$(mktemp -d "$shm/gatehouse-etcd.XXXXXX")"
    ln -s "$data" "$dir/etcd"
  else
    mkdir -p "$dir/etcd"
  fi
}

launch_apiserver() {
  local dir="$1"
  setsid "$BIN" --etcd-servers="http://127.0.0.1:$(cat "$dir/etcd-port")" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$(cat "$dir/port")" \
    --cert-dir="$dir/certs" --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
    --service-account-key-file="$dir/sa.key" --service-account-signing-key-file="$dir/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    >>"$dir/apiserver.log" 2>&1 </dev/null &
  echo $! >"$dir/apiserver.pid"
}

wait_ready() {
  local port; port="$(cat "$1/port")"
  for _ in $(seq 1 120); do
    if curl -sk -H "Authorization: Bearer admintoken" "https://127.0.0.1:$port/readyz" 2>/dev/null | grep -q '^ok$'; then
      return 0
    fi
    sleep 0.5
  done
  return 1
}

stop_pid() {
  local file="$1"
  [[ -f "$file" ]] || return 0
  local pid; pid="$(cat "$file")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

write_kubeconfig() {
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: https://127.0.0.1:$2
    insecure-skip-tls-verify: true
users:
- name: test
  user:
    token: $3
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
KC
}

# Stop only the processes recorded in DIR, then remove DIR.
stop() {
  local dir="${1:?usage: stop DIR}"
  [[ -f "$dir/port" ]] || { log "$dir is not a kube-apiserver.sh directory"; exit 1; }
  stop_pid "$dir/apiserver.pid"
  stop_pid "$dir/etcd.pid"
  if [[ -L "$dir/etcd" ]]; then
    rm -rf "$(readlink "$dir/etcd")"
  fi
  rm -rf "$dir"
}

case "${1:-start}" in
  install) build ;;
  start) start ;;
  stop) stop "${2:-${GATEHOUSE_TEST_KUBE_DIR:-}}" ;;
  apiserver-stop) stop_pid "${2:?DIR}/apiserver.pid" ;;
  apiserver-start)
    launch_apiserver "${2:?DIR}"
    wait_ready "$2" || { log "kube-apiserver did not become ready; see $2/apiserver.log"; exit 1; }
    echo "GATEHOUSE_TEST_KUBE_PIDS=\"$(cat "$2/etcd.pid") $(cat "$2/apiserver.pid")\"" ;;
  *) echo "usage: $0 install|start|stop DIR|apiserver-stop DIR|apiserver-start DIR" >&2; exit 2 ;;
esac
