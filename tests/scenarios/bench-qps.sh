#!/bin/bash
# bench-qps.sh: bandwidth against the number of QPs (issue 14), between two
# namespaces (server in nsA on omx0, client in nsB on omx1); run by
# tests/vm/bench-scale.sh, a benchmark, never part of `make test`.
#
# Results (client side) in /out/results.txt, KEY=perftest's result row
# (bytes, iterations, peak MB/s, average MB/s, Mpps), or KEY=failed:
#   write_bw_qN, send_bw_qN     ib_write_bw / ib_send_bw -s 4096 -q N -F,
#                               N = 1 8 64 256 1000
# Iterations per QP shrink as N grows (TCG moves 10-20 MB/s): every run
# moves 20-80 MB. A run that fails is recorded and the sweep goes on.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup_ports

declare -A iters=([1]=5000 [8]=1000 [64]=200 [256]=60 [1000]=20)
for prog in write_bw send_bw; do
	for q in 1 8 64 256 1000; do
		# perftest_pair ends the scenario on a failure: a subshell keeps
		# the sweep going.
		(perftest_pair "${prog}_q$q" "ib_$prog" -s 4096 -q "$q" -n "${iters[$q]}" -F) ||
			result "${prog}_q$q" failed
	done
done

omx_teardown
