#!/bin/bash
# Hostile frames end to end (issue 11): a peer on the segment forges omx
# frames with omx-craft (provider/craft) through a raw socket, against
# Debian's ibv_rc_pingpong, ib_write_bw and ib_read_bw and against
# omx_target (tests/progs), and every case checks: no crash, no byte
# outside an MR written, the right work-completion status, async event or
# drop counter, and that the legitimate exchange still completes.
#
# Topology (omx-lib.sh): nsA (vethA, omx0) is the victim's side; nsB
# (vethB, omx1) is the legitimate peer's and the attacker's, who sends and
# sniffs on vethB: a forged frame reaches the victim like any station's
# would, whatever source MAC it carries, and the attacker sees the
# victim's answers.
#
# Cases (`omx-hostile.sh CASE...` runs some; default all):
#   foreign       foreign source MAC, foreign source QPN, a QPN with no QP,
#                 and PSN sweeps over the whole space, as SEND and WRITE
#                 requests to an omx_target: nothing delivered or written
#   forged-acks   the victim's SEND is held by RNR NAKs; forged ACK, PAETH
#                 and NAK inside its window from a foreign MAC or QPN, and
#                 outside it from the peer itself (single frames and a sweep
#                 of every PSN but the window's): the SEND completes only
#                 once the peer really receives it
#   qp-no-write   QP access flags without REMOTE_WRITE: a WRITE fails with
#   qp-no-read    IBV_WC_REM_INV_REQ_ERR (READ likewise), NAK invalid request
#   rd-atomic-0   max_dest_rd_atomic = 0: a READ fails IBV_WC_REM_INV_REQ_ERR
#   read-2g       a forged READ of 2^31 + 1 bytes inside a 2 GiB MR: NAK
#                 invalid request, no response packet
#   dup-read      a duplicate READ with a new address or another MR's rkey:
#                 no response packet, counted
#   unmapped-write  WRITE into a registered range the victim unmapped, and
#   protnone-read   READ of one it made PROT_NONE: IBV_WC_REM_ACCESS_ERR at
#                 the peer, the victim lives and gets an async event
#   dereg-crafted a crafted multi-packet WRITE; the victim deregisters after
#                 the first packet: the rest is NAKed, nothing written after
#   dereg-write   the same with the peer's real 32 MiB WRITE
#   pingpong      ibv_rc_pingpong under PSN sweeps from a foreign MAC and
#                 QPN, forged NAKs across its live window from a foreign
#                 MAC, and out-of-window ACK/NAK/PAETH from the peer itself
#   write-bw      ib_write_bw under forged WRITEs with its real rkey/VA from
#                 a foreign MAC and QPN, and ACK/NAKs to its RTR-only QP
#   read-bw       ib_read_bw under duplicate READs with a new address/rkey
#
# Each step prints "PASS <case>: <step>" or "FAIL <case>: <step>" (also in
# /out/hostile-steps.txt); the scenario fails at the end if any step
# failed. Per-case logs, target outputs and captures: /out/hostile/<case>/.
set -euo pipefail
# shellcheck source=tests/vm/guest-lib.sh
. "$REPO/tests/vm/guest-lib.sh"
# shellcheck source=tests/scenarios/omx-lib.sh
. "$REPO/tests/scenarios/omx-lib.sh"
# shellcheck source=tests/scenarios/omx-target-lib.sh
. "$REPO/tests/scenarios/omx-target-lib.sh"

# ---- What the provider reports (docs/troubleshooting.md, "Why frames are
# dropped"). Counters printed at context close with OMX_STATS=1, on stderr,
# one line each: "omx-stats ctx <endpoint> <name> <value>" (summed over the
# contexts of a log; a value below may list several names, separated by
# spaces, whose sum is checked).
C_WRONG_MAC=rx_wrong_mac          # source MAC is not the connected path's
C_WRONG_QP=rx_wrong_qp            # source QPN is not the connected QP's
C_UNKNOWN_QP=rx_unknown_qp        # no QP of the context has that QPN
C_ACK_WINDOW="rx_ack_out_of_window rx_nak_out_of_window" # ACK/PAETH, NAK PSN outside the window
C_BAD_DUP_READ=rx_dup_read_unmatched # duplicate READ matching no record
C_TX_NAKS=tx_naks                 # NAKs (not RNR) sent
# The async event of a QP whose responder faulted on a registered range.
EV_FAULT=IBV_EVENT_QP_ACCESS_ERR

CRAFT=$REPO/target/release/omx-craft
[[ -x $CRAFT ]] || CRAFT=$REPO/target/debug/omx-craft
[[ -x $CRAFT ]] || fail "omx-craft not built (cargo build --release -p omx-craft)"
[[ -x $PROGS/omx_target ]] || fail "omx_target not built (make -C tests/progs)"
TGT_BIN=$PROGS/omx_target
TGT_ENV=(OMX_STATS=1)
FMAC=02:66:66:66:66:66 # a station that is nobody's peer
# Microseconds between the frames of a sweep against Debian's programs: a
# flood that overflows the victim's receive ring drops its legitimate
# frames too, which tests retransmission, not the checks.
PACE=50
STEPS=$OUT/hostile-steps.txt
HDIR=$OUT/hostile
ALL_CASES="foreign forged-acks qp-no-write qp-no-read rd-atomic-0 read-2g dup-read
	unmapped-write protnone-read dereg-crafted dereg-write pingpong write-bw read-bw"

