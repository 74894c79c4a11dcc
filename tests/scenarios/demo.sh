#!/bin/bash
# `make demo`: two omx devices on a veth pair, shown by the stock tools.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
run() { echo; echo "# $*"; "$@"; }
run ibv_devices
run ibv_devinfo -d omx0
run ibv_devinfo -v -d omx1
run rdma link show
run ip netns exec nsA rdma link show
run rdma dev show
"$PROGS/omx_objects" -d omx0 -q 2 -w -r /tmp/ready >/dev/null &
wait_for "test -e /tmp/ready" 30
run rdma resource show
run rdma resource show qp
kill -9 %1
omx_teardown
