#!/usr/bin/env bash
# rxe-mw.sh: omx_mw (tests/progs/omx_mw.c, memory windows type 1 and 2)
# against Soft-RoCE, to know the program is right before omx has memory
# windows:
#   tests/vm/run --kernel 6.12 tests/scenarios/rxe-mw.sh
# One VM, rxe0 on the NIC, everything in init_net (rxe 6.1/6.12 only
# listens there): omx_mw's checks in one process (same-device loopback),
# then the server/client pair on rxe0, the client connecting to MY_IP.
# RoCEv2 needs the GID index of the NIC's IPv4 address (-g). Each run
# must print "mw ok"; the program's rxe workarounds ("rxe deviation ...")
# are recorded as results. OMX_MW_ARGS adds options (e.g. -Q mw-rkey to
# see a deviation fail).
set -euo pipefail
# shellcheck source=../vm/guest-lib.sh
. "${REPO}/tests/vm/guest-lib.sh"

DEV=rxe0
PORT=18530
PROG=${REPO}/tests/progs/bin/omx_mw
read -r -a extra <<<"${OMX_MW_ARGS:-}"
[[ ${VMS} == 1 ]] || fail "rxe-mw runs in one VM"
[[ -x ${PROG} ]] || fail "${PROG} not built (make -C tests/progs)"

modprobe rdma_rxe || fail "modprobe rdma_rxe"
rdma link add "${DEV}" type rxe netdev "${IFACE}" || fail "rdma link add ${DEV} on ${IFACE}"
ib_port_active "${DEV}"
wait_for "gid_index_for_ip ${DEV} ${MY_IP}" 10 || fail "no IPv4 GID for ${MY_IP} on ${DEV}"
GID=$(gid_index_for_ip "${DEV}" "${MY_IP}")
log "${DEV} on ${IFACE} active, GID index ${GID} ($(uname -r))"

# check NAME FILE: the run printed "mw ok"; its deviations become a result.
check() {
    local name=$1 f=$2
    cat "${f}" >&2
    expect_file_contains "${f}" "^mw ok" "omx_mw ${name}"
    result "mw_${name}" "ok, $(grep -c ': ok\|refused\|refusal' "${f}") check lines"
    result "mw_${name}_deviations" "$(grep -o '^rxe deviation [a-z0-9-]*' "${f}" |
        cut -d' ' -f3 | tr '\n' ' ')"
}

log "omx_mw -d ${DEV} -g ${GID}: one process"
rc=0
timeout 240 "${PROG}" -d "${DEV}" -g "${GID}" "${extra[@]}" >"${OUT}/mw-local.txt" 2>&1 || rc=$?
((rc == 0)) || { cat "${OUT}/mw-local.txt" >&2; fail "omx_mw one process (exit ${rc})"; }
check local "${OUT}/mw-local.txt"

log "omx_mw -S / -C ${MY_IP} on ${DEV}"
timeout 240 "${PROG}" -d "${DEV}" -g "${GID}" -S -p "${PORT}" "${extra[@]}" \
    >"${OUT}/mw-server.txt" 2>&1 &
spid=$!
wait_for "ss -Hltn 'sport = :${PORT}' | grep -q ." 30 ||
    { cat "${OUT}/mw-server.txt" >&2; fail "omx_mw server did not listen"; }
crc=0
timeout 240 "${PROG}" -d "${DEV}" -g "${GID}" -C "${MY_IP}" -p "${PORT}" \
    >"${OUT}/mw-client.txt" 2>&1 || crc=$?
src=0
wait "${spid}" || src=$?
if ((src != 0 || crc != 0)); then
    log "--- server (${src})"; cat "${OUT}/mw-server.txt" >&2
    log "--- client (${crc})"; cat "${OUT}/mw-client.txt" >&2
    fail "omx_mw server/client (server ${src}, client ${crc})"
fi
expect_file_contains "${OUT}/mw-client.txt" "^mw ok \(peer\)" "omx_mw client"
check server "${OUT}/mw-server.txt"
