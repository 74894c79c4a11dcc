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
