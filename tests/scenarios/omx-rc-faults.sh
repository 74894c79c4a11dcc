#!/bin/bash
# RC under faults, with Debian's unmodified ibv_rc_pingpong between nsA and
# nsB:
#  - netem on the veth (5% loss, 10% reorder, 1% duplication, both ways):
#    `-c -n 10000` (validated buffers) completes on both sides;
#  - kill -9 of the server mid-run: the client's QP errors out with
#    "transport retry counter exceeded" (IBV_WC_RETRY_EXC_ERR) within its
#    retry budget, no hang, and the kernel cleans up the dead process's
#    objects.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
modprobe sch_netem
for side in "nsA vethA" "nsB vethB"; do
	set -- $side
	ip netns exec "$1" tc qdisc add dev "$2" root netem delay 100us 50us \
		loss 5% reorder 10% duplicate 1%
done

log "netem: ibv_rc_pingpong -c -n 10000"
ip netns exec nsA timeout 600 ibv_rc_pingpong -d omx0 -g 0 -p 18600 -c -n 10000 \
	>/out/netem-server.txt 2>&1 &
s=$!
wait_for "ip netns exec nsA ss -ltn | grep -q :18600" 20 || fail "server did not listen"
ip netns exec nsB timeout 600 ibv_rc_pingpong -d omx1 -g 0 -p 18600 -c -n 10000 \
	10.78.0.1 >/out/netem-client.txt 2>&1 || { cat /out/netem-client.txt; fail "netem client"; }
wait "$s" || { cat /out/netem-server.txt; fail "netem server"; }
grep -q "bytes in" /out/netem-client.txt || fail "netem client: no result"
cat /out/netem-client.txt
result netem_client "$(grep usec/iter /out/netem-client.txt)"
ip netns exec nsA tc -s qdisc show dev vethA | tee /out/netem-stats.txt

for side in "nsA vethA" "nsB vethB"; do
	set -- $side
	ip netns exec "$1" tc qdisc del dev "$2" root
done

log "kill -9 of the server mid-run"
ip netns exec nsA ibv_rc_pingpong -d omx0 -g 0 -p 18601 -n 100000000 \
	>/out/kill-server.txt 2>&1 &
s=$!
wait_for "ip netns exec nsA ss -ltn | grep -q :18601" 20 || fail "server did not listen"
ip netns exec nsB timeout 120 ibv_rc_pingpong -d omx1 -g 0 -p 18601 -n 100000000 \
	10.78.0.1 >/out/kill-client.txt 2>&1 &
c=$!
wait_for "rdma resource show qp | grep -q 'state RTS.*pid $s '" 30 ||
	fail "server QP never reached RTS"
sleep 2
kill -9 "$s"
wait "$s" 2>/dev/null || true
t0=$SECONDS
crc=0
wait "$c" || crc=$?
log "client exited with $crc after $((SECONDS - t0)) s"
cat /out/kill-client.txt
[ "$crc" != 124 ] || fail "client hung (timeout)"
[ "$crc" != 0 ] || fail "client did not notice the dead peer"
grep -q "retry counter exceeded" /out/kill-client.txt ||
	fail "client did not fail with IBV_WC_RETRY_EXC_ERR"
wait_for "! rdma resource show qp | grep -q 'pid $s '" 20 ||
	fail "the dead server's QPs remain"
omx_teardown
