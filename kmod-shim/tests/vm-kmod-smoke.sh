#!/bin/bash
# vm-kmod-smoke.sh: kernel-only checks of rdma_omx, no provider needed.
#   tests/vm/run --kernel 6.1  kmod-shim/tests/vm-kmod-smoke.sh
#   tests/vm/run --kernel 6.12 kmod-shim/tests/vm-kmod-smoke.sh
# Drives the module with `rdma`, sysfs and omx_uverbs_smoke (raw uverbs
# commands and the CQ_NOTIFY ioctl).  The runner fails the run on any
# kernel WARNING/BUG/lockdep message.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"

SMOKE=/tmp/omx_uverbs_smoke
gcc -O2 -Wall -pthread -I "$REPO/kmod-shim/include/uapi" -o "$SMOKE" \
	"$REPO/kmod-shim/tests/omx_uverbs_smoke.c" || fail "cannot build smoke"

eui64() { # MAC -> node_guid as sysfs prints it
	local IFS=: b
	read -r -a b <<<"$1"
	printf '%02x%s:%sff:fe%s:%s%s\n' $((0x${b[0]} ^ 2)) "${b[1]}" \
		"${b[2]}" "${b[3]}" "${b[4]}" "${b[5]}"
}

add_fails() { # NS NAME NETDEV WHY WANT_ERRSTR
	local before
	before=$(dmesg | wc -l)
	if ip netns exec "$1" rdma link add "$2" type omx netdev "$3" 2>/out/err.txt; then
		fail "rdma link add $2 on $3 ($4) succeeded"
	fi
	log "  $4: $(cat /out/err.txt) | klog: $(dmesg | tail -n +"$((before + 1))" | grep rdma_omx || true)"
	result "add_fail_$2" "$(tr ' ' _ </out/err.txt)"
	grep -q "$5" /out/err.txt || fail "$4: expected '$5'"
	[ -n "${6:-}" ] || [ ! -e "/sys/class/infiniband/$2" ] ||
		fail "$2 exists after a failed add"
}

load_rdma_omx
netns_pair nsA nsB vethA vethB
ip netns exec nsA rdma link add omx0 type omx netdev vethA || fail "add omx0"
ip netns exec nsB rdma link add omx1 type omx netdev vethB || fail "add omx1"
ib_port_active omx0
ib_port_active omx1

log "sysfs"
S=/sys/class/infiniband/omx0
ls "$S" "$S/ports/1" >/out/sysfs-ls.txt
expect_eq "$(cat "$S/omx_abi_version")" 2 omx_abi_version
expect_eq "$(cat "$S/node_type")" "1: CA" node_type
expect_eq "$(cat "$S/ports/1/link_layer")" Ethernet link_layer
expect_eq "$(cat "$S/ports/1/phys_state")" "5: LinkUp" phys_state
expect_eq "$(cat "$S/ports/1/pkeys/0")" 0xffff pkey0
expect_eq "$(cat "$S/fw_ver")" omx-2 fw_ver
macA=$(ip netns exec nsA cat /sys/class/net/vethA/address)
log "node_guid $(cat "$S/node_guid") mac $macA"
expect_eq "$(cat "$S/node_guid")" "$(eui64 "$macA")" node_guid
gid0=$(cat "$S/ports/1/gids/0")
log "gid0 $gid0 type $(cat "$S/ports/1/gid_attrs/types/0") ndev $(cat "$S/ports/1/gid_attrs/ndevs/0")"
expect_contains "$gid0" "fe80:0000:0000:0000:" gid0
expect_eq "$(cat "$S/ports/1/gid_attrs/types/0")" "IB/RoCE v1" gid0_type
wait_for "grep -q '0000:0000:0000:0000:0000:ffff:0a4e:0001' $S/ports/1/gids/*" 10 ||
	fail "no IPv4 GID for 10.78.0.1"
rdma link show | tee /out/rdma-link.txt >&2
grep -q '^link omx0/1 state ACTIVE physical_state LINK_UP' /out/rdma-link.txt ||
	fail "rdma link: omx0"
ip netns exec nsA rdma link show omx0/1 | grep -q 'netdev vethA' ||
	fail "omx0 not bound to vethA in nsA"
rdma dev show omx0 | tee /out/rdma-dev.txt >&2

log "query device/port"
"$SMOKE" "$(uverbs_of omx0)" port | tee /out/port.txt >&2
grep -q 'PORT state=4 phys_state=5 active_mtu=3 max_mtu=5 gid_tbl_len=64 pkey_tbl_len=1 link_layer=2' /out/port.txt ||
	fail "port attributes"
grep -q 'max_qp=65536 max_qp_wr=16384 max_sge=8 max_cq=65536 max_cqe=4194303 max_mr=1048575' /out/port.txt ||
	fail "device attributes"
grep -q 'max_srq=65536 max_srq_wr=16384 max_srq_sge=8 ' /out/port.txt ||
	fail "SRQ device attributes"