# ---- Steps and values --------------------------------------------------
CASE=
step_pass() { printf 'PASS %s: %s\n' "$CASE" "$*" | tee -a "$STEPS" >&2; }
step_fail() { printf 'FAIL %s: %s\n' "$CASE" "$*" | tee -a "$STEPS" >&2; }
# step WHAT CMD...: one checked step.
step() {
	local what=$1
	shift
	if "$@"; then step_pass "$what"; else step_fail "$what"; fi
}
# abort MSG: the case cannot go on (its setup failed).
abort() {
	step_fail "aborted: $*"
	exit 1
}
# psn EXPR: a PSN expression, modulo 2^24, as omx-craft takes it.
psn() { printf '%#x\n' $((($1) & 0xffffff)); }
# hex24 EXPR: a PSN or QPN as omx-craft prints it (0x and six digits).
hex24() { printf '0x%06x\n' $((($1) & 0xffffff)); }
# kv KEY: a value from the KEY=VALUE lines in $KV (omx-craft learn/sniff).
kv() { sed -n "s/^$1=//p" <<<"$KV" | head -n1; }
ge() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= $2)); }

# counter FILE NAMES MIN: the provider counted at least MIN under the
# counter names NAMES (space-separated, summed).
counter() {
	local got=0 n
	for n in $2; do
		got=$((got + $(stat_sum "$1" "$n")))
	done
	step "counter $2 >= $3 (got $got)" ge "$got" "$3"
}

# ---- The attacker: omx-craft in nsB on vethB ----------------------------
# forge ARGS...: `omx-craft send` to the victim's MAC (source MAC: vethB's,
# the legitimate peer's, unless --src-mac says otherwise).
forge() {
	ip netns exec nsB "$CRAFT" send --iface vethB --dst-mac "$VMAC" "$@" \
		>>"$TGT_DIR/forge.log" 2>&1 || abort "omx-craft send $*"
}
# to_v ARGS...: forge to the victim's QP, from the peer's QPN.
to_v() { forge --dst-qpn "$V_QPN" --src-qpn "$P_QPN" "$@"; }
# forges: one `omx-craft batch`, a frame spec (`send` arguments) per line
# of stdin, each to the victim's MAC; blank lines and # comments skipped.
forges() {
	sed -e '/^[[:space:]]*\(#.*\)\{0,1\}$/d' -e "s/^/--dst-mac $VMAC /" |
		ip netns exec nsB "$CRAFT" batch --iface vethB >>"$TGT_DIR/forge.log" 2>&1 ||
		abort "omx-craft batch: $(tail -n 2 "$TGT_DIR/forge.log")"
}

declare -A SNIFF
# sniff_bg NAME ARGS...: `omx-craft sniff` in the background, output in
# $TGT_DIR/NAME.sniff; returns once it captures.
sniff_bg() {
	local name=$1 ready end
	shift
	ready=$TGT_DIR/$name.ready
	ip netns exec nsB "$CRAFT" sniff --iface vethB --ready "$ready" "$@" \
		>"$TGT_DIR/$name.sniff" 2>&1 &
	SNIFF[$name]=$!
	end=$((SECONDS + 20))
	until [[ -e $ready ]]; do
		kill -0 "${SNIFF[$name]}" 2>/dev/null || abort "sniffer $name: $(cat "$TGT_DIR/$name.sniff")"
		((SECONDS < end)) || abort "sniffer $name did not start"
		sleep 0.1
	done
}
# sniff_end NAME: waits for it; its exit status (0: --count reached).
sniff_end() {
	local rc=0
	wait "${SNIFF[$1]}" || rc=$?
	unset "SNIFF[$1]"
	return "$rc"
}
sniff_out() { cat "$TGT_DIR/$1.sniff"; }

# learn ARGS...: `omx-craft learn` on the victim's connection into $KV.
learn() {
	KV=$(ip netns exec nsB "$CRAFT" learn --iface vethB --victim-mac "$VMAC" "$@") ||
		abort "omx-craft learn saw nothing of the victim's connection"
	printf '%s\n' "$KV" >"$TGT_DIR/learn.txt"
}

