/* libFuzzer: the STAR memory with a configuration and a stream of frames
 * taken from the input. The first 15 bytes are the configuration: mostly
 * small sizes, so that the clustering and the abstract update run, but a
 * flag turns one field into a raw 32-bit value, which only the check sees
 * (it must refuse or accept without overflowing). Up to 32 frames of
 * float32 features (the rest of the input, repeated), NaN and Inf included,
 * are each pushed and then read back as a snapshot whose token counts must
 * match frt_star_tokens_after. */
#include "fuzz_util.h"
#include "memory.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take_u8(reader *r)
{
    if (!r->n) return 0;
    r->n--;
    return *r->p++;
}

static uint32_t take_u32(reader *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)take_u8(r) << (8 * i);
    return v;
}

static const int divisors[] = {1, 2, 4, 8};

/* The raw-value path: any int in any field, the check alone. */
static void check_wild(reader *r)
{
    frt_star_config c;
    frt_star_config_default(&c, 1 + take_u8(r));
    int *fields[] = {&c.dim,   &c.p_spa, &c.p_tem,  &c.p_abs,  &c.n_spa,       &c.n_tem,
                     &c.n_abs, &c.n_ret, &c.n_buff, &c.hidden, &c.kmeans_iters};
    int nf = (int)(sizeof fields / sizeof *fields);
    for (int k = take_u8(r) % 4; k >= 0; k--) *fields[take_u8(r) % nf] = (int)take_u32(r);
    if (frt_star_config_check(&c) == FRT_OK) {
        int t = frt_star_tokens_after(&c, INT64_MAX);
        if (t < 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    uint8_t mode = take_u8(&r);
    if (mode & 0x80) {
        check_wild(&r);
        return 0;
    }
    frt_star_config c;
    frt_star_config_default(&c, 1 + take_u8(&r) % 16);
    c.p_spa = divisors[take_u8(&r) % 4];
    c.p_tem = divisors[take_u8(&r) % 4];
    c.p_abs = divisors[take_u8(&r) % 2]; /* the compat update is quadratic in p_abs^2 */
    c.n_spa = take_u8(&r) % 4;
    c.n_tem = take_u8(&r) % 8;
    c.n_abs = take_u8(&r) % 8;
    c.n_ret = take_u8(&r) % 5;
    c.n_buff = take_u8(&r) % 16;
    c.hidden = 1 + take_u8(&r) % 8;
    c.kmeans_iters = take_u8(&r) % 12;
    c.alpha = take_u8(&r) / 200.0; /* > 1 past 200: refused */
    c.kmeans_tol = (take_u8(&r) % 4) ? 1e-4 : 0;
    c.compat = mode & 1;
    c.seed = take_u8(&r);

    float qk[4 * 8 * 16];
    for (size_t i = 0; i < sizeof qk / sizeof *qk; i++) qk[i] = (float)((int)(i * 37 % 11) - 5) / 8;
    frt_star *m = NULL;
    if (frt_star_create(&c, qk, qk + 128, qk + 256, qk + 384, &m) != FRT_OK) return 0;

    const size_t fs = (size_t)c.p_spa * c.p_spa * c.dim;
    float *frame = malloc(fs * sizeof *frame);
    int max_tokens = frt_star_tokens_after(&c, INT64_MAX);
    float *copy = malloc(((size_t)max_tokens + 1) * c.dim * sizeof *copy);
    if (!frame || !copy) abort();
    /* Frames repeat the input's floats so a short input still makes a long
     * stream; the NaN/Inf bit patterns come straight from the bytes. */
    const float *src = (const float *)(const void *)r.p;
    size_t nsrc = r.n / sizeof(float);
    int frames = nsrc ? 1 + (int)(mode >> 1 & 0x1F) : 0;
    size_t at = 0;
    for (int f = 0; f < frames; f++) {
        for (size_t i = 0; i < fs; i++) {
            memcpy(&frame[i], (const uint8_t *)src + (at % nsrc) * sizeof(float), sizeof(float));
            at++;
        }
        if (frt_star_push(m, frame, f * 0.5) != FRT_OK) abort();
        const frt_star_snapshot *s = frt_star_acquire(m);
        if (s->n_tokens != frt_star_tokens_after(&c, f + 1) ||
            s->n_abstract + s->n_temporal + s->n_retrieved + s->n_spatial != s->n_tokens ||
            s->frames != f + 1 || s->n_ret_frames > c.n_ret)
            abort();
        for (int k = 0; k < s->n_ret_frames; k++)
            if (s->ret_index[k] < 0 || s->ret_index[k] > f) abort();
        frt_star_release(m, s);
        frt_star_snapshot info;
        if (frt_star_copy(m, copy, max_tokens, &info) != FRT_OK) abort();
        frt_star_state st;
        frt_star_inspect(m, &st);
        for (int k = 0; k < st.n_labels; k++)
            if (st.labels[k] < 0 || st.labels[k] >= st.n_clusters) abort();
    }
    free(copy);
    free(frame);
    frt_star_free(m);
    return 0;
}