grep -q ' max_mw=262144 ' /out/port.txt || fail "max_mw"
ip netns exec nsA "$SMOKE" "$(uverbs_of omx0)" port >/out/port-nsA.txt
grep -q 'flags=0x1 ' /out/port-nsA.txt || fail "no NETDEV_IN_CALLER_NS in nsA"
grep -q 'flags=0x0 ' /out/port.txt || fail "NETDEV_IN_CALLER_NS outside nsA"
endpoint_of() { sed -n 's/.* endpoint=\([0-9]*\) .*/\1/p' "$1" | head -n1; }
ep1=$(endpoint_of /out/port.txt)
ep2=$(endpoint_of /out/port-nsA.txt)
log "endpoints $ep1, $ep2"
[ "$ep2" = $((ep1 % 4095 + 1)) ] || fail "endpoints are not allocated cyclically"
for mtu_ib in 9000:5 4200:5 2200:4 1100:3 600:2 1500:3; do
	ip -n nsA link set vethA mtu "${mtu_ib%%:*}"
	"$SMOKE" "$(uverbs_of omx0)" port >/out/port.txt
	grep -q "active_mtu=${mtu_ib#*:} " /out/port.txt ||
		fail "MTU ${mtu_ib%%:*}: $(grep PORT /out/port.txt)"
done
log "active_mtu follows the MTU"

log "bad rdma link add"
add_fails nsA omx9 vethA "second device on vethA" "File exists"
ip netns exec nsA ip link set lo up
add_fails nsA omx8 lo "loopback netdev" "Invalid argument"
add_fails nsA omx7 nosuch0 "missing netdev" "No such device"
ip link add vethC type veth peer name vethD
ip netns add nsC
ip link set vethC netns nsC
add_fails nsC myrxe0 vethC "name with rxe" "Invalid argument"
add_fails nsC omx1 vethC "name taken" "File exists" exists
[ ! -e /sys/class/infiniband/omx1/ports/1/gid_attrs/ndevs/0 ] ||
	[ "$(cat /sys/class/infiniband/omx1/ports/1/gid_attrs/ndevs/0)" = vethB ] ||
	fail "omx1 was rebound"

log "objects, notify, restrack"
rm -f /tmp/fifo && mkfifo /tmp/fifo
"$SMOKE" "$(uverbs_of omx0)" run </tmp/fifo >/out/smoke-run.txt 2>&1 &
prog=$!
exec 9>/tmp/fifo
wait_for "grep -q READY /out/smoke-run.txt" 60 || { cat /out/smoke-run.txt >&2; fail "smoke run"; }
for r in pd cq qp mr srq; do
	rdma resource show "$r" >"/out/res-$r.txt" 2>&1 || true
	rdma -dd resource show "$r" >>"/out/res-$r.txt" 2>&1 || true
	cat "/out/res-$r.txt" >&2
	grep -q omx_uverbs_smo "/out/res-$r.txt" || fail "rdma resource show $r: no entry"
done
grep -q 'endpoint' /out/res-qp.txt || fail "no endpoint driver attribute"
echo go >&9
exec 9>&-
wait "$prog" || { cat /out/smoke-run.txt >&2; fail "smoke run failed"; }
cat /out/smoke-run.txt >&2
grep -q 'DONE failures=0' /out/smoke-run.txt || fail "smoke checks failed"
# The run left MWs (and more) to the close: nothing stays charged.
wait_for "[ -z \"\$(cat $S/omx_users)\" ]" 10 || fail "omx_users after the run: $(cat $S/omx_users)"

log "kill -9 cleanup"
"$SMOKE" "$(uverbs_of omx0)" hold >/out/smoke-kill.txt 2>&1 &
prog=$!
wait_for "grep -q READY /out/smoke-kill.txt" 60 || fail "smoke hold"
rdma resource show qp | grep -q omx_uverbs_smo || fail "no QP before kill"
rdma resource show srq | grep -q omx_uverbs_smo || fail "no SRQ before kill"
kill -9 "$prog"
wait "$prog" 2>/dev/null || true
for r in pd cq qp mr srq; do
	if rdma resource show "$r" 2>/dev/null | grep -q omx_uverbs_smo; then
		fail "$r left after kill -9"
	fi
done
wait_for "[ -z \"\$(cat $S/omx_users)\" ]" 10 || fail "omx_users after kill -9: $(cat $S/omx_users)"

