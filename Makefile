# omx-verbs top-level build.  The README's two commands:
#   make demo   - build everything, boot a VM, show the omx devices
#   make test   - lint, unit tests, every VM scenario on both guest kernels
#
# Variables:
#   KERNEL=6.1          default guest kernel (its module is kmod-shim/rdma_omx.ko)
#   KERNELS="6.1 6.12"  kernels `make test` / `make vm-test` cover
#   SCENARIOS="..."     guest scenario scripts vm-test runs (one VM boot each)
#   KDIR=...            `make kmod-local KDIR=...` builds against any kernel tree
#   BENCH_ARGS=...      options for omx-bench (bench-native), e.g. "--mtu 9000 --rx copy"

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

KERNEL ?= 6.1
KERNELS ?= 6.1 6.12
CARGO ?= cargo
SCENARIOS ?= $(addprefix tests/scenarios/,omx-devices.sh omx-port-events.sh \
	omx-netdev-changes.sh omx-resources.sh omx-comp-events.sh omx-hotunplug.sh \
	omx-rmmod-busy.sh omx-link-cycles.sh omx-rc-pingpong.sh omx-rc-faults.sh \
	omx-rc-options.sh omx-same-device.sh omx-valgrind.sh omx-hostile.sh \
	omx-modify-table.sh omx-device-removal.sh omx-srq.sh omx-uc.sh omx-ud.sh omx-mcast.sh \
	omx-atomic.sh omx-mw.sh omx-perftest.sh omx-many-qps.sh omx-incast.sh omx-ucx.sh omx-mpi.sh) \
	kmod-shim/tests/vm-kmod-smoke.sh kmod-shim/tests/vm-kmod-cycles.sh \
	kmod-shim/tests/vm-kmod-hostile.sh kmod-shim/tests/vm-kmod-fuzz.sh
# Scenarios that need two VMs joined by a QEMU socket netdev (--vms 2).
TWO_VM_SCENARIOS ?= tests/scenarios/omx-two-vms.sh
VM_TIMEOUT ?= 900

