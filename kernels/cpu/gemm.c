/* CPU GEMM driver: argument checks, the choice between the weight-streaming
 * small-M path and the packed GEMM, blocking, threads, packing scratch, and
 * the scalar fallback kernels.
 *
 * Packed path, per block of at most MB rows of x: (1) the workers pack
 * those rows for all of K, in k blocks of KU units, into one shared buffer;
 * (2) each worker takes its own range of y's columns (or of its rows, when
 * there are fewer NR panels than workers) and, for each NB-column block and
 * k block, packs that piece of w into its own L2-sized buffer and sweeps the
 * MR x NR tiles with the micro-kernel, x micro-panel outer (it stays in L1)
 * and w panels inner (from L2). Each weight is packed once per row block,
 * never per tile, and the y block stays in L2 across the k blocks. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu.h"
#include "error.h"
#include "gemm.h"
#include "gemm_impl.h"

/* Up to this many rows the weights are streamed once (GEMV-like) instead of
 * packed: packing costs a pass over w that only pays off with enough rows.
 * Measured with 4096x4096 weights from DRAM, 2 threads, GB/s of weights
 * streamed vs packed: f32 43/17 at M = 4, 29/13 at 8, 11/6 at 16, even
 * from 24; bf16 43/17 at 4, 22/13 at 8, 15/14 at 10, even at 16. */
#define GEMV_MAX_M_F32  16
#define GEMV_MAX_M_BF16 8

/* Block sizes, measured on the build machine (AMD EPYC, 1 MiB L2) with the
 * 6x64 kernel: KU units of k (f32 or bf16 pair) per block; NB weight rows
 * per packed w block (KU * NB * 4 = 192 KiB, in L2); at most MB rows of x
 * per pass, so that the y block (MB * NB floats) stays in L2 across the k
 * blocks too (at M = 681, 768 -> 384 rows took 0.63 -> 0.83 of peak before
 * the micro-kernel prefetched its y tile; with the prefetch, 384..768 are
 * alike). */
#define KU 256
#define MB 512
#define NB 192

/* ---- per-thread packing scratch, allocated once and grown on demand ------ *
 * These buffers live as long as their thread, not as long as any object, so
 * they come from the C allocator rather than frt_alloc: whether a call
 * allocates depends on what the thread ran before, and counting them would
 * make the allocation sequence of an open (tests/test_faults.c sweeps it)
 * depend on history. Failure is still reported (FRT_ERR_NOMEM). */

typedef struct {
    void *buf[2];
    size_t cap[2];
} gemm_scratch;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local gemm_scratch *tl_scratch;

static long g_scratch_fail; /* tests: see frt_gemm_scratch_fail_after */

void frt_gemm_scratch_fail_after(long n) { __atomic_store_n(&g_scratch_fail, n, __ATOMIC_SEQ_CST); }

static bool scratch_injected_failure(void)
{
    long n = __atomic_load_n(&g_scratch_fail, __ATOMIC_SEQ_CST);
    return n > 0 && __atomic_sub_fetch(&g_scratch_fail, 1, __ATOMIC_SEQ_CST) == 0;
}

static void scratch_release(void *p)
{
    gemm_scratch *s = p;
    free(s->buf[0]);
    free(s->buf[1]);
    free(s);
}

static void scratch_key_init(void)
{
    pthread_key_create(&g_scratch_key, scratch_release);
}

/* Buffer `which` of this thread with at least `size` bytes, or NULL. */
static void *scratch_get(int which, size_t size)
{
    if (!tl_scratch) {
        tl_scratch = calloc(1, sizeof *tl_scratch);
        if (!tl_scratch) return NULL;
        pthread_setspecific(g_scratch_key, tl_scratch);
    }
    gemm_scratch *s = tl_scratch;
    if (s->cap[which] < size) {
        free(s->buf[which]);
        void *p = NULL;
        size_t rounded = (size + 63) & ~(size_t)63;
        if (rounded < size || scratch_injected_failure() || posix_memalign(&p, 64, rounded) != 0)
            p = NULL;
        s->buf[which] = p;
        s->cap[which] = p ? size : 0;
    }
    return s->buf[which];
}

/* ---- scalar fallback kernels --------------------------------------------- */

#define SC_MR 4
#define SC_NR 8

static float w_at(const void *w, frt_dtype wtype, int64_t i)
{
    switch (wtype) {
    case FRT_F16: return frt_f16_to_f32(((const uint16_t *)w)[i]);
    case FRT_BF16: return frt_bf16_to_f32(((const uint16_t *)w)[i]);
    default: return ((const float *)w)[i];
    }
}

