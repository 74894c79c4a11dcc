#!/bin/bash
# The kernel and the engine agree on every QP's state (issue 11 §6,
# docs/security.md §3).
#
# 1. The transition table: tests/progs/omx_modify_table walks every
#    (type, current state, next state) of RC, UC and UD with the pair's
#    minimal mask, that mask with each attribute bit removed and with each
#    bit added, on the kernel module's QP shadow (raw uverbs, no provider),
#    and checks that a refused case left the shadow as it was.
#    `omx-craft qp-table` answers the same cases with the engine's table
#    (as the kernel must see them: the provider never sends IBV_QP_AV);
#    the two tables must be identical.
# 2. Through the provider (ibv_modify_qp), a refused transition leaves the
#    QP exactly as it was on both sides: one the engine refuses (never
#    sent to the kernel) and one only the kernel refuses (the engine is
#    not changed); tests/progs/omx_modify_refuse checks the engine's side
#    and this script the kernel's shadow (`rdma resource show qp`).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

PROGS=$REPO/tests/progs/bin
CRAFT=$REPO/target/release/omx-craft

omx_setup
ib_port_active omx0

# 1. Both tables.
ip netns exec nsA "$PROGS/omx_modify_table" omx0 >"$OUT/table-kernel.txt" \
	2>"$OUT/table-kernel.err" || {
	cat "$OUT/table-kernel.err" >&2
	fail "omx_modify_table: the kernel's shadow is inconsistent"
}
cases=$(wc -l <"$OUT/table-kernel.txt")
[ "$cases" -gt 500 ] || fail "omx_modify_table printed only $cases cases"
"$CRAFT" qp-table <"$OUT/table-kernel.txt" >"$OUT/table-engine.txt" ||
	fail "omx-craft qp-table failed"
if ! diff -u "$OUT/table-kernel.txt" "$OUT/table-engine.txt" >"$OUT/table.diff"; then
	head -n 40 "$OUT/table.diff" >&2
	fail "the kernel and the engine disagree on $(grep -c '^+[A-Z]' "$OUT/table.diff") of $cases cases"
fi
log "kernel and engine agree on all $cases (type, state, mask) cases"
result table_cases "$cases"

# 2. Refusals through the provider leave both sides as they were.
state=/tmp/omx-modify-refuse.state
rm -f "$state"*
ip netns exec nsA "$PROGS/omx_modify_refuse" omx0 "$state" \
	>"$OUT/refuse.txt" 2>&1 &
pid=$!
for round in 1 2 3; do
	wait_for "[ -f $state ] && grep -q '^$round ' $state" 60 ||
		fail "omx_modify_refuse did not reach checkpoint $round"
	read -r _ qpn want <"$state"
	got=$(ip netns exec nsA rdma -j resource show qp lqpn "$qpn" |
		grep -o '"state":"[A-Z]*"' | cut -d'"' -f4)
	[ "$got" = "$want" ] ||
		fail "checkpoint $round: the kernel's shadow of QP $qpn is in $got, expected $want"
	log "checkpoint $round: kernel shadow of QP $qpn in $got, as the engine"
	touch "$state.go$round"
done
wait "$pid" || {
	cat "$OUT/refuse.txt" >&2
	fail "omx_modify_refuse failed"
}
expect_file_contains "$OUT/refuse.txt" "^PASS" "omx_modify_refuse"

omx_teardown
