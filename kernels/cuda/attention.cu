/* CUDA attention (ALGORITHMS.md section 3).
 *
 * Prefill: FlashAttention-2 forward. A block of 4 warps owns 64 query rows of
 * one head (16 rows per warp) and walks the key/value range in 64-key tiles
 * staged in shared memory. S = Q K^T and O += P V run on tensor cores through
 * WMMA (16x16x16, f16/bf16 in, f32 accumulate). WMMA's accumulator layout is
 * opaque, so S and the running O live in shared memory as f32, where each
 * pair of lanes owns one row for the online softmax (m, l in registers,
 * base-2 exponentials with the scale folded in). P is rounded to the input
 * dtype for the second product, as FlashAttention does.
 *
 * Decode: Flash-Decoding. Each block owns one (query row, head, KV chunk);
 * groups of d/8 lanes take one key each (8 elements per lane, 16-byte
 * loads), keep their own (m, l, O), merge them in shared memory and write
 * the chunk's (m, l, unnormalised O) to a workspace; a combine kernel
 * rescales the chunks to the global max and divides by the global sum. The
 * exact max is always tracked: FlashDecoding++'s unified max is a CPU
 * optimisation here and would give the same result.
 *
 * Templates: input dtype (half, bf16) x head dim (64, 128), for each of the
 * two kernels; that is all that is instantiated, to keep compile time down. */
#include <math.h>
#include <mma.h>
#include <string.h>

#include "common.cuh"

using namespace nvcuda;

namespace
{

/* Decode blocks per SM to aim for (each block 4 warps; see
 * frt_cuda_decode_splits). H100, f16 KV, 32 heads x d 128, one query row
 * (tools/cuda-check/decode_sweep.sh), GB/s over the device copy rate at
 * 4K / 16K / 64K keys: 2 -> 0.44 / 0.52 / 0.55, 4 -> 0.57 / 0.76 / 0.83,
 * 8 -> 0.51 / 0.66 / 0.73, 16 -> 0.51 / 0.72 / 0.84. */
#ifndef FRT_CUDA_DECODE_WAVES
#define FRT_CUDA_DECODE_WAVES 4
#endif

constexpr float LOG2E = 1.4426950408889634f;
constexpr int BM = 64, BN = 64, WARPS = 4, THREADS = WARPS * 32;

/* Kernel parameters: frt_cuda_attn_args with kv_len folded into nk. */
struct attn_kp {
    const void *q;
    int q_dt;
    int64_t q_st, q_sh;
    const void *k;
    int64_t k_st, k_sh;
    const void *v;
    int64_t v_st, v_sh;
    void *o;
    int o_dt;
    int64_t o_st, o_sh;
    int64_t nq, nk, group;
    float scale_log2;
    bool causal;
    int64_t q_pos0;
    const float *mask;
    int64_t mask_stride;
    bool vec; /* K/V rows are 16-byte aligned: vector loads */
};

/* Keys query qi may see: [0, row_end). */
__device__ __forceinline__ int64_t row_end_of(const attn_kp &p, int64_t qi)
{
    if (qi >= p.nq) return 0;
    int64_t e = p.nk;
    if (p.causal) e = min(e, p.q_pos0 + qi + 1);
    return e < 0 ? 0 : e;
}

template <typename T> __device__ __forceinline__ void load8(const T *src, bool vec, float out[8])
{
    if (vec) {
        uint4 u = *reinterpret_cast<const uint4 *>(src);
        T t[8];
        memcpy(t, &u, sizeof u);
#pragma unroll
        for (int i = 0; i < 8; i++) out[i] = frt_to_f32(t[i]);
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) out[i] = frt_to_f32(src[i]);
    }
}

/* One 8-element chunk of a K or V row as raw bits; rows past `valid` are zero
 * (garbage there would turn 0 * garbage into NaN in P V). */
template <typename T>
__device__ __forceinline__ uint4 chunk8(const T *src, int64_t row_stride, int r, int cc, int valid,
                                        bool vec)
{
    if (r >= valid) return make_uint4(0, 0, 0, 0);
    const T *e = src + r * row_stride + cc;
    if (vec) return *reinterpret_cast<const uint4 *>(e);
    T t[8];
#pragma unroll
    for (int i = 0; i < 8; i++) t[i] = e[i];
    uint4 u;
    memcpy(&u, t, sizeof u);
    return u;
}

