#!/bin/bash
# `rmmod rdma_omx` with devices and open contexts completes without hanging:
# the open contexts are disassociated (DEVICE_FATAL) and close cleanly.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
"$PROGS/omx_async" -d omx0 -o -e DEVICE_FATAL -t 60 -r /tmp/r0 >/out/a0.txt 2>&1 &
p0=$!
"$PROGS/omx_async" -d omx1 -o -e DEVICE_FATAL -t 60 -r /tmp/r1 >/out/a1.txt 2>&1 &
p1=$!
# A third one that holds objects and never reads events, killed at the end.
"$PROGS/omx_objects" -d omx0 -q 8 -w -r /tmp/r2 >/out/o.txt 2>&1 &
p2=$!
wait_for "test -e /tmp/r0 -a -e /tmp/r1 -a -e /tmp/r2" 30 || fail "programs did not start"
timeout 60 rmmod rdma_omx || fail "rmmod with open contexts failed or hung"
log "rmmod returned"
wait "$p0" || fail "omx0 holder: $(cat /out/a0.txt)"
wait "$p1" || fail "omx1 holder: $(cat /out/a1.txt)"
kill -9 "$p2"
wait "$p2" 2>/dev/null || true
lsmod | grep -q '^rdma_omx' && fail "rdma_omx still loaded"
ibv_devices | grep -q omx && fail "devices survived rmmod"
log "reload works after a busy unload"
load_rdma_omx
ip netns exec nsA rdma link add omx0 type omx netdev vethA
"$PROGS/omx_objects" -d omx0 -q 3 >/dev/null || fail "objects after reload"
omx_teardown
