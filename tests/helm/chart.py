"""Helm actions for the chart tests (tests/helm_chart.rs), through helm-sdkpy (Helm's own Go
library behind a Python API; the virtualenv comes from .ci/services/helm.sh).

    chart.py lint CHART
        Helm's lint; prints {"messages": [...], "errors": [...]}. Exit 1 on any warning or error.
    chart.py upgrade RELEASE NAMESPACE CHART [VALUES_JSON]
        `helm upgrade --install` (namespace created if missing, no waiting: nothing runs pods
        on the test API server); prints the release as JSON, its `manifest` the rendered YAML.
    chart.py uninstall RELEASE NAMESPACE
        `helm uninstall`; a release that does not exist is not an error.

KUBECONFIG names the cluster. Helm's own messages go to stderr.
"""
import asyncio
import json
import os
import sys

import helm_sdkpy as helm


def config(namespace):
    return helm.Configuration(namespace=namespace, kubeconfig=os.environ["KUBECONFIG"])


def lint(chart):
    res = asyncio.run(helm.Lint(helm.Configuration()).run(chart))
    messages = res.get("Messages") or res.get("messages") or []
    errors = res.get("Errors") or res.get("errors") or []
    # Severity: 1 info, 2 warning, 3 error (Helm's support.Severity).
    bad = [m for m in messages if (m.get("Severity") or m.get("severity") or 0) > 1]
    print(json.dumps({"messages": messages, "errors": errors}, indent=2))
    return 1 if bad or errors else 0


def upgrade(release, namespace, chart, values_json=None):
    values = json.loads(values_json) if values_json else {}
    res = asyncio.run(
        helm.Upgrade(config(namespace)).run(
            release,
            chart,
            values=values,
            install=True,
            create_namespace=True,
            wait=False,
            timeout=120,
            # CRDs applied earlier with `kubectl apply -f crds/` (as the other tests do) become
            # the release's: the documented way to move such a cluster to the chart.
            take_ownership=True,
            # Replace, don't merge: each call states every value it wants.
            reset_values=True,
        )
    )
    info = res.get("info") or {}
    print(json.dumps({
        "name": res.get("name"),
        "namespace": res.get("namespace"),
        "version": res.get("version"),
        "status": info.get("status"),
        "notes": info.get("notes"),
        "manifest": res.get("manifest"),
    }))
    return 0


def uninstall(release, namespace):
    try:
        res = asyncio.run(helm.Uninstall(config(namespace)).run(release, wait=False, timeout=60))
    except helm.ReleaseNotFoundError:
        res = {"absent": release}
    except helm.HelmError as e:
        if "not found" not in str(e):
            raise
        res = {"absent": release}
    print(json.dumps(res, default=str))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "lint":
        return lint(argv[1])
    if len(argv) in (4, 5) and argv[0] == "upgrade":
        return upgrade(*argv[1:])
    if len(argv) == 3 and argv[0] == "uninstall":
        return uninstall(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
