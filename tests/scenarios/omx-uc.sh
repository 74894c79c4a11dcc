#!/bin/bash
# UC, unreliable connected (issue 12, docs/wire.md §14). Debian's
# unmodified ibv_uc_pingpong, server in nsA on omx0, client in nsB on
# omx1: default options, completion events (-e), 1-byte, 64 KiB and
# 512 KiB messages, 10000 iterations; then both on omx0. Then perftest's
# ib_send_lat, ib_send_bw, ib_write_lat and ib_write_bw with -c UC, each
# of which must complete with a result row. The veth link loses nothing,
# so every message arrives; the engine's loss rules are tested over the
# simulated network (provider/engine/tests/uc.rs).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

PP_PROG=ibv_uc_pingpong
pingpong uc-default 300
pingpong uc-events 300 -e
pingpong uc-s1 300 -s 1
pingpong uc-s64k 300 -s 65536 -n 100
# 512 KiB: 512 frames at path MTU 1024, within the receiver's 768-frame
# ring. UC has no flow control: a larger message is one burst the
# receiver must drain as it comes, and under TCG a lost frame loses the
# message and leaves the pingpong waiting forever.
pingpong uc-s512k 300 -s 524288 -n 10
pingpong uc-n10k 900 -n 10000
pp_start uc-same 300 nsA omx0 nsA omx0 -n 1000
pp_wait uc-same
unset PP_PROG

# perf NAME PROG ARGS...: PROG's server in nsA on omx0, client in nsB on
# omx1 with -c UC; the client's last result row (first field the message
# size) becomes result NAME.
PERF_PORT=18600
perf() {
	local name=$1 prog=$2 s
	shift 2
	PERF_PORT=$((PERF_PORT + 1))
	log "perftest: $prog -c UC $* ($name)"
	ip netns exec nsA timeout 240 "$prog" -d omx0 -x 0 -c UC -p "$PERF_PORT" "$@" \
		>"$OUT/$name-server.txt" 2>&1 &
	s=$!
	wait_for "ip netns exec nsA ss -ltn | grep -q :$PERF_PORT" 30 ||
		{ cat "$OUT/$name-server.txt" >&2; fail "$name: server did not listen"; }
	ip netns exec nsB timeout 240 "$prog" -d omx1 -x 0 -c UC -p "$PERF_PORT" "$@" 10.78.0.1 \
		>"$OUT/$name-client.txt" 2>&1 || {
		cat "$OUT/$name-server.txt" "$OUT/$name-client.txt" >&2
		fail "$name: $prog -c UC client"
	}
	wait "$s" || { cat "$OUT/$name-server.txt" >&2; fail "$name: $prog -c UC server"; }
	cat "$OUT/$name-client.txt" >&2
	local row
	row=$(awk '$1 ~ /^[0-9]+$/ && NF >= 4 { r = $0 } END { print r }' "$OUT/$name-client.txt")
	[[ -n $row ]] || fail "$name: no result row"
	result "$name" "$(tr -s ' ' <<<"$row")"
}

perf uc_send_lat ib_send_lat -s 2 -n 2000 -F
perf uc_write_lat ib_write_lat -s 2 -n 2000 -F
# A UC sender never waits: a SEND that finds no posted receive is lost,
# and a server counting iterations would then wait for it forever.
# Duration mode ends both sides by time.
perf uc_send_bw ib_send_bw -s 4096 -D 4 -F
perf uc_write_bw ib_write_bw -s 65536 -n 2000 -F

omx_teardown
