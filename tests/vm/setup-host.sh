#!/usr/bin/env bash
# setup-host.sh: idempotent host setup for the whole omx-verbs project (Debian 12).
#
# - adds the bookworm-backports apt source (deb822) if no source names that suite,
# - runs `apt-get update` only when a source was added or its package lists are missing,
# - installs the tool chain and test-bed packages, skipping those already installed
#   (a second run is fast and works offline),
# - installs the kernel headers of both guest kernels (6.1 from bookworm(-security),
#   6.12 from bookworm-backports), resolved through the linux-headers-amd64 metapackage
#   and installed as versioned packages so both coexist.
#
# Usage: tests/vm/setup-host.sh        (as root)
set -euo pipefail

log() { printf 'setup-host: %s\n' "$*" >&2; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

[[ ${EUID} -eq 0 ]] || die "must run as root (it installs packages with apt-get)"
if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    die "apt-get/dpkg-query not found: this script supports Debian 12 (bookworm) only"
fi
if [[ -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    [[ ${VERSION_CODENAME:-} == bookworm ]] \
        || log "warning: host is '${VERSION_CODENAME:-unknown}', only bookworm is tested"
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg (other jobs on a shared machine) instead of failing.
APT=(apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends)
BPO_FILE=/etc/apt/sources.list.d/omx-backports.sources
BPO=bookworm-backports

# Packages from the default suites. qemu-system-x86 is handled separately (backports).
BASE_PKGS=(
    busybox-static cpio kmod xz-utils coreutils util-linux procps iproute2 ethtool
    ibverbs-utils perftest rdma-core libibverbs-dev ibverbs-providers ucx-utils
    openmpi-bin libopenmpi-dev
    clang libclang-dev gcc make shellcheck valgrind
)

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

have_bpo_source() {
    grep -qsE "^[^#]*\b${BPO}\b" /etc/apt/sources.list \
        || grep -rqsE --include='*.list' --include='*.sources' "^[^#]*\b${BPO}\b" \
            /etc/apt/sources.list.d/
}

have_lists() {
    compgen -G "/var/lib/apt/lists/*_dists_bookworm_*Packages*" >/dev/null \
        && compgen -G "/var/lib/apt/lists/*_dists_${BPO}_*Packages*" >/dev/null
}

apt_update() {
    local try
    for try in 1 2 3 4 5 6; do
        log "apt-get update (attempt ${try})"
        if apt-get -q update >&2; then return 0; fi
        log "apt-get update failed (lock held by another apt, or network); retrying in 10 s"
        sleep 10
    done
    die "apt-get update keeps failing; check network access and /etc/apt/sources.list.d/"
}

need_update=0
if have_bpo_source; then
    log "apt source for ${BPO}: present"
else
    log "adding apt source ${BPO_FILE}"
    cat >"${BPO_FILE}" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: ${BPO}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    need_update=1
fi
if ! have_lists; then
    log "apt package lists for bookworm/${BPO} missing"
    need_update=1
fi
[[ ${need_update} -eq 0 ]] || apt_update

# Resolve the versioned header packages through the metapackage of each suite.
resolve_dep() { # <metapackage> [apt-cache options...] -> first Depends
    local meta=$1; shift
    apt-cache depends "$@" "${meta}" 2>/dev/null \
        | awk '$1 == "Depends:" && $2 !~ /^</ { print $2; exit }'
}
hdr61=$(resolve_dep linux-headers-amd64)
hdr612=$(resolve_dep linux-headers-amd64 -t "${BPO}")
[[ ${hdr61} == linux-headers-6.1.* ]] \
    || die "could not resolve the 6.1 headers through linux-headers-amd64 (got '${hdr61}')"
[[ ${hdr612} == linux-headers-6.12.* ]] \
    || die "could not resolve the 6.12 headers through 'linux-headers-amd64 -t ${BPO}' (got '${hdr612}')"
log "guest kernel headers: ${hdr61} (bookworm), ${hdr612} (${BPO})"

install_missing() { # <apt-get extra args...> -- <pkgs...>
    local -a extra=() missing=()
    while [[ $1 != -- ]]; do extra+=("$1"); shift; done
    shift
    local p
    for p in "$@"; do is_installed "$p" || missing+=("$p"); done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "already installed: $*"
        return 0
    fi
    log "installing: ${missing[*]} ${extra[*]}"
    if ! "${APT[@]}" "${extra[@]}" install "${missing[@]}" >&2; then
        log "install failed; refreshing package lists once and retrying"
        apt_update
        "${APT[@]}" "${extra[@]}" install "${missing[@]}" >&2 \
            || die "apt-get install failed for: ${missing[*]}"
    fi
}

install_missing -- "${BASE_PKGS[@]}" "${hdr61}"
# bookworm's qemu 7.2 conflicts with the qemu-utils from backports: take qemu from backports.
install_missing -t "${BPO}" -- qemu-system-x86 "${hdr612}"

for tool in qemu-system-x86_64 busybox cpio modprobe depmod xz ibv_rc_pingpong ib_send_lat \
    mpicc mpirun; do
    if ! command -v "${tool}" >/dev/null && [[ ! -x /sbin/${tool} ]]; then
        die "'${tool}' still missing after installation"
    fi
done
log "host ready: $(qemu-system-x86_64 --version | head -n1)"
