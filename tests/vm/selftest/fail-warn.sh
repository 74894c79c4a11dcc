#!/usr/bin/env bash
# fail-warn.sh: must FAIL (a kernel "WARNING:" line in dmesg; scenario itself exits 0).
set -euo pipefail
echo "WARNING: CPU: 0 PID: 1 at selftest simulated warning" >/dev/kmsg