# ---- omx_target pairs ---------------------------------------------------
# pair PORT V_ARGS... -- P_ARGS...: the victim (nsA/omx0, listening) and
# its peer (nsB/omx1); sets V_QPN V_SQ (the victim's first send PSN)
# V_EPSN (the PSN it expects first) V_ADDR V_RKEY V_LEN V2_ADDR V2_RKEY
# P_QPN.
pair() {
	local port=$1
	local -a va=()
	shift
	while [[ $1 != -- ]]; do
		va+=("$1")
		shift
	done
	shift
	tgt_start v nsA -d omx0 -l "$port" -T 300 "${va[@]}"
	tgt_start p nsB -d omx1 -c "10.78.0.1:$port" -T 300 "$@"
	if ! tgt_wait v '^ready$' 90 || ! tgt_wait p '^ready$' 90; then
		tail -n 20 "$(tgt_log v)" "$(tgt_log p)" >&2
		abort "omx_target pair did not connect"
	fi
	V_QPN=$(tgt_get v QPN)
	V_SQ=$(tgt_get v SQ_PSN)
	V_EPSN=$(tgt_get v RQ_PSN)
	V_ADDR=$(tgt_get v MR_ADDR)
	V_RKEY=$(tgt_get v MR_RKEY)
	V_LEN=$(tgt_get v MR_LEN)
	V2_ADDR=$(tgt_get v MR2_ADDR)
	V2_RKEY=$(tgt_get v MR2_RKEY)
	P_QPN=$(tgt_get v PEER_QPN)
}

# Victim checks.
v_says() {
	local out
	out=$(tgt_do v "$1") || return 1
	grep -qxE -- "$2" <<<"$out"
}
mr_unchanged() { v_says check "mr unchanged region=0"; }
rts() { v_says state "qp state=RTS"; }
no_wc() { ! grep -q "^wc id=$2 " "$(tgt_log "$1")"; }
no_recv() { ! grep -q "^wc id=[0-9]* op=RECV" "$(tgt_log v)"; }
# wc_is WHO ID STATUS [TIMEOUT]: WR ID of WHO completed with STATUS.
wc_is() {
	local got
	got=$(tgt_wc "$1" "$2" "${4:-60}") || got=none
	[[ $got == "$3" ]] || {
		log "$1: wr $2 completed with $got, expected $3"
		return 1
	}
}

# finish: the peer and the victim quit; the victim must exit 0: no canary
# byte changed, nothing written after a deregistration, no crash.
finish() {
	tgt_quit p
	tgt_quit v
	step "victim exits 0: canaries intact, alive to the end (exit ${TEXIT[v]})" \
		test "${TEXIT[v]}" = 0
	grep -E '^(canaries|after-dereg|async|exit)' "$(tgt_log v)" >&2 || true
}

# ---- Cases on omx_target -------------------------------------------------
case_foreign() {
	pair 18801 -r 4 --
	local id other nobody
	other=$(((P_QPN + 1) & 0xffffff)) # not the peer's QPN
	nobody=$((V_QPN ^ 0x800))         # the victim's endpoint, no QP there
	local mac="--dst-qpn $V_QPN --src-qpn $P_QPN --src-mac $FMAC"
	local qpn="--dst-qpn $V_QPN --src-qpn $other"
	local send="--opcode SEND_ONLY --ack-req --payload-len 64"
	local write="--opcode WRITE_ONLY --ack-req --reth $V_ADDR:$V_RKEY:64 --payload-len 64"
	# Each frame carries the PSN the victim expects: only the source
	# tells it from the peer's.
	forges <<-EOF
		$mac $send --psn $V_EPSN
		$mac $write --psn $V_EPSN
	EOF
	sleep 2
	step "foreign source MAC: SEND not delivered" no_recv
	step "foreign source MAC: WRITE not executed" mr_unchanged
	forges <<-EOF
		$qpn $send --psn $V_EPSN
		$qpn $write --psn $V_EPSN
		--dst-qpn $nobody --src-qpn $P_QPN $send --psn $V_EPSN
	EOF
	sleep 2
	step "foreign source QPN, or a QPN with no QP: SEND not delivered" no_recv
	step "foreign source QPN: WRITE not executed" mr_unchanged
	# PSN sweeps: around the expected PSN, and the whole space.
	forges <<-EOF
		$mac $send --psn $(psn V_EPSN-512) --psn-step 1 --count 1024
		$mac $send --psn $(psn V_EPSN+1) --psn-step 4099 --count 4096
		$mac $write --psn $(psn V_EPSN-512) --psn-step 1 --count 1024
		$qpn $send --psn $(psn V_EPSN-512) --psn-step 1 --count 1024
		$qpn $write --psn $(psn V_EPSN-512) --psn-step 1 --count 1024
	EOF
	sleep 3
	step "PSN sweeps from a foreign MAC or QPN: nothing delivered" no_recv
	step "PSN sweeps from a foreign MAC or QPN: nothing written" mr_unchanged
	step "victim QP still RTS" rts
	# The legitimate peer, afterwards: its SEND arrives intact, its WRITE lands.
	id=$(tgt_post p "send 64") || abort "post send"
	step "peer's SEND completes" wc_is p "$id" IBV_WC_SUCCESS
	step "victim receives the peer's bytes, not the attacker's" \
		tgt_wait v '^wc id=1 op=RECV status=IBV_WC_SUCCESS len=64 .* data=ok$' 30
	id=$(tgt_post p "write 4096") || abort "post write"
	step "peer's WRITE completes" wc_is p "$id" IBV_WC_SUCCESS
	step "canaries intact after all of it" v_says check "canaries ok region=0"
	# The checker can fail: a stray byte before the MR is reported.
	tgt_do v "poke -1 0" >/dev/null
	step "self-check: a byte written before the MR is caught" \
		v_says check "canaries BROKEN region=0 n=1 first=-1"
	tgt_quit p
	tgt_quit v
	step "victim exits 1 for the poked byte, not a crash (exit ${TEXIT[v]})" \
		test "${TEXIT[v]}" = 1
	counter "$(tgt_log v)" "$C_WRONG_MAC" 2
	counter "$(tgt_log v)" "$C_WRONG_QP" 2
	counter "$(tgt_log v)" "$C_UNKNOWN_QP" 1
}