/* The K and V tiles (BN x D each) from global rows into shared memory with
 * leading dim D + 8. Every load is issued before the first store, so the
 * block waits for global memory once per tile rather than once per 2 KB
 * (H100, f16, d 128, 16K keys: 47.6 -> 60.0 TFLOP/s; PyTorch's SDPA: 610,
 * tools/cuda-check/run.sh). What is left is the design: S and O go through
 * shared memory as f32 every tile because WMMA's accumulator layout is
 * opaque; an mma.sync kernel that keeps them in registers is the next step. */
template <typename T, int D>
__device__ __forceinline__ void load_kv(T *ks, T *vs, const T *k, int64_t k_st, const T *v,
                                        int64_t v_st, int valid, bool vec)
{
    constexpr int LD = D + 8, CH = D / 8, ITER = BN * CH / THREADS;
    static_assert(BN * CH % THREADS == 0, "tile chunks must divide among the threads");
    uint4 kb[ITER], vb[ITER];
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        int c = threadIdx.x + it * THREADS, r = c / CH, cc = (c % CH) * 8;
        kb[it] = chunk8(k, k_st, r, cc, valid, vec);
        vb[it] = chunk8(v, v_st, r, cc, valid, vec);
    }
#pragma unroll
    for (int it = 0; it < ITER; it++) {
        int c = threadIdx.x + it * THREADS, r = c / CH, cc = (c % CH) * 8;
        *reinterpret_cast<uint4 *>(ks + r * LD + cc) = kb[it];
        *reinterpret_cast<uint4 *>(vs + r * LD + cc) = vb[it];
    }
}

constexpr size_t flash_smem(int d)
{
    return 2 * (size_t)BN * (d + 8) * 2 + (size_t)BM * (BN + 4) * 4 + (size_t)BM * (BN + 8) * 2 +
           (size_t)BM * (d + 4) * 4;
}

template <typename T, int D> __global__ void __launch_bounds__(THREADS) flash_kernel(attn_kp p)
{
    constexpr int LDK = D + 8, LDS = BN + 4, LDP = BN + 8, LDO = D + 4;
    /* Every region's size is a multiple of 32 bytes and every WMMA pointer
     * below sits on a 16-row / 16-column boundary: the 256-bit alignment
     * WMMA loads and stores need. */
    extern __shared__ __align__(128) unsigned char smem[];
    T *Ks = reinterpret_cast<T *>(smem);
    T *Vs = Ks + BN * LDK;
    float *Ss = reinterpret_cast<float *>(Vs + BN * LDK);
    T *Ps = reinterpret_cast<T *>(Ss + BM * LDS);
    float *Os = reinterpret_cast<float *>(Ps + BM * LDP);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t q0 = (int64_t)blockIdx.x * BM;
    const int64_t head = blockIdx.y, kvh = head / p.group;

    /* Q tile, converted to T, staged through the K buffer into registers. */
    for (int i = threadIdx.x; i < BM * D; i += THREADS) {
        int r = i / D, c = i % D;
        int64_t qi = q0 + r;
        float x = qi < p.nq ? frt_ld(p.q, p.q_dt, qi * p.q_st + head * p.q_sh + c) : 0.0f;
        Ks[r * LDK + c] = frt_from_f32<T>(x);
    }
    for (int i = threadIdx.x; i < BM * LDO; i += THREADS) Os[i] = 0.0f;
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qf[D / 16];
#pragma unroll
    for (int kt = 0; kt < D / 16; kt++)
        wmma::load_matrix_sync(qf[kt], Ks + warp * 16 * LDK + kt * 16, LDK);
    __syncthreads();

    /* This lane's row (shared with lane ^ 1, which takes the other half). */
    const int r = lane >> 1, hs = lane & 1;
    const int64_t qi = q0 + warp * 16 + r;
    const int64_t row_end = row_end_of(p, qi);
    float *Sw = Ss + warp * 16 * LDS, *Ow = Os + warp * 16 * LDO;
    T *Pw = Ps + warp * 16 * LDP;
    /* Tiles wholly above the diagonal for every row of the block are skipped. */
    const int64_t kend = row_end_of(p, min(q0 + BM, p.nq) - 1);
    const T *kb = static_cast<const T *>(p.k) + kvh * p.k_sh;
    const T *vb = static_cast<const T *>(p.v) + kvh * p.v_sh;

    float m = -INFINITY, l = 0.0f;
    for (int64_t j0 = 0; j0 < kend; j0 += BN) {
        int valid = (int)min((int64_t)BN, kend - j0);
        load_kv<T, D>(Ks, Vs, kb + j0 * p.k_st, p.k_st, vb + j0 * p.v_st, p.v_st, valid, p.vec);
        __syncthreads();

#pragma unroll
        for (int nt = 0; nt < BN / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kt = 0; kt < D / 16; kt++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + nt * 16 * LDK + kt * 16, LDK);
                wmma::mma_sync(acc, qf[kt], kf, acc);
            }
            wmma::store_matrix_sync(Sw + nt * 16, acc, LDS, wmma::mem_row_major);
        }
        __syncwarp();

        const float *srow = Sw + r * LDS + hs * 32;
        float s[32], tmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            int64_t j = j0 + hs * 32 + c;
            float x = -INFINITY;
            if (j < row_end) {
                x = srow[c] * p.scale_log2;
                if (p.mask) x += p.mask[qi * p.mask_stride + j] * LOG2E;
            }
            s[c] = x;
            tmax = fmaxf(tmax, x);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        float m_new = fmaxf(m, tmax);
        /* Nothing visible yet: keep P = 0 rather than exp(-inf - -inf). */
        float base = m_new == -INFINITY ? 0.0f : m_new;
        float alpha = exp2f(m - base), rs = 0.0f;
        T *prow = Pw + r * LDP + hs * 32;
