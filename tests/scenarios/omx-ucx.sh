#!/bin/bash
# UCX from Debian (ucx-utils 1.13) over omx, with no UCX environment
# variable beyond the device and transport choice:
#  - ucx_info -d lists omx0:1 under rc_verbs (it needs max_srq > 0: UCX's
#    rc_verbs receives only through an SRQ);
#  - UCT level, rc_verbs, both processes on omx0 (ucx_perftest's server
#    takes its parameters, device name included, from the client, so a
#    UCT pair must use one device name): am_lat, am_bw, put_lat, put_bw,
#    get_bw.
# Not yet: UCP (tag_lat, tag_bw) needs an auxiliary wireup transport that
# can connect to an interface, which UCX 1.13 finds only in ud_verbs (tcp
# does not qualify: "no auxiliary transport"), so it waits for UD.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

command -v ucx_perftest >/dev/null || fail "ucx-utils is not installed (make deps)"
omx_setup
ib_port_active omx0
ib_port_active omx1

# Until UD exists (issue 12), ucx_info -d aborts when it opens ud_verbs
# (its post_recv gets EOPNOTSUPP), after it has listed rc_verbs; any other
# failure fails the test. UCP below opens only UCX_TLS's transports.
if ! ip netns exec nsA ucx_info -d >"$OUT/ucx_info.txt" 2>&1; then
	grep -q 'ud_verbs.*ibv_post_recv() returned 95' "$OUT/ucx_info.txt" || {
		tail -n 20 "$OUT/ucx_info.txt" >&2
		fail "ucx_info -d"
	}
	log "ucx_info -d: stopped in ud_verbs (no UD yet), as expected"
fi
devs=$(awk '/Transport: rc_verbs/ { t = 1; next } t && /Device:/ { print $3; t = 0 }' \
	"$OUT/ucx_info.txt")
grep -qx 'omx0:1' <<<"$devs" || {
	grep -E 'Transport|Device|failed|error' "$OUT/ucx_info.txt" >&2 || true
	fail "ucx_info -d does not list omx0:1 under rc_verbs"
}
log "ucx_info: rc_verbs on omx0:1"

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

uct=(-d omx0:1 -x rc_verbs -w 100)
ucx_pair am_lat nsA nsA 300 "" "" -t am_lat -n 2000 "${uct[@]}"
ucx_pair am_bw nsA nsA 300 "" "" -t am_bw -D bcopy -n 20000 -s 4096 "${uct[@]}"
ucx_pair put_lat nsA nsA 300 "" "" -t put_lat -n 2000 "${uct[@]}"
ucx_pair put_bw nsA nsA 300 "" "" -t put_bw -D zcopy -n 2000 -s 65536 "${uct[@]}"
ucx_pair get_bw nsA nsA 300 "" "" -t get -D zcopy -n 2000 -s 65536 "${uct[@]}"

omx_teardown
