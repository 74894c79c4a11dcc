#!/bin/bash
# UD multicast (issue 12, docs/wire.md §13.5, docs/kmod.md §5a).
# tests/progs/omx_mcast in nsB on omx1, sender in nsA on omx0:
#  - two receiver processes: one with three UD QPs of which two are
#    attached to the group, one with one attached QP; the sender sends
#    16 datagrams to the group's AH with remote_qpn 0xffffff: every
#    attached QP gets each one with the group's GID as GRH DGID, the
#    unattached QP none; after detach (and a second batch), nothing;
#  - `ip maddr` on vethB shows the group's MAC while any QP is attached
#    (it stays while the second process is attached after the first
#    detached: one netdev reference per group), and not afterwards; the
#    module's sysfs omx_mcast agrees;
#  - errnos: RC/UC QP, unicast GIDs (EINVAL), the three limits (ENOMEM,
#    module parameters set low), an attached QP's destroy (EBUSY); the
#    device attributes are the module parameters; an attach from another
#    network namespace (EPERM); an unprivileged user may attach;
#  - kill -9 of an attached process: MAC and group gone;
#  - rdma link delete while attached: clean (no warning), MAC gone.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

GID=ff0e::1234:5678
MAC=33:33:12:34:56:78
GID4=::ffff:239.1.2.3
MCSYS=/sys/class/infiniband/omx1/omx_mcast
PARAMS=/sys/module/rdma_omx/parameters

omx_setup
ib_port_active omx0
ib_port_active omx1

has_mac() { ip -n nsB maddr show dev vethB | grep -q "link  *$MAC\$"; }
mc_groups() { sed -n 's/^groups \([0-9]*\) attachments \([0-9]*\)$/\1 \2/p' "$MCSYS"; }

log "device attributes follow the module parameters"
expect_eq "$(port_field omx1 max_mcast_grp)" "$(cat $PARAMS/max_mcast_grp)" max_mcast_grp
ibv_devinfo -v -d omx1 | grep -E 'max_(total_)?mcast' >&2

log "two receiver processes (2 of 3 QPs attached, 1 of 1), sender on omx0"
R1=$(mktemp -d) R2=$(mktemp -d)
ip netns exec nsB timeout 300 "$PROGS/omx_mcast" recv -d omx1 -g $GID -q 3 -a 2 -n 16 -r "$R1" \
	>"$OUT/mcast_r1.txt" 2>&1 &
p1=$!
ip netns exec nsB timeout 300 "$PROGS/omx_mcast" recv -d omx1 -g $GID -q 1 -a 1 -n 16 -r "$R2" \
	>"$OUT/mcast_r2.txt" 2>&1 &
p2=$!
wait_for "test -e $R1/ready -a -e $R2/ready" 60 || fail "receivers not ready"
has_mac || fail "vethB does not show $MAC while attached"
expect_eq "$(mc_groups)" "1 3" "groups and attachments"
ip netns exec nsA timeout 120 "$PROGS/omx_mcast" send -d omx0 -g $GID -n 16 \
	>"$OUT/mcast_send1.txt" 2>&1 || { cat "$OUT/mcast_send1.txt" >&2; fail "sender"; }
wait_for "test -e $R1/got -a -e $R2/got" 150 ||
	{ cat "$OUT"/mcast_r*.txt >&2; fail "receivers did not get every datagram"; }
cat "$OUT"/mcast_r*.txt >&2

log "first process detaches: the MAC stays for the second"
touch "$R1/detach"
wait_for "test -e $R1/detached" 30 || fail "R1 did not detach"
has_mac || fail "$MAC gone while the second process is attached"
expect_eq "$(mc_groups)" "1 1" "groups and attachments"
touch "$R2/detach"
wait_for "test -e $R2/detached" 30 || fail "R2 did not detach"
! has_mac || fail "$MAC still on vethB after the last detach"
expect_eq "$(mc_groups)" "0 0" "groups and attachments"
ip netns exec nsA timeout 120 "$PROGS/omx_mcast" send -d omx0 -g $GID -n 16 \
	>"$OUT/mcast_send2.txt" 2>&1 || fail "second sender"
touch "$R1/done" "$R2/done"
wait "$p1" || { cat "$OUT/mcast_r1.txt" >&2; fail "receiver 1"; }
wait "$p2" || { cat "$OUT/mcast_r2.txt" >&2; fail "receiver 2"; }
expect_file_contains "$OUT/mcast_r1.txt" "mcast recv ok: 3 QPs, 2 attached" "receiver 1"
expect_file_contains "$OUT/mcast_r2.txt" "mcast recv ok: 1 QPs, 1 attached" "receiver 2"

