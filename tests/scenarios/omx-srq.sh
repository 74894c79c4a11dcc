#!/bin/bash
# Shared receive queues (issue 12). First omx_srq checks the rules one by
# one (errnos, RNR on an empty SRQ, each WQE consumed once across QPs,
# EBUSY while in use). Then Debian's unmodified ibv_srq_pingpong
# (by default 16 RC QPs taking their receives from one SRQ), server in
# nsA on omx0, client in nsB on omx1, then both on omx0: default options,
# completion events (-e), validated buffers (-c), 1-byte, 64 KiB
# and 1 MiB messages (on 4 QPs), 10000 iterations, and -q 16 -r 128 (16 QPs sharing
# 128 receives); then
# perftest's ib_send_bw --use-srq and -q 8, and ibv_xsrq_pingpong, which must stop
# with the XRC domain refused (no XRC here).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

log "omx_srq: the SRQ's rules in one process (tests/progs/omx_srq.c)"
ip netns exec nsA timeout 120 "$PROGS/omx_srq" -d omx0 -n 48 >"$OUT/omx_srq.txt" 2>&1 ||
	{ cat "$OUT/omx_srq.txt" >&2; fail "omx_srq"; }
cat "$OUT/omx_srq.txt" >&2
expect_file_contains "$OUT/omx_srq.txt" "srq ok: 48 messages" "omx_srq"

PP_PROG=ibv_srq_pingpong
pingpong srq-default 300
pingpong srq-events 300 -e
pingpong srq-chk 300 -c -n 200
pingpong srq-s1 300 -s 1
pingpong srq-s64k 300 -s 65536 -n 20
pingpong srq-q16-r128 300 -q 16 -r 128
# 1 MiB on 4 QPs: their receive windows fit the receiver's 768-frame
# ring. With the default 16 QPs every window overcommits the ring, the
# bursts overflow it, and all QPs retransmit in lockstep after the same
# timeout; under TCG on 6.12 that once ran out ibv_srq_pingpong's retry
# budget (7 x 67 ms): congestion behaviour, left to the scale issue.
pingpong srq-s1m 300 -s 1048576 -n 5 -q 4
pingpong srq-n10k 900 -n 10000
pp_start srq-same 300 nsA omx0 nsA omx0 -c -n 200
pp_wait srq-same
unset PP_PROG

perftest_pair sendbw_srq_4096 ib_send_bw --use-srq -n 2000 -s 4096
# Eight RC QPs between the same two processes.
perftest_pair sendbw_q8 ib_send_bw -q 8 -n 1000 -s 4096

log "ibv_xsrq_pingpong: XRC is refused with a clear error"
ip netns exec nsA timeout 60 ibv_xsrq_pingpong -d omx0 -g 0 >"$OUT/xsrq.txt" 2>&1 &&
	fail "ibv_xsrq_pingpong succeeded without XRC"
cat "$OUT/xsrq.txt" >&2
expect_file_contains "$OUT/xsrq.txt" "XRC Domain 95" "ibv_xsrq_pingpong (EOPNOTSUPP)"

omx_teardown