case_forged_acks() {
	# The peer posts no receive: its RNR NAKs (min_rnr_timer 20: 10 ms)
	# keep the victim's SEND outstanding, retried forever (rnr_retry 7).
	pair 18802 -- -N 20
	local id rid other dup src p
	other=$(((P_QPN + 1) & 0xffffff))
	dup=$(psn V_EPSN-1) # a request PSN the victim takes as a duplicate
	id=$(tgt_post v "send 64") || abort "post send"
	sleep 2
	step "victim's SEND is held by RNR NAKs" no_wc v "$id"
	# Inside the window (the SEND's PSN): ACK, a PAETH riding on a
	# harmless duplicate, NAK remote access error; from a foreign MAC,
	# then from a foreign QPN.
	for src in "--src-mac $FMAC --src-qpn $P_QPN" "--src-qpn $other"; do
		src="--dst-qpn $V_QPN $src"
		echo "$src --opcode ACK --psn $V_SQ --aeth ACK:0:64"
		echo "$src --opcode WRITE_ONLY --psn $dup --reth $V_ADDR:$V_RKEY:0 --paeth $V_SQ:64"
		echo "$src --opcode ACK --psn $V_SQ --aeth NAK-ACCESS:0:64"
	done | forges
	sleep 2
	step "in-window ACK, PAETH, NAK from a foreign MAC or QPN: SEND still outstanding" \
		no_wc v "$id"
	step "victim QP still RTS" rts
	# Outside the window, from the peer's own MAC and QPN: single frames
	# 1000 PSNs ahead and behind, then every PSN but the window's (and
	# the one before it), 4099 apart.
	src="--dst-qpn $V_QPN --src-qpn $P_QPN"
	{
		for p in "$(psn V_SQ+1000)" "$(psn V_SQ-1000)"; do
			for aeth in ACK:0:65535 NAK-ACCESS NAK-INV NAK-SEQ RNR-1; do
				echo "$src --opcode ACK --psn $p --aeth $aeth"
			done
			echo "$src --opcode WRITE_ONLY --psn $dup --reth $V_ADDR:$V_RKEY:0 --paeth $p:65535"
		done
		for aeth in ACK:0:65535 NAK-ACCESS; do
			echo "$src --opcode ACK --psn $(psn V_SQ+1) --psn-step 4099 --count 4090 --aeth $aeth"
		done
	} | forges
	sleep 3
	step "out-of-window ACK, NAK, RNR NAK, PAETH, PSN sweep from the peer: SEND outstanding" \
		no_wc v "$id"
	step "victim QP still RTS" rts
	rid=$(tgt_post p "recv 1") || abort "post recv"
	step "the peer's receive lets the SEND complete" wc_is v "$id" IBV_WC_SUCCESS 60
	step "the peer receives the victim's bytes" \
		tgt_wait p "^wc id=$rid op=RECV status=IBV_WC_SUCCESS len=64 .* data=ok\$" 30
	finish
	counter "$(tgt_log v)" "$C_WRONG_MAC" 3
	counter "$(tgt_log v)" "$C_WRONG_QP" 3
	counter "$(tgt_log v)" "$C_ACK_WINDOW" 6
}

