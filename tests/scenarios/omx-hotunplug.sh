#!/bin/bash
# Deleting the veth while a program holds the device open (with a PD, CQ,
# MR and QP): the program gets IBV_EVENT_DEVICE_FATAL, later commands fail
# with EIO, and it closes everything and exits cleanly; the device is gone
# and the kernel log stays clean (checked by the runner).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
"$PROGS/omx_async" -d omx0 -o -e DEVICE_FATAL -t 60 -r /tmp/ready \
	>/out/async.txt 2>&1 &
prog=$!
wait_for "test -e /tmp/ready" 30 || fail "omx_async did not start: $(cat /out/async.txt)"
ip -n nsA link del vethA
if ! wait "$prog"; then
	cat /out/async.txt
	fail "program did not get DEVICE_FATAL or did not exit cleanly"
fi
cat /out/async.txt
wait_for "! ibv_devices | grep -q omx0" 20 || fail "omx0 still listed"
# vethB vanished with its peer, so omx1 went away too.
wait_for "! ibv_devices | grep -q omx1" 20 || fail "omx1 still listed"
omx_teardown
