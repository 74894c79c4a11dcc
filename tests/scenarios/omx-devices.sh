#!/bin/bash
# omx devices are visible to the stock rdma-core tools: ibv_devices lists
# omx0/omx1 with MAC-derived GUIDs, ibv_devinfo -v shows an active Ethernet
# port with the right active_mtu for MTU 1500 and 9000 and GID[0], and
# `rdma link` shows both links.  Bad `rdma link add` requests fail cleanly.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup 1500
macA=$(mac_of nsA vethA)
macB=$(mac_of nsB vethB)

log "ibv_devices"
ibv_devices | tee /out/ibv_devices.txt
grep -Eq "^[[:space:]]*omx0[[:space:]]+$(eui64 "$macA")\$" /out/ibv_devices.txt ||
	fail "ibv_devices: omx0 missing or GUID != EUI-64($macA)"
grep -Eq "^[[:space:]]*omx1[[:space:]]+$(eui64 "$macB")\$" /out/ibv_devices.txt ||
	fail "ibv_devices: omx1 missing or GUID != EUI-64($macB)"

for dev in omx0 omx1; do
	log "ibv_devinfo -v -d $dev"
	ibv_devinfo -v -d "$dev" | tee "/out/devinfo-$dev.txt"
	expect_field() { # FIELD REGEX
		grep -Eq "^[[:space:]]*$1:[[:space:]]+$2" "/out/devinfo-$dev.txt" ||
			fail "$dev: $1 is not '$2'"
	}
	expect_field transport 'InfiniBand'
	expect_field state 'PORT_ACTIVE \(4\)'
	expect_field link_layer 'Ethernet'
	expect_field active_mtu '1024 \(3\)'
	expect_field max_mtu '4096 \(5\)'
	expect_field phys_port_cnt '1'
done
grep -Eq "GID\[ *0\]:[[:space:]]+$(gid0_of_mac "$macA")" /out/devinfo-omx0.txt ||
	fail "omx0: GID[0] is not the link-local GID of $macA"
grep -Eq "GID\[ *0\]:[[:space:]]+$(gid0_of_mac "$macB")" /out/devinfo-omx1.txt ||
	fail "omx1: GID[0] is not the link-local GID of $macB"

log "MTU 9000 -> active_mtu 4096, back to 1500 -> 1024"
ip -n nsA link set vethA mtu 9000
ip -n nsB link set vethB mtu 9000
[ "$(port_field omx0 active_mtu)" = "4096 (5)" ] ||
	fail "omx0 active_mtu at MTU 9000: $(port_field omx0 active_mtu)"
ip -n nsA link set vethA mtu 1500
[ "$(port_field omx0 active_mtu)" = "1024 (3)" ] ||
	fail "omx0 active_mtu back at MTU 1500: $(port_field omx0 active_mtu)"

log "rdma link"
rdma link show | tee /out/rdma-link.txt
grep -q '^link omx0/1 state ACTIVE physical_state LINK_UP' /out/rdma-link.txt ||
	fail "rdma link: omx0 missing or not ACTIVE"
grep -q '^link omx1/1 state ACTIVE physical_state LINK_UP' /out/rdma-link.txt ||
	fail "rdma link: omx1 missing or not ACTIVE"
ip netns exec nsA rdma link show omx0/1 | grep -q 'netdev vethA' ||
	fail "rdma link (in nsA): omx0 not bound to vethA"
ip netns exec nsB rdma link show omx1/1 | grep -q 'netdev vethB' ||
	fail "rdma link (in nsB): omx1 not bound to vethB"

log "bad rdma link add requests fail with a reason in the kernel log"
expect_add_fails() { # NS NAME NETDEV WHY
	local before
	before=$(dmesg | wc -l)
	if ip netns exec "$1" rdma link add "$2" type omx netdev "$3" 2>/out/err.txt; then
		fail "rdma link add $2 on $3 ($4) succeeded"
	fi
	log "  $4: $(cat /out/err.txt)"
	if [ "${5:-}" = klog ]; then
		dmesg | tail -n +"$((before + 1))" | grep -q 'rdma_omx' ||
			fail "no kernel log line for $4"
	fi
	if ibv_devices | grep -q "$2"; then
		fail "$2 exists after a failed add"
	fi
}
expect_add_fails nsA omx9 vethA "second device on vethA" klog
ip netns exec nsA ip link set lo up
expect_add_fails nsA omx8 lo "loopback netdev" klog
expect_add_fails nsA omx7 nosuch0 "missing netdev"
ibv_devices | grep -c omx | grep -qx 2 || fail "device count changed"

omx_teardown