log "port events"
"$SMOKE" "$(uverbs_of omx0)" hold >/out/smoke-hold.txt 2>&1 &
prog=$!
wait_for "grep -q READY /out/smoke-hold.txt" 60 || fail "smoke hold"
ip -n nsA link set vethA down
wait_for "grep -q DOWN /sys/class/infiniband/omx0/ports/1/state" 10 || fail "port not DOWN"
expect_eq "$(cat "$S/ports/1/phys_state")" "3: Disabled" phys_state_down
ip -n nsA link set vethA up
ib_port_active omx0
ip -n nsB link set vethB down
wait_for "grep -q DOWN /sys/class/infiniband/omx0/ports/1/state" 10 || fail "no DOWN on carrier loss"
ip -n nsB link set vethB up
ib_port_active omx0
ip -n nsA link set vethA down
ip -n nsA link set vethA address 02:11:22:33:44:55
ip -n nsA link set vethA up
wait_for "grep -q '0011:22ff:fe33:4455' $S/node_guid" 5 || fail "node_guid: $(cat $S/node_guid)"
wait_for "grep -q 'fe80:0000:0000:0000:0011:22ff:fe33:4455' $S/ports/1/gids/0" 10 || fail "gid0: $(cat $S/ports/1/gids/0)"
ip -n nsA link set vethA down
ip -n nsA link set vethA name vethRen
ip -n nsA link set vethRen up
ib_port_active omx0
ip netns exec nsA rdma link show omx0/1 | grep -q 'netdev vethRen' || fail "rename"
sleep 1

log "hot unplug with an open context"
ip -n nsA link del vethRen
wait "$prog" || { cat /out/smoke-hold.txt >&2; fail "hold program"; }
cat /out/smoke-hold.txt >&2
grep -q 'ASYNC PORT_ERR' /out/smoke-hold.txt || fail "no PORT_ERR event"
grep -q 'ASYNC PORT_ACTIVE' /out/smoke-hold.txt || fail "no PORT_ACTIVE event"
grep -q 'ASYNC LID_CHANGE' /out/smoke-hold.txt || fail "no LID_CHANGE event"
grep -q 'ASYNC DEVICE_FATAL' /out/smoke-hold.txt || fail "no DEVICE_FATAL"
grep -q 'DONE failures=0' /out/smoke-hold.txt || fail "hold checks"
wait_for "test ! -e /sys/class/infiniband/omx0" 20 || fail "omx0 still there"
wait_for "test ! -e /sys/class/infiniband/omx1" 20 || fail "omx1 still there"

log "rmmod with open contexts"
ip link add vethE type veth peer name vethF
ip link set vethE up
ip link set vethF up
rdma link add omx2 type omx netdev vethE || fail "add omx2"
rdma link add omx3 type omx netdev vethF || fail "add omx3"
ib_port_active omx2
"$SMOKE" "$(uverbs_of omx2)" hold >/out/rm0.txt 2>&1 &
p0=$!
"$SMOKE" "$(uverbs_of omx3)" hold >/out/rm1.txt 2>&1 &
p1=$!
wait_for "grep -q READY /out/rm0.txt && grep -q READY /out/rm1.txt" 60 || fail "holders"
timeout 60 rmmod rdma_omx || fail "rmmod with open contexts failed or hung"
grep -q 'fatal eventfd signalled' /out/rm0.txt || fail "no fatal eventfd check"
wait "$p0" || { cat /out/rm0.txt >&2; fail "holder 0"; }
wait "$p1" || { cat /out/rm1.txt >&2; fail "holder 1"; }
grep -q 'DONE failures=0' /out/rm0.txt || fail "holder 0 checks"
! lsmod | grep -q '^rdma_omx' || fail "still loaded"

log "reload, add, delete, rmmod"
load_rdma_omx
rdma link add omx2 type omx netdev vethE || fail "re-add omx2"
ib_port_active omx2
"$SMOKE" "$(uverbs_of omx2)" port >/out/reload-port.txt || fail "port after reload"
rdma link delete omx2 || fail "rdma link delete"
[ ! -e /sys/class/infiniband/omx2 ] || fail "omx2 survived delete"
rdma link add omx2 type omx netdev vethE || fail "add after delete"
ip link del vethE
wait_for "test ! -e /sys/class/infiniband/omx2" 20 || fail "omx2 survived veth del"
timeout 60 rmmod rdma_omx || fail "final rmmod"

log "endpoints and QP slots start anywhere"
# First endpoint of four devices (omx0, omx2 twice, omx3): all 1 without
# the random cursor (chance of a false alarm: 4095^-4).  First QP slot of
# five contexts: all 0 without it (4096^-5).
firsts="$ep1 $(endpoint_of /out/rm0.txt) $(endpoint_of /out/rm1.txt) $(endpoint_of /out/reload-port.txt)"
log "first endpoints: $firsts"
[ "$firsts" != "1 1 1 1" ] || fail "every device starts at endpoint 1"
slots=$(cat /out/smoke-run.txt /out/smoke-kill.txt /out/smoke-hold.txt /out/rm0.txt /out/rm1.txt |
	sed -n 's/^READY .* qpn=0x\([0-9a-f]*\) .*/\1/p' | while read -r q; do echo $((0x$q & 4095)); done | tr '\n' ' ')
log "first QP slots: $slots"
[ "$(echo "$slots" | wc -w)" = 5 ] || fail "QPNs missing"
[ "$slots" != "0 0 0 0 0 " ] || fail "every context starts at QP slot 0"
dmesg | grep -E 'rdma_omx|omx[0-9]' >/out/dmesg-omx.txt || true
log "PASS"
