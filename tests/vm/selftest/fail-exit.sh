#!/usr/bin/env bash
# fail-exit.sh: must FAIL (scenario exits 1 through guest-lib's fail).
set -euo pipefail
# shellcheck source=../guest-lib.sh
. "${REPO}/tests/vm/guest-lib.sh"
fail "deliberate failure"
