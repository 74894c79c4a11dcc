#!/bin/bash
# Memory windows over omx (tests/progs/omx_mw.c; validated on rxe by
# tests/scenarios/rxe-mw.sh):
#  - omx_mw's checks on omx0 in nsA, one process, same-device QPs: the
#    device reports max_mw, IBV_DEVICE_MEM_WINDOW and TYPE_2A/2B; type 1
#    windows (ibv_bind_mw, accesses exactly inside the window, one byte
#    outside refused, a read-only rebind, the old rkey refused, a bind of
#    length 0 unbinds); type 2 windows (IBV_WR_BIND_MW, LOCAL_INV,
#    SEND_WITH_INV with IBV_WC_WITH_INV and invalidated_rkey, the window
#    reachable only through the QP it was bound through), the same through
#    ibv_wr_bind_mw / ibv_wr_local_inv / ibv_wr_send_inv; refusals (MR
#    without MW_BIND, range outside the MR, REMOTE_WRITE without
#    LOCAL_WRITE, LOCAL_INV / SEND_WITH_INV of what cannot be invalidated,
#    a type 2 bind of a bound window); dealloc of a bound window;
#  - the same checks across the wire: the server (window owner) in nsA on
#    omx0, the client (remote accesses) in nsB on omx1.
# omx_mw's exit 77 ("no memory windows") is a failure here: omx must
# have them. Both runs must print "mw ok".
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

MW_PORT=18740

# mw_rc NAME RC FILE: fails on a non-zero exit (77 included), with the output.
mw_rc() {
	local name=$1 rc=$2 f=$3
	if ((rc == 77)); then
		cat "$f" >&2
		fail "$name: omx_mw says the device has no memory windows (exit 77)"
	fi
	((rc == 0)) || { cat "$f" >&2; fail "$name: omx_mw exit $rc"; }
}

log "omx_mw -d omx0: one process, same device"
rc=0
ip netns exec nsA timeout 300 "$PROGS/omx_mw" -d omx0 >"$OUT/omx_mw.txt" 2>&1 || rc=$?
mw_rc "same device" "$rc" "$OUT/omx_mw.txt"
cat "$OUT/omx_mw.txt" >&2
expect_file_contains "$OUT/omx_mw.txt" "^mw ok$" "omx_mw same device"
result mw_same_device "ok, $(grep -c ': ok' "$OUT/omx_mw.txt") ok lines, $(grep -c 'refus' "$OUT/omx_mw.txt") refusal lines"

log "omx_mw: server (owner) nsA/omx0, client (accesses) nsB/omx1"
ip netns exec nsA timeout 300 "$PROGS/omx_mw" -d omx0 -S -p "$MW_PORT" \
	>"$OUT/omx_mw-server.txt" 2>&1 &
s=$!
wait_for "ip netns exec nsA ss -ltn | grep -q :$MW_PORT" 30 ||
	{ cat "$OUT/omx_mw-server.txt" >&2; fail "omx_mw server did not listen"; }
crc=0
ip netns exec nsB timeout 300 "$PROGS/omx_mw" -d omx1 -C 10.78.0.1 -p "$MW_PORT" \
	>"$OUT/omx_mw-client.txt" 2>&1 || crc=$?
src=0
wait "$s" || src=$?
if ((src != 0 || crc != 0)); then
	log "--- client ($crc)"
	cat "$OUT/omx_mw-client.txt" >&2
fi
mw_rc "two namespaces, server" "$src" "$OUT/omx_mw-server.txt"
mw_rc "two namespaces, client" "$crc" "$OUT/omx_mw-client.txt"
cat "$OUT/omx_mw-server.txt" >&2
expect_file_contains "$OUT/omx_mw-server.txt" "^mw ok$" "omx_mw server"
expect_file_contains "$OUT/omx_mw-client.txt" "^mw ok \(peer\)$" "omx_mw client"
result mw_two_namespaces "ok, $(grep -c ': ok' "$OUT/omx_mw-server.txt") ok lines, $(grep -c 'refus' "$OUT/omx_mw-server.txt") refusal lines"

omx_teardown
