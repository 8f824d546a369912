#!/usr/bin/env bash
# Build and run the CUDA backend's tests and benchmark on a GPU machine that
# has nvcc and cuBLAS but none of the project's other build dependencies
# (no Criterion, FFmpeg or cJSON): the core and kernels are compiled directly
# into a static archive, tests/test_cuda.c runs against a small Criterion
# stand-in (criterion/criterion.h), then under compute-sanitizer when it is
# installed, then bench_cuda and (when python3 has torch with CUDA)
# torch_sdpa.py for PyTorch's attention on the same shapes.
#   usage: tools/cuda-check/run.sh [OUTDIR]     (default out/cuda-check)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-out/cuda-check}
CUDA=${CUDA_HOME:-/usr/local/cuda}
ARCH=${FRT_CUDA_ARCH:-90}
B=$OUT/build
mkdir -p "$B"
export PATH=$CUDA/bin:$PATH
INC="-Iinclude -Ilib -Ikernels -Ikernels/cpu -Ikernels/cuda -I$CUDA/include"
CFLAGS="-O2 -std=gnu11 -D_GNU_SOURCE -DFRT_HAVE_CUDA=1 -Wall -Wextra -Wno-unused-parameter -pthread"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
nvcc --version | tail -1

objs=()
pids=()
for f in lib/*.c kernels/cpu/*.c kernels/cuda/*.c; do
    case $f in lib/config.c | lib/safetensors.c | lib/tokenizer_load.c) continue ;; esac
    isa=""
    case $f in *_avx512.c) isa="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mavx512vnni -mfma -mf16c -mavx2" ;;
               *_avx2.c) isa="-mavx2 -mfma -mf16c" ;; esac
    o=$B/$(echo "$f" | tr / _).o
    gcc $CFLAGS $isa $INC -c "$f" -o "$o" &
    pids+=($!)
    objs+=("$o")
done
for f in kernels/cuda/*.cu; do
    o=$B/$(echo "$f" | tr / _).o
    nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode arch=compute_$ARCH,code=sm_$ARCH \
        -Xcompiler=-Wall,-Wextra $INC -c "$f" -o "$o" &
    pids+=($!)
    objs+=("$o")
done
for p in "${pids[@]}"; do wait "$p"; done
rm -f "$B/libfrt.a"
ar rcs "$B/libfrt.a" "${objs[@]}"
LIBS="-L$B -lfrt -L$CUDA/lib64 -lcublasLt -lcublas -lcudart -lstdc++ -lm -lpthread -ldl -lrt"
gcc $CFLAGS -Wno-format-zero-length -Itools/cuda-check $INC -Itests tests/test_cuda.c tests/testutil.c \
    tools/cuda-check/shim_main.c $LIBS -o "$B/test_cuda"
gcc $CFLAGS $INC tools/cuda-check/bench_cuda.c $LIBS -o "$B/bench_cuda"
echo "== build done"

status=0
echo "== test_cuda"
"$B/test_cuda" || status=1
if command -v compute-sanitizer > /dev/null; then
    echo "== test_cuda under compute-sanitizer (memcheck)"
    # API errors are not reported: create_reports_missing_device asks for a
    # device that does not exist on purpose.
    compute-sanitizer --error-exitcode 3 --report-api-errors no --leak-check full \
        "$B/test_cuda" || status=1
    echo "== attention tests under compute-sanitizer racecheck and synccheck"
    for tool in racecheck synccheck; do
        compute-sanitizer --tool $tool --error-exitcode 3 "$B/test_cuda" attention || status=1
    done
fi
echo "== bench_cuda"
"$B/bench_cuda" | tee "$OUT/bench_cuda.jsonl" || status=1
if python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2> /dev/null; then
    echo "== torch sdpa"
    python3 tools/cuda-check/torch_sdpa.py | tee "$OUT/torch_sdpa.jsonl" || status=1
fi
exit $status