# access_case PORT "V_ARGS" OK_OP BAD_OP STATUS SYNDROME: the peer's OK_OP
# succeeds, its BAD_OP fails with STATUS, the victim NAKs with SYNDROME
# and its MR is untouched.
access_case() {
	local port=$1 vargs=$2 ok=$3 badop=$4 want=$5 syn=$6 id
	# shellcheck disable=SC2086
	pair "$port" $vargs --
	id=$(tgt_post p "$ok 4096") || abort "post $ok"
	step "positive control: the peer's $ok succeeds" wc_is p "$id" IBV_WC_SUCCESS
	local before
	before=$(tgt_do v check | grep '^mr ') || true
	sniff_bg nak --src-mac "$VMAC" --opcode ACK --syndrome "$syn" --count 1 --timeout 60 \
		--format env
	id=$(tgt_post p "$badop 4096") || abort "post $badop"
	step "the peer's $badop fails with $want" wc_is p "$id" "$want"
	step "the victim answered $syn" sniff_end nak
	step "the victim's MR is as before ($before)" test "$(tgt_do v check | grep '^mr ')" = "$before"
	step "victim alive" tgt_alive v
	finish
	counter "$(tgt_log v)" "$C_TX_NAKS" 1
}
# An operation the victim QP's access flags leave out is an invalid
# request (rxe's check_op_valid; docs/wire.md section 7.2), not a remote
# access error, which is for the MR's key, bounds and rights.
case_qp_no_write() {
	access_case 18803 "-a r" read write IBV_WC_REM_INV_REQ_ERR NAK-INV
}
case_qp_no_read() {
	access_case 18804 "-a w" write read IBV_WC_REM_INV_REQ_ERR NAK-INV
}
case_rd_atomic_0() {
	access_case 18805 "-R 0" write read IBV_WC_REM_INV_REQ_ERR NAK-INV
}

case_read_2g() {
	# A 2 GiB + 1 MiB MR, never touched (sparse), REMOTE_READ only.
	pair 18806 -s 2049M -z -m r --
	step "the MR covers more than 2^31 + 1 bytes ($V_LEN)" ge "$V_LEN" $(((1 << 31) + 1))
	local id
	id=$(tgt_post p "read 4096") || abort "post read"
	step "positive control: a 4 KiB READ of that MR succeeds" wc_is p "$id" IBV_WC_SUCCESS
	sniff_bg nak --src-mac "$VMAC" --opcode ACK --syndrome NAK-INV --count 1 --timeout 30 \
		--format env
	sniff_bg resp --src-mac "$VMAC" --opcode "READ_RESPONSE_*" --timeout 8 --format count
	# The 4 KiB READ used 4 PSNs (path MTU 1024).
	to_v --opcode READ_REQUEST --psn "$(psn V_EPSN+4)" --reth "$V_ADDR:$V_RKEY:0x80000001"
	sniff_end nak || true
	KV=$(sniff_out nak)
	step "READ of 2^31 + 1 bytes answered NAK invalid request (psn $(kv PSN))" \
		test "$(kv PSN)" = "$(hex24 V_EPSN+4)"
	sniff_end resp || true
	step "no READ response packet sent ($(sniff_out resp))" test "$(sniff_out resp)" = 0
	step "victim alive" tgt_alive v
	finish
}

case_dup_read() {
	pair 18807 -2 -R 4 --
	local id rpsn rva rkey rlen n
	sniff_bg req --src-mac "$PMAC" --dst-mac "$VMAC" --opcode READ_REQUEST --count 1 \
		--timeout 60 --format env
	id=$(tgt_post p "read 4096") || abort "post read"
	step "the peer's READ succeeds" wc_is p "$id" IBV_WC_SUCCESS
	sniff_end req || abort "the peer's READ request was not seen"
	KV=$(sniff_out req)
	rpsn=$(kv PSN) rva=$(kv RETH_VA) rkey=$(kv RETH_RKEY) rlen=$(kv RETH_LEN)
	sniff_bg resp --src-mac "$VMAC" --opcode "READ_RESPONSE_*" --timeout 5 --format count
	to_v --opcode READ_REQUEST --psn "$rpsn" --reth "$((rva + 8192)):$rkey:$rlen"
	to_v --opcode READ_REQUEST --psn "$rpsn" --reth "$V2_ADDR:$V2_RKEY:$rlen"
	sniff_end resp || true
	n=$(sniff_out resp)
	step "duplicate READ with a new address, or another MR's rkey: not answered ($n responses)" \
		test "$n" = 0
	# For the record: the exact duplicate (IBTA: answered again).
	sniff_bg same --src-mac "$VMAC" --opcode "READ_RESPONSE_*" --timeout 4 --format count
	to_v --opcode READ_REQUEST --psn "$rpsn" --reth "$rva:$rkey:$rlen"
	sniff_end same || true
	log "$CASE: the exact duplicate was answered with $(sniff_out same) response packet(s)"
	id=$(tgt_post p "read 4096") || abort "post read"
	step "the peer's next READ still succeeds" wc_is p "$id" IBV_WC_SUCCESS
	step "victim MR unchanged" mr_unchanged
	finish
	counter "$(tgt_log v)" "$C_BAD_DUP_READ" 2
}

