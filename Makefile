# Cairn's entry points. Everything builds with Bazel (see docs/building.md); these targets only wrap it.
#
#   make deps    install the Debian packages the build needs (tools/install_deps.sh; root if any missing)
#   make build   bazel build //...
#   make test    bazel test //... and a final `N passed, N failed` line (tools/run_tests.sh)
#   make demo    build the `cairn` CLI in opt mode and plan Llama-2 7B on 4 nodes of H100 SXM
#   make demo-cluster  the agent loop on this machine: planner, 2 agents (probes, profiles), a job
#                planned on their measured profile and trained on 4 CPU workers (tools/demo_cluster.sh)
#   make bench   run the strategy-search benchmark (opt mode)
#   make gpu-stage  build the GPU tests and cairn-train in opt mode and stage them into .device
#   make test-gpu   on a GPU machine: the GPU checks from .device, then `N passed, N failed`
#   make clean   bazel clean (the disk cache under ~/.cache/cairn-bazel-disk stays)
#   make asan    the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (ASAN_TARGETS)
#   make fuzz    every fuzz target for FUZZ_SECONDS on its seeds (tools/fuzz.sh)
#
# Variables: BAZEL (default bazel), TARGETS (default //...) for build and test, DEMO_ARGS.

BAZEL ?= bazel
TARGETS ?= //...
DEMO_ARGS ?= plan --model llama2-7b --cluster h100-sxm --nodes 4 --global-batch 512 --seq-len 4096

# Without the CUDA toolkit, leave out the targets tagged "cuda" (same rule as tools/run_tests.sh).
# --test_tag_filters replaces the -gpu filter of .bazelrc, so it is repeated here.
ifeq ($(wildcard /usr/local/cuda/bin/nvcc),)
CUDA_FLAGS := --build_tag_filters=-cuda --test_tag_filters=-gpu,-cuda --define=cuda=off
endif

# The ASan/UBSan subset CI runs: everything that parses requests, files or user numbers (the
# planner, data, checkpoints, the daemon's service tests). docs/reliability.md says why the rest
# (runtime kernels and collectives; search_test's brute force, >300 s under ASan) is left out.
ASAN_TARGETS ?= //planner/... -//planner/search:search_test //runtime/data/... //runtime/checkpoint/... \
	//tests:planner_limits_test //tests:planner_reliability_test //tests:planner_service_test \
	//tests:planner_security_test //tests:planner_daemon_test //tests:store_durability_test //tests:cli_test \
	//tests:golden_plans_test
FUZZ_SECONDS ?= 15

.DEFAULT_GOAL := build
.PHONY: deps build test demo demo-cluster bench clean gpu-stage test-gpu asan fuzz

deps:
	tools/install_deps.sh

build: deps
	$(BAZEL) build $(CUDA_FLAGS) -- $(TARGETS)

test: deps
	tools/run_tests.sh $(TARGETS)

demo: deps
	$(BAZEL) build -c opt //planner/cli:cairn
	bazel-bin/planner/cli/cairn $(DEMO_ARGS)

demo-cluster: deps
	BAZEL="$(BAZEL)" BAZEL_FLAGS="$(CUDA_FLAGS)" tools/demo_cluster.sh $(DEMO_CLUSTER_ARGS)

bench: deps
	$(BAZEL) run -c opt //planner/search:search_bench

gpu-stage: deps
	tools/gpu/run_all.sh --stage

# No deps step: the GPU machines run staged binaries and need no build packages.
test-gpu:
	tools/gpu/test_gpu.sh

clean:
	$(BAZEL) clean

asan: deps
	tools/run_tests.sh --config=asan --test_env=LSAN_OPTIONS=suppressions=$(CURDIR)/tools/lsan.supp $(ASAN_TARGETS)

fuzz: deps
	tools/fuzz.sh --seconds $(FUZZ_SECONDS)
