#!/bin/bash
# Device removal stops a context's packet I/O at once (issue 11 §5,
# docs/troubleshooting.md "After unplugging a device").
#
# A victim (omx_target on omx0 in nsA, OMX_STATS=1) is connected to a peer
# (omx1 in nsB). Then `rdma link delete omx0`:
#  - the victim gets IBV_EVENT_DEVICE_FATAL, its provider says it stopped
#    packet I/O, and its QP is in ERROR: a receive it had posted completes
#    with IBV_WC_WR_FLUSH_ERR instead of waiting forever;
#  - omx0 is added again on the same netdev (the victim's old context
#    stays open) and a new pair of contexts runs ibv_rc_pingpong over it;
#  - frames addressed to the victim's old QPN (its endpoint number) are
#    sent at vethA: none of them, and none of the new pair's, reaches the
#    old context (its rx_frames when it closes equal those it printed at
#    the removal). Without the shut socket it would receive them all.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"
. "$REPO/tests/scenarios/omx-target-lib.sh"

CRAFT=$REPO/target/release/omx-craft
TGT_BIN=$REPO/tests/progs/bin/omx_target
TGT_DIR=$OUT/removal
mkdir -p "$TGT_DIR"
TGT_ENV=(OMX_STATS=1 RDMAV_ALLOW_DISASSOC_DESTROY=1)
trap tgt_kill_all EXIT

omx_setup
ib_port_active omx0
ib_port_active omx1

tgt_start v nsA -d omx0 -l 18901 -T 300 -r 2
tgt_start p nsB -d omx1 -c 10.78.0.1:18901 -T 300 -r 4
if ! tgt_wait v '^ready$' 90 || ! tgt_wait p '^ready$' 90; then
	fail "omx_target pair did not connect: $(tail -n 5 "$(tgt_log v)")"
fi
V_QPN=$(tgt_get v QPN)
P_QPN=$(tgt_get v PEER_QPN)
V_MAC=$(mac_of nsA vethA)
id=$(tgt_post p "send 64") || fail "post send"
[ "$(tgt_wc p "$id" 30)" = IBV_WC_SUCCESS ] || fail "the first send failed"
log "pair connected: victim QPN $V_QPN, peer $P_QPN"

# The victim still has a receive posted (-r 2, one consumed): after the
# removal it must complete, flushed.
rdma link delete omx0 || fail "rdma link delete omx0"
tgt_wait v '^async IBV_EVENT_DEVICE_FATAL' 30 || fail "no DEVICE_FATAL at the victim"
tgt_wait v 'the device was removed; packet I/O stopped' 30 ||
	fail "the provider did not stop the victim's packet I/O"
tgt_wait v '^wc id=[0-9]+ op=RECV status=IBV_WC_WR_FLUSH_ERR' 30 ||
	fail "the victim's posted receive was not flushed"
log "victim: DEVICE_FATAL, packet I/O stopped, receive flushed"

# A new device on the same netdev, and traffic on it.
ip netns exec nsA rdma link add omx0 type omx netdev vethA || fail "rdma link add omx0 again"
wait_for "ibv_devices | grep -q omx0" 10 || fail "omx0 did not come back"
ib_port_active omx0
pp_start again 120 nsA omx0 nsB omx1 -n 200
pp_wait again
# Frames for the old context's QPN, from the peer's MAC and QPN, in its
# window and beyond: a live context would count every one.
for i in $(seq 0 49); do
	echo "--dst-mac $V_MAC --dst-qpn $V_QPN --src-qpn $P_QPN --opcode SEND_ONLY --psn $i --payload-len 8"
done | ip netns exec nsB "$CRAFT" batch --iface vethB >"$TGT_DIR/forge.log" 2>&1 ||
	fail "omx-craft batch: $(tail -n 2 "$TGT_DIR/forge.log")"
sleep 2

tgt_quit v
tgt_quit p
log="$(tgt_log v)"
rx=$(awk '$1 == "omx-stats" && $2 == "ctx" && $4 == "rx_frames" { print $5 }' "$log")
fatal=$(awk '$1 == "omx-stats" && $2 == "ctx" && $4 == "device_fatal" { print $5 }' "$log" | tail -n1)
[ "$(wc -l <<<"$rx")" = 2 ] || fail "expected the victim's counters at the removal and at close: $rx"
[ "$fatal" = 1 ] || fail "device_fatal counter is '$fatal'"
at_removal=$(head -n1 <<<"$rx")
at_close=$(tail -n1 <<<"$rx")
[ "$at_removal" = "$at_close" ] ||
	fail "the old context received $((at_close - at_removal)) frames after the removal"
log "the old context received nothing after the removal ($at_close frames before)"
result old_context_frames_after_removal 0

omx_teardown
