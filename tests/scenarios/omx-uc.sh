#!/bin/bash
# UC, unreliable connected (issue 12, docs/wire.md §14). Debian's
# unmodified ibv_uc_pingpong, server in nsA on omx0, client in nsB on
# omx1: default options, completion events (-e), validated buffers (-c),
# 1-byte, 64 KiB and
# 512 KiB messages, 10000 iterations; then both on omx0. Then perftest's
# ib_send_lat, ib_send_bw, ib_write_lat and ib_write_bw with -c UC, each
# of which must complete with a result row. The veth link loses nothing,
# so every message arrives; the engine's loss rules are tested over the
# simulated network (provider/engine/tests/uc.rs).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

PP_PROG=ibv_uc_pingpong
pingpong uc-default 300
pingpong uc-events 300 -e
pingpong uc-chk 300 -c -n 200
pingpong uc-s1 300 -s 1
pingpong uc-s64k 300 -s 65536 -n 100
# 512 KiB: 512 frames at path MTU 1024, within the receiver's 768-frame
# ring. UC has no flow control: a larger message is one burst the
# receiver must drain as it comes, and under TCG a lost frame loses the
# message and leaves the pingpong waiting forever.
pingpong uc-s512k 300 -s 524288 -n 10
pingpong uc-n10k 900 -n 10000
pp_start uc-same 300 nsA omx0 nsA omx0 -n 1000
pp_wait uc-same
unset PP_PROG

PERF_CONN=UC
perftest_pair uc_send_lat ib_send_lat -s 2 -n 2000 -F
perftest_pair uc_write_lat ib_write_lat -s 2 -n 2000 -F
# A UC sender never waits: a SEND that finds no posted receive is lost,
# and a server counting iterations would then wait for it forever.
# Duration mode ends both sides by time.
perftest_pair uc_send_bw ib_send_bw -s 4096 -D 4 -F
perftest_pair uc_write_bw ib_write_bw -s 65536 -n 2000 -F

omx_teardown
