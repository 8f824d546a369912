/* Naive twins of ops.c: double precision, plain loops, the definitions the
 * tests trust. */
#include <math.h>
#include <stdbool.h>

#include "ops.h"

void frt_ref_add(float *y, const float *a, const float *b, int64_t n, int64_t bn)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + (double)b[i % bn]);
}

void frt_ref_mul(float *y, const float *a, const float *b, int64_t n, int64_t bn)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] * (double)b[i % bn]);
}

void frt_ref_scale(float *y, const float *x, float s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)((double)x[i] * s);
}

void frt_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps)
{
    for (int64_t r = 0; r < rows; r++, x += cols, y += cols) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < cols; i++) mean += x[i];
        mean /= (double)cols;
        for (int64_t i = 0; i < cols; i++) var += (x[i] - mean) * (x[i] - mean);
        var /= (double)cols; /* biased, as PyTorch */
        double rstd = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < cols; i++)
            y[i] = (float)((x[i] - mean) * rstd * w[i] + (b ? b[i] : 0.0));
    }
}

void frt_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps)
{
    for (int64_t r = 0; r < rows; r++, x += cols, y += cols) {
        double ms = 0;
        for (int64_t i = 0; i < cols; i++) ms += (double)x[i] * x[i];
        double rstd = 1.0 / sqrt(ms / (double)cols + eps);
        for (int64_t i = 0; i < cols; i++) y[i] = (float)(x[i] * rstd * w[i]);
    }
}

/* The sigmoid forms below are the textbook definitions rearranged only to
 * avoid cancellation (1 + tanh(u) = 2 sigmoid(2u), 1 + erf(-z) = erfc(z)),
 * so the twin stays exact in the tails it is compared on. */
static double act1(double x, frt_act kind)
{
    switch (kind) {
    case FRT_ACT_GELU_ERF: return 0.5 * x * erfc(-x / sqrt(2.0));
    case FRT_ACT_GELU_TANH: {
        double u = sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
        return x / (1.0 + exp(-2.0 * u));
    }
    case FRT_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    case FRT_ACT_SILU: return x / (1.0 + exp(-x));
    case FRT_ACT_MISH: return x * tanh(log1p(exp(x)));
    case FRT_ACT_RELU: return x > 0 ? x : 0.0;
    case FRT_ACT_COUNT: break;
    }
    return NAN;
}

void frt_ref_act(float *y, const float *x, int64_t n, frt_act kind)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)act1(x[i], kind);
}

void frt_ref_gate(float *y, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = (float)(tanh(a[i]) / (1.0 + exp(-(double)b[i])));
}

/* A row of -inf only gives zeros (see ops.c). */
void frt_ref_softmax(float *y, const float *x, int64_t rows, int64_t cols)
{
    for (int64_t r = 0; r < rows; r++, x += cols, y += cols) {
        double m = -INFINITY, s = 0;
        bool all_ninf = true;
        for (int64_t i = 0; i < cols; i++) {
            m = x[i] > m ? x[i] : m;
            all_ninf = all_ninf && x[i] == -INFINITY;
        }
        if (all_ninf) {
            for (int64_t i = 0; i < cols; i++) y[i] = 0.0f;
            continue;
        }
        for (int64_t i = 0; i < cols; i++) s += exp(x[i] - m);
        for (int64_t i = 0; i < cols; i++) y[i] = (float)(exp(x[i] - m) / s);
    }
}

void frt_ref_rope(float *x, int64_t T, int64_t H, int64_t d, int64_t st, int64_t sh, int64_t pos0,
                  float theta, float linear_scale)
{
    int64_t half = d / 2;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t h = 0; h < H; h++) {
            float *row = x + t * st + h * sh;
            for (int64_t i = 0; i < half; i++) {
                double angle =
                    (double)(pos0 + t) / linear_scale * pow(theta, -2.0 * (double)i / (double)d);
                double x1 = row[i], x2 = row[i + half];
                row[i] = (float)(x1 * cos(angle) - x2 * sin(angle));
                row[i + half] = (float)(x2 * cos(angle) + x1 * sin(angle));
            }
        }
    }
}

void frt_ref_conv1d(float *y, const float *x, const float *w, const float *b, int64_t cin,
                    int64_t tin, int64_t cout, int64_t k, int stride, int pad, int dil, int groups)
{
    int64_t tout = frt_conv1d_out_len(tin, k, stride, pad, dil);
    int64_t cin_g = cin / groups, cout_g = cout / groups;
    for (int64_t co = 0; co < cout; co++) {
        int64_t g = co / cout_g;
        for (int64_t t = 0; t < tout; t++) {
            double acc = b ? b[co] : 0.0;
            for (int64_t ci = 0; ci < cin_g; ci++) {
                for (int64_t kk = 0; kk < k; kk++) {
                    int64_t ti = t * stride + kk * dil - pad;
                    if (ti < 0 || ti >= tin) continue;
                    acc += (double)w[(co * cin_g + ci) * k + kk] * x[(g * cin_g + ci) * tin + ti];
                }
            }
            y[co * tout + t] = (float)acc;
        }
    }
}