log "errnos and limits (max_mcast_grp 2, max_mcast_qp_attach 2, max_total 3)"
old=$(cat $PARAMS/max_mcast_grp),$(cat $PARAMS/max_mcast_qp_attach),$(cat $PARAMS/max_total_mcast_qp_attach)
echo 2 >$PARAMS/max_mcast_grp
echo 2 >$PARAMS/max_mcast_qp_attach
echo 3 >$PARAMS/max_total_mcast_qp_attach
relink_omx1() { # a device takes the parameters at creation
	rdma link delete omx1 || fail "rdma link delete omx1"
	ip netns exec nsB rdma link add omx1 type omx netdev vethB || fail "re-add omx1"
	wait_for "ibv_devices | grep -q omx1" 10 || fail "omx1 did not come back"
	ib_port_active omx1
}
relink_omx1
ip netns exec nsB timeout 120 "$PROGS/omx_mcast" errnos -d omx1 -g $GID -L 2,2,3 \
	>"$OUT/mcast_errnos.txt" 2>&1 || { cat "$OUT/mcast_errnos.txt" >&2; fail "errnos"; }
cat "$OUT/mcast_errnos.txt" >&2
expect_file_contains "$OUT/mcast_errnos.txt" "mcast errnos ok" "errnos"
IFS=, read -r g q t <<<"$old"
echo "$g" >$PARAMS/max_mcast_grp
echo "$q" >$PARAMS/max_mcast_qp_attach
echo "$t" >$PARAMS/max_total_mcast_qp_attach
relink_omx1
expect_eq "$(port_field omx1 max_mcast_grp)" "$g" "max_mcast_grp after the parameters came back"
expect_eq "$(mc_groups)" "0 0" "groups and attachments after errnos"

log "IPv4-mapped group: 01:00:5e MAC"
# No timeout(1) in front: $! must be the process itself (ip netns exec
# execs it), which is killed below.
ip netns exec nsB "$PROGS/omx_mcast" recv -d omx1 -g $GID4 -q 1 -a 1 -r "$R1" -k \
	>"$OUT/mcast_v4.txt" 2>&1 &
pk=$!
rm -f "$R1/ready"
wait_for "test -e $R1/ready" 30 || fail "IPv4 receiver not ready"
wait_for "ip -n nsB maddr show dev vethB | grep -q 01:00:5e:01:02:03" 10 ||
	fail "vethB does not show 01:00:5e:01:02:03"

log "kill -9 of an attached process: nothing left"
kill -9 "$pk"
wait "$pk" 2>/dev/null || true
wait_for '[[ $(mc_groups) == "0 0" ]]' 30 || fail "groups left after kill -9: $(cat $MCSYS)"
! ip -n nsB maddr show dev vethB | grep -q 01:00:5e:01:02:03 || fail "MAC left after kill -9"

log "who may attach: another namespace EPERM, an unprivileged user yes"
ip netns exec nsA timeout 60 "$PROGS/omx_mcast" attach -d omx1 -g $GID -e 1 >&2 ||
	fail "attach from nsA to omx1 (netdev in nsB) not refused with EPERM"
chmod 0666 /dev/infiniband/uverbs* || true
ip netns exec nsB timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$PROGS/omx_mcast" attach -d omx1 -g $GID -e 0 >&2 || fail "unprivileged attach"
expect_eq "$(mc_groups)" "0 0" "groups and attachments"

log "rdma link delete while attached"
rm -f "$R2/ready"
ip netns exec nsB "$PROGS/omx_mcast" recv -d omx1 -g $GID -q 2 -a 2 -r "$R2" -k \
	>"$OUT/mcast_hold.txt" 2>&1 &
ph=$!
wait_for "test -e $R2/ready" 30 || fail "holder not ready"
has_mac || fail "$MAC not on vethB"
rdma link delete omx1 || fail "rdma link delete omx1"
! has_mac || fail "$MAC still on vethB after the device was deleted"
kill -9 "$ph"
wait "$ph" 2>/dev/null || true
ip netns exec nsB rdma link add omx1 type omx netdev vethB || fail "re-add omx1"
wait_for "ibv_devices | grep -q omx1" 10 || fail "omx1 did not come back"
expect_eq "$(mc_groups)" "0 0" "groups on the new device"

rm -rf "$R1" "$R2"
omx_teardown
