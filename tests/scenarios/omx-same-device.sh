#!/bin/bash
# Peers on one device, and no crosstalk between the processes of a device.
#
# 1. Two processes on omx0 (both in nsA): Debian's ibv_rc_pingpong with
#    default options, -c, -e, -s 65536, through shared memory (same-host
#    delivery, docs/wire.md section 11). Then, validated (-c), with one
#    direction and with both directions forced onto the netdev
#    (OMX_LOCAL=0), and the debug lines must say which path each side took.
# 2. Two QPs of one process, and a QP connected to itself (omx_loopback):
#    SEND, RDMA WRITE with immediate and RDMA READ, every byte checked.
# 3. Crosstalk: at the same time, on the same two devices, a bulk pair
#    (64 KiB messages, nsA/omx0 <- nsB/omx1), a validated pair (-c) on the
#    same path, a validated same-device pair on omx1 (all with -e) and
#    omx_loopback on omx0.  Every process must finish with validated data: the others'
#    traffic never reaches it.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

same() { # NAME TIMEOUT ARGS...: a pair on omx0 inside nsA
	local name=$1 t=$2
	shift 2
	pp_start "$name" "$t" nsA omx0 nsA omx0 "$@"
	pp_wait "$name"
}

same same-default 120
same same-c 120 -c
same same-events 120 -e
same same-s64k 240 -s 65536 -n 200

# path NAME SIDE WHAT: the side's debug line names the path it sends on.
path() {
	expect_file_contains "$OUT/pp-$1-$2.txt" "-> local endpoint [0-9]*: $3" "$1 $2 path"
}
PP_SENV="OMX_DEBUG=1" PP_CENV="OMX_DEBUG=1" same same-shm 120 -c -n 2000
path same-shm server "shared memory"
path same-shm client "shared memory"
PP_SENV="OMX_DEBUG=1 OMX_LOCAL=0" PP_CENV="OMX_DEBUG=1" same same-mixed 120 -c -n 2000
path same-mixed server 'netdev \(OMX_LOCAL=0\)'
path same-mixed client "shared memory"
PP_SENV="OMX_DEBUG=1 OMX_LOCAL=0" PP_CENV="OMX_DEBUG=1 OMX_LOCAL=0" \
	same same-netdev 120 -c -e -n 2000
path same-netdev server 'netdev \(OMX_LOCAL=0\)'
path same-netdev client 'netdev \(OMX_LOCAL=0\)'

log "omx_loopback: two QPs of one process and a self-connected QP"
ip netns exec nsA timeout 120 "$PROGS/omx_loopback" -d omx0 -n 50 -s 4096 \
	>"$OUT/loopback.txt" 2>&1 || { cat "$OUT/loopback.txt" >&2; fail "omx_loopback"; }
expect_file_contains "$OUT/loopback.txt" "loopback ok" "omx_loopback"
ip netns exec nsA timeout 120 "$PROGS/omx_loopback" -d omx0 -n 20 -s 1 \
	>"$OUT/loopback-1.txt" 2>&1 || { cat "$OUT/loopback-1.txt" >&2; fail "omx_loopback -s 1"; }
ip netns exec nsA timeout 120 "$PROGS/omx_loopback" -d omx0 -n 5 -s 300000 \
	>"$OUT/loopback-big.txt" 2>&1 || { cat "$OUT/loopback-big.txt" >&2; fail "omx_loopback -s 300000"; }

log "crosstalk: four workloads on two devices at once"
# The pairs sleep on completion events (-e): eight busy-polling processes on
# the guest's two vCPUs would starve each other past the RC retry budget
# (rc_pingpong's 7 retries of 67 ms), which tests the scheduler, not
# isolation.
pp_start x-bulk 400 nsA omx0 nsB omx1 -e -s 65536 -n 1500
pp_start x-checked 400 nsA omx0 nsB omx1 -e -c -n 3000
pp_start x-same 400 nsB omx1 nsB omx1 -e -c -n 3000
ip netns exec nsA timeout 400 "$PROGS/omx_loopback" -d omx0 -n 100 -s 8192 \
	>"$OUT/loopback-x.txt" 2>&1 &
lb=$!
pp_wait x-bulk
pp_wait x-checked
pp_wait x-same
wait "$lb" || { cat "$OUT/loopback-x.txt" >&2; fail "omx_loopback during crosstalk"; }
expect_file_contains "$OUT/loopback-x.txt" "loopback ok" "omx_loopback during crosstalk"

omx_teardown
