#!/bin/bash
# Two hosts: omx0 on each VM's virtio NIC, the VMs joined by a QEMU socket
# netdev (run with `tests/vm/run --vms 2`). vm0 runs the ibv_rc_pingpong
# servers, vm1 the clients, one pair at a time: default options, -e, -c
# with 64 KiB messages, -N, an IPv4 GID resolved through ARP across the
# link, ibv_srq_pingpong -c, ibv_uc_pingpong -c, ibv_ud_pingpong -c with
# GID 0 and with the IPv4 GID, perftest's ib_read_bw and ib_atomic_lat,
# and UCX's rc_verbs and ud_verbs (ucx_perftest am_lat). Under TCG the link adds millisecond artifacts:
# this checks correctness, not speed.
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"

[[ ${VMS:-1} == 2 ]] || fail "omx-two-vms needs tests/vm/run --vms 2"
load_rdma_omx
install_omx_provider
rdma link add omx0 type omx netdev "$IFACE" || fail "rdma link add omx0 on $IFACE"
ib_port_active omx0
wait_for "gid_index_for_ip omx0 $MY_IP" 20 || fail "no IPv4 GID for $MY_IP on omx0"
V4=$(gid_index_for_ip omx0 "$MY_IP")
pingcmd=(ping)
command -v ping >/dev/null || pingcmd=(busybox ping)
wait_for "${pingcmd[*]} -c 1 -W 1 $PEER_IP" 60 || fail "no IP connectivity to $PEER_IP"
SERVER_IP=10.77.0.1
T=300

# pair NAME PORT ARGS...: vm0 serves, vm1 connects (retrying while the
# server is not listening yet); both must exit 0 and print "bytes in".
# PROG: the program (default ibv_rc_pingpong).
pair() {
	local name=$1 port=$2 out rc tries=0 prog=${PROG:-ibv_rc_pingpong}
	shift 2
	out="$OUT/$name-$ROLE.txt"
	log "$ROLE: $prog $* ($name)"
	if [[ $ROLE == server ]]; then
		timeout "$T" "$prog" -d omx0 -p "$port" "$@" >"$out" 2>&1 ||
			{ cat "$out" >&2; fail "$name: server"; }
	else
		while :; do
			rc=0
			timeout "$T" "$prog" -d omx0 -p "$port" "$@" "$SERVER_IP" >"$out" 2>&1 || rc=$?
			[[ $rc == 0 ]] && break
			if ((++tries < 120)) && grep -qi "couldn't connect" "$out"; then
				sleep 1
				continue
			fi
			cat "$out" >&2
			fail "$name: client (exit $rc)"
		done
	fi
	expect_file_contains "$out" "bytes in" "$name $ROLE"
	result "pp_${name}_$ROLE" "$(grep 'usec/iter' "$out" | tr -s ' ')"
}

pair default 18601 -g 0 -n 200
pair events 18602 -g 0 -e -n 200
pair checked-64k 18603 -g 0 -c -s 65536 -n 50
pair new-send 18604 -g 0 -N -n 200
pair ipv4-gid 18605 -g "$V4" -n 200
PROG=ibv_srq_pingpong pair srq 18606 -g 0 -c -n 100

PROG=ibv_uc_pingpong pair uc 18607 -g 0 -c -n 200
PROG=ibv_ud_pingpong pair ud 18608 -g 0 -s 1024 -c -n 200
PROG=ibv_ud_pingpong pair ud-ipv4-gid 18609 -g "$V4" -s 512 -n 200

# perf2 NAME PORT PROG ARGS...: perftest PROG between the hosts, vm0
# serving, vm1 connecting (retrying while the server is not listening);
# the client's last result row is the result.
perf2() {
	local name=$1 port=$2 prog=$3 out rc tries=0 row
	shift 3
	out="$OUT/perf-$name-$ROLE.txt"
	log "$ROLE: $prog $* ($name)"
	if [[ $ROLE == server ]]; then
		timeout "$T" "$prog" -d omx0 -x 0 -p "$port" -F "$@" >"$out" 2>&1 ||
			{ cat "$out" >&2; fail "$name: server"; }
		return
	fi
	while :; do
		rc=0
		timeout "$T" "$prog" -d omx0 -x 0 -p "$port" -F "$@" "$SERVER_IP" >"$out" 2>&1 ||
			rc=$?
		[[ $rc == 0 ]] && break
		if ((++tries < 120)) && grep -qi "couldn't connect\|unable to open file descriptor" "$out"; then
			sleep 1
			continue
		fi
		cat "$out" >&2
		fail "$name: client (exit $rc)"
	done
	row=$(awk '$1 ~ /^[0-9]+$/ && NF >= 4 { r = $0 } END { print r }' "$out")
	[[ -n $row ]] || { cat "$out" >&2; fail "$name: no result row"; }
	result "perf_$name" "$(tr -s ' ' <<<"$row")"
}

# One READ and one atomic case across the link (issue 13).
perf2 read_bw 18612 ib_read_bw -s 65536 -n 500
perf2 atomic_lat 18613 ib_atomic_lat -A FETCH_AND_ADD -n 500

# ucx_am_lat TL PORT: UCX's TL between the hosts (UCT active messages).
ucx_am_lat() {
	local tl=$1 port=$2 tries=0
	local out="$OUT/ucx-$tl-am_lat-$ROLE.txt"
	log "$ROLE: ucx_perftest am_lat over $tl"
	if [[ $ROLE == server ]]; then
		timeout "$T" ucx_perftest -p "$port" -d omx0:1 -x "$tl" -t am_lat -n 500 -w 50 \
			>"$out" 2>&1 || { cat "$out" >&2; fail "ucx_perftest $tl server"; }
		return
	fi
	until timeout "$T" ucx_perftest -p "$port" -d omx0:1 -x "$tl" -t am_lat -n 500 -w 50 \
		"$SERVER_IP" >"$out" 2>&1; do
		if ((++tries >= 120)) || ! grep -qi "refused" "$out"; then
			cat "$out" >&2
			fail "ucx_perftest $tl client"
		fi
		sleep 1
	done
	grep -q '^Final:' "$out" || { cat "$out" >&2; fail "ucx_perftest $tl: no result"; }
	result "ucx_${tl}_am_lat" "$(grep '^Final:' "$out" | tr -s ' ')"
}
ucx_am_lat rc_verbs 18610
ucx_am_lat ud_verbs 18611
ip neigh show | grep -q "$PEER_IP .*lladdr" || fail "no ARP entry for $PEER_IP"

rdma link delete omx0
timeout 60 rmmod rdma_omx || fail "rmmod rdma_omx"
