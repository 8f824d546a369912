#!/usr/bin/env bash
# Decode attention blocks-per-SM sweep (after run.sh has built OUT/build):
# rebuilds attention.cu with -DFRT_CUDA_DECODE_WAVES=W and times the decode
# rows of bench_cuda for each W.   usage: decode_sweep.sh OUTDIR W...
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$1
shift
B=$OUT/build
CUDA=${CUDA_HOME:-/usr/local/cuda}
INC="-Iinclude -Ilib -Ikernels -Ikernels/cpu -Ikernels/cuda -I$CUDA/include"
for w in "$@"; do
    mkdir -p "$B/w$w"
    cp "$B/libfrt.a" "$B/w$w/libfrt.a"
    nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode arch=compute_${FRT_CUDA_ARCH:-90},code=sm_${FRT_CUDA_ARCH:-90} \
        -DFRT_CUDA_DECODE_WAVES=$w $INC -c kernels/cuda/attention.cu -o "$B/w$w/kernels_cuda_attention.cu.o"
    ar rcs "$B/w$w/libfrt.a" "$B/w$w/kernels_cuda_attention.cu.o"
    gcc -O2 -std=gnu11 -D_GNU_SOURCE -pthread $INC tools/cuda-check/bench_cuda.c -L"$B/w$w" -lfrt \
        -L$CUDA/lib64 -lcublasLt -lcublas -lcudart -lstdc++ -lm -lpthread -ldl -lrt -o "$B/w$w/bench_cuda"
    echo "== waves $w"
    "$B/w$w/bench_cuda" decode
done
