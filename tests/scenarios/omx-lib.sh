# shellcheck shell=bash
# Helpers shared by the omx scenarios (sourced in the guest, after
# tests/vm/guest-lib.sh).  The standard topology is two network namespaces
# joined by a veth pair, one omx device on each end:
#
#   nsA: vethA -- omx0            nsB: vethB -- omx1
#
# The rdma subsystem runs in netns "shared" mode (the default), so the
# devices are visible from every namespace, while `rdma link add` resolves
# the netdev name in the caller's namespace.

PROGS="$REPO/tests/progs/bin"

# eui64 MAC: prints the node GUID ibv_devices shows for a MAC address.
eui64() {
	local IFS=: b
	read -r -a b <<<"$1"
	printf '%02x%s%sfffe%s%s%s\n' $((0x${b[0]} ^ 2)) "${b[1]}" "${b[2]}" \
		"${b[3]}" "${b[4]}" "${b[5]}"
}

# The link-local GID of a MAC as ibv_devinfo prints it.
gid0_of_mac() {
	local g
	g=$(eui64 "$1")
	printf 'fe80:0000:0000:0000:%s:%s:%s:%s\n' "${g:0:4}" "${g:4:4}" \
		"${g:8:4}" "${g:12:4}"
}

mac_of() { # NS IF
	ip -n "$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# ibv_devinfo -v field value of port 1, e.g. port_field omx0 active_mtu.
port_field() {
	ibv_devinfo -v -d "$1" | sed -n "s/^[[:space:]]*$2:[[:space:]]*//p" | head -n1
}

# omx_setup_ports: omx_setup, then both ports ACTIVE (the start of most
# two-namespace scenarios).
omx_setup_ports() {
	omx_setup
	ib_port_active omx0
	ib_port_active omx1
}

omx_setup() {
	load_rdma_omx
	# The module's debug lines (state transitions, endpoints) go to dmesg,
	# which the runner keeps in the log folder.
	mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
	echo 'module rdma_omx +p' >/sys/kernel/debug/dynamic_debug/control || true
	install_omx_provider
	netns_pair nsA nsB vethA vethB "${1:-1500}"
	ip netns exec nsA rdma link add omx0 type omx netdev vethA ||
		fail "rdma link add omx0 failed"
	ip netns exec nsB rdma link add omx1 type omx netdev vethB ||
		fail "rdma link add omx1 failed"
	wait_for "ibv_devices | grep -q omx1" 10 || fail "omx devices did not appear"
}

# Deletes whatever omx links remain and unloads the module: every scenario
# ends with it, so module unload is exercised after each one.
omx_teardown() {
	local d
	for d in $(rdma -j dev show 2>/dev/null | grep -o '"ifname":"omx[^"]*"' | cut -d'"' -f4); do
		rdma link delete "$d" || fail "rdma link delete $d failed"
	done
	timeout 60 rmmod rdma_omx || fail "rmmod rdma_omx failed or hung"
	log "rdma_omx unloaded"
}

# ibv_rc_pingpong pairs.  pp_start NAME TIMEOUT SNS SDEV CNS CDEV ARGS...
# starts a server in netns SNS on device SDEV, waits until it listens, and
# starts the client in CNS on CDEV against the server's address (10.78.0.1
# in nsA, 10.78.0.2 in nsB), both in the background, with ARGS.  pp_wait
# NAME waits for both: each must exit 0 and print "bytes in"; the usec/iter
# lines become results pp_NAME_client / pp_NAME_server.  Several pairs may
# run at once; each takes its own TCP port.  PP_PROG names another program
# of the family with the same options and output (ibv_srq_pingpong, ...).
PP_PORT=18515
declare -A PP_S PP_C PP_ARGS PP_PROGS
pp_start() {
	local name=$1 t=$2 sns=$3 sdev=$4 cns=$5 cdev=$6 addr
	shift 6
	case $sns in nsA) addr=10.78.0.1 ;; nsB) addr=10.78.0.2 ;; *) fail "pp_start: netns $sns" ;; esac
	local so="$OUT/pp-$name-server.txt" co="$OUT/pp-$name-client.txt"
	PP_PORT=$((PP_PORT + 1))
	PP_ARGS[$name]="$*"
	local prog=${PP_PROG:-ibv_rc_pingpong}
	PP_PROGS[$name]=$prog
	log "$prog $* ($name: $sns/$sdev <- $cns/$cdev)"
	# PP_SENV / PP_CENV: extra environment (VAR=value ...) of the server /
	# the client. stdbuf -oL: the address lines reach the file when they
	# are printed, not when the program exits (a scenario may read them
	# while the exchange runs).
	# shellcheck disable=SC2086
	ip netns exec "$sns" env ${PP_SENV:-} timeout "$t" \
		stdbuf -oL "$prog" -d "$sdev" -g 0 -p "$PP_PORT" "$@" >"$so" 2>&1 &
	PP_S[$name]=$!
	# The server listens on TCP before it needs anything from the peer.
	wait_for "ip netns exec $sns ss -ltn | grep -q :$PP_PORT" 20 ||
		{ cat "$so" >&2; fail "$name: server did not listen"; }
	# shellcheck disable=SC2086
	ip netns exec "$cns" env ${PP_CENV:-} timeout "$t" \
		stdbuf -oL "$prog" -d "$cdev" -g 0 -p "$PP_PORT" "$@" "$addr" >"$co" 2>&1 &
	PP_C[$name]=$!
}

