# lib-host.sh: helpers shared by the host-side test-bed scripts (sourced, not run).
# Sets REPO (absolute repo path) and VM_BUILD (cache folder, git-ignored build/vm).
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck disable=SC2034 # used by the scripts that source this file
VM_BUILD=${OMX_VM_BUILD:-${REPO}/build/vm}
# shellcheck disable=SC2034
VM_DIR=${REPO}/tests/vm
: "${LOG_TAG:=$(basename "$0" .sh)}"

log() { printf '%s: %s\n' "${LOG_TAG}" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "${LOG_TAG}" "$*" >&2; exit 1; }

need_cmd() { # <command> <package>: fail clearly when a host tool is missing
    command -v "$1" >/dev/null || [[ -x /sbin/$1 || -x /usr/sbin/$1 ]] \
        || die "'$1' not found (package $2): run tests/vm/setup-host.sh as root"
}

check_series() {
    case "${1:-}" in
        6.1 | 6.12) ;;
        *) die "kernel series must be 6.1 or 6.12 (got '${1:-}')" ;;
    esac
}
