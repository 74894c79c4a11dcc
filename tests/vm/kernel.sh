#!/usr/bin/env bash
# kernel.sh: fetch and unpack the stock Debian guest kernel for the VM test bed.
#
#   tests/vm/kernel.sh <6.1|6.12>            ensure it is unpacked, print KVER
#   tests/vm/kernel.sh --root <6.1|6.12>     print the unpacked root (boot/, lib/modules/)
#   tests/vm/kernel.sh --headers <6.1|6.12>  print /usr/src/linux-headers-KVER (for kbuild)
#
# The current ABI package is resolved through linux-image-amd64 (default suite for 6.1,
# bookworm-backports for 6.12); the -unsigned twin is preferred. The package is
# `apt-get download`ed and extracted into build/vm/kernels/<series>/root, then depmod runs.
# Cached by package name+version: a second run does no download, and works offline
# (if apt cannot resolve, the cached kernel is used). apt is only asked again after the
# package lists changed (apt-get update).
set -euo pipefail
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"

mode=kver
case "${1:-}" in
    --root) mode=root; shift ;;
    --headers) mode=headers; shift ;;
    -h | --help) sed -n '2,12p' "$0" >&2; exit 0 ;;
esac
series=${1:-}
check_series "${series}"

kdir=${VM_BUILD}/kernels/${series}
root=${kdir}/root
stamp=${kdir}/stamp # "<package> <version> <kver>" of the unpacked kernel

suite_args=()
[[ ${series} == 6.12 ]] && suite_args=(-t bookworm-backports)

resolve_pkg() {
    local meta pkg ver
    meta=$(apt-cache depends "${suite_args[@]}" linux-image-amd64 2>/dev/null \
        | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
    [[ ${meta} == linux-image-${series}.* ]] || return 1
    pkg=${meta}
    if apt-cache show "${meta}-unsigned" >/dev/null 2>&1; then pkg=${meta}-unsigned; fi
    ver=$(apt-cache policy "${pkg}" | awk '$1 == "Candidate:" { print $2; exit }')
    [[ -n ${ver} && ${ver} != "(none)" ]] || return 1
    printf '%s %s %s\n' "${pkg}" "${ver}" "${meta#linux-image-}"
}

lists_changed() { # true when apt's package lists are newer than the cached kernel
    [[ -n $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newer "${stamp}" \
        -print -quit 2>/dev/null) ]]
}

ensure_kernel() {
    local want pkg ver kver
    # Fast path (apt-cache takes ~2 s): nothing to re-resolve if apt-get update did not run.
    if [[ -s ${stamp} && -d ${root}/lib/modules ]] && ! lists_changed; then return 0; fi
    if ! want=$(resolve_pkg); then
        if [[ -s ${stamp} ]]; then
            log "apt cannot resolve linux-image-amd64 for ${series}; using the cached kernel"
            return 0
        fi
        die "cannot resolve linux-image-amd64 for ${series} (no apt lists?): run tests/vm/setup-host.sh"
    fi
    if [[ -s ${stamp} && $(cat "${stamp}") == "${want}" && -d ${root}/lib/modules ]]; then
        touch "${stamp}"
        return 0
    fi
    read -r pkg ver kver <<<"${want}"
    need_cmd dpkg-deb dpkg
    need_cmd depmod kmod
    log "downloading ${pkg} ${ver}"
    rm -rf "${kdir}/debs" "${root}" "${stamp}"
    mkdir -p "${kdir}/debs"
    # apt-get download as root warns about the _apt sandbox; let _apt write the folder.
    chown _apt "${kdir}/debs" 2>/dev/null || true
    (cd "${kdir}/debs" && apt-get -q download "${pkg}=${ver}" >&2) \
        || die "apt-get download ${pkg}=${ver} failed (network? try apt-get update)"
    log "extracting into ${root}"
    mkdir -p "${root}"
    dpkg-deb -x "${kdir}"/debs/*.deb "${root}"
    [[ -f ${root}/boot/vmlinuz-${kver} ]] || die "no boot/vmlinuz-${kver} in ${pkg}"
    log "depmod ${kver}"
    depmod -b "${root}" "${kver}"
    rm -rf "${kdir}/debs"
    printf '%s\n' "${want}" >"${stamp}"
}

# Serialize concurrent runners (CI jobs, several engineers) on the same cache.
mkdir -p "${kdir}"
exec 9>"${kdir}/.lock"
flock 9
ensure_kernel
flock -u 9
read -r _ _ kver <"${stamp}"
case "${mode}" in
    kver) printf '%s\n' "${kver}" ;;
    root) printf '%s\n' "${root}" ;;
    headers)
        hdr=/usr/src/linux-headers-${kver}
        [[ -f ${hdr}/Makefile ]] \
            || die "${hdr} missing (linux-headers-${kver}): run tests/vm/setup-host.sh"
        printf '%s\n' "${hdr}"
        ;;
esac
