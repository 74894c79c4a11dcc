#!/usr/bin/env bash
# rxe-baseline.sh: soft-RoCE (rdma_rxe) baseline numbers, run in the VM test bed.
#   tests/vm/run --kernel 6.1 tests/scenarios/rxe-baseline.sh            (same-device loopback)
#   tests/vm/run --kernel 6.1 --vms 2 tests/scenarios/rxe-baseline.sh    (vm0 server, vm1 client)
# One VM: rxe0 on the NIC, server and client both in init_net (rxe 6.1/6.12 only listens in
# init_net, so no netns), client connects to MY_IP. Two VMs: rxe0 on each side, over the
# QEMU link. Programs: ibv_rc_pingpong (64 B), ib_send_lat (2 B), ib_write_bw (64 KiB).
# Results (client side) go to /out/results.txt as key=value; raw outputs to /out/rxe-*.txt.
# Fails if any program fails.
set -euo pipefail
# shellcheck source=../vm/guest-lib.sh
. "${REPO}/tests/vm/guest-lib.sh"

DEV=rxe0
PORT_PP=18515 PORT_LAT=18516 PORT_BW=18517
PROG_TIMEOUT=${RXE_PROG_TIMEOUT:-150}
if [[ ${VMS} == 2 ]]; then
    topo="two VMs over QEMU dgram link"
    server_ip=10.77.0.1
else
    topo="same-device loopback in one VM"
    server_ip=${MY_IP}
fi

modprobe rdma_rxe || fail "modprobe rdma_rxe"
rdma link add "${DEV}" type rxe netdev "${IFACE}" || fail "rdma link add ${DEV} on ${IFACE}"
ib_port_active "${DEV}"
wait_for "gid_index_for_ip ${DEV} ${MY_IP}" 10 || fail "no IPv4 GID for ${MY_IP} on ${DEV}"
GID=$(gid_index_for_ip "${DEV}" "${MY_IP}")
log "${DEV} on ${IFACE} active, GID index ${GID} ($(uname -r), ${topo})"
ibv_devinfo -d "${DEV}" >"${OUT}/ibv_devinfo-vm${VM_INDEX}.txt" 2>&1 || fail "ibv_devinfo -d ${DEV}"

if [[ ${VMS} == 2 ]]; then
    pingcmd=(ping); command -v ping >/dev/null || pingcmd=(busybox ping)
    wait_for "${pingcmd[*]} -c 1 -W 1 ${PEER_IP}" 60 || fail "no IP connectivity to ${PEER_IP}"
fi

# server PROG PORT ARGS...: run the server side (fail on error), output to /out
server() {
    local prog=$1 port=$2; shift 2
    log "server: ${prog} $*"
    timeout "${PROG_TIMEOUT}" "${prog}" "$@" >"${OUT}/rxe-${prog}-server.txt" 2>&1 \
        || fail "${prog} server failed (exit $?): $(tail -n 3 "${OUT}/rxe-${prog}-server.txt")"
}

# client PROG PORT ARGS...: run the client, retrying while the server is not listening yet
client() {
    local prog=$1 port=$2 out rc tries=0; shift 2
    out=${OUT}/rxe-${prog}-client.txt
    log "client: ${prog} $* ${server_ip}"
    while :; do
        rc=0
        timeout "${PROG_TIMEOUT}" "${prog}" "$@" "${server_ip}" >"${out}" 2>&1 || rc=$?
        [[ ${rc} == 0 ]] && return 0
        if ((++tries < 90)) && grep -qiE "couldn't connect|unable to init the socket|connection refused|failed to connect" "${out}"; then
            sleep 1
            continue
        fi
        fail "${prog} client failed (exit ${rc}): $(tail -n 3 "${out}")"
    done
}

# pair PROG PORT ARGS...: server+client of one program (one VM: both here; two VMs: by role)
pair() {
    local prog=$1 port=$2 spid
    case "${VMS}:${ROLE}" in
        2:server) server "$@" ;;
        2:client) client "$@" ;;
        *)
            server "$@" &
            spid=$!
            wait_for "ss -Hltn 'sport = :${port}' | grep -q ." 30 || fail "${prog} server did not listen"
            client "$@"
            wait "${spid}" || fail "${prog} server failed"
            ;;
    esac
}

pair ibv_rc_pingpong "${PORT_PP}" -d "${DEV}" -g "${GID}" -p "${PORT_PP}" -s 64 -n 1000
pair ib_send_lat "${PORT_LAT}" -d "${DEV}" -x "${GID}" -p "${PORT_LAT}" -s 2 -n 1000 -F
pair ib_write_bw "${PORT_BW}" -d "${DEV}" -x "${GID}" -p "${PORT_BW}" -s 65536 -F

[[ ${ROLE} == server ]] && { log "server side done"; exit 0; }

# --- parse the client outputs ------------------------------------------------------------
pp=${OUT}/rxe-ibv_rc_pingpong-client.txt
lat=${OUT}/rxe-ib_send_lat-client.txt
bw=${OUT}/rxe-ib_write_bw-client.txt
pp_us=$(awk '/iters in/ { print $(NF-1) }' "${pp}")
pp_mbit=$(awk '/bytes in/ { print $(NF-1) }' "${pp}")
read -r lat_min lat_typ lat_avg < <(awk '$1 == 2 && NF >= 7 { print $3, $5, $6 }' "${lat}") || true
read -r bw_peak bw_avg < <(awk '$1 == 65536 && NF >= 4 { print $3, $4 }' "${bw}") || true
[[ -n ${pp_us} && -n ${lat_typ:-} && -n ${bw_avg:-} ]] || fail "could not parse the program outputs"

result kver "$(uname -r)"
result topology "${topo}"
result date "$(date -u +%Y-%m-%dT%H:%MZ)"
result mtu "${MTU}"
result rc_pingpong_64B_usec_per_iter "${pp_us}"
result rc_pingpong_64B_Mbit_s "${pp_mbit}"
result send_lat_2B_t_min_us "${lat_min}"
result send_lat_2B_t_typical_us "${lat_typ}"
result send_lat_2B_t_avg_us "${lat_avg}"
result write_bw_64KiB_peak_MB_s "${bw_peak}"
result write_bw_64KiB_avg_MB_s "${bw_avg}"
