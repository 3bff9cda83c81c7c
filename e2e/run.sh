#!/usr/bin/env bash
# End-to-end on a kind cluster: the path an operator takes, with real pods.
#
#   e2e/run.sh            create a kind cluster, build and load the image, install the chart,
#                         apply manifests/examples and real upstream pods, wait for Programmed,
#                         send authenticated traffic, scale an upstream and check traffic
#                         follows, check status and metrics, delete the cluster
#   e2e/run.sh --keep     the same, but leave the cluster (kind delete cluster --name gatehouse-e2e)
#   e2e/run.sh --check    only check that this machine can run it (exit 0 if so, 2 if not)
#
# Needs a running Docker engine, kind, kubectl, helm, curl and openssl, and network access for
# the base images. Machines without a Docker engine cannot run it: the script says so and exits
# 2 without touching anything. The cluster is named gatehouse-e2e (GATEHOUSE_E2E_CLUSTER).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${GATEHOUSE_E2E_CLUSTER:-gatehouse-e2e}
IMAGE=gatehouse:e2e
NS=gatehouse-system
APPS=microservices
PROXY_PORT=${GATEHOUSE_E2E_PROXY_PORT:-18080}
METRICS_PORT=${GATEHOUSE_E2E_METRICS_PORT:-19090}
KEEP=false
CHECK_ONLY=false
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    --check) CHECK_ONLY=true ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "e2e/run.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

log() { printf '\n== %s\n' "$*" >&2; }
fail() { echo "e2e/run.sh: FAILED: $*" >&2; exit 1; }

preflight() {
  local missing=()
  for tool in docker kind kubectl helm curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    cat >&2 <<EOF
e2e/run.sh: this machine cannot run the kind end-to-end suite: ${missing[*]} not found.
It needs a running Docker engine plus kind, kubectl, helm, curl and openssl. Where those
are missing (as on the project's build machines, which have no Docker engine), the chart,
RBAC and controller are tested against a real kube-apiserver instead: scripts/test.sh.
EOF
    exit 2
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "e2e/run.sh: docker is installed but no Docker engine answers (docker info failed)." >&2
    exit 2
  fi
}

preflight
if $CHECK_ONLY; then
  echo "e2e/run.sh: docker, kind, kubectl, helm, curl and openssl are here; a Docker engine answers."
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-e2e.XXXXXX")
export KUBECONFIG="$WORK/kubeconfig"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "$status" != 0 ] && [ -s "$KUBECONFIG" ]; then
    echo "--- gateway logs ---" >&2
    kubectl -n "$NS" logs -l app.kubernetes.io/name=gatehouse --tail=100 --prefix >&2 || true
    kubectl get gatewayroutes,gatewayupstreams -A -o wide >&2 || true
  fi
  if $KEEP; then
    echo "cluster kept: kind delete cluster --name $CLUSTER  (KUBECONFIG=$KUBECONFIG)" >&2
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s

log "image $IMAGE (Dockerfile) loaded into the cluster"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "chart (CRDs, RBAC, Deployment, Service) with a JWT secret"
JWT_SECRET=$(openssl rand -hex 32)
kubectl create namespace "$NS"
kubectl -n "$NS" create secret generic gatehouse-jwt --from-literal=secret="$JWT_SECRET"
helm install gatehouse charts/gatehouse --namespace "$NS" -f e2e/values.yaml --wait --timeout 180s
kubectl -n "$NS" rollout status deployment/gatehouse --timeout=120s

log "examples and their upstream pods"
kubectl apply -f manifests/examples/
kubectl apply -f e2e/upstreams.yaml
for d in auth-service user-service metrics-service; do
  kubectl -n "$APPS" rollout status "deployment/$d" --timeout=180s
done
kubectl -n "$APPS" wait --for=condition=Programmed gatewayroute --all --timeout=120s
kubectl -n "$APPS" wait --for=condition=Ready gatewayupstream --all --timeout=120s
kubectl -n "$APPS" wait --for=condition=Accepted websocketchannel --all --timeout=60s

log "port-forward to the gateway Service"
kubectl -n "$NS" port-forward service/gatehouse "$PROXY_PORT:80" "$METRICS_PORT:9090" >"$WORK/pf.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
  curl -fsS "http://127.0.0.1:$PROXY_PORT/health" >/dev/null 2>&1 && break
  sleep 0.2
