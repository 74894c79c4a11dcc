#!/bin/sh
# Builds one fuzz target with libFuzzer's coverage instrumentation on
# stable Rust (what cargo-fuzz does, without cargo-fuzz or nightly) and
# runs it for SECONDS on the committed corpus.
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer options...]
#
# TARGET: wire_decode, engine_rx or rx_real_mem. New inputs go to
# fuzz/work/TARGET (not committed), crashes to fuzz/artifacts/TARGET/.
# Reproduce a crash with: fuzz/run.sh TARGET 0 fuzz/artifacts/TARGET/crash-...
set -eu
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer options...]}
secs=${2:-60}
[ $# -ge 2 ] && shift 2 || shift $#
cd "$(dirname "$0")"
export PATH="$HOME/.cargo/bin:$PATH"

# SanitizerCoverage as cargo-fuzz configures it (edge counters, the PC
# table libFuzzer needs for its coverage numbers, comparison tracing),
# cfg(fuzzing), and arithmetic overflow and debug assertions enabled.
# An explicit --target keeps these flags off build scripts.
RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers=yes"
export RUSTFLAGS
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --target "$triple" --bin "$target"
bin=target/$triple/release/$target

mkdir -p "work/$target" "artifacts/$target"
if [ $# -gt 0 ] && [ -f "$1" ]; then
	exec "$bin" "$@"
fi
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="artifacts/$target/" -print_final_stats=1 "$@" \
	"work/$target" "corpus/$target"
