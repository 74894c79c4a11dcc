#!/bin/bash
# vm-kmod-cycles.sh: 100 `rdma link add`/`delete` cycles (a context opened on
# every tenth device), concurrent adds on one netdev, an add racing the
# netdev's deletion, then rmmod.  Kernel only, no provider.
#   tests/vm/run --kernel 6.1 kmod-shim/tests/vm-kmod-cycles.sh
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"

SMOKE=/tmp/omx_uverbs_smoke
gcc -O2 -Wall -pthread -I "$REPO/kmod-shim/include/uapi" -o "$SMOKE" \
	"$REPO/kmod-shim/tests/omx_uverbs_smoke.c" || fail "cannot build smoke"

load_rdma_omx
netns_pair nsA nsB vethA vethB
for i in $(seq 1 100); do
	ip netns exec nsA rdma link add omx0 type omx netdev vethA ||
		fail "cycle $i: add failed"
	if [ $((i % 10)) -eq 0 ]; then
		"$SMOKE" "$(uverbs_of omx0)" port >/dev/null || fail "cycle $i: port"
	fi
	rdma link delete omx0 || fail "cycle $i: delete failed"
done
log "100 add/delete cycles done"

log "8 concurrent adds on one netdev: exactly one wins"
for i in $(seq 1 8); do
	ip netns exec nsB rdma link add "omxc$i" type omx netdev vethB 2>/dev/null &
done
wait || true
n=$(ls -d /sys/class/infiniband/omxc* 2>/dev/null | wc -l)
expect_eq "$n" 1 "devices on vethB"

log "adds racing netdev deletion"
for i in $(seq 1 20); do
	ip link add "vr$i" type veth peer name "vs$i"
	rdma link add "omxr$i" type omx netdev "vr$i" 2>/dev/null &
	ip link del "vr$i" 2>/dev/null || true
	wait || true
done
wait_for "! ls -d /sys/class/infiniband/omxr* >/dev/null 2>&1" 20 ||
	fail "a device outlived its netdev: $(ls /sys/class/infiniband)"
timeout 60 rmmod rdma_omx || fail "rmmod failed or hung"
! lsmod | grep -q '^rdma_omx' || fail "still loaded"
log "PASS"