#pragma unroll
        for (int c = 0; c < 32; c++) {
            T pt = frt_from_f32<T>(exp2f(s[c] - base));
            prow[c] = pt;
            /* Sum what P V will actually multiply, so numerator and
             * denominator see the same rounding. */
            rs += frt_to_f32(pt);
        }
        rs += __shfl_xor_sync(0xffffffffu, rs, 1);
        l = l * alpha + rs;
        m = m_new;
        float *orow = Ow + r * LDO + hs * (D / 2);
#pragma unroll 8
        for (int c = 0; c < D / 2; c++) orow[c] *= alpha;
        __syncwarp();

#pragma unroll
        for (int nt = 0; nt < D / 16; nt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, Ow + nt * 16, LDO, wmma::mem_row_major);
#pragma unroll
            for (int kt = 0; kt < BN / 16; kt++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, Pw + kt * 16, LDP);
                wmma::load_matrix_sync(vf, Vs + kt * 16 * LDK + nt * 16, LDK);
                wmma::mma_sync(acc, pf, vf, acc);
            }
            wmma::store_matrix_sync(Ow + nt * 16, acc, LDO, wmma::mem_row_major);
        }
        __syncthreads();
    }
    __syncwarp();

    if (qi < p.nq) {
        /* A row that sees no key at all (kv_len 0, all -inf mask) is 0. */
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const float *orow = Ow + r * LDO + hs * (D / 2);
        int64_t ob = qi * p.o_st + head * p.o_sh + hs * (D / 2);
        for (int c = 0; c < D / 2; c++) frt_st(p.o, p.o_dt, ob + c, orow[c] * inv);
    }
}

