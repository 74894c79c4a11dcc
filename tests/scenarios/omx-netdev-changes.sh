#!/bin/bash
# The device follows its netdev: MTU changes (active_mtu), MAC changes
# (node GUID and GID[0]) and renames (`rdma link` shows the new name).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
for mtu_ib in "1500:1024 (3)" "2200:2048 (4)" "4200:4096 (5)" "1100:1024 (3)" "600:512 (2)" "9000:4096 (5)"; do
	mtu=${mtu_ib%%:*}
	ip -n nsA link set vethA mtu "$mtu"
	[ "$(port_field omx0 active_mtu)" = "${mtu_ib#*:}" ] ||
		fail "MTU $mtu: active_mtu $(port_field omx0 active_mtu), want ${mtu_ib#*:}"
done
log "MTU changes followed"

newmac=02:11:22:33:44:55
ip -n nsA link set vethA down
ip -n nsA link set vethA address "$newmac"
ip -n nsA link set vethA up
wait_for "ibv_devices | grep -q '$(eui64 $newmac)'" 10 ||
	fail "node GUID did not follow the MAC change: $(ibv_devices)"
wait_for "ibv_devinfo -v -d omx0 | grep -Eq 'GID\\[ *0\\]:[[:space:]]+$(gid0_of_mac $newmac)'" 10 ||
	fail "GID[0] did not follow the MAC change"
log "MAC change followed"

ip -n nsA link set vethA down
ip -n nsA link set vethA name vethRenamed
ip -n nsA link set vethRenamed up
wait_for "ibv_devinfo -d omx0 | grep -q PORT_ACTIVE" 10 || fail "port not active after rename"
ip netns exec nsA rdma link show omx0/1 | grep -q 'netdev vethRenamed' ||
	fail "rdma link did not follow the rename"
"$PROGS/omx_objects" -d omx0 -q 3 >/dev/null || fail "device unusable after changes"
log "rename followed"
omx_teardown
