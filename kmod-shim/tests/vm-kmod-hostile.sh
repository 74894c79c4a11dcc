#!/bin/bash
# vm-kmod-hostile.sh: rdma_omx under a hostile local user, kernel only (raw
# uverbs, no provider).
#   tests/vm/run --kernel 6.1 kmod-shim/tests/vm-kmod-hostile.sh
# 1. CQ_NOTIFY flood on a CQ whose channel is never read: kernel memory
#    stays flat, at most 16 events queued (OMX_FLOOD_N calls, default
#    10^7, about 25 s under TCG).
# 2. Per-user limits (module parameters set low): EDQUOT for a throwaway
#    user at each limit (SRQs and MWs included, SRQs freed on destroy), another user unaffected, charges follow the
#    context's opener, records freed with the last context.
# 3. Memory charged to the user's cgroup: 20000 MRs in a memory cgroup.
# 4. The modify_qp transition walk (tests/progs/omx_modify_table): runs
#    twice with identical output, every refusal leaves the QP unchanged.
# Then rmmod.  The runner fails the run on any kernel WARNING/BUG.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"

T=/tmp/kmod-tests
mkdir -p "$T"
for p in omx_cq_flood omx_ulimits omx_memcg; do
	gcc -O2 -Wall -Wextra -pthread -I "$REPO/kmod-shim/include/uapi" \
		-o "$T/$p" "$REPO/kmod-shim/tests/$p.c" || fail "cannot build $p"
done
TABLE=$REPO/tests/progs/bin/omx_modify_table
[ -x "$TABLE" ] || fail "$TABLE not built (make -C tests/progs)"

load_rdma_omx max_contexts_per_user=3 max_pds_per_user=2 max_cqs_per_user=2 \
	max_qps_per_user=2 max_mrs_per_user=2 max_srqs_per_user=2 max_mws_per_user=2
omx_on_veth omx0 vethH vethI
dev=$(uverbs_of omx0)
ls -l "$dev" >&2

log "CQ_NOTIFY flood: ${OMX_FLOOD_N:=10000000} calls"
"$T/omx_cq_flood" "$dev" "$OMX_FLOOD_N" | tee /out/flood.txt >&2 ||
	fail "flood: $(grep FAIL /out/flood.txt)"
result flood "$(grep -E '^(calls|SUnreclaim|kmalloc|events)' /out/flood.txt | tr '\n' ' ')"

log "per-user limits"
before=$(dmesg | wc -l)
"$T/omx_ulimits" "$dev" omx0 40001 40002 40003 40004 | tee /out/ulimits.txt >&2 ||
	fail "per-user limits: $(grep FAIL /out/ulimits.txt | head -3)"
dmesg | tail -n +"$((before + 1))" | grep 'max_' | tee /out/ulimits-dmesg.txt >&2 || true
grep -q 'uid 40001 reached max_contexts_per_user (3): -EDQUOT' /out/ulimits-dmesg.txt ||
	fail "no message naming max_contexts_per_user"
grep -q 'reached max_pds_per_user' /out/ulimits-dmesg.txt ||
	fail "no message naming max_pds_per_user"
grep -q 'reached max_srqs_per_user' /out/ulimits-dmesg.txt ||
	fail "no message naming max_srqs_per_user"
grep -q 'reached max_mws_per_user' /out/ulimits-dmesg.txt ||
	fail "no message naming max_mws_per_user"

for p in contexts pds cqs qps mrs srqs mws; do # back to no limit
	echo 0 >"/sys/module/rdma_omx/parameters/max_${p}_per_user"
done

log "kernel memory charged to the memory cgroup"
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup
echo +memory >/sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/omxtest
(echo $BASHPID >/sys/fs/cgroup/omxtest/cgroup.procs && exec "$T/omx_memcg" "$dev" 20000) |
	tee /out/memcg.txt >&2 || fail "memcg: $(tail -n 1 /out/memcg.txt)"
result memcg "$(head -n 1 /out/memcg.txt)"

log "modify_qp transition table"
"$TABLE" "$dev" >/out/modify-table.txt 2>/out/modify-table.err ||
	fail "omx_modify_table: $(tail -3 /out/modify-table.err)"
"$TABLE" "$dev" >/out/modify-table2.txt 2>>/out/modify-table.err ||
	fail "omx_modify_table (2nd run)"
cmp -s /out/modify-table.txt /out/modify-table2.txt ||
	fail "omx_modify_table output differs between runs"
result modify_table_cases "$(wc -l </out/modify-table.txt)"
result modify_table_accepted "$(awk '$5 == 0' /out/modify-table.txt | wc -l)"

rdma resource show | tee /out/res-end.txt >&2
timeout 60 rmmod rdma_omx || fail "rmmod failed or hung"
log "PASS"
