#!/bin/bash
# perftest's RC matrix over omx (issue 13, section 4): every program
# (ib_send/write/read/atomic _lat and _bw, atomics with FETCH_AND_ADD and
# CMP_AND_SWAP), each with the default (new) post API and with
# --use_old_post_send, -e (sleep on completion events), -I (inline, send
# and write), -q 8 and -b (bidirectional) for the bandwidth tests, where
# the program offers the option, and -a (every size from 2 bytes to 8 MiB,
# 5 iterations each: 8 MiB messages at TCG's 10-20 MB/s take most of the
# scenario's time). Options are combined in a run where they do not
# interfere, so each program runs at most four times. Server in nsA on
# omx0, client in nsB on omx1; then a few on one device (omx0 to omx0).
# Every run must complete and print its numbers (result lines).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

# Iterations: enough to be numbers, few enough for TCG (-a runs 23 sizes
# up to 8 MiB, at perftest's minimum of 5). -F on every run: without it
# perftest exits 1 ("Can't produce a report") when its estimate of the
# CPU clock, a regression of TSC cycles against gettimeofday over 200
# busy-waits, fits badly (r^2 < 0.9), which a TCG vCPU descheduled by a
# loaded host makes happen; with -b both ends estimate at once, on the two
# vCPUs (docs/benchmarks.md, "perftest's clock estimate").
LAT=(-n 1000 -F)
BW=(-s 4096 -n 2000 -F)
Q8=(-s 4096 -n 500 -F -q 8)
ALL=(-a -n 5 -F)
OLD=(--use_old_post_send)

perftest_pair send_lat ib_send_lat "${LAT[@]}"
perftest_pair send_lat_all ib_send_lat "${ALL[@]}"
perftest_pair send_lat_old_ev_inl ib_send_lat "${LAT[@]}" "${OLD[@]}" -e -I 64 -s 64
perftest_pair write_lat ib_write_lat "${LAT[@]}"
perftest_pair write_lat_all ib_write_lat "${ALL[@]}"
perftest_pair write_lat_old_inl ib_write_lat "${LAT[@]}" "${OLD[@]}" -I 64 -s 64
perftest_pair read_lat ib_read_lat "${LAT[@]}"
perftest_pair read_lat_all ib_read_lat "${ALL[@]}"
perftest_pair read_lat_old_ev ib_read_lat "${LAT[@]}" "${OLD[@]}" -e

perftest_pair send_bw ib_send_bw "${BW[@]}"
perftest_pair send_bw_all ib_send_bw "${ALL[@]}"
perftest_pair send_bw_old_ev_q8_inl ib_send_bw "${Q8[@]}" "${OLD[@]}" -e -I 64 -s 64
perftest_pair send_bw_bidir ib_send_bw "${BW[@]}" -b
perftest_pair write_bw ib_write_bw "${BW[@]}"
perftest_pair write_bw_all ib_write_bw "${ALL[@]}"
perftest_pair write_bw_old_q8_inl ib_write_bw "${Q8[@]}" "${OLD[@]}" -I 64 -s 64
perftest_pair write_bw_bidir ib_write_bw "${BW[@]}" -b
perftest_pair read_bw ib_read_bw "${BW[@]}"
perftest_pair read_bw_all ib_read_bw "${ALL[@]}"
perftest_pair read_bw_old_ev_q8 ib_read_bw "${Q8[@]}" "${OLD[@]}" -e
perftest_pair read_bw_bidir ib_read_bw "${BW[@]}" -b

for op in FETCH_AND_ADD CMP_AND_SWAP; do
	a=(-A "$op")
	perftest_pair "atomic_lat_$op" ib_atomic_lat "${a[@]}" "${LAT[@]}"
	perftest_pair "atomic_lat_old_ev_$op" ib_atomic_lat "${a[@]}" "${LAT[@]}" "${OLD[@]}" -e
	perftest_pair "atomic_bw_$op" ib_atomic_bw "${a[@]}" -n 2000 -F
	perftest_pair "atomic_bw_old_ev_q8_$op" ib_atomic_bw "${a[@]}" -n 500 -F -q 8 "${OLD[@]}" -e
	perftest_pair "atomic_bw_bidir_$op" ib_atomic_bw "${a[@]}" -n 2000 -F -b
done

# One device, both ends on omx0.
export PERF_CNS=nsA PERF_CDEV=omx0
perftest_pair local_read_lat ib_read_lat "${LAT[@]}"
perftest_pair local_atomic_lat ib_atomic_lat -A FETCH_AND_ADD "${LAT[@]}"
perftest_pair local_send_bw_bidir ib_send_bw "${BW[@]}" -b
perftest_pair local_write_bw_bidir ib_write_bw "${BW[@]}" -b
unset PERF_CNS PERF_CDEV

omx_teardown
