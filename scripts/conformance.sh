#!/usr/bin/env bash
# The Gateway API conformance suite (GATEWAY-HTTP core profile, ported to pytest: see
# $GATEHOUSE_CONFORMANCE_SUITE/README.md) against this checkout's debug binary, in Kubernetes
# mode with only a kubeconfig: the kube-apiserver of GATEHOUSE_TEST_KUBECONFIG (which
# scripts/test.sh starts), else KUBECONFIG, else the suite starts one with
# .ci/kube-apiserver.sh. Arguments go to pytest (e.g. -k HTTPRouteMatching).
#
#   GATEHOUSE_CONFORMANCE_SUITE   where the suite is (default ../shared/gateway-api-conformance)
#   GATEHOUSE_CONFORMANCE_TIMEOUT_OVERRIDES, GATEHOUSE_CONFORMANCE_WORKDIR   as the suite reads them
#
# The gateway's own ports (proxy, HTTPS, admin, metrics) are free ports on 127.0.0.1, away from
# the Gateways' listeners (80 and 443 on 127.0.1.x). The suite stops every process it starts.
# Exits non-zero when any test fails or the suite cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=${GATEHOUSE_CONFORMANCE_SUITE:-../shared/gateway-api-conformance}
if [ ! -f "$suite/run.sh" ]; then
  echo "conformance: no suite at $suite (set GATEHOUSE_CONFORMANCE_SUITE, or GATEHOUSE_CONFORMANCE=0 to leave it out)" >&2
  exit 1
fi
cargo build --quiet --bin gatehouse
bin="${CARGO_TARGET_DIR:-target}/debug/gatehouse"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ -n "${GATEHOUSE_TEST_KUBECONFIG:-}" ]; then
  export KUBECONFIG="$GATEHOUSE_TEST_KUBECONFIG"
fi
read -r http https admin metrics < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
# The gateway under test (run by the suite with KUBECONFIG set): scripts/conformance-gateway.sh
# installs Gatehouse's own CRDs, then runs the binary with these ports.
export GATEHOUSE_CONFORMANCE_SUITE_DIR
GATEHOUSE_CONFORMANCE_SUITE_DIR=$(cd "$suite" && pwd)
export GATEHOUSE_CONFORMANCE_BIN="$bin" GATEWAY_BIND_ADDRESS=127.0.0.1 \
  GATEWAY_SERVER_HTTP_PORT=$http GATEWAY_SERVER_HTTPS_PORT=$https \
  GATEWAY_ADMIN_PORT=$admin GATEWAY_METRICS_PORT=$metrics \
  RUST_LOG=${GATEHOUSE_CONFORMANCE_RUST_LOG:-info,gatehouse::sources=debug,gatehouse::controller=debug}
export GATEHOUSE_CONFORMANCE_CMD="bash scripts/conformance-gateway.sh"
echo "== Gateway API conformance ($suite) with: $GATEHOUSE_CONFORMANCE_CMD"
exec bash "$suite/run.sh" "$@"
