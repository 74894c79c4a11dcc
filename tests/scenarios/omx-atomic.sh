#!/bin/bash
# RC atomics over omx (issue 13, section 1):
#  - omx_atomic's checks on omx0 (tests/progs/omx_atomic.c): the device
#    reports IBV_ATOMIC_GLOB; FETCH_AND_ADD and CMP_AND_SWP return the old
#    value, through ibv_post_send and the ibv_wr_* API; a QP and a thread
#    of the target process add to one counter and the sum is exact; a
#    misaligned address, an MR or a QP without REMOTE_ATOMIC are refused
#    with the IBTA status and nothing changes;
#    (perftest's ib_atomic_lat and ib_atomic_bw run in omx-perftest);
#  - many requesters: 4 processes in nsB x FETCH_AND_ADD of 1 on one
#    counter in nsA, 4 x 2000 on a clean link, then 4 x 10000 under netem
#    (5% loss, 2% duplication, 5% of the frames delayed by 1 ms, so
#    overtaken): the counter ends at 40000 and the 40000 values returned
#    are 0..39999, each once (an atomic executed twice after a
#    retransmission, or lost, breaks one of the two), and the responders
#    answered duplicates from their saved results. (With netem's
#    "reorder 75%", a quarter of the frames overtaken, the run takes 13x
#    as long: every overtaken answer makes the requester go back N; the
#    scale issue's.)
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

log "omx_atomic: values, wr API, host CPU atomics, refusals"
ip netns exec nsA timeout 300 "$PROGS/omx_atomic" -d omx0 >"$OUT/omx_atomic.txt" 2>&1 ||
	{ cat "$OUT/omx_atomic.txt" >&2; fail "omx_atomic"; }
cat "$OUT/omx_atomic.txt" >&2
expect_file_contains "$OUT/omx_atomic.txt" "atomic ok" "omx_atomic"

ATOMIC_PORT=18700
# many NAME PROCS OPS: the many-requesters run, server in nsA on omx0,
# PROCS client processes in nsB on omx1.
many() {
	local name=$1 procs=$2 ops=$3 s
	ATOMIC_PORT=$((ATOMIC_PORT + 1))
	log "omx_atomic: $procs x $ops FETCH_AND_ADD on one counter ($name)"
	ip netns exec nsA env OMX_STATS=1 timeout 600 "$PROGS/omx_atomic" -d omx0 -S \
		-P "$procs" -n "$ops" \
		-p "$ATOMIC_PORT" >"$OUT/atomic-$name-server.txt" 2>&1 &
	s=$!
	wait_for "ip netns exec nsA ss -ltn | grep -q :$ATOMIC_PORT" 30 ||
		{ cat "$OUT/atomic-$name-server.txt" >&2; fail "$name: server did not listen"; }
	ip netns exec nsB timeout 600 "$PROGS/omx_atomic" -d omx1 -C 10.78.0.1 -P "$procs" \
		-n "$ops" -p "$ATOMIC_PORT" >"$OUT/atomic-$name-client.txt" 2>&1 || {
		cat "$OUT/atomic-$name-server.txt" "$OUT/atomic-$name-client.txt" >&2
		fail "$name: clients"
	}
	wait "$s" || { cat "$OUT/atomic-$name-server.txt" >&2; fail "$name: server"; }
	cat "$OUT/atomic-$name-client.txt" "$OUT/atomic-$name-server.txt" >&2
	expect_file_contains "$OUT/atomic-$name-server.txt" \
		"fetch_add ok: $procs x $ops, counter $((procs * ops)), values distinct" "$name"
	# The server's QPs print their counters when destroyed (OMX_STATS):
	# how many acknowledges were answered again from a saved result.
	replays=$(awk '$1 == "omx-stats" && $2 == "qp" && $4 == "tx_atomic_replays" { s += $5 }
		END { print s + 0 }' "$OUT/atomic-$name-server.txt")
	result "atomic_$name" "replays $replays; $(grep -h '^client' \
		"$OUT/atomic-$name-client.txt" | tr '\n' ';')"
}

many clean 4 2000

modprobe sch_netem
for side in "nsA vethA" "nsB vethB"; do
	read -r ns dev <<<"$side"
	ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay 1ms reorder 95% \
		loss 5% duplicate 2%
done
many netem 4 10000
# 40000 requests and answers at 5% loss and 2% duplication: some
# answers are lost or requests duplicated, and the responder must have
# answered them from its saved results.
((replays > 0)) || fail "netem: no atomic answered from a saved result"
for side in "nsA vethA" "nsB vethB"; do
	read -r ns dev <<<"$side"
	ip netns exec "$ns" tc qdisc del dev "$dev" root
done

omx_teardown
