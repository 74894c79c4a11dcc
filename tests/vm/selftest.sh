#!/usr/bin/env bash
# selftest.sh: prove the runner's verdicts: one passing scenario, and failures for
# exit 1, a kernel WARNING, a guest-side timeout, a kernel panic and the host-side kill. One VM at a time.
#   tests/vm/selftest.sh [6.1|6.12]     (default 6.1)
set -euo pipefail
LOG_TAG=vm-selftest
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"
k=${1:-6.1}
check_series "${k}"
st=${VM_DIR}/selftest
bad=0
expect() { # <PASS|FAIL> <ERE the verdict line must match> <runner args...>
    local want=$1 re=$2 got=PASS out; shift 2
    out=$("${VM_DIR}/run" --kernel "${k}" "$@") || got=FAIL
    echo "${out}" >&2
    if [[ ${got} == "${want}" ]] && grep -qE -- "${re}" <<<"${out}"; then
        log "ok: ${got} as expected: $*"
    else
        log "WRONG: ${got} (expected ${want} matching '${re}'): $*"
        bad=1
    fi
}
expect PASS '^PASS' --mtu 9000 --env 'SELFTEST_FOO=bar baz' --env SELFTEST_NARGS=2 \
    "${st}/pass.sh" "a b" c
expect FAIL 'scenario exited with 1' "${st}/fail-exit.sh"
expect FAIL 'kernel reported: .*WARNING: ' "${st}/fail-warn.sh"
expect FAIL 'scenario timed out after 5 s' --timeout 5 "${st}/fail-timeout.sh"
expect FAIL 'kernel reported: .*Kernel panic' "${st}/fail-panic.sh"
# host-side kill: the guest timeout (100 s) is longer than the outer deadline (15 s)
OMX_VM_OUTER_TIMEOUT=15 expect FAIL 'killed by the host after 15 s' --timeout 100 "${st}/fail-timeout.sh"
[[ ${bad} == 0 ]] || die "runner verdicts are wrong"
log "all runner verdicts correct on ${k}"
