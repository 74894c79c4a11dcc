#!/usr/bin/env bash
# bench-rxe.sh: run the rxe baseline scenario in the VM test bed and print its numbers.
#   tests/vm/bench-rxe.sh [--kernel 6.1|6.12|all] [--vms 1|2|all] [--repeat N]
# Defaults: all kernels, both topologies, 1 repetition (about 3-4 min on 2 cores).
# With --repeat N>1 the table shows the median of each number. Runs one scenario at a time.
# Under TCG the absolute numbers mean little: compare ratios on the same machine only.
set -euo pipefail
LOG_TAG=bench-rxe
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"

kernels=(6.1 6.12) topos=(1 2) repeat=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kernel) [[ $2 == all ]] || { check_series "$2"; kernels=("$2"); }; shift 2 ;;
        --vms) case "$2" in all) ;; 1 | 2) topos=("$2") ;; *) die "--vms 1|2|all" ;; esac; shift 2 ;;
        --repeat) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--repeat N"; repeat=$2; shift 2 ;;
        *) sed -n '2,6p' "$0" >&2; exit 2 ;;
    esac
done

keys=(rc_pingpong_64B_usec_per_iter send_lat_2B_t_typical_us send_lat_2B_t_avg_us write_bw_64KiB_avg_MB_s)
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rows=()
status=0
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for k in "${kernels[@]}"; do
    for v in "${topos[@]}"; do
        files=()
        for ((r = 1; r <= repeat; r++)); do
            log "kernel ${k}, ${v} VM(s), run ${r}/${repeat}"
            if out=$("${VM_DIR}/run" --kernel "${k}" --vms "${v}" --timeout 400 --name rxe-bench \
                "${REPO}/tests/scenarios/rxe-baseline.sh"); then
                echo "${out}" >&2
                dir=${out##*logs: }
                [[ ${dir} == /* ]] || dir=${REPO}/${dir}
                files+=("${dir}/results.txt")
            else
                echo "${out}" >&2
                status=1
            fi
        done
        [[ ${#files[@]} -gt 0 ]] || continue
        kver=$(sed -n 's/^kver=//p' "${files[0]}")
        row="${kver} | $([[ ${v} == 1 ]] && echo "loopback, 1 VM" || echo "2 VMs") | ${#files[@]}"
        for key in "${keys[@]}"; do
            row+=" | $(cat "${files[@]}" | sed -n "s/^${key}=//p" | median)"
        done
        rows+=("${row}")
    done
done

echo "| kernel | topology | runs | rc_pingpong 64 B us/iter | send_lat 2 B typical us | send_lat 2 B avg us | write_bw 64 KiB avg MB/s |"
echo "|---|---|---|---|---|---|---|"
for row in "${rows[@]+"${rows[@]}"}"; do echo "| ${row} |"; done
echo
echo "Host: $(nproc) CPUs, load average ${load0} at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;" \
    "guests: 2 vCPU TCG (-cpu max), 2 GiB. $(date -u +%Y-%m-%d). TCG: compare ratios only."
exit "${status}"
