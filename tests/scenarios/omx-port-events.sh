#!/bin/bash
# Port state follows the netdev: `ip link set vethA down` makes omx0's port
# DOWN and a program receives IBV_EVENT_PORT_ERR, then PORT_ACTIVE after up.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
"$PROGS/omx_async" -d omx0 -e PORT_ERR,PORT_ACTIVE -t 60 -r /tmp/ready \
	>/out/async.txt 2>&1 &
prog=$!
wait_for "test -e /tmp/ready" 30 || fail "omx_async did not start: $(cat /out/async.txt)"

ip -n nsA link set vethA down
wait_for "ibv_devinfo -d omx0 | grep -q 'PORT_DOWN'" 10 ||
	fail "port not DOWN after link down: $(port_field omx0 state)"
rdma link show omx0/1 | grep -q 'state DOWN' || fail "rdma link not DOWN"
ip -n nsA link set vethA up
wait_for "ibv_devinfo -d omx0 | grep -q 'PORT_ACTIVE'" 10 ||
	fail "port not ACTIVE after link up"
wait "$prog" || fail "omx_async: $(cat /out/async.txt)"
cat /out/async.txt

log "carrier loss on the peer end also takes the port down"
"$PROGS/omx_async" -d omx0 -e PORT_ERR,PORT_ACTIVE -t 60 -r /tmp/ready2 \
	>/out/async2.txt 2>&1 &
prog=$!
wait_for "test -e /tmp/ready2" 30 || fail "omx_async did not start"
ip -n nsB link set vethB down
wait_for "ibv_devinfo -d omx0 | grep -q 'PORT_DOWN'" 10 || fail "no DOWN on carrier loss"
ip -n nsB link set vethB up
wait "$prog" || fail "omx_async (carrier): $(cat /out/async2.txt)"
cat /out/async2.txt
omx_teardown
