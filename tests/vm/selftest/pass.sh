#!/usr/bin/env bash
# pass.sh: must PASS. Checks the guest environment the runner promises.
set -euo pipefail
# shellcheck source=../guest-lib.sh
. "${REPO}/tests/vm/guest-lib.sh"
expect_eq "$(uname -r)" "${KVER}" "uname -r"
for v in REPO KSERIES KVER VM_INDEX VMS ROLE MY_IP IFACE MTU; do
    [[ -n ${!v:-} ]] || fail "${v} not set"
done
[[ -d /sys/class/net/${IFACE} ]] || fail "no ${IFACE}"
expect_contains "$(ip -4 addr show dev "${IFACE}")" "${MY_IP}/24" "${IFACE} addresses"
expect_eq "$(cat "/sys/class/net/${IFACE}/mtu")" "${MTU}" "MTU of ${IFACE}"
mountpoint -q /sys/kernel/debug || fail "debugfs not mounted"
[[ $(stat -f -c %T /tmp) == tmpfs ]] || fail "/tmp is not a fresh tmpfs"
modprobe ib_uverbs || fail "modprobe ib_uverbs"
netns_pair nsa nsb va vb 9000
ip netns exec nsa ping -c 1 -W 2 10.78.0.2 >/dev/null 2>&1 \
    || ip netns exec nsa busybox ping -c 1 -W 2 10.78.0.2 >/dev/null || fail "veth ping"
[[ -z ${SELFTEST_FOO+x} || ${SELFTEST_FOO} == "bar baz" ]] || fail "--env value mangled"
[[ $# == "${SELFTEST_NARGS:-0}" ]] || fail "got $# arguments, expected ${SELFTEST_NARGS:-0}"
[[ $# == 0 || $1 == "a b" ]] || fail "first argument is '$1', expected 'a b'"
echo ok >"${OUT}/selftest-pass.txt"
log "environment OK"
