#!/bin/bash
# 100 cycles of `rdma link add` / `rdma link delete`, with a context opened
# on every tenth device, then `rmmod rdma_omx` succeeds: nothing leaked.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

load_rdma_omx
install_omx_provider
netns_pair nsA nsB vethA vethB
for i in $(seq 1 100); do
	ip netns exec nsA rdma link add omx0 type omx netdev vethA ||
		fail "cycle $i: add failed"
	if [ $((i % 10)) -eq 0 ]; then
		"$PROGS/omx_objects" -d omx0 -q 3 >/dev/null ||
			fail "cycle $i: objects on a fresh device failed"
	fi
	rdma link delete omx0 || fail "cycle $i: delete failed"
done
log "100 add/delete cycles done"
# Leaks: every device checks on teardown that its context, PD, CQ, QP and
# MR counts and its endpoint table are back to zero (WARN_ON in
# dealloc_driver), and the runner fails the run on any kernel WARNING.
ibv_devices | grep -q omx && fail "a device survived its deletion"
omx_teardown
lsmod | grep -q '^rdma_omx' && fail "rdma_omx still loaded"
log "PASS"
