#!/usr/bin/env bash
# A real kube-apiserver + etcd on loopback for the Kubernetes-mode tests, in the format
# scripts/test.sh reads (KEY=VALUE lines, then # STOP=<command>). Builds and caches the binary
# on first use (see .ci/kube-apiserver.sh).
set -euo pipefail
ci=$(cd "$(dirname "$0")/.." && pwd)
out=$(bash "$ci/kube-apiserver.sh" start)
echo "$out" | grep -v '^export ' | tr -d '"'
dir=$(echo "$out" | sed -n 's/^GATEHOUSE_TEST_KUBE_DIR=//p')
echo "# STOP=bash $ci/kube-apiserver.sh stop $dir"
