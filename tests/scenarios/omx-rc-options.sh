#!/bin/bash
# Debian's unmodified ibv_rc_pingpong over omx with the options beyond the
# basics (issue 3): the new post-send API (-N), completion timestamps (-t),
# on-demand paging (-o, implicit -O, prefetch -P), path MTU (-m 1024/4096 on
# 9000-byte veths), their combinations with -e (events) and -c (buffer
# validation), device memory (-j), which omx refuses cleanly, and a path
# MTU the netdev cannot carry (-m 4096 at MTU 1500), refused at the move to
# RTR with a message that says what to do; first, omx_ext checks the rest
# of the extended API (issue 13 section 3). Server in
# nsA on omx0, client in nsB on omx1. Every pair must exit 0 and print
# "bytes in"; the usec/iter lines go to /out/results.txt.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup 9000
ib_port_active omx0
ib_port_active omx1
expect_eq "$(port_field omx0 active_mtu)" "4096 (5)" "omx0 active_mtu"

PP_PORT=18600

# The capabilities rc_pingpong checks for -t and -o.
ibv_devinfo -v -d omx0 >"$OUT/devinfo-v.txt"
expect_file_contains "$OUT/devinfo-v.txt" "hca_core_clock:[[:space:]]+1000000kHZ" "devinfo"
expect_file_contains "$OUT/devinfo-v.txt" "SUPPORT_IMPLICIT" "devinfo odp"

# The extended API, complete (issue 13 section 3): ibv_query_device_ex,
# the GID queries, ibv_create_cq_ex with both timestamps, every ibv_wr_*
# builder on RC, UC and UD QPs, ibv_wr_abort, ibv_query_qp(_data_in_order)
# and the features refused at QP creation (tests/progs/omx_ext.c).
ip netns exec nsA timeout 120 "$PROGS/omx_ext" -d omx0 >"$OUT/omx_ext.txt" 2>&1 ||
	{ cat "$OUT/omx_ext.txt" >&2; fail "omx_ext failed"; }
expect_file_contains "$OUT/omx_ext.txt" "^ext ok$" "omx_ext"
log "omx_ext: $(grep -m1 '^rc batch ok' "$OUT/omx_ext.txt")"

N=200
pingpong new-send 120 -N -n $N
pingpong new-send-events 120 -N -e -n $N
pingpong new-send-s4k 120 -N -s 4096 -n $N
pingpong ts 120 -t -n $N
# Not -t -e: rc_pingpong then treats a CQ event with nothing to poll as an
# error, which a completion landing between its arm and its poll produces
# with any provider (docs/provider.md, "-t -e").
pingpong odp 120 -o -n $N
pingpong odp-chk 120 -o -c -n $N
pingpong odp-prefetch 120 -o -P -n $N
pingpong iodp 120 -O -n $N
pingpong iodp-prefetch-events 120 -O -P -e -n $N
pingpong all 120 -N -t -O -P -c -n $N
pingpong all-events 120 -N -o -c -e -n $N
for o in new-send ts; do
	expect_file_contains "$OUT/pp-$o-client.txt" "bytes in" "$o"
done
# -t prints the spread of the receive completion timestamps.
expect_file_contains "$OUT/pp-ts-client.txt" "Max receive completion clock cycles" "ts client"
result ts_client_avg_cycles "$(sed -n 's/^Average receive completion clock cycles = //p' "$OUT/pp-ts-client.txt")"

# Path MTU: each pair's frames are at most its path MTU (plus headers), so
# the average frame on vethB tells 1024 and 4096 apart.
# mtu_run NAME MTU: a 64 KiB ping-pong at -m MTU; prints bytes/frame sent by
# the client.
mtu_run() {
	local p0 b0 p1 b1
	p0=$(ip netns exec nsB cat /sys/class/net/vethB/statistics/tx_packets)
	b0=$(ip netns exec nsB cat /sys/class/net/vethB/statistics/tx_bytes)
	pingpong "$1" 240 -m "$2" -s 65536 -n 50 >&2
	p1=$(ip netns exec nsB cat /sys/class/net/vethB/statistics/tx_packets)
	b1=$(ip netns exec nsB cat /sys/class/net/vethB/statistics/tx_bytes)
	echo $(((b1 - b0) / (p1 - p0)))
}
avg1k=$(mtu_run mtu1024 1024)
avg4k=$(mtu_run mtu4096 4096)
result mtu1024_bytes_per_frame "$avg1k"
result mtu4096_bytes_per_frame "$avg4k"
((avg1k <= 1024 + 128)) || fail "-m 1024: $avg1k bytes per frame"
((avg4k > 1024 + 128 && avg4k <= 4096 + 128)) || fail "-m 4096: $avg4k bytes per frame"

# Device memory: omx has none (max_dm_size 0, ibv_alloc_dm EOPNOTSUPP).
# rc_pingpong refuses before it connects, on both sides.
for pair in nsA:omx0 nsB:omx1; do
	side=${pair%:*} dev=${pair#*:}
	out="$OUT/dm-$side.txt"
	rc=0
	ip netns exec "$side" timeout 60 ibv_rc_pingpong -d "$dev" -g 0 -p 18999 -j \
		10.78.0.1 >"$out" 2>&1 || rc=$?
	[[ $rc != 0 && $rc != 124 ]] || fail "-j in $side: exit $rc"
	expect_file_contains "$out" "Device doesn't support dm allocation" "-j $side"
	log "-j refused in $side: $(head -n1 "$out")"
done

# -m 4096 on 1500-byte veths: frames are never fragmented, so modify_qp
# refuses the path MTU (EINVAL) instead of losing every full packet until
# the retry budget runs out. The server moves to RTR first (the client
# waits for its answer), so it prints the message; both exit non-zero.
ip -n nsA link set vethA mtu 1500
ip -n nsB link set vethB mtu 1500
wait_for '[[ $(port_field omx0 active_mtu) == "1024 (3)" ]]' 10 ||
	fail "omx0 active_mtu after MTU 1500: $(port_field omx0 active_mtu)"
so="$OUT/mtu-refused-server.txt" co="$OUT/mtu-refused-client.txt"
ip netns exec nsA timeout 60 ibv_rc_pingpong -d omx0 -g 0 -p 18998 -m 4096 >"$so" 2>&1 &
s=$!
wait_for "ip netns exec nsA ss -ltn | grep -q :18998" 20 || fail "-m 4096: server did not listen"
src=0 crc=0
ip netns exec nsB timeout 60 ibv_rc_pingpong -d omx1 -g 0 -p 18998 -m 4096 10.78.0.1 \
	>"$co" 2>&1 || crc=$?
wait "$s" || src=$?
[[ $src != 0 && $src != 124 && $crc != 0 && $crc != 124 ]] ||
	{ cat "$so" "$co" >&2; fail "-m 4096 at MTU 1500: server exit $src, client exit $crc"; }
expect_file_contains "$so" "path_mtu 4096 needs a netdev MTU of at least 4150" "-m 4096 server"
expect_file_contains "$so" "Failed to modify QP to RTR" "-m 4096 server"
log "-m 4096 at MTU 1500 refused: $(grep -m1 'omx: modify_qp' "$so")"
# The port's own active_mtu still works at MTU 1500.
pingpong mtu1500-active 240 -m 1024 -s 4096 -n 50

omx_teardown
