#!/bin/bash
# UD, unreliable datagram (issue 12, docs/wire.md §13). Debian's
# unmodified ibv_ud_pingpong, server in nsA on omx0, client in nsB on
# omx1, at netdev MTU 1500 (active_mtu 1024): the largest message
# (-s 1024), completion events (-e), validated buffers (-c), 1-byte
# messages, 10000 iterations, then both on omx0. Then at MTU 9000
# (active_mtu 4096, which a UD QP created afterwards takes): the default
# options (2048-byte messages) and -s 4096. Then perftest's ib_send_lat
# and ib_send_bw with -c UD, and ib_send_bw -c UD --use-srq. omx_ud
# checks what the programs do not look at: the GRH in front of each
# message, ibv_create_ah_from_wc, wc fields, the ibv_wr_* API on a UD QP
# and the refusals. Last, under netem (5% loss, 2% duplication,
# reordering): omx_ud's loss mode sees every fault as it is and no
# corrupted or invented datagram, UCX's ud_verbs (its own reliability)
# completes UCP tag_bw, and ibv_ud_pingpong works again once netem is
# gone. (ibv_ud_pingpong itself cannot run under loss: it waits forever
# for a datagram the network dropped.)
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

log "omx_ud: GRH, AH from WC, wc fields, ibv_wr_* (tests/progs/omx_ud.c)"
ip netns exec nsA timeout 120 "$PROGS/omx_ud" -d omx0 -n 32 >"$OUT/omx_ud.txt" 2>&1 ||
	{ cat "$OUT/omx_ud.txt" >&2; fail "omx_ud"; }
cat "$OUT/omx_ud.txt" >&2
expect_file_contains "$OUT/omx_ud.txt" "ud ok: 32 datagrams" "omx_ud"
log "omx_ud -U: a controlled Q_Key needs CAP_NET_RAW"
ip netns exec nsA timeout 60 "$PROGS/omx_ud" -d omx0 -U 40100 >"$OUT/omx_ud-priv.txt" 2>&1 ||
	{ cat "$OUT/omx_ud-priv.txt" >&2; fail "omx_ud -U"; }
expect_file_contains "$OUT/omx_ud-priv.txt" "privilege ok" "omx_ud -U"

PP_PROG=ibv_ud_pingpong
pingpong ud-s1024 300 -s 1024
pingpong ud-events 300 -s 1024 -e
pingpong ud-chk 300 -s 1024 -c -n 200
pingpong ud-s1 300 -s 1
pingpong ud-n10k 900 -s 64 -n 10000
pp_start ud-same 300 nsA omx0 nsA omx0 -s 1024 -n 1000
pp_wait ud-same

log "netdev MTU 9000: active_mtu 4096"
ip -n nsA link set vethA mtu 9000
ip -n nsB link set vethB mtu 9000
wait_for '[[ $(port_field omx0 active_mtu) == 4096* && $(port_field omx1 active_mtu) == 4096* ]]' 10 ||
	fail "active_mtu did not follow the netdev MTU: $(port_field omx0 active_mtu)"
pingpong ud-default 300
pingpong ud-s4096 300 -s 4096 -c -n 200
unset PP_PROG

PERF_CONN=UD
perftest_pair ud_send_lat ib_send_lat -s 2 -n 2000 -F
# A UD sender never waits: a SEND that finds no posted receive is lost,
# and a server counting iterations would then wait for it forever.
# Duration mode ends both sides by time.
perftest_pair ud_send_bw ib_send_bw -s 4096 -D 4 -F
perftest_pair ud_send_bw_srq ib_send_bw -s 4096 -D 4 -F --use-srq

# The network's faults reach the application as they are, and nothing
# else breaks: omx_ud's loss mode on omx0 (its frames to itself cross
# vethA's qdisc before the loopback tap sees them; OMX_LOCAL=0 keeps them
# on the netdev, where they would otherwise move to shared memory once
# the progress thread opened the inbox), then UCX's ud_verbs, which has
# its own reliability, between the namespaces.
modprobe sch_netem
for side in "nsA vethA" "nsB vethB"; do
	set -- $side
	ip netns exec "$1" tc qdisc add dev "$2" root netem delay 1ms reorder 75% \
		loss 5% duplicate 2%
done
log "netem: omx_ud -L 2000 (5% loss, 2% duplication, reordering)"
ip netns exec nsA env OMX_LOCAL=0 timeout 300 "$PROGS/omx_ud" -d omx0 -L 2000 \
	>"$OUT/omx_ud-lossy.txt" 2>&1 ||
	{ cat "$OUT/omx_ud-lossy.txt" >&2; fail "omx_ud -L"; }
cat "$OUT/omx_ud-lossy.txt" >&2
read -r lost dup reord < <(sed -n \
	's/^lossy: sent 2000 received [0-9]* lost \([0-9]*\) duplicated \([0-9]*\) reordered \([0-9]*\)$/\1 \2 \3/p' \
	"$OUT/omx_ud-lossy.txt")
[[ -n ${lost:-} ]] || fail "omx_ud -L: no summary line"
# 2000 datagrams at 5% loss and 2% duplication: seeing none of either
# has a probability below 1e-17.
((lost > 0 && lost < 400)) || fail "omx_ud -L: $lost lost of 2000 at 5% loss"
((dup > 0)) || fail "omx_ud -L: no duplicate at 2% duplication"
((reord > 0)) || fail "omx_ud -L: nothing reordered"
result ud_netem "lost $lost duplicated $dup reordered $reord of 2000"
if command -v ucx_perftest >/dev/null; then
	ucp_ud() { echo "UCX_TLS=ud_verbs,self UCX_NET_DEVICES=$1:1"; }
	ucx_pair ud_netem_tag_bw nsA nsB 600 "$(ucp_ud omx0)" "$(ucp_ud omx1)" \
		-t tag_bw -n 300 -s 16384 -w 20
fi
for side in "nsA vethA" "nsB vethB"; do
	set -- $side
	ip netns exec "$1" tc qdisc del dev "$2" root
done
pingpong ud-after-netem 300 -s 1024 -c -n 200

omx_teardown
