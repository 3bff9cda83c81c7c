#!/usr/bin/env bash
# Helm for the chart tests (tests/kube/helm_chart.rs): a Python virtualenv with helm-sdkpy, which
# carries Helm's own Go library (lint, install, upgrade, uninstall) behind a Python API. No
# `helm` binary is needed. Cached under ~/.cache/gatehouse/helm-venv; created on first use
# (python3 with venv and pip, and the package index reachable).
#
#   .ci/services/helm.sh [start]  -> prints GATEHOUSE_TEST_HELM_PYTHON=<venv python>
#   eval "$(.ci/services/helm.sh | sed 's/^/export /')"
set -euo pipefail
[ "${1:-start}" = "start" ] || { echo "usage: $0 [start]" >&2; exit 2; }
CACHE="${GATEHOUSE_CACHE:-$HOME/.cache/gatehouse}"
VENV="$CACHE/helm-venv"
# helm-sdkpy declares Python >= 3.12 but runs on 3.11 (Debian bookworm's): hence the flag.
PKGS=(helm-sdkpy==0.1.32 cffi)

# `.complete` is written last: an interrupted install is never taken for a good one.
ok() { [ -f "$VENV/.complete" ] && "$VENV/bin/python" -c 'import helm_sdkpy' 2>/dev/null; }

if ! ok; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing python3-venv" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq python3-venv >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null; }
    fi
  fi
  echo "creating $VENV (helm-sdkpy)" >&2
  mkdir -p "$CACHE"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check --ignore-requires-python "${PKGS[@]}" >&2
  "$VENV/bin/python" -c 'import helm_sdkpy' || { echo "helm-sdkpy does not import in $VENV" >&2; exit 1; }
  touch "$VENV/.complete"
fi
echo "GATEHOUSE_TEST_HELM_PYTHON=$VENV/bin/python"