# fault_case PORT MAP_COMMAND OP: the victim makes its MR's pages
# unreachable, then the peer's OP into it must fail cleanly.
fault_case() {
	local port=$1 map=$2 op=$3 id
	pair "$port" --
	step "victim: $map" v_says "$map" "(munmap|mprotect none) done bytes=65536"
	sniff_bg nak --src-mac "$VMAC" --opcode ACK --syndrome NAK-ACCESS --count 1 --timeout 60 \
		--format env
	id=$(tgt_post p "$op 4096") || abort "post $op"
	step "the peer's $op fails with IBV_WC_REM_ACCESS_ERR" wc_is p "$id" IBV_WC_REM_ACCESS_ERR
	step "victim alive (no SIGSEGV/SIGBUS)" tgt_alive v
	step "the victim answered NAK remote access error" sniff_end nak
	step "victim gets $EV_FAULT" tgt_wait v "^async $EV_FAULT( |\$)" 20
	finish
}
case_unmapped_write() { fault_case 18808 munmap write; }
case_protnone_read() { fault_case 18809 "mprotect none" read; }

case_dereg_crafted() {
	pair 18810 --
	local to="--dst-qpn $V_QPN --src-qpn $P_QPN" pay="--payload-len 1024 --payload-byte 0x5a"
	step "victim armed to deregister after the first byte changes" \
		v_says "dereg-after 1" "dereg-after armed byte=0"
	sniff_bg nak --src-mac "$VMAC" --opcode ACK --syndrome NAK-ACCESS --count 1 --timeout 60 \
		--format env
	# A 4 KiB WRITE in four packets, as the peer would send it.
	to_v --opcode WRITE_FIRST --psn "$V_EPSN" --reth "$V_ADDR:$V_RKEY:4096" \
		--payload-len 1024 --payload-byte 0x5a
	step "victim deregistered after the first packet" \
		tgt_wait v "^dereg done region=0 rc=0 " 30
	forges <<-EOF
		$to --opcode WRITE_MIDDLE --psn $(psn V_EPSN+1) $pay
		$to --opcode WRITE_MIDDLE --psn $(psn V_EPSN+2) $pay
		$to --opcode WRITE_LAST --psn $(psn V_EPSN+3) --ack-req $pay
	EOF
	sniff_end nak || true
	KV=$(sniff_out nak)
	step "the next packet is NAKed remote access error (psn $(kv PSN))" \
		test "$(kv PSN)" = "$(hex24 V_EPSN+1)"
	step "nothing written after ibv_dereg_mr returned" v_says check "after-dereg unchanged region=0"
	finish
}

case_dereg_write() {
	pair 18811 -s 32M -- -s 32M
	local id
	step "victim armed to deregister after 64 KiB" \
		v_says "dereg-after 65536" "dereg-after armed byte=65535"
	id=$(tgt_post p "write 32M") || abort "post write"
	step "the peer's 32 MiB WRITE ends in IBV_WC_REM_ACCESS_ERR" \
		wc_is p "$id" IBV_WC_REM_ACCESS_ERR 180
	step "victim deregistered during the WRITE" tgt_wait v "^dereg done region=0 rc=0 " 10
	step "nothing written after ibv_dereg_mr returned" v_says check "after-dereg unchanged region=0"
	finish
}

# ---- Cases on Debian's programs ----------------------------------------
# pp_done NAME: both ibv_rc_pingpong processes of pp_start NAME exited 0
# and printed their result.
pp_done() {
	local so=$OUT/pp-$1-server.txt co=$OUT/pp-$1-client.txt src=0 crc=0
	wait "${PP_C[$1]}" || crc=$?
	wait "${PP_S[$1]}" || src=$?
	if [[ $src != 0 || $crc != 0 ]] || ! grep -q "bytes in" "$so" || ! grep -q "bytes in" "$co"; then
		log "ibv_rc_pingpong $1: server $src, client $crc"
		tail -n 5 "$so" "$co" >&2
		return 1
	fi
}