static void sc_pack_w(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0, int64_t nn,
                      int64_t k0, int64_t kc, void *dst)
{
    float *out = dst;
    for (int64_t p = 0; p < nn; p += SC_NR, out += kc * SC_NR)
        for (int j = 0; j < SC_NR; j++) {
            int64_t n = p + j;
            for (int64_t k = 0; k < kc; k++)
                out[k * SC_NR + j] = n < nn ? w_at(w, wtype, (n0 + n) * ldw + k0 + k) : 0.0f;
        }
}

static void sc_pack_x(const float *x, int64_t ldx, int64_t mm, int64_t k0, int64_t kc, void *dst)
{
    float *out = dst;
    for (int64_t p = 0; p < mm; p += SC_MR, out += kc * SC_MR)
        for (int i = 0; i < SC_MR; i++)
            for (int64_t k = 0; k < kc; k++)
                out[k * SC_MR + i] = p + i < mm ? x[(p + i) * ldx + k0 + k] : 0.0f;
}

static void sc_ukr(int64_t kc, const void *xpv, const void *wpv, float *y, int64_t ldy, int mr,
                   int nr, const float *bias, bool load_y)
{
    const float *xp = xpv, *wp = wpv;
    float acc[SC_MR][SC_NR] = {{0}};
    for (int64_t k = 0; k < kc; k++, xp += SC_MR, wp += SC_NR)
        for (int i = 0; i < SC_MR; i++)
            for (int j = 0; j < SC_NR; j++) acc[i][j] += xp[i] * wp[j];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float v = acc[i][j] + (bias ? bias[j] : 0.0f);
            y[i * ldy + j] = load_y ? y[i * ldy + j] + v : v;
        }
}

static const frt_gemm_kernel k_scalar = {"scalar", SC_MR, SC_NR, 1, sc_pack_w, sc_pack_x, sc_ukr};

static void sc_gemv(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs)
{
    (void)xs;
    size_t esz = frt_dtype_size(a->wtype);
    for (int64_t n = n0; n < n1; n++) {
        const void *wr = (const char *)a->w + n * a->ldw * esz;
        for (int64_t i = 0; i < a->M; i++) {
            const float *xr = a->x + i * a->ldx;
            float s = 0.0f;
            for (int64_t k = 0; k < a->K; k++) s += xr[k] * w_at(wr, a->wtype, k);
            if (a->bias) s += a->bias[n];
            float *y = a->y + i * a->ldy + n;
            *y = a->accumulate ? *y + s : s;
        }
    }
}

/* ---- the two paths, threaded --------------------------------------------- */

typedef struct {
    const frt_gemm_args *a;
    const frt_gemm_kernel *kr;
    frt_gemm_gemv_fn gemv;
    size_t gemv_scratch; /* bytes of per-thread scratch gemv needs */
    int64_t m0, mc;      /* the block of rows of x packed in xbuf */
    char *xbuf;          /* [k block][MR panel][units][MR], shared by the workers */
    atomic_bool nomem;
} gemm_job;

static void gemv_task(void *arg, int ith, int nth)
{
    gemm_job *j = arg;
    /* groups of 4 rows keep the vector path's row blocking whole */
    long b, e, groups = (long)((j->a->N + 3) / 4);
    frt_split_range(groups, ith, nth, &b, &e);
    int64_t n0 = b * 4, n1 = e * 4 < j->a->N ? e * 4 : j->a->N;
    if (n0 >= n1) return;
    float *xs = NULL;
    if (j->gemv_scratch && !(xs = scratch_get(0, j->gemv_scratch))) {
        atomic_store(&j->nomem, true);
        return;
    }
    j->gemv(j->a, n0, n1, xs);
}

