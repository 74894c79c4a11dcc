#!/bin/bash
# Debian's unmodified ibv_rc_pingpong over the omx provider: server in nsA
# on omx0, client in nsB on omx1, joined by a veth pair. Default options,
# completion events (-e), sizes 1 B .. 1 MiB (-s), 100000 iterations with
# -e (no lost event) and an IPv4 GID (-g N, resolved through the neighbour
# table).
# Both sides must exit 0 and print "bytes in"; the usec/iter lines go to
# /out/results.txt.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
ib_port_active omx0
ib_port_active omx1

# expect_refused NAME NEEDLE SERVER_NS CLIENT_NS ADDR [WRAPPER...]: both
# sides must fail to connect their QPs and the server must print NEEDLE.
expect_refused() {
	local name=$1 needle=$2 sns=$3 cns=$4 addr=$5
	shift 5
	local so="$OUT/neg-$name-server.txt" co="$OUT/neg-$name-client.txt"
	local -a sx=() cx=()
	[[ $sns == - ]] || sx=(ip netns exec "$sns")
	[[ $cns == - ]] || cx=(ip netns exec "$cns")
	PP_PORT=$((PP_PORT + 1))
	log "negative: $name"
	"${sx[@]}" "$@" timeout 60 ibv_rc_pingpong -d omx0 -g 0 -p "$PP_PORT" -n 2 >"$so" 2>&1 &
	local s=$!
	sleep 2
	"${cx[@]}" "$@" timeout 60 ibv_rc_pingpong -d omx1 -g 0 -p "$PP_PORT" -n 2 "$addr" \
		>"$co" 2>&1 && fail "$name: client succeeded"
	wait "$s" && fail "$name: server succeeded"
	cat "$so" >&2
	expect_file_contains "$so" "$needle" "$name server"
}

pingpong default 120
pingpong events 120 -e
pingpong s1 120 -s 1
pingpong s64k 240 -s 65536 -n 200
pingpong s1m 300 -s 1048576 -n 20
pingpong n100k-events 900 -n 100000 -e

# IPv4 GIDs: ib_core adds each netdev address as an IPv4-mapped GID; the
# provider resolves it to a MAC through the neighbour table (ARP in the
# caller's namespace), with no neighbour entry beforehand.
wait_for "gid_index_for_ip omx0 10.78.0.1 && gid_index_for_ip omx1 10.78.0.2" 20 ||
	fail "no IPv4 GIDs on omx0/omx1"
ga=$(gid_index_for_ip omx0 10.78.0.1)
gb=$(gid_index_for_ip omx1 10.78.0.2)
[[ $ga == "$gb" ]] || fail "IPv4 GID index differs: omx0 $ga, omx1 $gb"
ip -n nsA neigh flush all
ip -n nsB neigh flush all
pingpong ipv4-gid 120 -g "$ga" -n 200
ip -n nsB neigh show | grep -q "10.78.0.1 .*lladdr $(mac_of nsA vethA)" ||
	fail "no ARP entry for 10.78.0.1 in nsB after the IPv4-GID run"

# Outside the netdevs' namespaces (init netns, TCP over lo): a clear error.
expect_refused netns "not in this process's network namespace" - - 127.0.0.1
# Without CAP_NET_RAW (uid nobody, devices made accessible): a clear error.
chmod 0666 /dev/infiniband/uverbs* || true
expect_refused capnetraw "needs CAP_NET_RAW" nsA nsB 10.78.0.1 \
	setpriv --reuid=65534 --regid=65534 --clear-groups

omx_teardown
