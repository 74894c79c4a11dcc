# shellcheck shell=bash
# Driving omx_target (tests/progs/omx_target.c) from a script.  Each target
# reads its commands from a FIFO and writes everything it prints to a log;
# these helpers send commands, wait for output lines and read values.
# Used by tests/scenarios/omx-hostile.sh (in the VM) and by
# tests/progs/selftest/omx_target-selftest.sh (on the host, over a mock
# libibverbs).
#
# Set before use: TGT_DIR (folder for the FIFOs and logs), TGT_BIN (the
# omx_target binary); optional TGT_ENV (array of VAR=value given to every
# target).  Writing to the FIFO of a target that died must not kill the
# caller, so tgt_start ignores SIGPIPE in the calling shell.

# TEXIT: exit statuses, for the caller (tgt_quit).
# shellcheck disable=SC2034
declare -A TPID TFD TLOG TEXIT
declare -a TGT_ENV

# tgt_start NAME NS ARGS...: starts `omx_target ARGS` in network namespace
# NS ("-": the current one) in the background.
tgt_start() {
	local name=$1 ns=$2 fifo log fd
	shift 2
	fifo="$TGT_DIR/$name.in"
	log="$TGT_DIR/$name.out"
	rm -f "$fifo"
	mkfifo "$fifo"
	trap '' PIPE
	local -a pre=()
	[[ $ns == - ]] || pre=(ip netns exec "$ns")
	# The child closes the other targets' FIFOs (a target sees the end of
	# its input once we close ours) and takes SIGPIPE back.
	(
		for fd in "${TFD[@]}"; do exec {fd}>&-; done
		trap - PIPE
		exec "${pre[@]}" env "${TGT_ENV[@]}" "$TGT_BIN" "$@"
	) <"$fifo" >"$log" 2>&1 &
	TPID[$name]=$!
	# Opening the writer waits for the target's shell to open the reader.
	exec {fd}>"$fifo"
	TFD[$name]=$fd
	TLOG[$name]=$log
}

# tgt_log NAME: the target's output file.
tgt_log() { printf '%s\n' "${TLOG[$1]}"; }

# tgt_alive NAME: the target process still runs.
tgt_alive() { kill -0 "${TPID[$1]}" 2>/dev/null; }

# tgt_cmd NAME COMMAND...: sends one command line (no waiting).
tgt_cmd() {
	local fd=${TFD[$1]}
	shift
	{ printf '%s\n' "$*" >&"$fd"; } 2>/dev/null
}

# tgt_wait NAME ERE [TIMEOUT]: waits until a line of the target's output
# matches ERE; 1 after TIMEOUT seconds (default 30) or once the target
# exited without printing it.
tgt_wait() {
	local log=${TLOG[$1]} re=$2 end=$((SECONDS + ${3:-30}))
	until grep -qE -- "$re" "$log"; do
		if ! tgt_alive "$1"; then
			grep -qE -- "$re" "$log"
			return
		fi
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

# tgt_do NAME COMMAND: runs COMMAND and prints what the target printed
# until it was done (lines printed meanwhile by completions or events
# included); 1 if the target did not get there.  Works in a command
# substitution: it keeps no state of its own.
tgt_do() {
	local name=$1 log=${TLOG[$1]} from mark
	from=$(($(wc -l <"$log") + 1))
	mark="@sync ${EPOCHREALTIME/./}-$RANDOM"
	tgt_cmd "$name" "$2" || return 1
	tgt_cmd "$name" "echo $mark" || return 1
	tgt_wait "$name" "^$mark\$" 60 || return 1
	awk -v from="$from" -v b="$mark" 'NR >= from { if ($0 == b) exit; print }' "$log"
}

# tgt_get NAME KEY: a KEY=VALUE the target printed at start.
tgt_get() { sed -n "s/^$2=//p" "${TLOG[$1]}" | head -n1; }

# tgt_post NAME COMMAND: posts a work request (send, write, read, ...) and
# prints its id; 1 if it was not posted.
tgt_post() {
	local out id
	out=$(tgt_do "$1" "$2") || return 1
	id=$(sed -n 's/^posted id=\([0-9]*\) .*/\1/p' <<<"$out" | tail -n1)
	if [[ -z $id ]]; then
		printf '%s\n' "$out" >&2
		return 1
	fi
	printf '%s\n' "$id"
}

# tgt_wc NAME ID [TIMEOUT]: waits for the completion of work request ID and
# prints its status (IBV_WC_...); 1 if none came.
tgt_wc() {
	tgt_wait "$1" "^wc id=$2 " "${3:-30}" || return 1
	sed -n "s/^wc id=$2 .*status=\([A-Z_]*\).*/\1/p" "${TLOG[$1]}" | head -n1
}

# tgt_quit NAME [TIMEOUT]: sends quit and waits for the exit, killing the
# target after TIMEOUT seconds (default 60); its exit status goes to
# TEXIT[NAME] (124: killed).  Not in a command substitution: only this
# shell can wait for its children.
tgt_quit() {
	local name=$1 end=$((SECONDS + ${2:-60})) rc=0 st=0 fd=${TFD[$1]}
	tgt_cmd "$name" quit || true
	exec {fd}>&-
	while tgt_alive "$name" && ((SECONDS < end)); do
		sleep 0.1
	done
	if tgt_alive "$name"; then
		kill -9 "${TPID[$name]}" 2>/dev/null || true
		rc=124
	fi
	wait "${TPID[$name]}" 2>/dev/null || st=$?
	((rc)) || rc=$st
	unset "TPID[$name]"
	TEXIT[$name]=$rc
}

# tgt_kill_all: kills every target still running (cleanup).
# When the script is failing (a nonzero status on entry, as in an EXIT
# trap), each target's last lines (counters left out) go to stderr first,
# so a failure report says what the targets saw.
tgt_kill_all() {
	local rc=$? name
	if ((rc != 0)); then
		for name in "${!TLOG[@]}"; do
			echo "--- target $name, last lines of ${TLOG[$name]##*/}:" >&2
			grep -av '^omx-stats ' "${TLOG[$name]}" 2>/dev/null | tail -n 12 >&2 || true
		done
	fi
	for name in "${!TPID[@]}"; do
		kill -9 "${TPID[$name]}" 2>/dev/null || true
		wait "${TPID[$name]}" 2>/dev/null || true
		unset "TPID[$name]"
	done
}

# stat_sum FILE NAME: the provider's counter NAME in FILE (OMX_STATS=1):
# the "omx-stats ctx <endpoint> <name> <value>" lines a context prints when
# it closes (totals over all its QPs, plus its own), summed over the
# contexts in FILE. The per-QP lines ("omx-stats qp ...") are already in
# those totals.
stat_sum() {
	awk -v n="$2" '$1 == "omx-stats" && $2 == "ctx" && $4 == n { s += $5 } END { print s + 0 }' "$1"
}
