#!/bin/bash
# Open MPI from Debian (openmpi-bin 4.1, built with UCX) over UCX over omx:
# a two-rank job, one rank per network namespace (nsA/omx0, nsB/omx1),
# runs tests/progs/omx_mpi (checked ping-pong 0 B .. 1 MiB, exact
# int64/double allreduce, checked all-to-all, latency) with UCX's rc_verbs
# and ud_verbs only; then the same program on 8 ranks, 4 per namespace,
# placed alternately (every ping-pong pair crosses the link, and the
# all-to-all mixes both links and same-device loopback).
#
# The two namespaces play two hosts, nodeA (10.78.0.1) and nodeB
# (10.78.0.2): mpirun runs in nsA and starts nodeB's orted through a
# "remote shell" (plm_rsh_agent) that is `ip netns exec nsB` in a UTS
# namespace of its own, so the orted and its rank live in nsB, reach
# mpirun over TCP on the veth link (oob_tcp_if_include) and their PMIx
# server on nsB's own loopback. --bind-to none: each "host" would bind
# its rank to its first core, here the same vCPU for both (5 ms per
# half round trip instead of ~0.1 ms). These flags belong to the bed, not
# to a user's command line (docs/provider.md, "Open MPI").
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

command -v mpirun >/dev/null || fail "openmpi-bin is not installed (make deps)"
[[ -x $PROGS/omx_mpi ]] || fail "$PROGS/omx_mpi not built (make build)"
omx_setup
ib_port_active omx0
ib_port_active omx1

# Open MPI wants a host name that resolves and a writable HOME (its
# per-user parameter file lives there) and session directory.
hostname nodeA
printf '10.78.0.1 nodeA\n10.78.0.2 nodeB\n' >>/etc/hosts
MPI_HOME=$(mktemp -d /tmp/mpi-home.XXXXXX)
RSH=$MPI_HOME/omx-mpi-rsh
# mpirun calls it as "RSH HOST COMMAND...", like ssh: the command is a
# shell command line. UCX_NET_DEVICES: both omx devices are visible in
# both namespaces (rdma netns "shared" mode) while each netdev lives in
# one, so each host is told its own, as a real host would only have its
# own. MPI_DEV_B overrides nodeB's (the tcp comparison run).
cat >"$RSH" <<'EOF'
#!/bin/sh
host=$1
shift
case $host in
nodeA) ns=nsA dev=${MPI_DEV_A:-omx0:1} ;;
nodeB) ns=nsB dev=${MPI_DEV_B:-omx1:1} ;;
*) echo "omx-mpi-rsh: unknown host $host" >&2; exit 1 ;;
esac
exec ip netns exec "$ns" unshare --uts env UCX_NET_DEVICES="$dev" \
	sh -c "hostname $host && $*"
EOF
chmod +x "$RSH"

# mpi_run NAME [VAR=value ...] -- MPIRUN-ARGS...: runs omx_mpi on nodeA
# and nodeB with the bed's flags plus MPIRUN-ARGS, output in
# $OUT/mpi-NAME.txt; returns mpirun's status. NP ranks (default 2), half
# on each node, placed alternately; MPI_ARGS are omx_mpi's iterations.
mpi_run() {
	local name=$1 rc=0 np=${NP:-2}
	# shellcheck disable=SC2206 # MPI_ARGS is split into words on purpose
	local -a args=(${MPI_ARGS:--n 40 -l 400})
	shift
	local -a envs=()
	while [[ $1 != -- ]]; do envs+=("$1"); shift; done
	shift
	log "mpirun $* ($name)"
	ip netns exec nsA env HOME="$MPI_HOME" UCX_NET_DEVICES="${MPI_DEV_A:-omx0:1}" \
		OMPI_MCA_plm_rsh_agent="$RSH" "${envs[@]}" \
		timeout 600 mpirun --allow-run-as-root -np "$np" --host "nodeA:$((np / 2)),nodeB:$((np / 2))" \
		--map-by node --mca oob_tcp_if_include 10.78.0.0/24 --bind-to none "$@" \
		"$PROGS/omx_mpi" "${args[@]}" -t "$name" >"$OUT/mpi-$name.txt" 2>&1 || rc=$?
	log "mpirun ($name) exited $rc"
	return "$rc"
}

# Checks that a run passed on both ranks, that UCX carried the MPI
# traffic over rc_verbs on omx (UCX_LOG_LEVEL=info prints each endpoint
# configuration) and that both ranks' omx contexts moved frames
# (OMX_STATS=1 prints each context's counters when it closes).
check_omx_run() {
	local name=$1 f="$OUT/mpi-$1.txt" frames busy np=${NP:-2}
	grep -q '^omx_mpi: PASS' "$f" || { tail -n 40 "$f" >&2; fail "$name: omx_mpi did not pass"; }
	grep -q "rank $((np - 1)) of $np on nodeB" "$f" || fail "$name: rank $((np - 1)) did not run on nodeB"
	# A rank's endpoint to itself (self, cma) aside, every endpoint's only
	# tag lane must be rc_verbs on the rank's omx device.
	grep -E 'ep_cfg\[[0-9]+\]: tag\(' "$f" | grep -v 'tag(self/' >"$OUT/mpi-$name-lanes.txt" ||
		fail "$name: no UCX endpoint configuration printed"
	cat "$OUT/mpi-$name-lanes.txt" >&2
	if grep -vqE 'ep_cfg\[[0-9]+\]: tag\(rc_verbs/omx[01]:1\) *$' "$OUT/mpi-$name-lanes.txt"; then
		fail "$name: a UCX endpoint has a lane other than rc_verbs on omx"
	fi
	# Each rank opens one context per device to probe it (no frames) and
	# one for its UCX worker, which carries the job.
	frames=$(awk '$1 == "omx-stats" && $2 == "ctx" && $4 == "rx_frames" { print $5 }' "$f")
	busy=$(awk '$1 > 1000' <<<"$frames" | wc -l)
	frames=$(xargs <<<"$frames")
	((busy >= np)) || { tail -n 40 "$f" >&2; fail "$name: $busy omx contexts moved frames (rx_frames: $frames)"; }
	log "$name: omx contexts received $frames frames"
	result "mpi_$name" "$(sed -n 's/^omx_mpi: result //p' "$f")"
}

