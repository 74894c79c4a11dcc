#!/usr/bin/env bash
# bench-loopback.sh: omx vs rxe vs raw AF_PACKET frames, same-device loopback in one VM.
#   tests/vm/bench-loopback.sh [--kernel 6.1|6.12|all] [--iters N]
# Runs tests/scenarios/bench-loopback.sh once per kernel (all by default) and prints a
# markdown table: each number of omx and rxe, and the ratios omx/rxe and omx/floor.
# Latencies are perftest's 2-byte t_typical (median); bandwidth is ib_write_bw 64 KiB
# and ib_send_bw -c UD 1 KiB.
# TCG inflates absolute times many-fold: only the ratios of one run mean anything.
set -euo pipefail
LOG_TAG=bench-loopback
# shellcheck source=lib-host.sh
. "$(dirname "$0")/lib-host.sh"

kernels=(6.1 6.12) iters=2000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kernel) [[ $2 == all ]] || { check_series "$2"; kernels=("$2"); }; shift 2 ;;
        --iters) [[ $2 =~ ^[1-9][0-9]*$ ]] || die "--iters N"; iters=$2; shift 2 ;;
        *) sed -n '2,7p' "$0" >&2; exit 2 ;;
    esac
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "-"; else printf "%.2f\n", a / b }'; }

status=0
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "| kernel | measure | omx | rxe | raw floor | omx/rxe | omx/floor |"
echo "|---|---|---|---|---|---|---|"
for k in "${kernels[@]}"; do
    log "kernel ${k}: ${iters} iterations per program"
    if ! out=$("${VM_DIR}/run" --kernel "${k}" --timeout 1800 --name bench-loopback \
        --env "BENCH_ITERS=${iters}" "${REPO}/tests/scenarios/bench-loopback.sh"); then
        echo "${out}" >&2
        status=1
        continue
    fi
    echo "${out}" >&2
    dir=${out##*logs: }
    [[ ${dir} == /* ]] || dir=${REPO}/${dir}
    r=${dir}/results.txt
    v() { sed -n "s/^$1=//p" "${r}" | head -n1; }
    kver=$(v kver)
    row() { # label omx rxe floor
        echo "| ${kver} | $1 | $2 | $3 | ${4:--} | $(ratio "$2" "$3") | $(ratio "$2" "${4:-}") |"
    }
    row "ib_send_lat 2 B typical (us)" "$(v omx_send_lat_typical_us)" "$(v rxe_send_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ib_send_lat 2 B avg (us)" "$(v omx_send_lat_avg_us)" "$(v rxe_send_lat_avg_us)" "$(v raw_lat_avg_us)"
    row "ib_write_lat 2 B typical (us)" "$(v omx_write_lat_typical_us)" "$(v rxe_write_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ib_read_lat 2 B typical (us)" "$(v omx_read_lat_typical_us)" "$(v rxe_read_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ib_atomic_lat FETCH_AND_ADD typical (us)" "$(v omx_atomic_lat_typical_us)" "$(v rxe_atomic_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ib_send_lat -c UD 2 B typical (us)" "$(v omx_ud_send_lat_typical_us)" "$(v rxe_ud_send_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ib_send_lat -c UC 2 B typical (us)" "$(v omx_uc_send_lat_typical_us)" "$(v rxe_uc_send_lat_typical_us)" "$(v raw_lat_typical_us)"
    row "ibv_rc_pingpong 64 B (us/iter)" "$(v omx_rc_pingpong_us)" "$(v rxe_rc_pingpong_us)" ""
    row "ibv_srq_pingpong 64 B, 16 QPs (us/iter)" "$(v omx_srq_pingpong_us)" "$(v rxe_srq_pingpong_us)" ""
    row "ucx_perftest am_lat rc_verbs 8 B median (us)" "$(v omx_ucx_am_lat_us)" "$(v rxe_ucx_am_lat_us)" ""
    row "ucx_perftest am_lat ud_verbs 8 B median (us)" "$(v omx_ucx_ud_am_lat_us)" "$(v rxe_ucx_ud_am_lat_us)" ""
    # For bandwidth the ratios are plain fractions: omx's MB/s over rxe's and the floor's.
    row "ib_write_bw 64 KiB (MB/s)" "$(v omx_write_bw_MB_s)" "$(v rxe_write_bw_MB_s)" "$(v raw_bw_MB_s)"
    row "ib_read_bw 64 KiB (MB/s)" "$(v omx_read_bw_MB_s)" "$(v rxe_read_bw_MB_s)" "$(v raw_bw_MB_s)"
    row "ib_send_bw -c UD 1 KiB (MB/s)" "$(v omx_ud_send_bw_MB_s)" "$(v rxe_ud_send_bw_MB_s)" "$(v raw_bw_MB_s)"
    # omx_idle (omx only): one context's 2-byte SEND ping-pong alone, beside
    # 1000 idle QPs, alone again; the idle process's CPU. The omx/rxe column
    # of the second row is the ratio to the mean of the two lone runs.
    lone=$(awk -v a="$(v omx_idle_lat_lone_us)" -v b="$(v omx_idle_lat_lone2_us)" \
        'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) printf "%.2f\n", (a + b) / 2; else print "-" }')
    echo "| ${kver} | omx_idle 2 B SEND ping-pong, lone (us; two runs) | $(v omx_idle_lat_lone_us), $(v omx_idle_lat_lone2_us) | - | - | - | - |"
    echo "| ${kver} | same, beside 1000 idle QPs (us; / lone) | $(v omx_idle_lat_1000_us) | - | - | $(ratio "$(v omx_idle_lat_1000_us)" "${lone}") | - |"
    echo "| ${kver} | idle process, 1002 QPs, 10 s (% of one CPU) | $(v omx_idle_cpu_pct) | - | - | - | - |"
done
echo
echo "Host: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1))," \
    "load average ${load0} at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;" \
    "guests: 2 vCPU TCG (-cpu max), 2 GiB. $(date -u +%Y-%m-%d). TCG: compare ratios only."
exit "${status}"