PROVIDER_SO := target/release/libomx-rdmav34.so
KMOD_SRCS := $(wildcard kmod-shim/*.c kmod-shim/*.h kmod-shim/Kbuild \
	kmod-shim/Makefile kmod-shim/include/uapi/*.h)

.PHONY: all deps build provider kmod kmod-local progs lint fmt-check clippy \
	kmod-warnings checkpatch unit fuzz vm-test rxe-baseline test demo bench bench-native clean

all: build

# Host packages and guest-kernel headers (idempotent; needs root).
deps:
	@tests/vm/setup-host.sh

build: deps provider kmod progs

provider:
	@echo "== provider: cargo build --release"
	$(CARGO) build --release -p omx-provider
	cp target/release/libomx_provider.so $(PROVIDER_SO)

# One module per guest kernel, each built in its own copy of the sources
# (build/kmod/<kver>/), W=1; the default kernel's module is also copied to
# kmod-shim/rdma_omx.ko.
kmod: $(KMOD_SRCS)
	@for s in $(sort $(KERNELS) $(KERNEL)); do \
		kver=$$(tests/vm/kernel.sh "$$s"); \
		kdir=$$(tests/vm/kernel.sh --headers "$$s"); \
		out=build/kmod/$$kver; \
		echo "== kmod: rdma_omx for $$kver (W=1)"; \
		mkdir -p "$$out"; \
		tar -C kmod-shim --exclude='*.ko' --exclude='*.o' --exclude='.*.cmd' \
			--exclude='*.mod*' --exclude='modules.order' \
			--exclude='Module.symvers' -cf - . | tar -C "$$out" -xf -; \
		$(MAKE) -s -C "$$kdir" M="$(CURDIR)/$$out" W=1 modules 2>&1 \
			| tee "$$out/build.log"; \
		test -f "$$out/rdma_omx.ko"; \
		if [ "$$s" = "$(KERNEL)" ]; then cp "$$out/rdma_omx.ko" kmod-shim/rdma_omx.ko; fi; \
	done

kmod-local:
	$(MAKE) -C kmod-shim KDIR=$(KDIR)

progs:
	@echo "== test programs"
	$(MAKE) -s -C tests/progs
	$(CARGO) build --release -p omx-craft

lint: fmt-check clippy kmod-warnings checkpatch

fmt-check:
	@echo "== rustfmt"
	$(CARGO) fmt --all -- --check

clippy:
	@echo "== clippy -D warnings"
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The module must build without a single warning (W=1) on every kernel.
kmod-warnings: kmod
	@for s in $(KERNELS); do \
		log=build/kmod/$$(tests/vm/kernel.sh "$$s")/build.log; \
		if grep -E 'warning:|error:' "$$log"; then \
			echo "kmod: warnings in $$log"; exit 1; fi; \
	done; echo "== kmod: no warnings on $(KERNELS)"

checkpatch:
	@echo "== checkpatch"
	@kmod-shim/checkpatch.sh

# The provider's smoke tests dlopen the debug cdylib, which `cargo test`
# alone does not build.
unit:
	@echo "== cargo test"
	$(CARGO) build --workspace
	$(CARGO) test --workspace

# Each fuzz target for FUZZ_SECONDS on its committed corpus (fuzz/corpus),
# built with libFuzzer's coverage instrumentation on stable Rust
# (fuzz/run.sh; no cargo-fuzz, no nightly). New inputs go to fuzz/work/,
# crashes to fuzz/artifacts/ and fail the target.
FUZZ_SECONDS ?= 40
FUZZ_TARGETS ?= wire_decode engine_rx rx_real_mem
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "== fuzz: $$t for $(FUZZ_SECONDS) s"; \
		fuzz/run.sh "$$t" $(FUZZ_SECONDS) 2>&1 | grep -Ev '^#[0-9]+\s+(NEW|REDUCE|pulse)' \
			|| exit 1; \
	done

# Every scenario on every kernel; one VM boot per scenario so a kernel
# warning is blamed on the scenario that caused it.
vm-test: build
	@pass=0; failed=(); \
	for k in $(KERNELS); do for s in $(SCENARIOS); do \
		n=$$(basename "$$s" .sh); \
		if tests/vm/run --kernel "$$k" --name "$$n" --timeout $(VM_TIMEOUT) \
			"$$s"; then pass=$$((pass + 1)); \
		else failed+=("$$n@$$k"); fi; \
	done; for s in $(TWO_VM_SCENARIOS); do \
		n=$$(basename "$$s" .sh); \
		if tests/vm/run --kernel "$$k" --vms 2 --name "$$n" \
			--timeout $(VM_TIMEOUT) "$$s"; then pass=$$((pass + 1)); \
		else failed+=("$$n@$$k"); fi; \
	done; done; \
	if [ $${#failed[@]} -gt 0 ]; then echo "failed: $${failed[*]}"; fi; \
	echo "vm-test: $$pass passed, $${#failed[@]} failed"; \
	[ $${#failed[@]} -eq 0 ]

# Soft-RoCE baseline: proves the bed and gives the numbers to beat.
rxe-baseline: deps
	@pass=0; failed=(); \
	for k in $(KERNELS); do \
		if tests/vm/run --kernel "$$k" --name rxe-baseline --timeout $(VM_TIMEOUT) \
			tests/scenarios/rxe-baseline.sh; then pass=$$((pass + 1)); \
		else failed+=("rxe-baseline@$$k"); fi; \
	done; \
	if tests/vm/run --kernel $(KERNEL) --vms 2 --name rxe-baseline-2vm \
		--timeout $(VM_TIMEOUT) tests/scenarios/rxe-baseline.sh; then \
		pass=$$((pass + 1)); else failed+=("rxe-baseline-2vm@$(KERNEL)"); fi; \
	if [ $${#failed[@]} -gt 0 ]; then echo "failed: $${failed[*]}"; fi; \
	echo "rxe-baseline: $$pass passed, $${#failed[@]} failed"; \
	[ $${#failed[@]} -eq 0 ]

test: build lint unit fuzz rxe-baseline vm-test

demo: build
	@tests/vm/run --kernel $(KERNEL) --name demo --timeout $(VM_TIMEOUT) --show \
		tests/scenarios/demo.sh

# Benchmarks (never part of `make test`): the native host benchmark (root,
# no VM), the rxe baseline, omx vs rxe vs raw frames on same-device
# loopback in one VM (with latency beside 1000 idle QPs and idle CPU), then
# bandwidth against the number of QPs and incast, per kernel.
bench: build bench-native
	@tests/vm/bench-rxe.sh
	@tests/vm/bench-loopback.sh
	@tests/vm/bench-scale.sh

# Native host benchmark (root; no VM): two network namespaces joined by a
# veth pair, raw AF_PACKET floor vs our stack (omx-bench, provider/bench).
bench-native:
	$(CARGO) build --release -p omx-bench
	target/release/omx-bench $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -rf build kmod-shim/rdma_omx.ko
	$(MAKE) -s -C tests/progs clean
