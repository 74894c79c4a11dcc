#!/bin/bash
# Kernel shadow objects: `rdma resource show` lists a process's PD, CQ, QP
# and MR with their owner; QP numbers are unique per device across
# processes and carry the context's endpoint; kill -9 cleans everything up.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
"$PROGS/omx_objects" -d omx0 -q 40 -w -r /tmp/r1 >/out/p1.txt 2>&1 &
p1=$!
"$PROGS/omx_objects" -d omx0 -q 40 -w -r /tmp/r2 >/out/p2.txt 2>&1 &
p2=$!
wait_for "test -e /tmp/r1 -a -e /tmp/r2" 30 || fail "programs did not start: $(cat /out/p1.txt /out/p2.txt)"

dups=$(cat /out/p1.txt /out/p2.txt | awk '/^qpn/ {print $2}' | sort | uniq -d)
[ -z "$dups" ] || fail "duplicate QPNs across processes: $dups"
endpoints() { # FILE: the endpoint (qpn >> 12) of every QPN listed
	local q
	for q in $(awk '/^qpn/ {print $2}' "$1"); do echo $((q >> 12)); done | sort -u
}
ep1=$(endpoints /out/p1.txt)
ep2=$(endpoints /out/p2.txt)
[ "$(echo "$ep1" | wc -l)" = 1 ] && [ "$(echo "$ep2" | wc -l)" = 1 ] ||
	fail "QPNs of one context span several endpoints"
[ "$ep1" != "$ep2" ] || fail "two contexts share endpoint $ep1"

for r in pd cq qp mr; do
	# bookworm's rdma cannot filter by device: keep omx0's lines.
	rdma resource show "$r" | grep -E '^(dev omx0 |link omx0/)' >"/out/res-$r.txt" || true
	n=$(grep -c "pid $p1 " "/out/res-$r.txt" || true)
	log "rdma resource show $r: $n entries of pid $p1"
	[ "$n" -ge 1 ] || { cat "/out/res-$r.txt"; fail "no $r of pid $p1"; }
	grep -q "comm omx_objects" "/out/res-$r.txt" || fail "$r without owner comm"
done
[ "$(grep -c "pid $p1 " /out/res-qp.txt)" = 40 ] || fail "expected 40 QPs of pid $p1"
first=$(($(awk '/^qpn/ {print $2; exit}' /out/p1.txt)))
grep -Eq "lqpn $first .*(state INIT|INIT)" /out/res-qp.txt ||
	{ grep "lqpn $first " /out/res-qp.txt; fail "QP $first not shown in INIT"; }
rkey=$(awk '/^mr/ {print $5}' /out/p1.txt)
grep -q "rkey $rkey" /out/res-mr.txt || fail "MR rkey $rkey not listed"

log "kill -9 one owner: its objects vanish, the other's stay"
kill -9 "$p1"
wait "$p1" 2>/dev/null || true
wait_for "! rdma resource show qp | grep -q 'pid $p1 '" 20 ||
	fail "QPs of the killed process remain"
for r in pd cq mr; do
	rdma resource show "$r" | grep -q "pid $p1 " && fail "$r of killed pid remains"
done
[ "$(rdma resource show qp | grep -c "pid $p2 ")" = 40 ] ||
	fail "the survivor lost QPs"
kill -9 "$p2"
wait "$p2" 2>/dev/null || true
wait_for "! rdma resource show qp | grep -q 'pid $p2 '" 20 ||
	fail "QPs of the second killed process remain"
rdma resource show | tee /out/res-summary.txt
omx_teardown
