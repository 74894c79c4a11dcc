#!/usr/bin/env bash
# initramfs.sh: build (and cache) the test-bed initramfs for one guest kernel.
#
#   tests/vm/initramfs.sh <6.1|6.12>    prints the path of the .cpio.gz
#
# Contents: static busybox, /init (tests/vm/initramfs-init.sh) and the modules needed to
# mount the host root over virtio-9p under a tmpfs overlay (+ virtio_net), in the load order given by
# `modprobe -d <root> -S <kver> --show-depends` (builtin ones skipped, .ko.xz decompressed
# because busybox insmod cannot load compressed modules). Rebuilt when the kernel, busybox,
# this script or the init script changed.
set -euo pipefail
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"

series=${1:-}
check_series "${series}"
need_cmd cpio cpio
need_cmd modprobe kmod
need_cmd gzip gzip
need_cmd xz xz-utils
busybox=/bin/busybox
[[ -x ${busybox} ]] || die "${busybox} missing (package busybox-static): run tests/vm/setup-host.sh"

kver=$("${VM_DIR}/kernel.sh" "${series}")
root=$("${VM_DIR}/kernel.sh" --root "${series}")
init_src=${VM_DIR}/initramfs-init.sh
out=${VM_BUILD}/kernels/${series}/initramfs-${kver}.cpio.gz
stampf=${root}/../stamp

fresh() {
    [[ -s ${out} && ${out} -nt ${init_src} && ${out} -nt ${busybox} && ${out} -nt ${stampf} \
        && ${out} -nt ${VM_DIR}/initramfs.sh ]]
}
if fresh; then
    printf '%s\n' "${out}"
    exit 0
fi
exec 9>"${out}.lock" # one builder at a time; the others use its result
flock 9
if fresh; then
    printf '%s\n' "${out}"
    exit 0
fi

log "building ${out##*/}"
# Modules for: virtio PCI transport, 9p over virtio, overlayfs, and the NIC (virtio_net is
# loaded here too: modprobe over 9p under TCG is slow).
mapfile -t mods < <(modprobe -d "${root}" -S "${kver}" --show-depends -a \
    virtio_pci 9pnet_virtio 9p overlay virtio_net | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
[[ ${#mods[@]} -gt 0 ]] || die "modprobe --show-depends found no modules in ${root}"

tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT
mkdir -p "${tmp}"/{bin,dev,proc,sys,modules,newroot,lower,rw}
cp "${busybox}" "${tmp}/bin/busybox"
install -m 0755 "${init_src}" "${tmp}/init"
: >"${tmp}/modules/order"
for m in "${mods[@]}"; do
    name=$(basename "${m}")
    case "${name}" in
        *.ko.xz) name=${name%.xz}; xz -dc "${m}" >"${tmp}/modules/${name}" ;;
        *.ko.zst) name=${name%.zst}; zstd -qdc "${m}" >"${tmp}/modules/${name}" ;;
        *.ko) cp "${m}" "${tmp}/modules/${name}" ;;
        *) die "unexpected module file ${m}" ;;
    esac
    printf '%s\n' "${name}" >>"${tmp}/modules/order"
done
log "modules: $(tr '\n' ' ' <"${tmp}/modules/order")"
(cd "${tmp}" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"${out}.$$.tmp"
mv "${out}.$$.tmp" "${out}"
printf '%s\n' "${out}"
