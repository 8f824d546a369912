/* mlpNx_gelu projector: Linear, then (GELU, Linear) N - 1 times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "projector.h"
#include "weights.h"

#define MAX_LINEARS 8

struct frt_projector {
    frt_backend *be;
    int n_lin;
    int64_t in_dim, out_dim, max_rows;
    frt_tensor w[MAX_LINEARS]; /* views [out, in] */
    frt_tensor b[MAX_LINEARS]; /* f32 [out] */
    float *h[2];               /* [max_rows, out_dim] ping-pong */
};

static frt_tensor mat(float *p, int64_t rows, int64_t cols)
{
    return frt_tensor_view(p, FRT_F32, 2, (int64_t[]){rows, cols});
}

/* "linear" -> 1, "mlp<N>x_gelu" -> N */
static frt_status parse_type(const char *t, int *n_lin)
{
    if (strcmp(t, "linear") == 0) {
        *n_lin = 1;
        return FRT_OK;
    }
    int n = 0, used = 0;
    if (sscanf(t, "mlp%dx_gelu%n", &n, &used) == 1 && t[used] == '\0' && n >= 1 &&
        n <= MAX_LINEARS) {
        *n_lin = n;
        return FRT_OK;
    }
    return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, "mm_projector_type", -1,
                        "projector type \"%s\" is not implemented (linear, mlp<N>x_gelu)", t);
}

static frt_status load(frt_projector *p, const frt_st *st, const frt_config *cfg,
                       const char *prefix)
{
    const char *type;
    FRT_TRY(frt_config_string(cfg, "mm_projector_type", "linear", &type));
    FRT_TRY(parse_type(type, &p->n_lin));
    FRT_TRY(frt_cfg_int_req(cfg, "", "mm_hidden_size", 1, 1 << 20, &p->in_dim));
    FRT_TRY(frt_cfg_int_req(cfg, "", "hidden_size", 1, 1 << 20, &p->out_dim));
    bool plain = strcmp(type, "linear") == 0;
    for (int i = 0; i < p->n_lin; i++) {
        int64_t in = i == 0 ? p->in_dim : p->out_dim;
        char name[256];
        /* nn.Sequential numbers the GELUs too: Linears sit at 0, 2, 4... */
        if (plain)
            snprintf(name, sizeof name, "%s", prefix);
        else
            snprintf(name, sizeof name, "%s%d.", prefix, 2 * i);
        FRT_TRY(frt_w_view(st, &p->w[i], 2, (int64_t[]){p->out_dim, in}, "%sweight", name));
        FRT_TRY(frt_w_f32(st, &p->b[i], 1, &p->out_dim, "%sbias", name));
    }
    for (int i = 0; i < 2; i++) {
        p->h[i] = frt_alloc((size_t)(p->max_rows * p->out_dim) * sizeof(float));
        if (!p->h[i]) return FRT_ERR_NOMEM;
    }
    return FRT_OK;
}

frt_status frt_projector_open(const frt_st *st, const frt_config *cfg, const char *prefix,
                              int64_t max_rows, frt_backend *be, frt_projector **out)
{
    if (!st || !cfg || !out || max_rows < 0)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_projector_open: bad argument");
    if (be && be != frt_backend_cpu())
        return frt_error(FRT_ERR_UNSUPPORTED,
                         "frt_projector_open: only the CPU backend is supported (weights "
                         "and glue steps live in host memory)");
    frt_projector *p = frt_calloc(1, sizeof *p);
    if (!p) return FRT_ERR_NOMEM;
    p->be = be ? be : frt_backend_cpu();
    p->max_rows = max_rows ? max_rows : 1024;
    frt_status s = load(p, st, cfg, prefix ? prefix : "model.mm_projector.");
    if (s != FRT_OK) {
        frt_projector_close(p);
        return s;
    }
    *out = p;
    return FRT_OK;
}

void frt_projector_close(frt_projector *p)
{
    if (!p) return;
    for (int i = 0; i < MAX_LINEARS; i++) frt_tensor_free(&p->b[i]);
    frt_free(p->h[0]);
    frt_free(p->h[1]);
    frt_free(p);
}

int64_t frt_projector_in_dim(const frt_projector *p)
{
    return p->in_dim;
}
int64_t frt_projector_out_dim(const frt_projector *p)
{
    return p->out_dim;
}

frt_status frt_projector_forward(frt_projector *p, const float *x, int64_t n, float *out)
{
    if (!p || !x || !out || n < 0)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_projector_forward: bad argument");
    for (int64_t r0 = 0; r0 < n; r0 += p->max_rows) {
        int64_t rows = n - r0 < p->max_rows ? n - r0 : p->max_rows;
        frt_tensor in = mat((float *)(x + r0 * p->in_dim), rows, p->in_dim);
        for (int i = 0; i < p->n_lin; i++) {
            bool last = i == p->n_lin - 1;
            frt_tensor y = mat(last ? out + r0 * p->out_dim : p->h[i % 2], rows, p->out_dim);
            FRT_TRY(frt_linear(p->be, &y, &in, &p->w[i], &p->b[i]));
            if (!last) FRT_TRY(frt_act_apply(p->be, &y, &y, FRT_ACT_GELU_ERF));
            in = y;
        }
    }
    return FRT_OK;
}

frt_status frt_grid_avg_pool(const float *x, int64_t grid, int64_t c, int64_t side, float *out)
{
    if (!x || !out || grid <= 0 || c <= 0 || side <= 0 || grid % side != 0)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "grid pooling: side %lld must divide the grid %lld (c %lld)",
                         (long long)side, (long long)grid, (long long)c);
    const int64_t k = grid / side;
    const float inv = 1.0f / (float)(k * k);
    for (int64_t oy = 0; oy < side; oy++)
        for (int64_t ox = 0; ox < side; ox++) {
            float *o = out + (oy * side + ox) * c;
            for (int64_t j = 0; j < c; j++) o[j] = 0.0f;
            for (int64_t ky = 0; ky < k; ky++)
                for (int64_t kx = 0; kx < k; kx++) {
                    const float *r = x + ((oy * k + ky) * grid + ox * k + kx) * c;
                    for (int64_t j = 0; j < c; j++) o[j] += r[j];
                }
            for (int64_t j = 0; j < c; j++) o[j] *= inv;
        }
    return FRT_OK;
}