template <typename T, int D>
__global__ void __launch_bounds__(THREADS) decode_kernel(attn_kp p, int64_t chunk, float *ws)
{
    constexpr int LPK = D / 8, SLOTS = WARPS * (32 / LPK);
    __shared__ float sm[SLOTS], sl[SLOTS], so[SLOTS][D];

    const int lane = threadIdx.x & 31, sub = lane % LPK;
    const int slot = (threadIdx.x >> 5) * (32 / LPK) + lane / LPK;
    const int64_t split = blockIdx.x, head = blockIdx.y, qi = blockIdx.z;
    const int64_t kvh = head / p.group;
    const int64_t c0 = split * chunk, c1 = min(c0 + chunk, row_end_of(p, qi));

    float q[8], acc[8];
    for (int i = 0; i < 8; i++) {
        q[i] = frt_ld(p.q, p.q_dt, qi * p.q_st + head * p.q_sh + sub * 8 + i) * p.scale_log2;
        acc[i] = 0.0f;
    }
    const T *kb = static_cast<const T *>(p.k) + kvh * p.k_sh + sub * 8;
    const T *vb = static_cast<const T *>(p.v) + kvh * p.v_sh + sub * 8;
    float m = -INFINITY, l = 0.0f;
    /* UNROLL keys per slot per step, their K and V rows all loaded before
     * any is used, so each lane keeps 2 * UNROLL 16-byte loads in flight
     * (one key at a time, V loaded after K's dot, left HBM two thirds idle).
     * The trip count is the same for the whole warp (the shuffles need every
     * lane); slots past the chunk's end compute a dummy dot and drop it. */
    constexpr int UNROLL = 2;
    for (int64_t jb = c0; jb < c1; jb += UNROLL * SLOTS) {
        float kv[UNROLL][8], vv[UNROLL][8], dot[UNROLL];
        bool ok[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int64_t j = jb + u * SLOTS + slot;
            ok[u] = j < c1;
            if (ok[u]) {
                load8<T>(kb + j * p.k_st, p.vec, kv[u]);
                load8<T>(vb + j * p.v_st, p.vec, vv[u]);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) kv[u][i] = vv[u][i] = 0.0f;
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            dot[u] = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) dot[u] += q[i] * kv[u][i];
#pragma unroll
            for (int o = LPK / 2; o > 0; o >>= 1)
                dot[u] += __shfl_xor_sync(0xffffffffu, dot[u], o);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int64_t j = jb + u * SLOTS + slot;
            float s = -INFINITY;
            if (ok[u]) s = p.mask ? dot[u] + p.mask[qi * p.mask_stride + j] * LOG2E : dot[u];
            if (s != -INFINITY) {
                float m_new = fmaxf(m, s), alpha = exp2f(m - m_new), pr = exp2f(s - m_new);
                l = l * alpha + pr;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[i] = acc[i] * alpha + pr * vv[u][i];
                m = m_new;
            }
        }
    }
    if (sub == 0) {
        sm[slot] = m;
        sl[slot] = l;
    }
    for (int i = 0; i < 8; i++) so[slot][sub * 8 + i] = acc[i];
    __syncthreads();

    if (threadIdx.x < D) {
        float mx = -INFINITY, lsum = 0.0f, o = 0.0f;
        for (int s = 0; s < SLOTS; s++) mx = fmaxf(mx, sm[s]);
        if (mx != -INFINITY) {
            for (int s = 0; s < SLOTS; s++) {
                float w = exp2f(sm[s] - mx);
                lsum += sl[s] * w;
                o += so[s][threadIdx.x] * w;
            }
        }
        float *out = ws + ((qi * gridDim.y + head) * gridDim.x + split) * (D + 2);
        out[2 + threadIdx.x] = o;
        if (threadIdx.x == 0) {
            out[0] = mx;
            out[1] = lsum;
        }
    }
}

/* One block of d threads per (head, query row). */
__global__ void combine_kernel(const float *ws, int nsplit, int d, void *o, int o_dt, int64_t o_st,
                               int64_t o_sh)
{
    const int64_t head = blockIdx.x, qi = blockIdx.y;
    const float *w = ws + (qi * gridDim.x + head) * nsplit * (d + 2);
    float mx = -INFINITY, lsum = 0.0f, acc = 0.0f;
    for (int s = 0; s < nsplit; s++) mx = fmaxf(mx, w[s * (d + 2)]);
    if (mx != -INFINITY) {
        for (int s = 0; s < nsplit; s++) {
            const float *c = w + s * (d + 2);
            float f = exp2f(c[0] - mx);
            lsum += c[1] * f;
            acc += c[2 + threadIdx.x] * f;
        }
    }
    frt_st(o, o_dt, qi * o_st + head * o_sh + threadIdx.x, lsum > 0.0f ? acc / lsum : 0.0f);
}

attn_kp make_params(const frt_cuda_attn_args *a)
{
    attn_kp p;
    p.q = a->q;
    p.q_dt = a->q_dt;
    p.q_st = a->q_st;
    p.q_sh = a->q_sh;
    p.k = a->k;
    p.k_st = a->k_st;
    p.k_sh = a->k_sh;
    p.v = a->v;
    p.v_st = a->v_st;
    p.v_sh = a->v_sh;
    p.o = a->o;
    p.o_dt = a->o_dt;
    p.o_st = a->o_st;
    p.o_sh = a->o_sh;
    p.nq = a->nq;
    p.nk = a->kv_len > 0 && a->kv_len < a->nk ? a->kv_len : a->nk;
    p.group = a->h / a->h_kv;
    p.scale_log2 = a->scale * LOG2E;
    p.causal = a->causal;
    p.q_pos0 = a->q_pos0;
    p.mask = a->mask;
    p.mask_stride = a->mask_stride;
    p.vec = ((uintptr_t)a->k % 16 == 0) && ((uintptr_t)a->v % 16 == 0) && a->k_st % 8 == 0 &&
            a->k_sh % 8 == 0 && a->v_st % 8 == 0 && a->v_sh % 8 == 0;
    return p;
}

