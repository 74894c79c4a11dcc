#!/bin/bash
# RC under faults, with Debian's unmodified ibv_rc_pingpong between nsA and
# nsB:
#  - netem on the veth (5% loss, 10% reorder, 1% duplication, both ways):
#    `-c -n 10000` (validated buffers) completes on both sides;
#  - kill -9 of the server mid-run: the client's QP errors out with
#    "transport retry counter exceeded" (IBV_WC_RETRY_EXC_ERR) within its
#    retry budget when it has a send in flight (see below), and the kernel
#    cleans up the dead process's objects; between the two namespaces, and
#    again with both processes on one device (shared-memory path).
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
ip netns exec nsA timeout 600 ibv_rc_pingpong -d omx0 -g 0 -p 18700 -c -n 10000 \
	>/out/netem-server.txt 2>&1 &
s=$!
wait_for "ip netns exec nsA ss -ltn | grep -q :18700" 20 || fail "server did not listen"
ip netns exec nsB timeout 600 ibv_rc_pingpong -d omx1 -g 0 -p 18700 -c -n 10000 \
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

# kill -9 of the server mid-run. The client notices only if it has a send
# in flight: if the server died after acknowledging the client's message
# but before posting its reply, the client waits for a receive forever,
# as it would on any RC hardware (RC has no keepalive). So the kill is
# retried, up to three times, until it lands while a send is in flight;
# every attempt must clean up, and one must end in RETRY_EXC_ERR.
kill_attempt() { # N CLIENT_NS CLIENT_DEV: 0 when the client failed with RETRY_EXC_ERR
	local n=$1 cns=$2 cdev=$3 port=$((18600 + $1)) s c crc=0 t0
	log "kill -9 of the server (nsA/omx0) mid-run, client on $cns/$cdev, attempt $n"
	ip netns exec nsA ibv_rc_pingpong -d omx0 -g 0 -p "$port" -n 100000000 \
		>"/out/kill$n-server.txt" 2>&1 &
	s=$!
	wait_for "ip netns exec nsA ss -ltn | grep -q :$port" 20 || fail "server did not listen"
	ip netns exec "$cns" timeout 30 ibv_rc_pingpong -d "$cdev" -g 0 -p "$port" \
		-n 100000000 10.78.0.1 >"/out/kill$n-client.txt" 2>&1 &
	c=$!
	wait_for "rdma resource show qp | grep -q 'state RTS.*pid $s '" 30 ||
		fail "server QP never reached RTS"
	sleep 2
	kill -9 "$s"
	wait "$s" 2>/dev/null || true
	t0=$SECONDS
	wait "$c" || crc=$?
	log "client exited with $crc after $((SECONDS - t0)) s"
	cat "/out/kill$n-client.txt"
	wait_for "! rdma resource show qp | grep -q 'pid $s '" 20 ||
		fail "the dead server's QPs remain"
	[ "$crc" != 0 ] || fail "client did not notice the dead peer"
	if [ "$crc" = 124 ]; then
		log "client was waiting for a receive when the server died"
		return 1
	fi
	grep -q "retry counter exceeded" "/out/kill$n-client.txt" ||
		fail "client failed, but not with IBV_WC_RETRY_EXC_ERR"
}
ok=0
for n in 1 2 3; do
	if kill_attempt "$n" nsB omx1; then ok=1; break; fi
done
[ "$ok" = 1 ] || fail "no kill -9 attempt ended in IBV_WC_RETRY_EXC_ERR"
# The same on one device, where the client writes into the server's
# shared-memory inbox (docs/wire.md section 11), which nobody reads once
# the server is dead.
ok=0
for n in 4 5 6; do
	if kill_attempt "$n" nsA omx0; then ok=1; break; fi
done
[ "$ok" = 1 ] || fail "same device: no kill -9 attempt ended in IBV_WC_RETRY_EXC_ERR"
omx_teardown