case_pingpong() {
	local us n so next epsn other p aeth
	pp_start calib 300 nsA omx0 nsB omx1 -e -n 300
	pp_done calib || abort "calibration run of ibv_rc_pingpong failed"
	us=$(sed -n 's/.* = \([0-9.]*\) usec\/iter/\1/p' "$OUT/pp-calib-client.txt")
	[[ $us =~ ^[0-9.]+$ ]] || abort "no usec/iter in the calibration run"
	# About 15 s of exchange at the calibrated pace: longer than the attack.
	n=$(awk -v u="$us" 'BEGIN { n = int(15e6 / (u > 1 ? u : 1));
		print n < 2000 ? 2000 : (n > 500000 ? 500000 : n) }')
	log "$CASE: $us usec/iter unattacked, running $n iterations"
	PP_SENV=OMX_STATS=1 pp_start live 900 nsA omx0 nsB omx1 -e -n "$n"
	so=$OUT/pp-live-server.txt
	wait_for "grep -q 'remote address' '$so'" 60 || abort "the server did not connect"
	V_QPN=$(sed -n 's/.*local address: .*QPN \(0x[0-9a-f]*\),.*/\1/p' "$so")
	P_QPN=$(sed -n 's/.*remote address: .*QPN \(0x[0-9a-f]*\),.*/\1/p' "$so")
	learn --victim-qpn "$V_QPN" --timeout 1
	epsn=$(kv VICTIM_EPSN)
	next=$(kv VICTIM_NEXT_PSN)
	[[ -n $epsn && -n $next ]] || abort "learned no PSN: $KV"
	other=$(((P_QPN + 1) & 0xffffff))
	local to="--dst-qpn $V_QPN --src-qpn $P_QPN" pace="--interval-us $PACE"
	{
		# Requests at and after the PSN the server expects, from a
		# foreign MAC and a foreign QPN (the exchange moves on meanwhile).
		echo "$to --src-mac $FMAC --opcode SEND_ONLY --psn $(psn epsn-64) --psn-step 1" \
			"--count 4096 $pace --payload-len 1024"
		echo "--dst-qpn $V_QPN --src-qpn $other --opcode SEND_ONLY --psn $(psn epsn-64)" \
			"--psn-step 1 --count 4096 $pace --payload-len 1024"
		# NAKs and ACKs across the server's live send window, foreign MAC.
		for aeth in NAK-ACCESS ACK:0:65535; do
			echo "$to --src-mac $FMAC --opcode ACK --psn $(psn next-64) --psn-step 1" \
				"--count 4096 $pace --aeth $aeth"
		done
		# From the client's own MAC and QPN, far outside the window (4 to
		# 8 million PSNs ahead, and behind): ACK, NAK, and PAETHs riding
		# on requests the server takes as old duplicates.
		for p in "$(psn next+0x400000)" "$(psn next+0x800800)"; do
			for aeth in NAK-ACCESS ACK:0:65535; do
				echo "$to --opcode ACK --psn $p --psn-step 2048 --count 2048 $pace --aeth $aeth"
			done
			echo "$to --opcode WRITE_ONLY --psn $(psn epsn-0x400000) --reth 0:0:0" \
				"--paeth $p:65535 --paeth-step 2048 --count 512 $pace"
		done
	} | forges
	step "the attack overlapped the run (both ends still running)" \
		kill -0 "${PP_S[live]}" "${PP_C[live]}"
	step "ibv_rc_pingpong completes under attack" pp_done live
	counter "$so" "$C_WRONG_MAC" 1
	counter "$so" "$C_WRONG_QP" 1
	counter "$so" "$C_ACK_WINDOW" 1
}

# perftest PROG PORT NAME: PROG's server in nsA (the victim, OMX_STATS=1)
# and client in nsB, 64 KiB messages for 15 s; sets PT_S PT_C (pids), SO
# CO (outputs), V_QPN P_QPN V_RKEY V_ADDR from the server's lines.
perftest() {
	local prog=$1 port=$2
	SO=$TGT_DIR/$3-server.txt CO=$TGT_DIR/$3-client.txt
	ip netns exec nsA env OMX_STATS=1 timeout 300 stdbuf -oL "$prog" -d omx0 -x 0 -p "$port" -s 65536 \
		-D 15 -F >"$SO" 2>&1 &
	PT_S=$!
	wait_for "ip netns exec nsA ss -Hltn 'sport = :$port' | grep -q ." 60 ||
		abort "$prog server did not listen: $(cat "$SO")"
	ip netns exec nsB timeout 300 stdbuf -oL "$prog" -d omx1 -x 0 -p "$port" -s 65536 -D 15 -F \
		10.78.0.1 >"$CO" 2>&1 &
	PT_C=$!
	wait_for "grep -q 'remote address' '$SO'" 60 || abort "$prog did not connect: $(cat "$SO")"
	V_QPN=$(sed -n 's/.*local address: .*QPN \(0x[0-9a-f]*\).*/\1/p' "$SO" | head -n1)
	V_RKEY=$(sed -n 's/.*local address: .*RKey \(0x[0-9a-f]*\).*/\1/p' "$SO" | head -n1)
	V_ADDR=$(sed -n 's/.*local address: .*VAddr \(0x[0-9a-f]*\).*/\1/p' "$SO" | head -n1)
	P_QPN=$(sed -n 's/.*remote address: .*QPN \(0x[0-9a-f]*\).*/\1/p' "$SO" | head -n1)
	[[ -n $V_QPN && -n $P_QPN && -n $V_RKEY && -n $V_ADDR ]] ||
		abort "cannot read $prog's addresses: $(cat "$SO")"
}

# perftest_done PROG: both ends exited 0 and the client reported bandwidth.
perftest_done() {
	local src=0 crc=0
	wait "$PT_C" || crc=$?
	wait "$PT_S" || src=$?
	if [[ $src != 0 || $crc != 0 ]] || ! awk '$1 == 65536 { ok = 1 } END { exit !ok }' "$CO"; then
		log "$1: server $src, client $crc"
		tail -n 8 "$SO" "$CO" >&2
		return 1
	fi
	log "$1 under attack: $(awk '$1 == 65536' "$CO")"
}