pp_wait() {
	local name=$1 src=0 crc=0
	local so="$OUT/pp-$name-server.txt" co="$OUT/pp-$name-client.txt"
	wait "${PP_C[$name]}" || crc=$?
	wait "${PP_S[$name]}" || src=$?
	if [[ $src != 0 || $crc != 0 ]]; then
		log "--- server ($src)"; cat "$so" >&2
		log "--- client ($crc)"; cat "$co" >&2
		fail "$name: ${PP_PROGS[$name]} ${PP_ARGS[$name]} (server $src, client $crc)"
	fi
	expect_file_contains "$so" "bytes in" "$name server"
	expect_file_contains "$co" "bytes in" "$name client"
	result "pp_${name}_client" "$(grep 'usec/iter' "$co" | tr -s ' ')"
	result "pp_${name}_server" "$(grep 'usec/iter' "$so" | tr -s ' ')"
}

# pingpong NAME TIMEOUT ARGS...: one pair, server nsA/omx0, client nsB/omx1.
pingpong() {
	local name=$1 t=$2
	shift 2
	pp_start "$name" "$t" nsA omx0 nsB omx1 "$@"
	pp_wait "$name"
}

# perftest_pair NAME PROG ARGS...: perftest PROG's server in nsA on omx0,
# client in nsB on omx1 (or in $PERF_CNS on $PERF_CDEV: PERF_CNS=nsA
# PERF_CDEV=omx0 makes it a same-device pair), with -c $PERF_CONN
# (default RC); each must exit 0, and the client's last result row (first
# field the message size) becomes result NAME. Each pair takes its own TCP
# port.
PERF_PORT=18600
perftest_pair() {
	local name=$1 prog=$2 conn=${PERF_CONN:-RC} cns=${PERF_CNS:-nsB} cdev=${PERF_CDEV:-omx1} s
	shift 2
	PERF_PORT=$((PERF_PORT + 1))
	log "perftest: $prog -c $conn $* ($name)"
	ip netns exec nsA timeout 240 "$prog" -d omx0 -x 0 -c "$conn" -p "$PERF_PORT" "$@" \
		>"$OUT/$name-server.txt" 2>&1 &
	s=$!
	wait_for "ip netns exec nsA ss -ltn | grep -q :$PERF_PORT" 30 ||
		{ cat "$OUT/$name-server.txt" >&2; fail "$name: server did not listen"; }
	ip netns exec "$cns" timeout 240 "$prog" -d "$cdev" -x 0 -c "$conn" -p "$PERF_PORT" "$@" \
		10.78.0.1 >"$OUT/$name-client.txt" 2>&1 || {
		cat "$OUT/$name-server.txt" "$OUT/$name-client.txt" >&2
		fail "$name: $prog -c $conn client"
	}
	wait "$s" || { cat "$OUT/$name-server.txt" >&2; fail "$name: $prog -c $conn server"; }
	cat "$OUT/$name-client.txt" >&2
	local row
	row=$(awk '$1 ~ /^[0-9]+$/ && NF >= 4 { r = $0 } END { print r }' "$OUT/$name-client.txt")
	[[ -n $row ]] || fail "$name: no result row"
	result "$name" "$(tr -s ' ' <<<"$row")"
}

UCX_PORT=13400
# ucx_pair NAME SNS CNS TIMEOUT SENV CENV ARGS...: ucx_perftest server in
# SNS with environment SENV (VAR=value ...), client in CNS with CENV
# against the server's address (10.78.0.1 in nsA), ARGS on both; the
# client's "Final:" line is the result.
ucx_pair() {
	local name=$1 sns=$2 cns=$3 t=$4 senv=$5 cenv=$6 addr=10.78.0.1 s rc=0
	shift 6
	[[ $sns == nsA ]] || addr=10.78.0.2
	UCX_PORT=$((UCX_PORT + 1))
	local so="$OUT/ucx-$name-server.txt" co="$OUT/ucx-$name-client.txt"
	log "ucx_perftest $* ($name)"
	# shellcheck disable=SC2086
	ip netns exec "$sns" env $senv timeout "$t" ucx_perftest -p "$UCX_PORT" "$@" >"$so" 2>&1 &
	s=$!
	wait_for "ip netns exec $sns ss -ltn | grep -q :$UCX_PORT" 30 ||
		{ cat "$so" >&2; fail "$name: ucx_perftest server did not listen"; }
	# shellcheck disable=SC2086
	ip netns exec "$cns" env $cenv timeout "$t" ucx_perftest -p "$UCX_PORT" "$@" "$addr" \
		>"$co" 2>&1 || rc=$?
	wait "$s" || rc=$((rc ? rc : 100 + $?))
	if ((rc != 0)) || ! grep -q '^Final:' "$co"; then
		log "--- server"; tail -n 30 "$so" >&2
		log "--- client"; tail -n 30 "$co" >&2
		fail "$name: ucx_perftest $* (exit $rc)"
	fi
	result "ucx_$name" "$(grep '^Final:' "$co" | tr -s ' ')"
}