done

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# An HS256 token as the seed's auth-service issues them: token ROLES_JSON
token() {
  local now header payload sig
  now=$(date +%s)
  header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  payload=$(printf '{"sub":"e2e-user","iss":"auth-service","aud":"api-gateway","iat":%d,"exp":%d,"roles":%s}' \
    "$now" $((now + 3600)) "$1" | b64url)
  sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)
  printf '%s.%s.%s' "$header" "$payload" "$sig"
}
USER_TOKEN=$(token '["user"]')
ADMIN_TOKEN=$(token '["user","admin"]')

# expect CODE METHOD PATH [TOKEN]
expect() {
  local want=$1 method=$2 path=$3 auth=() got
  [ -n "${4:-}" ] && auth=(-H "Authorization: Bearer $4")
  got=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$method" "${auth[@]}" "http://127.0.0.1:$PROXY_PORT$path")
  [ "$got" = "$want" ] || fail "$method $path answered $got, want $want: $(head -c 300 "$WORK/body")"
  echo "ok  $method $path -> $got"
}

log "traffic through the gateway"
expect 200 GET /health
expect 200 GET /ready
expect 200 POST /auth/login
expect 401 GET /api/v1/users
expect 200 GET /api/v1/users "$USER_TOKEN"
expect 200 GET /api/v1/users/42/profile "$USER_TOKEN"
expect 403 GET /api/v1/admin/users "$USER_TOKEN"
expect 200 GET /api/v1/admin/users "$ADMIN_TOKEN"
expect 200 GET /api/v1/metrics "$USER_TOKEN"
expect 404 GET /nothing-here

# pods_answering N: the distinct user-service pods that answer N requests.
pods_answering() {
  for _ in $(seq "$1"); do
    curl -fsS -H "Authorization: Bearer $USER_TOKEN" "http://127.0.0.1:$PROXY_PORT/e2e/user-hostname"
    echo
  done | sort -u | grep -c .
}
# endpoints_become N: user-service's status counts N endpoints.
endpoints_become() {
  for _ in $(seq 120); do
    [ "$(kubectl -n "$APPS" get gatewayupstream user-service -o jsonpath='{.status.endpoints.total}')" = "$1" ] && return 0
    sleep 1
  done
  fail "GatewayUpstream user-service never counted $1 endpoints"
}

log "scale user-service to 3: traffic follows"
kubectl -n "$APPS" wait --for=condition=Programmed gatewayroute/e2e-user-hostname --timeout=60s
[ "$(pods_answering 10)" = 1 ] || fail "one user-service pod should answer before scaling"
kubectl -n "$APPS" scale deployment/user-service --replicas=3
kubectl -n "$APPS" rollout status deployment/user-service --timeout=180s
endpoints_become 3
sleep 2 # every gateway replica applies the new endpoints; the status is one replica's view
n=$(pods_answering 30)
[ "$n" = 3 ] || fail "after scaling to 3, $n distinct user-service pods answered"
echo "ok  3 user-service pods answer"

log "scale user-service to 1: traffic follows"
kubectl -n "$APPS" scale deployment/user-service --replicas=1
kubectl -n "$APPS" rollout status deployment/user-service --timeout=180s
endpoints_become 1
sleep 2
n=$(pods_answering 20)
[ "$n" = 1 ] || fail "after scaling to 1, $n distinct user-service pods answered"
echo "ok  1 user-service pod answers"

log "status"
for r in $(kubectl -n "$APPS" get gatewayroutes -o name); do
  s=$(kubectl -n "$APPS" get "$r" -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status}')
  [ "$s" = True ] || fail "$r is not Programmed ($s)"
done
kubectl -n "$APPS" get gatewayroutes,gatewayupstreams,websocketchannels

log "metrics"
curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics"
for m in gateway_http_requests_total gateway_http_request_duration_seconds_bucket gateway_upstream_endpoints gateway_routes; do
  grep -q "^$m" "$WORK/metrics" || fail "metric $m missing from /metrics"
  echo "ok  $m"
done

log "end-to-end passed"