case_write_bw() {
	local epsn other
	perftest ib_write_bw 18821 wbw
	learn --victim-qpn "$V_QPN" --timeout 1
	epsn=$(kv VICTIM_EPSN)
	[[ -n $epsn ]] || abort "learned no PSN: $KV"
	other=$(((P_QPN + 1) & 0xffffff))
	local to="--dst-qpn $V_QPN --src-qpn $P_QPN" pace="--interval-us $PACE"
	local write="--opcode WRITE_ONLY --reth $V_ADDR:$V_RKEY:64 --payload-len 64"
	# WRITEs with the server's real rkey and address, at and ahead of the
	# PSN it expects, from a foreign MAC and a foreign QPN; the server
	# sends no request, so no ACK or NAK can be for it.
	forges <<-EOF
		$to --src-mac $FMAC $write --psn $epsn --psn-step 7 --count 4096 $pace
		--dst-qpn $V_QPN --src-qpn $other $write --psn $epsn --psn-step 7 --count 4096 $pace
		$to --opcode ACK --psn $epsn --psn-step 4099 --count 2048 $pace --aeth NAK-ACCESS
		$to --opcode ACK --psn $epsn --psn-step 4099 --count 2048 $pace --aeth ACK:0:65535
	EOF
	step "the attack overlapped the run (both ends still running)" kill -0 "$PT_S" "$PT_C"
	step "ib_write_bw completes and reports its bandwidth" perftest_done ib_write_bw
	counter "$SO" "$C_WRONG_MAC" 1
	counter "$SO" "$C_WRONG_QP" 1
	# perftest leaves the passive side of a WRITE test in RTR (it never
	# sends): the peer's ACKs and NAKs are then refused for the state,
	# before any window check.
	counter "$SO" "rx_wrong_state" 1
}

case_read_bw() {
	local rpsn rlen back
	perftest ib_read_bw 18822 rbw
	learn --victim-qpn "$V_QPN" --timeout 1
	rpsn=$(kv PEER_READ_PSN)
	rlen=$(kv PEER_READ_LEN)
	[[ -n $rpsn && -n $rlen ]] || abort "learned no READ: $KV"
	# Duplicates of the last 64 READs (each 64 PSNs back from the last),
	# with a new address, then with another rkey.
	back=$((0x1000000 - (rlen + 1023) / 1024))
	local dup="--dst-qpn $V_QPN --src-qpn $P_QPN --opcode READ_REQUEST --psn $rpsn"
	dup+=" --psn-step $back --count 64 --interval-us $PACE"
	forges <<-EOF
		$dup --reth $((V_ADDR + 4096)):$V_RKEY:$rlen
		$dup --reth $V_ADDR:$((V_RKEY ^ 0x100)):$rlen
	EOF
	step "the attack overlapped the run (both ends still running)" kill -0 "$PT_S" "$PT_C"
	step "ib_read_bw completes and reports its bandwidth" perftest_done ib_read_bw
	counter "$SO" "$C_BAD_DUP_READ" 1
}

# ---- Running the cases ---------------------------------------------------
# case_cleanup: kills what a case started and left running.
case_cleanup() {
	local p
	tgt_kill_all
	for p in "${SNIFF[@]}" "${PP_S[@]}" "${PP_C[@]}" ${PT_S:-} ${PT_C:-}; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}

# run_case NAME: runs case_NAME in a subshell of its own (its processes are
# killed when it ends); a case that stops early is one more FAIL line.
run_case() {
	local name=$1 fn rc=0
	fn=case_${name//-/_}
	declare -F "$fn" >/dev/null || fail "no case $name (cases: $ALL_CASES)"
	mkdir -p "$HDIR/$name"
	log "=== case $name"
	(
		CASE=$name
		TGT_DIR=$HDIR/$name
		trap case_cleanup EXIT
		"$fn"
	) 2>&1 | tee "$HDIR/$name/case.log" >&2 || rc=$?
	if ((rc != 0)) && ! grep -q "^FAIL $name: aborted" "$STEPS"; then
		printf 'FAIL %s: stopped early (exit %s), see hostile/%s/case.log\n' \
			"$name" "$rc" "$name" | tee -a "$STEPS" >&2
	fi
}

omx_setup 1500
ib_port_active omx0
ib_port_active omx1
VMAC=$(mac_of nsA vethA)
PMAC=$(mac_of nsB vethB)
: >"$STEPS"
mkdir -p "$HDIR"
log "victim MAC $VMAC (nsA/vethA/omx0), peer and attacker MAC $PMAC (nsB/vethB/omx1)"
if (($# == 0)); then
	# shellcheck disable=SC2086 # a list of words
	set -- $ALL_CASES
fi
for c in "$@"; do
	run_case "$c"
done
omx_teardown

npass=$(grep -c '^PASS' "$STEPS" || true)
nfail=$(grep -c '^FAIL' "$STEPS" || true)
result hostile_steps_passed "$npass"
result hostile_steps_failed "$nfail"
if ((nfail > 0)); then
	grep '^FAIL' "$STEPS" >&2
	fail "$nfail hostile-frame step(s) failed"
fi
log "all $npass hostile-frame steps passed"
