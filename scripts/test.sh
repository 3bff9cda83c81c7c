#!/usr/bin/env bash
# The whole test suite, as a newcomer or CI runs it: starts the services the tests need
# (each from its own script under .ci/, installed on first use), runs `cargo test`, and stops
# exactly the services it started.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup=()
on_exit() { for c in "${cleanup[@]}"; do eval "$c" || true; done; }
trap on_exit EXIT

# Each service script prints KEY=VALUE lines to export and `# STOP=<command>` to run at the end
# (a comment, so that `eval "$(.ci/services/redis.sh)"` in a shell does not run it).
start_service() {
  local out
  out=$(bash "$1" start) || { echo "failed to start $1" >&2; exit 1; }
  while IFS= read -r line; do
    line=${line#export }
    case "$line" in
      "# STOP="*) cleanup+=("${line#"# STOP="}") ;;
      *=*) export "${line?}"; echo "test env: ${line%%=*} set" ;;
    esac
  done <<< "$out"
}
# Per-run state for the services that keep some (.ci/services/redis.sh, rabbitmq.sh).
GATEHOUSE_SERVICES_RUN=$(mktemp -d)
export GATEHOUSE_SERVICES_RUN
for svc in .ci/services/*.sh; do
  [ -e "$svc" ] && start_service "$svc"
done
# Every service is there now: a test that finds one missing fails instead of skipping (a plain
# `cargo test` skips it, saying so). See tests/support/services.rs.
export GATEHOUSE_TEST_REQUIRE_SERVICES=1

log=$(mktemp)
cleanup+=("rm -f $log" "rm -rf $GATEHOUSE_SERVICES_RUN")
set +e
cargo test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"

# The Gateway API conformance suite (GATEWAY-HTTP core; see its README) against the debug
# binary the tests built, on the same kube-apiserver: with the whole suite (no arguments), or
# when GATEHOUSE_CONFORMANCE=1; GATEHOUSE_CONFORMANCE=0 leaves it out. The suite lives beside
# the project (GATEHOUSE_CONFORMANCE_SUITE, default ../shared/gateway-api-conformance); its
# failure fails this script.
if [ "${GATEHOUSE_CONFORMANCE:-$([ $# = 0 ] && echo 1 || echo 0)}" = 1 ]; then
  bash scripts/conformance.sh || status=1
fi
exit "$status"
