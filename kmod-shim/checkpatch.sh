#!/bin/bash
# checkpatch.sh: run the kernel's checkpatch.pl (--strict) over rdma_omx.
#
# checkpatch.pl is not packaged on its own; it ships in Debian's
# linux-source-6.12 tarball, from which this script extracts it (with its
# spelling and const-struct lists) into build/tools/checkpatch once.
#
# Ignored types, each on purpose:
#  LINUX_VERSION_CODE  an out-of-tree module supporting 6.1 and 6.12 needs
#  CONSTANT_COMPARISON exactly one version switch (rdma_omx.h), which both
#                      of these flag;
#  MACRO_ARG_REUSE     the omx_dbg*() macros evaluate their object argument
#                      twice (prefix and device), which is harmless for the
#                      plain pointers they are given.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd -P)
tools=$top/build/tools/checkpatch
src=/usr/src/linux-source-6.12.tar.xz

if [ ! -x "$tools/scripts/checkpatch.pl" ]; then
	if [ ! -f "$src" ]; then
		echo "checkpatch: installing linux-source-6.12 (for scripts/checkpatch.pl)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports \
			linux-source-6.12 >/dev/null ||
			{ echo "checkpatch: cannot install linux-source-6.12 (run as root)" >&2; exit 1; }
	fi
	echo "checkpatch: extracting checkpatch.pl from $src" >&2
	tmp=$(mktemp -d)
	tar -C "$tmp" -xJf "$src" --wildcards --strip-components=1 \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	mkdir -p "$tools"
	rm -rf "$tools/scripts"
	mv "$tmp/scripts" "$tools/scripts"
	rm -rf "$tmp"
fi

cd "$top/kmod-shim"
"$tools/scripts/checkpatch.pl" --no-tree --strict --show-types --terse \
	--ignore LINUX_VERSION_CODE,CONSTANT_COMPARISON,MACRO_ARG_REUSE \
	-f ./*.c ./*.h include/uapi/*.h Kbuild Makefile