/* Keys any query of the call may see. */
int64_t key_extent(const attn_kp &p)
{
    int64_t e = p.nk;
    if (p.causal) e = e < p.q_pos0 + p.nq ? e : p.q_pos0 + p.nq;
    return e < 0 ? 0 : e;
}

template <typename T, int D> cudaError_t launch_flash(const attn_kp &p, int64_t h, cudaStream_t s)
{
    dim3 grid((unsigned)((p.nq + BM - 1) / BM), (unsigned)h);
    flash_kernel<T, D><<<grid, THREADS, flash_smem(D), s>>>(p);
    return cudaGetLastError();
}

template <typename T, int D>
cudaError_t launch_decode(const attn_kp &p, int64_t h, int nsplit, int64_t chunk, float *ws,
                          cudaStream_t s)
{
    dim3 grid((unsigned)nsplit, (unsigned)h, (unsigned)p.nq);
    decode_kernel<T, D><<<grid, THREADS, 0, s>>>(p, chunk, ws);
    return cudaGetLastError();
}

template <typename T, int D> cudaError_t raise_smem()
{
    return cudaFuncSetAttribute(flash_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int)flash_smem(D));
}

} // namespace

extern "C" cudaError_t frt_cuda_attn_setup(void)
{
    cudaError_t e;
    if ((e = raise_smem<__half, 64>()) != cudaSuccess) return e;
    if ((e = raise_smem<__half, 128>()) != cudaSuccess) return e;
    if ((e = raise_smem<__nv_bfloat16, 64>()) != cudaSuccess) return e;
    return raise_smem<__nv_bfloat16, 128>();
}

extern "C" cudaError_t frt_cuda_flash_attn(const frt_cuda_attn_args *a, cudaStream_t stream)
{
    attn_kp p = make_params(a);
    bool bf = a->kv_dt == FRT_BF16;
    if (a->d == 64)
        return bf ? launch_flash<__nv_bfloat16, 64>(p, a->h, stream)
                  : launch_flash<__half, 64>(p, a->h, stream);
    return bf ? launch_flash<__nv_bfloat16, 128>(p, a->h, stream)
              : launch_flash<__half, 128>(p, a->h, stream);
}

extern "C" int frt_cuda_decode_splits(const frt_cuda_attn_args *a, int num_sms)
{
    /* FRT_CUDA_DECODE_WAVES blocks per SM, but no chunk under 128 keys: below that
     * the combine costs more than the parallelism gains. */
    int64_t keys = key_extent(make_params(a)), rows = a->nq * a->h;
    int64_t want = (FRT_CUDA_DECODE_WAVES * (int64_t)num_sms + rows - 1) / rows;
    int64_t most = (keys + 127) / 128;
    if (want > most) want = most;
    if (want > 256) want = 256;
    return want < 1 ? 1 : (int)want;
}

extern "C" size_t frt_cuda_decode_ws_floats(const frt_cuda_attn_args *a, int nsplit)
{
    return (size_t)a->nq * (size_t)a->h * (size_t)nsplit * (size_t)(a->d + 2);
}

extern "C" cudaError_t frt_cuda_decode_attn(const frt_cuda_attn_args *a, int nsplit, float *ws,
                                            cudaStream_t stream)
{
    attn_kp p = make_params(a);
    int64_t chunk = (key_extent(p) + nsplit - 1) / nsplit;
    bool bf = a->kv_dt == FRT_BF16;
    cudaError_t e;
    if (a->d == 64)
        e = bf ? launch_decode<__nv_bfloat16, 64>(p, a->h, nsplit, chunk, ws, stream)
               : launch_decode<__half, 64>(p, a->h, nsplit, chunk, ws, stream);
    else
        e = bf ? launch_decode<__nv_bfloat16, 128>(p, a->h, nsplit, chunk, ws, stream)
               : launch_decode<__half, 128>(p, a->h, nsplit, chunk, ws, stream);
    if (e != cudaSuccess) return e;
    dim3 grid((unsigned)a->h, (unsigned)a->nq);
    combine_kernel<<<grid, (unsigned)a->d, 0, stream>>>(ws, nsplit, (int)a->d, a->o, a->o_dt,
                                                        a->o_st, a->o_sh);
    return cudaGetLastError();
}
