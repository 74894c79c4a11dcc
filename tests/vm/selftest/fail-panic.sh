#!/usr/bin/env bash
# fail-panic.sh: must FAIL (real kernel crash via sysrq-c: no exit marker, "Kernel panic").
set -euo pipefail
echo c >/proc/sysrq-trigger
