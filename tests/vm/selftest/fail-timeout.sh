#!/usr/bin/env bash
# fail-timeout.sh: must FAIL when run with a --timeout shorter than 120 s.
set -euo pipefail
sleep 120
