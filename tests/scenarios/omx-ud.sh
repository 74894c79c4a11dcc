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
# and the refusals. The veth link loses nothing; loss is tested over the
# simulated network (provider/engine/tests/ud.rs).
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

omx_teardown
