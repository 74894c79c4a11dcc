#!/usr/bin/env bash
# bench-scale.sh: omx at scale in the VM bed (issue 14), per kernel:
#   - ib_write_bw and ib_send_bw -s 4096 with 1, 8, 64, 256 and 1000 QPs
#     between two namespaces (tests/scenarios/bench-qps.sh);
#   - incast: 8 clients in 8 namespaces against 8 servers on one device,
#     clean and with netem 1% loss (tests/scenarios/omx-incast.sh): each
#     flow's MB/s, the mean, the slowest flow over the mean, Jain's index.
#   tests/vm/bench-scale.sh [--kernel 6.1|6.12|all]
# Prints markdown tables. TCG: compare within one run only.
set -euo pipefail
LOG_TAG=bench-scale
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"

kernels=(6.1 6.12)
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kernel) [[ $2 == all ]] || { check_series "$2"; kernels=("$2"); }; shift 2 ;;
        *) sed -n '2,9p' "$0" >&2; exit 2 ;;
    esac
done

status=0
# run SCENARIO KERNEL: runs it and prints its results file's path (also
# when it failed: a failing omx-incast wrote its numbers before its check);
# returns the scenario's status.
run() {
    local out rc=0
    out=$("${VM_DIR}/run" --kernel "$2" --timeout 1800 --name "$(basename "$1" .sh)" "$1") || rc=$?
    echo "${out}" >&2
    if [[ ${out} == *"logs: "* ]]; then
        local dir=${out##*logs: }
        [[ ${dir} == /* ]] || dir=${REPO}/${dir}
        echo "${dir}/results.txt"
    fi
    return "${rc}"
}
v() { sed -n "s/^$2=//p" "$1" | head -n1; }
avg() { awk '{ print ($1 == "failed" || NF < 4) ? "failed" : $4 }' <<<"$1"; }

qps=$'| kernel | QPs | ib_write_bw 4 KiB (MB/s) | ib_send_bw 4 KiB (MB/s) |\n|---|---|---|---|'
incast=$'| kernel | run | flows (MB/s) | mean | slowest / mean | Jain |\n|---|---|---|---|---|---|'
for k in "${kernels[@]}"; do
    log "kernel ${k}: QP sweep"
    r=$(run "${REPO}/tests/scenarios/bench-qps.sh" "$k") || status=1
    if [[ -n ${r} && -f ${r} ]]; then
        for q in 1 8 64 256 1000; do
            qps+=$'\n'"| ${k} | ${q} | $(avg "$(v "$r" "write_bw_q$q")") | $(avg "$(v "$r" "send_bw_q$q")") |"
        done
    fi
    log "kernel ${k}: incast"
    # omx-incast fails when a flow is outside 2x of the mean; its
    # results are written before that check.
    r=$(run "${REPO}/tests/scenarios/omx-incast.sh" "$k") || status=1
    if [[ -n ${r} && -f ${r} ]]; then
        for name in incast_clean incast_loss1; do
            incast+=$'\n'"| ${k} | ${name#incast_} | $(v "$r" "$name") | $(awk '{
                for (i = 1; i <= NF; i++) { s += $i; q += $i * $i; if (m == "" || $i < m) m = $i }
                if (NF == 0 || s == 0) { print "- | - | -"; exit }
                printf "%.2f | %.2f | %.3f\n", s / NF, m / (s / NF), s * s / (NF * q)
            }' <<<"$(v "$r" "$name")") |"
        done
    fi
done
echo "${qps}"
echo
echo "${incast}"
echo
echo "Host: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1))," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at end; guests: 2 vCPU TCG. $(date -u +%Y-%m-%d). TCG: compare within one run only."
exit "${status}"
