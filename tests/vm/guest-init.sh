#!/bin/bash
# guest-init.sh: stage-2 init (PID 1) of the VM test bed, run with the host's /bin/bash after
# switch_root into the overlay of the host root.
# Mounts the runtime file systems and the per-run log share (/out), sources /out/env.sh,
# brings up the virtio NIC, runs the scenario under a timeout, dumps dmesg to
# /out/dmesg-vmN.txt, prints "OMXVM-EXIT vm=N rc=RC" on the serial console and powers off.
# Never exits (PID 1 exiting would panic the kernel): every path ends in finish().
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C LC_ALL=C TERM=dumb
VM_INDEX=0
SHELL_AFTER=0
OUT_MOUNTED=0
read -r cmdline </proc/cmdline
for w in ${cmdline}; do
    case "${w}" in
        omxvm.vm=*) VM_INDEX=${w#omxvm.vm=} ;;
        omxvm.shell=1) SHELL_AFTER=1 ;;
        omxvm.trace=1) PS4='+ ${EPOCHREALTIME} ' && set -x ;; # debug: trace init on the console
    esac
done
export VM_INDEX

say() { echo "omxvm-init[vm${VM_INDEX}]: $*"; }

finish() { # <rc>
    local rc=$1
    if [[ ${OUT_MOUNTED} == 1 ]]; then
        dmesg >"/out/dmesg-vm${VM_INDEX}.txt" 2>&1
        echo "${rc}" >"/out/rc-vm${VM_INDEX}"
        sync
    fi
    if [[ ${SHELL_AFTER} == 1 ]]; then
        say "scenario rc=${rc}; interactive shell (exit it to power off)"
        setsid -c bash -i </dev/console >/dev/console 2>&1
    fi
    echo "OMXVM-EXIT vm=${VM_INDEX} rc=${rc}"
    busybox poweroff -f
    sleep 5
    echo o >/proc/sysrq-trigger
    sleep 60
}

fatal() { say "FATAL: $*"; finish 250; }

# Under TCG every exec of a dynamically linked host binary over 9p costs ~0.25 s: use the
# host's static busybox for the setup steps (about 3 s faster per boot).
bb() { /bin/busybox "$@"; }
uptime_s() { local u _; read -r u _ </proc/uptime; echo "${u}"; }

# --- runtime file systems --------------------------------------------------------------
# Fresh tmpfs on /tmp and /run hide the host's; keep those reachable under /.host so a
# checkout that lives there (a CI clone under /tmp, say) stays visible at its own path.
bb mkdir -p /.host/tmp /.host/run
bb mount -o bind /tmp /.host/tmp || fatal "bind host /tmp"
bb mount -o bind /run /.host/run || fatal "bind host /run"
bb mount -t tmpfs -o mode=1777 tmpfs /tmp || fatal "tmpfs /tmp"
bb mount -t tmpfs -o mode=0755 tmpfs /run || fatal "tmpfs /run"
bb mkdir -p /dev/pts /dev/shm /run/lock /out /lib/modules
bb ln -sfn /proc/self/fd /dev/fd
bb ln -sfn /proc/self/fd/0 /dev/stdin
bb ln -sfn /proc/self/fd/1 /dev/stdout
bb ln -sfn /proc/self/fd/2 /dev/stderr
bb mount -t devpts -o gid=5,mode=620 devpts /dev/pts
bb mount -t tmpfs -o mode=1777 tmpfs /dev/shm
bb mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out \
    || fatal "cannot mount the log share (9p tag out)"
OUT_MOUNTED=1
[[ -r /out/env.sh ]] || fatal "/out/env.sh missing"
# shellcheck source=/dev/null
. /out/env.sh
for d in tmp run; do
    case "${REPO}/" in
        "/${d}/"*)
            bb mkdir -p "${REPO}"
            bb mount -o bind "/.host/${d}/${REPO#/"${d}"/}" "${REPO}" \
                || fatal "cannot make the checkout ${REPO} visible"
            ;;
    esac
done
bb mount -o bind "${KROOT}/lib/modules" /lib/modules || fatal "bind ${KROOT}/lib/modules"
bb hostname "vm${VM_INDEX}"
bb ip link set lo up

# --- kernel self-checks: a hung task or an oops must be reported, not hang the run -----
echo 20 >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null || true
echo 1 >/proc/sys/kernel/panic_on_oops

# --- network: the single virtio NIC, identified by its MAC -------------------------------
# virtio_net is normally loaded by the initramfs already.
[[ -d /sys/module/virtio_net ]] || modprobe virtio_net || fatal "modprobe virtio_net failed"
IFACE=
for ((n = 0; n < 50; n++)); do
    for a in /sys/class/net/*/address; do
        if [[ $(<"${a}") == "${MY_MAC}" ]]; then
            IFACE=${a%/address}
            IFACE=${IFACE##*/}
        fi
    done
    [[ -n ${IFACE} ]] && break
    bb sleep 0.1
done
[[ -n ${IFACE} ]] || fatal "no network interface with MAC ${MY_MAC}"
export IFACE
bb ip link set dev "${IFACE}" mtu "${MTU}" || fatal "cannot set MTU ${MTU} on ${IFACE}"
bb ip addr add "${MY_IP}/24" dev "${IFACE}"
bb ip link set dev "${IFACE}" up || fatal "cannot bring ${IFACE} up"
{ echo "$(</out/env.sh)"; printf 'IFACE=%q\n' "${IFACE}"; } >/run/omxvm-env.sh
say "up after $(uptime_s) s: ${KVER} ${IFACE} ${MY_IP} mtu ${MTU}, role ${ROLE}; running ${SCENARIO##*/}"

# --- the scenario -------------------------------------------------------------------------
cd "${REPO}" || fatal "cd ${REPO}"
timeout -k 10 "${SCENARIO_TIMEOUT}" bash "${SCENARIO}" "${SCENARIO_ARGS[@]}" \
    >"/out/scenario-vm${VM_INDEX}.stdout" 2>"/out/scenario-vm${VM_INDEX}.stderr" </dev/null
rc=$?
[[ ${rc} == 124 || ${rc} == 137 ]] && say "scenario timed out after ${SCENARIO_TIMEOUT} s"
say "scenario exit code ${rc} at $(uptime_s) s"
finish "${rc}"
