#!/bin/bash
# The provider under valgrind's memcheck: no invalid access, no use of
# uninitialised memory and no definite leak, in
#   - omx_loopback (two QPs of one process, a self-connected QP; SEND,
#     RDMA WRITE with immediate, RDMA READ; everything destroyed at the end);
#   - omx_objects (every object type created, queried and destroyed),
#     omx_cqev (completion channels and the event path), omx_srq (two
#     QPs taking receives from one SRQ) and omx_ud (UD datagrams, address
#     handles, ibv_create_ah_from_wc, the ibv_wr_* API on a UD QP).
# Two processes where only one runs under valgrind do not work: valgrind
# slows its process so much that the peer's RC retry budget
# (ibv_rc_pingpong: 7 retries of 67 ms) runs out before it acknowledges.
# "possibly lost" and "still reachable" are libibverbs' and the Rust
# runtime's process-lifetime allocations and are not counted.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

command -v valgrind >/dev/null || fail "valgrind is not installed on the host"
omx_setup
ib_port_active omx0
ib_port_active omx1

# --fair-sched: the application thread busy-polls; without it valgrind's
# thread lock can leave the progress thread waiting for long stretches.
VG=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
	--show-leak-kinds=definite --track-fds=no --fair-sched=yes --quiet)

vg_check() { # NAME LOG
	grep -q "ERROR SUMMARY: [1-9]" "$2" && { cat "$2" >&2; fail "$1: valgrind errors"; }
	grep -q "definitely lost: [1-9]" "$2" && { cat "$2" >&2; fail "$1: definite leak"; }
	log "$1: valgrind clean"
}

log "omx_loopback under valgrind"
ip netns exec nsA timeout 600 "${VG[@]}" --log-file="$OUT/vg-loopback.txt" \
	"$PROGS/omx_loopback" -d omx0 -n 3 -s 5000 -w 400 -a 20 >"$OUT/loopback.txt" 2>&1 ||
	{ cat "$OUT/loopback.txt" "$OUT/vg-loopback.txt" >&2; fail "omx_loopback under valgrind"; }
expect_file_contains "$OUT/loopback.txt" "loopback ok" "omx_loopback"
vg_check omx_loopback "$OUT/vg-loopback.txt"

log "omx_objects and omx_cqev under valgrind"
ip netns exec nsA timeout 600 "${VG[@]}" --log-file="$OUT/vg-objects.txt" \
	"$PROGS/omx_objects" -d omx0 -q 6 >"$OUT/objects.txt" 2>&1 ||
	{ cat "$OUT/objects.txt" "$OUT/vg-objects.txt" >&2; fail "omx_objects under valgrind"; }
vg_check omx_objects "$OUT/vg-objects.txt"
ip netns exec nsA timeout 600 "${VG[@]}" --log-file="$OUT/vg-cqev.txt" \
	"$PROGS/omx_cqev" -d omx0 -c 2 -T 2 -n 200 -t 300 >"$OUT/cqev.txt" 2>&1 ||
	{ cat "$OUT/cqev.txt" "$OUT/vg-cqev.txt" >&2; fail "omx_cqev under valgrind"; }
vg_check omx_cqev "$OUT/vg-cqev.txt"

log "omx_srq under valgrind"
ip netns exec nsA timeout 600 "${VG[@]}" --log-file="$OUT/vg-srq.txt" \
	"$PROGS/omx_srq" -d omx0 -n 16 -w 400 >"$OUT/srq.txt" 2>&1 ||
	{ cat "$OUT/srq.txt" "$OUT/vg-srq.txt" >&2; fail "omx_srq under valgrind"; }
expect_file_contains "$OUT/srq.txt" "srq ok" "omx_srq"
vg_check omx_srq "$OUT/vg-srq.txt"

log "omx_ud under valgrind"
ip netns exec nsA timeout 600 "${VG[@]}" --log-file="$OUT/vg-ud.txt" \
	"$PROGS/omx_ud" -d omx0 -n 8 -w 400 >"$OUT/ud.txt" 2>&1 ||
	{ cat "$OUT/ud.txt" "$OUT/vg-ud.txt" >&2; fail "omx_ud under valgrind"; }
expect_file_contains "$OUT/ud.txt" "ud ok" "omx_ud"
vg_check omx_ud "$OUT/vg-ud.txt"

omx_teardown
