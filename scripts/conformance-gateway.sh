#!/usr/bin/env bash
# The gateway as the Gateway API conformance suite starts it (see scripts/conformance.sh):
# Gatehouse's own CRDs are installed first, as an installation has them (the suite's API
# server may be fresh; existing ones are left alone), then the binary runs in Kubernetes mode
# in place of this script. Needs KUBECONFIG, GATEHOUSE_CONFORMANCE_BIN and
# GATEHOUSE_CONFORMANCE_SUITE_DIR (whose harness.py has the API client).
set -euo pipefail
python3 - <<'PY'
import os, sys, yaml
sys.path.insert(0, os.environ["GATEHOUSE_CONFORMANCE_SUITE_DIR"])
import harness
client = harness.KubeClient(os.environ["KUBECONFIG"])
for doc in yaml.safe_load_all(open("crds/gatehouse.dev.yaml")):
    if not doc:
        continue
    try:
        client.create(doc)
    except harness.ApiError as e:
        if e.code != 409:
            raise
PY
exec "$GATEHOUSE_CONFORMANCE_BIN" run --lease-namespace default
