#!/bin/bash
# The kernel completion-event path: exactly one event per request, deferred
# to the CQ's serialized worker (the module WARNs if two handlers of one CQ
# ever overlap, and the runner fails on any WARNING).
set -euo pipefail
. "$REPO/tests/vm/guest-lib.sh"
. "$REPO/tests/scenarios/omx-lib.sh"

omx_setup
"$PROGS/omx_cqev" -d omx0 -c 1 -T 4 -n 5000 -t 120 || fail "one CQ, 4 threads"
"$PROGS/omx_cqev" -d omx0 -c 8 -T 4 -n 5000 -t 120 || fail "8 CQs, 4 threads"
# Two processes on two devices at once.
"$PROGS/omx_cqev" -d omx0 -c 3 -T 2 -n 5000 -t 120 &
a=$!
"$PROGS/omx_cqev" -d omx1 -c 3 -T 2 -n 5000 -t 120 &
b=$!
wait "$a" || fail "concurrent process on omx0"
wait "$b" || fail "concurrent process on omx1"
omx_teardown
