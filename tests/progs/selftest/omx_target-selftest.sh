#!/bin/bash
# Host self-test of omx_target and of the helpers that drive it
# (tests/scenarios/omx-target-lib.sh), without any RDMA device: two
# omx_target processes over 127.0.0.1 and a mock libibverbs
# (mock_verbs.c, LD_PRELOADed) that moves RDMA WRITE/READ bytes between
# them with process_vm_writev/readv.  The mock checks nothing, so it also
# shows that omx_target's own checks catch what a careless peer does: a
# stray write into the canaries, and writes after ibv_dereg_mr.
#
#   tests/progs/selftest/omx_target-selftest.sh     (root: process_vm_*)
#
# Prints one PASS/FAIL line per check; exit 0 when all pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
if [[ $(id -u) != 0 ]]; then
	echo "skipped: needs root (process_vm_writev into another process)"
	exit 0
fi
make -s -C "$repo/tests/progs" bin/omx_target
TGT_DIR=$(mktemp -d /tmp/omx-target-selftest.XXXXXX)
TGT_BIN=$repo/tests/progs/bin/omx_target
cc -O2 -g -Wall -Wextra -Werror -shared -fPIC -o "$TGT_DIR/mock_verbs.so" \
	"$here/mock_verbs.c"
# shellcheck source=tests/scenarios/omx-target-lib.sh
. "$repo/tests/scenarios/omx-target-lib.sh"
TGT_ENV=("LD_PRELOAD=$TGT_DIR/mock_verbs.so")
trap 'tgt_kill_all; [[ -n ${KEEP:-} ]] || rm -rf "$TGT_DIR"' EXIT

failed=0
ok() { echo "PASS $*"; }
bad() {
	echo "FAIL $*"
	failed=$((failed + 1))
}
check() { # WHAT CMD...
	local what=$1
	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
has() { grep -qE -- "$2" "$(tgt_log "$1")"; }
port=19400

pair() { # V_ARGS... -- P_ARGS...
	local -a va=()
	while [[ $1 != -- ]]; do
		va+=("$1")
		shift
	done
	shift
	port=$((port + 1))
	tgt_start v - -d mock0 -l "$port" -T 60 "${va[@]}"
	tgt_start p - -d mock0 -c "127.0.0.1:$port" -T 60 "$@"
	tgt_wait v '^ready$' 20 && tgt_wait p '^ready$' 20
}

# quit_pair WHY V_EXIT: both quit; the victim with status V_EXIT.
quit_pair() {
	tgt_quit v
	tgt_quit p
	check "victim exit $2 ($1)" test "${TEXIT[v]}" = "$2"
	check "peer exit 0" test "${TEXIT[p]}" = 0
}

# 1. Connection data, RDMA both ways, a stray write caught.
pair -- -r 2
check "connect: QPNs exchanged" \
	test "$(tgt_get v PEER_QPN)" = "$(tgt_get p QPN)" -a "$(tgt_get p PEER_QPN)" = "$(tgt_get v QPN)"
check "connect: PSNs exchanged" test "$(tgt_get v RQ_PSN)" = "$(tgt_get p SQ_PSN)"
check "connect: MR address" test "$(tgt_get p PEER_MR_ADDR)" = "$(tgt_get v MR_ADDR)"
check "receives posted at start" has p '^posted id=2 op=RECV len=4096$'
id=$(tgt_post p "write 4096")
check "write completes" test "$(tgt_wc p "$id")" = IBV_WC_SUCCESS
check "write lands in the victim's MR" \
	grep -qx "mr changed region=0 n=4096 first=0" <(tgt_do v check)
id=$(tgt_post p "read 100 8")
check "read completes" test "$(tgt_wc p "$id")" = IBV_WC_SUCCESS
id=$(tgt_post p "send 64")
check "send completes" test "$(tgt_wc p "$id")" = IBV_WC_SUCCESS
check "state" grep -qx "qp state=RTS" <(tgt_do v state)
check "canaries intact" grep -qx "canaries ok region=0" <(tgt_do v check)
tgt_do v "poke -1 0x11" >/dev/null
tgt_do v "poke 65536 0x11" >/dev/null
check "a stray write is caught" grep -qx "canaries BROKEN region=0 n=2 first=-1" <(tgt_do v check)
check "post too long refused" grep -q "^post failed op=SEND" <(tgt_do p "send 8192")
quit_pair canaries 1

# 2. Unmapped and PROT_NONE MRs: the peer's RDMA fails, the target lives.
pair --
check "munmap" grep -qx "munmap done bytes=65536" <(tgt_do v munmap)
id=$(tgt_post p "write 4096")
check "write into unmapped MR fails" test "$(tgt_wc p "$id")" = IBV_WC_REM_ACCESS_ERR
check "unmapped MR skipped by check" \
	grep -q "mr skipped region=0 (whole pages unmapped)" <(tgt_do v check)
quit_pair unmapped 0
pair -s 10000 --
check "mprotect: whole pages only" \
	grep -qx "mprotect none done bytes=8192" <(tgt_do v "mprotect none")
id=$(tgt_post p "read 4096")
check "read of PROT_NONE MR fails" test "$(tgt_wc p "$id")" = IBV_WC_REM_ACCESS_ERR
id=$(tgt_post p "rdma-write 100 $(($(tgt_get v MR_ADDR) + 9000)) 0")
check "write into the partial last page works" test "$(tgt_wc p "$id")" = IBV_WC_SUCCESS
check "canaries next to it intact" grep -qx "canaries ok region=0" <(tgt_do v check)
quit_pair PROT_NONE 0

# 3. dereg-after: deregistered after the first KiB; the mock goes on
# writing, which the after-dereg comparison must report.
pair -s 64K -- -s 64K
check "dereg-after armed" grep -qx "dereg-after armed byte=1023" <(tgt_do v "dereg-after 1024")
id=$(tgt_post p "write 1024")
tgt_wc p "$id" >/dev/null
check "dereg done after the first KiB" tgt_wait v "^dereg done region=0 rc=0 changed=1024$" 10
check "nothing written after dereg" grep -qx "after-dereg unchanged region=0" <(tgt_do v check)
id=$(tgt_post p "write 4096")
tgt_wc p "$id" >/dev/null
check "a write after dereg is caught" \
	grep -qx "after-dereg changed region=0 n=3072 first=1024" <(tgt_do v check)
quit_pair "written after dereg" 1

# 4. A huge untouched MR and a second MR; stdin closed = quit; -T.
pair -s 3G -z -2 -T 5 --
check "huge MR registered" test "$(tgt_get v MR_LEN)" = $((3 << 30))
check "second MR" test -n "$(tgt_get v MR2_RKEY)"
out=$(tgt_do v check)
check "huge MR not read" grep -qx "mr skipped region=0 (-z)" <<<"$out"
check "second MR intact" grep -qx "mr unchanged region=1" <<<"$out"
fd=${TFD[p]}
exec {fd}>&-
check "end of input quits" tgt_wait p '^exit status=0$' 10
check "-T gives up" tgt_wait v '^timeout after 5 s$' 15
tgt_quit v
check "-T exit status" test "${TEXIT[v]}" = 1

check "usage: exit 2" test "$("$TGT_BIN" -l 1 2>/dev/null; echo $?)" = 2

echo "omx_target self-test: $failed failure(s)"
[[ $failed == 0 ]]
