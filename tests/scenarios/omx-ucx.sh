#!/bin/bash
# UCX from Debian (ucx-utils 1.13) over omx, with no UCX environment
# variable beyond the device and transport choice:
#  - ucx_info -d lists omx0:1 under rc_verbs (it needs max_srq > 0: UCX's
#    rc_verbs receives only through an SRQ) and under ud_verbs;
#  - UCT level, both processes on omx0 (ucx_perftest's server takes its
#    parameters, device name included, from the client, so a UCT pair
#    must use one device name): am_lat, am_bw, put_lat, put_bw, get_bw
#    over rc_verbs, am_lat and am_bw over ud_verbs;
#  - UCP tag_lat and tag_bw between the two namespaces (server on omx0,
#    client on omx1) with UCX_TLS=rc_verbs,ud_verbs: UD carries the
#    wireup (UCX 1.13 finds no other auxiliary transport: tcp does not
#    qualify), RC the data.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

command -v ucx_perftest >/dev/null || fail "ucx-utils is not installed (make deps)"
omx_setup
ib_port_active omx0
ib_port_active omx1

ip netns exec nsA ucx_info -d >"$OUT/ucx_info.txt" 2>&1 || {
	tail -n 20 "$OUT/ucx_info.txt" >&2
	fail "ucx_info -d"
}
for tl in rc_verbs ud_verbs; do
	devs=$(awk -v tl="Transport: $tl" '$0 ~ tl { t = 1; next } t && /Device:/ { print $3; t = 0 }' \
		"$OUT/ucx_info.txt")
	grep -qx 'omx0:1' <<<"$devs" || {
		grep -E 'Transport|Device|failed|error' "$OUT/ucx_info.txt" >&2 || true
		fail "ucx_info -d does not list omx0:1 under $tl"
	}
	log "ucx_info: $tl on omx0:1"
done

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
# ud_verbs offers active messages only (UCX keeps its own reliability),
# of at most active_mtu minus its 8-byte header (1016 at MTU 1024).
uct=(-d omx0:1 -x ud_verbs -w 100)
ucx_pair ud_am_lat nsA nsA 300 "" "" -t am_lat -n 2000 "${uct[@]}"
ucx_pair ud_am_bw nsA nsA 300 "" "" -t am_bw -D bcopy -n 20000 -s 1000 "${uct[@]}"

# UCP between the two namespaces, server on omx0, client on omx1: UD
# carries the wireup, RC the data; no TCP.
ucp_env() { echo "UCX_TLS=rc_verbs,ud_verbs,self UCX_NET_DEVICES=$1:1"; }
ucx_pair tag_lat nsA nsB 300 "$(ucp_env omx0)" "$(ucp_env omx1)" -t tag_lat -n 2000 -w 100
ucx_pair tag_bw nsA nsB 300 "$(ucp_env omx0)" "$(ucp_env omx1)" -t tag_bw -n 2000 -s 65536 -w 100

omx_teardown
