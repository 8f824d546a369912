# Thin wrapper over CMake. The two commands of the README:
#   make demo   install dependencies, build, run the main job
#   make test   install dependencies, build, run the whole suite, then again
#               under AddressSanitizer + UndefinedBehaviorSanitizer
JOBS ?= $(shell nproc)
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
CMAKE_FLAGS ?=

.PHONY: all deps build test test-fast test-asan test-tsan demo bench-gemm bench-attn bench-vstream bench-speech install clean format soak faults reliability

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	bash scripts/test.sh

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j1

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_SANITIZE=address -DFRT_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ctest --output-on-failure -j1

test-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_SANITIZE=thread -DFRT_CUDA=OFF $(CMAKE_FLAGS)
	cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && ctest --output-on-failure -j1 -L tsan

demo: build
	bash scripts/demo.sh

bench-gemm: build
	$(BUILD)/apps/frt-bench gemm

bench-attn: build
	$(BUILD)/apps/frt-bench attn

# Issue #8's speech measures on the held-out corpus items (ARGS=--quick: 8 per split).
bench-speech: build
	BUILD=$(BUILD) bash scripts/bench-speech.sh $(ARGS)

# Streaming QA on held-out vworld streams: accuracy per question kind, memory
# ablations, latency (BENCH_ARGS=--quick: 3 streams).
bench-vstream: build
	BUILD=$(BUILD) bash scripts/bench-vstream.sh $(BENCH_ARGS)

# vstream-qa over two hours of stream (decoded as fast as possible) and 1000
# questions, then 10,000 sentences through one speech engine: RSS at the end
# within 5% of half way. ~10 min, so not part of make test.
soak: build
	bash scripts/soak-vstream.sh $(BUILD) 7200 soak-vstream.progress 1000
	bash scripts/soak-speech.sh $(BUILD) 10000 soak-speech.progress

# Fault injection (docs/RELIABILITY.md): allocation failures, truncated
# checkpoints, RTSP relay faults, disk full.
faults: build
	bash scripts/faults.sh $(BUILD)

# Everything docs/RELIABILITY.md reports, shortened (fuzzers 20 s each,
# 10-minute soak): ~8 min, ~30 with the fuzz harnesses to build.
reliability: deps
	bash scripts/reliability.sh $(BUILD) $(BUILD_ASAN)

install: build
	cmake --install $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)

# libFuzzer harnesses (tests/fuzz, clang): each for 10 minutes (the bar:
# no crash, leak or sanitizer report), or about 20 s each as a smoke run.
.PHONY: fuzz fuzz-short
fuzz: deps
	bash scripts/fuzz.sh 600

fuzz-short: deps
	bash scripts/fuzz.sh 20
