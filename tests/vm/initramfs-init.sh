#!/bin/busybox sh
# shellcheck shell=dash
# initramfs-init.sh: stage-1 /init of the VM test bed (runs under busybox in the initramfs).
# Loads the virtio/9p/overlay modules, mounts the host root (virtio-9p tag "hostroot",
# read-only) under a tmpfs overlay and switch_roots into the stage-2 script named by
# omxvm.init= on the kernel command line (tests/vm/guest-init.sh, run with /bin/bash).
/bin/busybox --install -s /bin
export PATH=/bin

fatal() {
    echo "omxvm-init: FATAL: $*"
    poweroff -f
    sleep 5
    echo o >/proc/sysrq-trigger
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

stage2=
read -r cmdline </proc/cmdline
for w in $cmdline; do
    case "$w" in omxvm.init=*) stage2=${w#omxvm.init=} ;; esac
done
[ -n "$stage2" ] || fatal "no omxvm.init= on the kernel command line"

while read -r m; do
    insmod "/modules/$m" || fatal "insmod $m failed"
done </modules/order

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower \
    || fatal "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /rw || fatal "tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fatal "overlay mount failed"
[ -f "/newroot$stage2" ] || fatal "stage 2 $stage2 not found in the host root"
for d in proc sys dev; do mount --move "/$d" "/newroot/$d" || fatal "move /$d"; done
exec switch_root /newroot /bin/bash "$stage2"