static int64_t div_up(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Bytes of the packed x panels of one k block starting at k0. */
static size_t xblock_bytes(const gemm_job *j, int64_t npanels, int64_t k0)
{
    int64_t kc = j->a->K - k0 < KU * j->kr->kpair ? j->a->K - k0 : KU * j->kr->kpair;
    return (size_t)(div_up(kc, j->kr->kpair) * j->kr->mr * npanels) * 4;
}

/* Phase 1: the workers pack disjoint MR panels of the row block, all of K. */
static void pack_x_task(void *arg, int ith, int nth)
{
    gemm_job *j = arg;
    const frt_gemm_args *a = j->a;
    const int MR = j->kr->mr;
    int64_t kc_full = KU * j->kr->kpair, npanels = div_up(j->mc, MR);
    long b, e;
    frt_split_range((long)npanels, ith, nth, &b, &e);
    char *blk = j->xbuf;
    for (int64_t k0 = 0; k0 < a->K; k0 += kc_full) {
        int64_t kc = a->K - k0 < kc_full ? a->K - k0 : kc_full;
        size_t pbytes = xblock_bytes(j, 1, k0);
        for (int64_t p = b; p < e; p++) {
            int64_t r0 = j->m0 + p * MR, rows = j->mc - p * MR < MR ? j->mc - p * MR : MR;
            j->kr->pack_x(a->x + r0 * a->ldx, a->ldx, rows, k0, kc, blk + p * pbytes);
        }
        blk += xblock_bytes(j, npanels, k0);
    }
}

/* Phase 2: y rows of MR panels [p0, p1) of the row block x cols [nb, ne). */
static bool gemm_block(gemm_job *j, int64_t p0, int64_t p1, int64_t nb, int64_t ne)
{
    const frt_gemm_args *a = j->a;
    const frt_gemm_kernel *kr = j->kr;
    const int MR = kr->mr, NR = kr->nr;
    int64_t kc_full = KU * kr->kpair, npanels = div_up(j->mc, MR);
    int64_t ncmax = NB < ne - nb ? NB : ne - nb;
    char *wbuf = scratch_get(1, (size_t)(KU * div_up(ncmax, NR) * NR) * 4);
    if (!wbuf) return false;
    for (int64_t n0 = nb; n0 < ne; n0 += NB) {
        int64_t nc = ne - n0 < NB ? ne - n0 : NB;
        const char *xblk = j->xbuf;
        for (int64_t k0 = 0; k0 < a->K; k0 += kc_full) {
            int64_t kc = a->K - k0 < kc_full ? a->K - k0 : kc_full;
            size_t xstride = xblock_bytes(j, 1, k0), wstride = xstride / MR * NR;
            bool load_y = k0 > 0 || a->accumulate;
            const float *bias = a->bias && k0 == 0 ? a->bias + n0 : NULL;
            kr->pack_w(a->w, a->wtype, a->ldw, n0, nc, k0, kc, wbuf);
            float *y = a->y + j->m0 * a->ldy + n0;
            for (int64_t p = p0; p < p1; p++) {
                int64_t i = p * MR;
                int mr = (int)(j->mc - i < MR ? j->mc - i : MR);
                for (int64_t jj = 0; jj < nc; jj += NR)
                    kr->ukr(kc, xblk + p * xstride, wbuf + jj / NR * wstride, y + i * a->ldy + jj,
                            a->ldy, mr, (int)(nc - jj < NR ? nc - jj : NR), bias ? bias + jj : NULL,
                            load_y);
            }
            xblk += xblock_bytes(j, npanels, k0);
        }
    }
    return true;
}

static void gemm_task(void *arg, int ith, int nth)
{
    gemm_job *j = arg;
    const frt_gemm_args *a = j->a;
    int64_t NR = j->kr->nr, npanels = div_up(j->mc, j->kr->mr);
    long panels = (long)div_up(a->N, NR), b, e;
    int64_t p0 = 0, p1 = npanels, nb = 0, ne = a->N;
    if (panels >= nth) {
        frt_split_range(panels, ith, nth, &b, &e);
        nb = b * NR;
        ne = e * NR < a->N ? e * NR : a->N;
    } else {
        frt_split_range((long)npanels, ith, nth, &b, &e);
        p0 = b;
        p1 = e;
    }
    if (p0 >= p1 || nb >= ne) return;
    if (!gemm_block(j, p0, p1, nb, ne)) atomic_store(&j->nomem, true);
}

/* ---- entry points -------------------------------------------------------- */

static frt_status check_args(const frt_gemm_args *a)
{
    if (!a) return frt_error(FRT_ERR_INVALID_ARG, "gemm: NULL arguments");
    if (a->M < 0 || a->N < 0 || a->K < 0)
        return frt_error(FRT_ERR_INVALID_ARG, "gemm: negative size M=%lld N=%lld K=%lld",
                         (long long)a->M, (long long)a->N, (long long)a->K);
    if (a->wtype != FRT_F32 && a->wtype != FRT_F16 && a->wtype != FRT_BF16)
        return frt_error(FRT_ERR_INVALID_ARG, "gemm: weight dtype %s not supported",
                         frt_dtype_name(a->wtype));
    if ((a->M > 0 && a->ldx < a->K) || (a->N > 0 && a->ldw < a->K) || (a->M > 0 && a->ldy < a->N))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "gemm: leading dimension too small (ldx=%lld ldw=%lld ldy=%lld for "
                         "M=%lld N=%lld K=%lld)",
                         (long long)a->ldx, (long long)a->ldw, (long long)a->ldy, (long long)a->M,
                         (long long)a->N, (long long)a->K);
    bool mk = a->M > 0 && a->K > 0, nk = a->N > 0 && a->K > 0, mn = a->M > 0 && a->N > 0;
    if ((mk && !a->x) || (nk && !a->w) || (mn && !a->y))
        return frt_error(FRT_ERR_INVALID_ARG, "gemm: NULL x, w or y with a non-zero size");
    return FRT_OK;
}

