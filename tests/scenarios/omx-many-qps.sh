#!/bin/bash
# Many QPs at once (issue 14): ib_write_bw with -q 64, 256 and 1000, and
# ib_send_bw with -q 64 and 256, between two namespaces (server in nsA on
# omx0, client in nsB on omx1). Each run must complete with its numbers: no IBV_WC_RETRY_EXC_ERR
# under the transport's own load (receiver-driven credit grants, the
# retransmission timer and the congestion window of docs/wire.md §9 and
# §10.2). Before them, -q 64 failed 4 of 4 runs and -q 256 and -q 1000
# every run; -q 1000 needs 128,000 CQEs (tx_depth x QPs) and 1000 QPs of
# each side connected. Few iterations per QP: TCG moves 10-15 MB/s.
# Then omx_idle: a SEND ping-pong in one context with 1000 connected idle
# QPs beside it, and the same context left idle (its latency and CPU are
# benchmarks: tests/vm/bench-loopback.sh; here it must work).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup_ports

perftest_pair write_bw_q64 ib_write_bw -s 4096 -q 64 -n 200 -F
perftest_pair write_bw_q256 ib_write_bw -s 4096 -q 256 -n 60 -F
perftest_pair write_bw_q1000 ib_write_bw -s 4096 -q 1000 -n 20 -F
perftest_pair send_bw_q64 ib_send_bw -s 4096 -q 64 -n 200 -F
perftest_pair send_bw_q256 ib_send_bw -s 4096 -q 256 -n 60 -F
# ib_send_bw -q 1000 is not here yet: it passes on 6.12, but on 6.1 about
# one run in ten ends with one QP in RETRY_EXC_ERR, a QP that never heard
# from its peer while the rings drop a fifth of the frames
# (docs/benchmarks.md, "Many QPs").

log "omx_idle: a ping-pong beside 1000 idle QPs in one context"
ip netns exec nsA timeout 300 "$PROGS/omx_idle" -d omx0 -q 1000 -n 200 -t 2 \
	>"$OUT/omx_idle.txt" 2>&1 || { cat "$OUT/omx_idle.txt" >&2; fail "omx_idle"; }
cat "$OUT/omx_idle.txt" >&2
expect_file_contains "$OUT/omx_idle.txt" "idle ok: 1000 idle QPs, 200 rounds" "omx_idle"

omx_teardown
