# guest-lib.sh: helpers for scenario scripts running inside the VM test bed.
# Source it from a scenario:  . "$REPO/tests/vm/guest-lib.sh"
# The runner has already exported (from /out/env.sh): REPO KSERIES KVER VM_INDEX VMS ROLE
# MY_IP PEER_IP IFACE MTU OUT, plus every --env K=V. Everything written to /out ends up in
# the run's log folder on the host.
# shellcheck shell=bash

if [[ -z ${REPO:-} && -r /run/omxvm-env.sh ]]; then # interactive use (--shell)
    # shellcheck source=/dev/null
    . /run/omxvm-env.sh
fi
: "${OUT:=/out}"
_GL_T0=${SECONDS}

# log MSG...: timestamped message on stderr (scenario-vmN.stderr)
log() { printf '[vm%s +%ss] %s\n' "${VM_INDEX:-?}" "$((SECONDS - _GL_T0))" "$*" >&2; }

# fail MSG...: print and exit 1 (fails the run)
fail() { log "FAIL: $*"; exit 1; }

# run_logged NAME CMD...: run CMD, keep its output in /out/NAME.log, fail if it fails
run_logged() {
    local name=$1; shift
    log "run: $*"
    "$@" >"${OUT}/${name}.log" 2>&1 || { tail -n 20 "${OUT}/${name}.log" >&2; fail "$* (exit $?)"; }
}

# expect_contains HAYSTACK NEEDLE [WHAT]: fail unless the string contains NEEDLE
expect_contains() {
    [[ $1 == *"$2"* ]] || fail "${3:-output} does not contain '$2'"
}

# expect_not_contains HAYSTACK NEEDLE [WHAT]
expect_not_contains() {
    [[ $1 != *"$2"* ]] || fail "${3:-output} unexpectedly contains '$2'"
}

# expect_file_contains FILE ERE [WHAT]: fail unless FILE has a line matching ERE
expect_file_contains() {
    grep -qE -- "$2" "$1" 2>/dev/null || fail "${3:-$1} has no line matching '$2'"
}

# expect_eq GOT WANT [WHAT]
expect_eq() {
    [[ $1 == "$2" ]] || fail "${3:-value} is '$1', expected '$2'"
}

# wait_for CMD TIMEOUT_SEC: re-run CMD (a string, eval'ed) every 0.2 s until it succeeds;
# returns 1 after TIMEOUT_SEC. Use as: wait_for "test -e /dev/foo" 10 || fail "no foo"
wait_for() {
    local cmd=$1 deadline=$((SECONDS + ${2:-10}))
    until eval "${cmd}" >/dev/null 2>&1; do
        if [[ ${SECONDS} -ge ${deadline} ]]; then
            log "timed out after ${2:-10} s waiting for: ${cmd}"
            return 1
        fi
        sleep 0.2
    done
}

# result KEY VALUE: record a result line key=value in /out/results.txt
result() {
    printf '%s=%s\n' "$1" "$2" >>"${OUT}/results.txt"
    log "result $1=$2"
}

# netns_pair NS_A NS_B IF_A IF_B [MTU]: veth pair, IF_A in netns NS_A with 10.78.0.1/24,
# IF_B in NS_B with 10.78.0.2/24, both up (lo up too).
netns_pair() {
    local a=$1 b=$2 ia=$3 ib=$4 mtu=${5:-1500}
    modprobe veth || fail "modprobe veth"
    ip netns add "${a}" || fail "ip netns add ${a}"
    ip netns add "${b}" || fail "ip netns add ${b}"
    ip link add "${ia}" mtu "${mtu}" netns "${a}" type veth peer name "${ib}" mtu "${mtu}" netns "${b}" \
        || fail "cannot create veth ${ia}/${ib}"
    ip -n "${a}" addr add 10.78.0.1/24 dev "${ia}"
    ip -n "${b}" addr add 10.78.0.2/24 dev "${ib}"
    ip -n "${a}" link set lo up
    ip -n "${b}" link set lo up
    ip -n "${a}" link set "${ia}" up || fail "link up ${ia}"
    ip -n "${b}" link set "${ib}" up || fail "link up ${ib}"
}

# ib_port_active DEV [TIMEOUT]: wait until port 1 of the IB device is ACTIVE
ib_port_active() {
    wait_for "grep -q ACTIVE /sys/class/infiniband/$1/ports/1/state" "${2:-15}" \
        || fail "$1 port 1 not ACTIVE: $(cat "/sys/class/infiniband/$1/ports/1/state" 2>&1)"
}

# uverbs_of IBDEV: print the uverbs character device of an RDMA device
# (/dev/infiniband/uverbsN); fails (status 1) if there is none
uverbs_of() {
    local d
    for d in /sys/class/infiniband_verbs/uverbs*; do
        if [[ $(<"${d}/ibdev") == "$1" ]]; then
            echo "/dev/infiniband/${d##*/}"
            return 0
        fi
    done
    return 1
}

# omx_on_veth IBDEV IF PEER: a veth pair IF/PEER in this namespace, both up, and the
# omx device IBDEV on IF with its port ACTIVE (rdma_omx loaded)
omx_on_veth() {
    modprobe veth || fail "modprobe veth"
    ip link add "$2" type veth peer name "$3" || fail "cannot create veth $2/$3"
    ip link set "$2" up || fail "link up $2"
    ip link set "$3" up || fail "link up $3"
    rdma link add "$1" type omx netdev "$2" || fail "rdma link add $1 netdev $2"
    ib_port_active "$1"
}

# gid_index_for_ip DEV IPV4: print the GID index whose GID is ::ffff:IPV4 (RoCEv2 on rxe)
gid_index_for_ip() {
    local dev=$1 f want
    local -a o
    IFS=. read -ra o <<<"$2"
    want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "${o[@]}")
    for f in /sys/class/infiniband/"${dev}"/ports/1/gids/*; do
        if [[ $(<"${f}") == "${want}" ]]; then basename "${f}"; return 0; fi
    done
    return 1
}

# load_rdma_omx: ib_uverbs + the out-of-tree module built by the Makefile for this kernel
load_rdma_omx() {
    local ko
    ko=${REPO}/build/kmod/$(uname -r)/rdma_omx.ko
    [[ -f ${ko} ]] || fail "rdma_omx.ko not built for $(uname -r): expected ${ko} (build it on the host first)"
    modprobe ib_uverbs || fail "modprobe ib_uverbs"
    insmod "${ko}" "$@" || fail "insmod ${ko} failed"
    log "loaded ${ko}"
}

# install_omx_provider: register the omx user-space provider with libibverbs (guest overlay only)
install_omx_provider() {
    local lib=${REPO}/target/release/libomx-rdmav34.so
    [[ -f ${lib} ]] || fail "provider not built: expected ${lib} (libibverbs loads <driver path>-rdmav34.so)"
    mkdir -p /etc/libibverbs.d
    echo "driver ${REPO}/target/release/libomx" >/etc/libibverbs.d/omx.driver
    log "installed /etc/libibverbs.d/omx.driver -> ${REPO}/target/release/libomx"
}