/* K == 0: the product is empty, y = (y or 0) + bias. */
static void gemm_no_k(const frt_gemm_args *a)
{
    for (int64_t i = 0; i < a->M; i++) {
        float *y = a->y + i * a->ldy;
        for (int64_t n = 0; n < a->N; n++) {
            float b = a->bias ? a->bias[n] : 0.0f;
            y[n] = a->accumulate ? y[n] + b : b;
        }
    }
}

frt_status frt_cpu_gemm(const frt_gemm_args *a, frt_pool *pool)
{
    FRT_TRY(check_args(a));
    if (a->M == 0 || a->N == 0) return FRT_OK;
    if (a->K == 0) {
        gemm_no_k(a);
        return FRT_OK;
    }
    pthread_once(&g_scratch_once, scratch_key_init);
    const frt_cpu_info *cpu = frt_cpu();
    gemm_job job = {.a = a};
    atomic_init(&job.nomem, false);
    if (a->M <= (a->wtype == FRT_BF16 ? GEMV_MAX_M_BF16 : GEMV_MAX_M_F32)) {
        job.gemv = cpu->avx512 ? frt_gemm_gemv_avx512 : cpu->avx2 ? frt_gemm_gemv_avx2 : sc_gemv;
        job.gemv_scratch = cpu->avx512 ? frt_gemm_gemv_scratch_avx512(a) : 0;
        if (pool && (double)a->N * (double)a->K * (double)a->M >= 65536)
            frt_pool_run(pool, gemv_task, &job);
        else
            gemv_task(&job, 0, 1);
        if (atomic_load(&job.nomem))
            return frt_error(FRT_ERR_NOMEM, "gemm: no memory for the gemv scratch");
        return FRT_OK;
    }
    job.kr = cpu->avx512 ? frt_gemm_kernel_avx512(a->wtype, cpu->avx512bf16)
             : cpu->avx2 ? frt_gemm_kernel_avx2(a->wtype)
                         : &k_scalar;
    /* equal row blocks of whole MR panels */
    int64_t MR = job.kr->mr, step = div_up(div_up(a->M, div_up(a->M, MB)), MR) * MR;
    int64_t kpair = job.kr->kpair;
    /* all of K for `step` rows; each k block rounds its units up */
    size_t xbytes = (size_t)((div_up(a->K, kpair) + div_up(a->K, KU * kpair)) * step) * 4;
    job.xbuf = scratch_get(0, xbytes);
    if (!job.xbuf) return frt_error(FRT_ERR_NOMEM, "gemm: no memory for the packing buffers");
    /* below ~1 MFLOP a wake-up of the workers costs more than it saves */
    bool threads = pool && (double)a->M * (double)a->N * (double)a->K >= (1 << 20);
    for (job.m0 = 0; job.m0 < a->M; job.m0 += step) {
        job.mc = a->M - job.m0 < step ? a->M - job.m0 : step;
        if (threads) {
            frt_pool_run(pool, pack_x_task, &job);
            frt_pool_run(pool, gemm_task, &job);
        } else {
            pack_x_task(&job, 0, 1);
            gemm_task(&job, 0, 1);
        }
    }
    if (atomic_load(&job.nomem))
        return frt_error(FRT_ERR_NOMEM, "gemm: no memory for the packing buffers");
    return FRT_OK;
}

void frt_ref_gemm(const frt_gemm_args *a)
{
    size_t esz = frt_dtype_size(a->wtype);
    for (int64_t i = 0; i < a->M; i++)
        for (int64_t n = 0; n < a->N; n++) {
            const void *wr = (const char *)a->w + n * a->ldw * esz;
            double s = 0.0;
            for (int64_t k = 0; k < a->K; k++)
                s += (double)a->x[i * a->ldx + k] * (double)w_at(wr, a->wtype, k);
            if (a->bias) s += a->bias[n];
            float *y = a->y + i * a->ldy + n;
            *y = a->accumulate ? (float)(*y + s) : (float)s;
        }
}