# shellcheck disable=SC2054 # the commas are part of the value
omx_env=(UCX_TLS=rc_verbs,ud_verbs UCX_LOG_LEVEL=info OMX_STATS=1)
omx_fwd=(-x UCX_TLS -x UCX_LOG_LEVEL -x OMX_STATS)

# 1. The minimal command: --mca pml ucx (UCX_TLS keeps UCX on omx).
mpi_run omx "${omx_env[@]}" -- --mca pml ucx --mca pml_ucx_verbose 3 "${omx_fwd[@]}" ||
	{ tail -n 60 "$OUT/mpi-omx.txt" >&2; fail "mpirun --mca pml ucx over omx"; }
# Why the flag: no omx device matches pml_ucx_devices (mlx*, matched
# against the driver of /sys/class/infiniband/DEV/device), so the UCX
# PML offers priority 19, below ob1's 20 (and Debian's
# /etc/openmpi/openmpi-mca-params.conf excludes it: pml = ^ucx).
grep -E 'support level|returning priority' "$OUT/mpi-omx.txt" >&2 || true
check_omx_run omx

# Reference in the same VM: UCX's own tag_lat between the namespaces.
ucp_env() { echo "UCX_TLS=rc_verbs,ud_verbs UCX_NET_DEVICES=$1:1"; }
ucx_pair tag_lat nsA nsB 300 "$(ucp_env omx0)" "$(ucp_env omx1)" -t tag_lat -n 2000 -w 100

# 2. Without the flag Open MPI takes ob1 (its TCP BTL): the flag is needed.
mpi_run noflag -- --mca pml_base_verbose 10 || { tail -n 40 "$OUT/mpi-noflag.txt" >&2; fail "noflag run"; }
result mpi_pml_without_flag "$(sed -n 's/.*select: component \(.*\) selected$/\1/p' \
	"$OUT/mpi-noflag.txt" | sort -u | xargs)"

# 3. The per-user MCA parameter file (pml = ucx) instead of the flag.
mkdir -p "$MPI_HOME/.openmpi"
echo 'pml = ucx' >"$MPI_HOME/.openmpi/mca-params.conf"
mpi_run paramfile "${omx_env[@]}" -- "${omx_fwd[@]}" ||
	{ tail -n 60 "$OUT/mpi-paramfile.txt" >&2; fail "mpirun with the MCA parameter file"; }
check_omx_run paramfile
rm -f "$MPI_HOME/.openmpi/mca-params.conf"

# 4. No UCX_TLS, each host offering UCX its omx device and its Ethernet
# netdev, as on a real host: UCX chooses rc_verbs on omx by itself.
MPI_DEV_A=omx0:1,vethA MPI_DEV_B=omx1:1,vethB mpi_run notls UCX_LOG_LEVEL=info OMX_STATS=1 -- \
	--mca pml ucx -x UCX_LOG_LEVEL -x OMX_STATS ||
	{ tail -n 60 "$OUT/mpi-notls.txt" >&2; fail "mpirun --mca pml ucx without UCX_TLS"; }
result mpi_notls_lanes "$(grep -o 'ep_cfg.*' "$OUT/mpi-notls.txt" | sort -u | paste -sd';')"
check_omx_run notls

# 5. The same link through UCX's tcp transport, for comparison (tcp is
# not in pml_ucx_tls' default list: "any").
MPI_DEV_A=vethA MPI_DEV_B=vethB mpi_run tcp UCX_TLS=tcp UCX_LOG_LEVEL=info -- \
	--mca pml ucx --mca pml_ucx_tls any -x UCX_TLS -x UCX_LOG_LEVEL ||
	{ tail -n 60 "$OUT/mpi-tcp.txt" >&2; fail "mpirun over UCX tcp"; }
grep -q '^omx_mpi: PASS' "$OUT/mpi-tcp.txt" || fail "tcp: omx_mpi did not pass"
grep -E 'ep_cfg' "$OUT/mpi-tcp.txt" >&2 || true
result mpi_tcp "$(sed -n 's/^omx_mpi: result //p' "$OUT/mpi-tcp.txt")"

# 6. Eight ranks, four per node (issue 14): all pairs ping-pong at once
# across the link, then MPI_Alltoall with every block checked, over
# rc_verbs on omx (same-device loopback between ranks of one node).
NP=8 MPI_ARGS="-n 10 -l 100" mpi_run alltoall8 "${omx_env[@]}" -- --mca pml ucx "${omx_fwd[@]}" ||
	{ tail -n 60 "$OUT/mpi-alltoall8.txt" >&2; fail "mpirun -np 8 over omx"; }
grep -q '^omx_mpi: alltoall 8 ranks' "$OUT/mpi-alltoall8.txt" || fail "alltoall8: no all-to-all"
NP=8 check_omx_run alltoall8

omx_teardown
