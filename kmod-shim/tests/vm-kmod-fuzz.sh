#!/bin/bash
# vm-kmod-fuzz.sh: omx_kfuzz (raw uverbs, kernel only) against rdma_omx for a
# bounded time, with low per-user limits, restrack and omx_users dumps and
# device deletion/re-creation running alongside, then checks that nothing is
# left behind.
#   tests/vm/run --kernel 6.12 kmod-shim/tests/vm-kmod-fuzz.sh
# Environment: OMX_FUZZ_SECONDS (default 90), OMX_FUZZ_SEED (default: a new
# seed, printed), OMX_FUZZ_PROCS (3), OMX_FUZZ_THREADS (4).  A long run:
#   tests/vm/run --kernel 6.12 --timeout 4000 --env OMX_FUZZ_SECONDS=3600 \
#       kmod-shim/tests/vm-kmod-fuzz.sh
# Fails on: a crashed worker, any kernel WARNING/BUG (the runner, and the
# whole kernel log followed during the run, which a long run wraps), a PD,
# CQ, QP, SRQ or MR or a per-user record left once every worker is gone,
# unreclaimable slab more than 16 MiB above its level after a warm-up run,
# or rmmod failing.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"

FUZZ=/tmp/omx_kfuzz
gcc -O2 -Wall -Wextra -pthread -I "$REPO/kmod-shim/include/uapi" -o "$FUZZ" \
	"$REPO/kmod-shim/tests/omx_kfuzz.c" || fail "cannot build omx_kfuzz"
secs=${OMX_FUZZ_SECONDS:-90}
args=(-d omx0 -p "${OMX_FUZZ_PROCS:-3}" -j "${OMX_FUZZ_THREADS:-4}")
[ -z "${OMX_FUZZ_SEED:-}" ] || args+=(-s "$OMX_FUZZ_SEED")

sunreclaim() { awk '/^SUnreclaim:/ {print $2}' /proc/meminfo; }
objects_left() { # lines of rdma resource show for omx devices
	local r
	for r in pd cq qp mr srq; do
		rdma resource show "$r" 2>/dev/null | grep -E '^(dev omx|link omx)' || true
	done
}
settle() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
	sleep 3
}

# Low per-user limits, so the fuzzer also runs into them (EDQUOT paths).
load_rdma_omx max_contexts_per_user=16 max_pds_per_user=64 max_cqs_per_user=64 \
	max_qps_per_user=64 max_mrs_per_user=256 max_srqs_per_user=32 max_mws_per_user=32
omx_on_veth omx0 vethZ vethY

# The kernel log of a long run outgrows the ring buffer the runner reads at
# the end: keep all of it, and check it with the runner's patterns below.
dmesg --follow >/out/kmsg-follow.txt 2>&1 &
kmsg=$!

log "warm-up run"
"$FUZZ" "${args[@]}" -t 10 -s 1 >/out/fuzz-warmup.txt 2>&1 ||
	{ cat /out/fuzz-warmup.txt >&2; fail "warm-up run"; }
wait_for "[ -z \"\$(objects_left)\" ]" 30 || fail "objects left after the warm-up"
settle
base=$(sunreclaim)
log "SUnreclaim after warm-up: $base kB"

# Restrack dumps (fill_res_* against objects being destroyed) and the
# device going away and coming back (disassociation under load).
( while :; do
	rdma -dd resource show >/dev/null 2>&1
	cat /sys/class/infiniband/omx0/omx_users >/dev/null 2>&1
	cat /sys/class/infiniband/omx0/omx_mcast >/dev/null 2>&1
	sleep 0.3
done ) &
dumper=$!
(
	for _ in 1 2 3; do
		sleep $((secs / 4))
		rdma link delete omx0 || true
		sleep 2
		rdma link add omx0 type omx netdev vethZ || true
	done
) &
churn=$!

log "fuzzing for $secs s"
rc=0
"$FUZZ" "${args[@]}" -t "$secs" >/out/fuzz.txt 2>&1 || rc=$?
kill "$dumper" 2>/dev/null || true
wait "$churn" 2>/dev/null || true
wait "$dumper" 2>/dev/null || true
cat /out/fuzz.txt >&2
result fuzz "$(tail -n 1 /out/fuzz.txt)"
[ "$rc" = 0 ] || fail "omx_kfuzz exited with $rc"
[ -e /sys/class/infiniband/omx0 ] ||
	rdma link add omx0 type omx netdev vethZ || fail "re-add omx0"

wait_for "[ -z \"\$(objects_left)\" ]" 30 || { objects_left >&2; fail "objects left after the fuzz run"; }
users=$(cat /sys/class/infiniband/omx0/omx_users)
[ -z "$users" ] || fail "per-user records left: $users"
mcast=$(tail -n 1 /sys/class/infiniband/omx0/omx_mcast)
[ "$mcast" = "groups 0 attachments 0" ] || fail "multicast groups left: $mcast"
ip maddr show dev vethZ | grep -q 'link  *33:33:0f:fe:00:0[0-3]$' &&
	fail "a fuzzed group's MAC is left on vethZ"
settle
after=$(sunreclaim)
log "SUnreclaim: $base kB after warm-up, $after kB after the run"
result sunreclaim_kb "$base $after"
[ $((after - base)) -le 16384 ] || fail "unreclaimable slab grew by $((after - base)) kB"

kill "$kmsg" 2>/dev/null || true
if grep -E 'WARNING:|BUG:|kernel BUG at|Oops|general protection fault|possible circular locking|inconsistent lock state|possible recursive locking|KASAN|UBSAN|blocked for more than|detected stall|RCU stall' \
	/out/kmsg-follow.txt >/out/kmsg-bad.txt; then
	head -n 20 /out/kmsg-bad.txt >&2
	fail "kernel log of the run: $(head -n 1 /out/kmsg-bad.txt)"
fi
result kmsg_lines "$(wc -l </out/kmsg-follow.txt)"

rdma link delete omx0 || fail "rdma link delete"
timeout 60 rmmod rdma_omx || fail "rmmod failed or hung"
! lsmod | grep -q '^rdma_omx' || fail "still loaded"
log "PASS"
