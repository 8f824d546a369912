/* The CPU backend: op validation (clear errors naming the mismatch) and
 * that each op reaches its kernel (compared with the naive twins). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "gemm.h"
#include "ops.h"
#include "testutil.h"

static frt_tensor mk(int ndim, const int64_t *shape, tu_rng *r)
{
    frt_tensor t;
    cr_assert_eq(frt_tensor_alloc(&t, FRT_F32, ndim, shape), FRT_OK);
    if (r) tu_fill_uniform(r, t.data, (size_t)frt_tensor_numel(&t), -1, 1);
    return t;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

Test(backend, linear_matches_reference_and_validates)
{
    frt_backend *be = frt_backend_cpu();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_tensor x = mk(2, SHAPE(5, 33), &r), w = mk(2, SHAPE(17, 33), &r), b = mk(1, SHAPE(17), &r);
    frt_tensor y = mk(2, SHAPE(5, 17), NULL), ref = mk(2, SHAPE(5, 17), NULL);
    tu_poison(y.data, 5 * 17);
    cr_assert_eq(frt_linear(be, &y, &x, &w, &b), FRT_OK, "%s", frt_last_error());
    frt_gemm_args a = {.M = 5, .N = 17, .K = 33, .x = x.data, .ldx = 33, .w = w.data,
                       .wtype = FRT_F32, .ldw = 33, .bias = b.data, .y = ref.data, .ldy = 17};
    frt_ref_gemm(&a);
    /* dots of 33 O(1) products may cancel: absolute error (floor 1) */
    cr_assert_leq(tu_max_rel_err(y.data, ref.data, 5 * 17, 1.0), 1e-5);

    frt_tensor wrong = mk(2, SHAPE(17, 32), &r);
    cr_assert_eq(frt_linear(be, &y, &x, &wrong, &b), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "features"), "%s", frt_last_error());
    frt_tensor ybad = mk(2, SHAPE(5, 16), NULL);
    cr_assert_eq(frt_linear(be, &ybad, &x, &w, NULL), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "output"), "%s", frt_last_error());
    frt_tensor bbad = mk(1, SHAPE(16), &r);
    cr_assert_eq(frt_linear(be, &y, &x, &w, &bbad), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "bias"), "%s", frt_last_error());
    cr_assert_eq(frt_linear(NULL, &y, &x, &w, &b), FRT_ERR_INVALID_ARG);
    frt_tensor *all[] = {&x, &w, &b, &y, &ref, &wrong, &ybad, &bbad};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) frt_tensor_free(all[i]);
}

Test(backend, row_ops_match_reference)
{
    frt_backend *be = frt_backend_cpu();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    enum { R = 7, C = 45 };
    frt_tensor x = mk(2, SHAPE(R, C), &r), w = mk(1, SHAPE(C), &r), b = mk(1, SHAPE(C), &r);
    frt_tensor y = mk(2, SHAPE(R, C), NULL);
    float ref[R * C];

    cr_assert_eq(frt_layernorm(be, &y, &x, &w, &b, 1e-5f), FRT_OK);
    frt_ref_layernorm(ref, x.data, w.data, b.data, R, C, 1e-5f);
    /* outputs are O(1) and w x + b may cancel: floor 0.1 as in test_ops */
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 0.1), 1e-5);

    cr_assert_eq(frt_rmsnorm(be, &y, &x, &w, 1e-6f), FRT_OK);
    frt_ref_rmsnorm(ref, x.data, w.data, R, C, 1e-6f);
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 0.1), 1e-5);

    cr_assert_eq(frt_softmax(be, &y, &x), FRT_OK);
    frt_ref_softmax(ref, x.data, R, C);
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 1e-3), 1e-5);

    for (int k = 0; k < FRT_ACT_COUNT; k++) {
        cr_assert_eq(frt_act_apply(be, &y, &x, (frt_act)k), FRT_OK);
        frt_ref_act(ref, x.data, R * C, (frt_act)k);
        cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 1e-3), 1e-5, "act %d", k);
    }
    cr_assert_eq(frt_act_apply(be, &y, &x, FRT_ACT_COUNT), FRT_ERR_INVALID_ARG);

    cr_assert_eq(frt_add(be, &y, &x, &w), FRT_OK); /* row broadcast */
    frt_ref_add(ref, x.data, w.data, R * C, C);
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 1e-3), 1e-6);
    cr_assert_eq(frt_mul(be, &y, &x, &x), FRT_OK);
    frt_ref_mul(ref, x.data, x.data, R * C, R * C);
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 1e-3), 1e-6);
    cr_assert_eq(frt_scale(be, &y, &x, 0.5f), FRT_OK);
    frt_ref_scale(ref, x.data, 0.5f, R * C);
    cr_assert_leq(tu_max_rel_err(y.data, ref, R * C, 1e-3), 1e-6);

    frt_tensor wbad = mk(1, SHAPE(C + 1), &r);
    cr_assert_eq(frt_layernorm(be, &y, &x, &wbad, NULL, 1e-5f), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "weight"), "%s", frt_last_error());
    cr_assert_eq(frt_add(be, &y, &x, &wbad), FRT_ERR_INVALID_ARG);
    frt_tensor half;
    cr_assert_eq(frt_tensor_alloc(&half, FRT_F16, 2, SHAPE(R, C)), FRT_OK);
    cr_assert_eq(frt_softmax(be, &y, &half), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "F16"), "%s", frt_last_error());
    frt_tensor *all[] = {&x, &w, &b, &y, &wbad, &half};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) frt_tensor_free(all[i]);
}

Test(backend, rope_conv_attention_reach_kernels)
{
    frt_backend *be = frt_backend_cpu();
    tu_rng r;
    tu_rng_init(&r, tu_seed());

    frt_tensor x = mk(3, SHAPE(6, 3, 16), &r);
    float ref[6 * 3 * 16];
    memcpy(ref, x.data, sizeof ref);
    cr_assert_eq(frt_rope(be, &x, 11, 10000.0f, 1.0f), FRT_OK);
    frt_ref_rope(ref, 6, 3, 16, 48, 16, 11, 10000.0f, 1.0f);
    /* a rotation of O(1) inputs: absolute error (floor 1) as in test_ops */
    cr_assert_leq(tu_max_rel_err(x.data, ref, 6 * 3 * 16, 1.0), 1e-5);
    frt_tensor odd = mk(3, SHAPE(2, 1, 7), &r);
    cr_assert_eq(frt_rope(be, &odd, 0, 10000.0f, 1.0f), FRT_ERR_INVALID_ARG);

    frt_tensor cx = mk(2, SHAPE(4, 20), &r), cw = mk(3, SHAPE(6, 2, 3), &r), cb = mk(1, SHAPE(6), &r);
    int64_t tout = frt_conv1d_out_len(20, 3, 2, 1, 2);
    frt_tensor cy = mk(2, SHAPE(6, tout), NULL);
    float cref[6 * 20];
    cr_assert_eq(frt_conv1d(be, &cy, &cx, &cw, &cb, 2, 1, 2, 2), FRT_OK, "%s", frt_last_error());
    frt_ref_conv1d(cref, cx.data, cw.data, cb.data, 4, 20, 6, 3, 2, 1, 2, 2);
    cr_assert_leq(tu_max_rel_err(cy.data, cref, (size_t)(6 * tout), 1.0), 1e-5);
    cr_assert_eq(frt_conv1d(be, &cy, &cx, &cw, &cb, 2, 1, 2, 3), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "groups"), "%s", frt_last_error());

    frt_tensor q = mk(3, SHAPE(9, 4, 32), &r), k = mk(3, SHAPE(13, 2, 32), &r),
               v = mk(3, SHAPE(13, 2, 32), &r), o = mk(3, SHAPE(9, 4, 32), NULL),
               oref = mk(3, SHAPE(9, 4, 32), NULL);
    frt_attn_params p = {.scale = 0.17f, .causal = true, .q_pos0 = 4};
    cr_assert_eq(frt_attention(be, &o, &q, &k, &v, &p), FRT_OK, "%s", frt_last_error());
    frt_attn_args a = {.nq = 9, .nk = 13, .h = 4, .h_kv = 2, .d = 32, .q = q.data, .q_st = 128,
                       .q_sh = 32, .k = k.data, .k_st = 64, .k_sh = 32, .v = v.data, .v_st = 64,
                       .v_sh = 32, .kv_dtype = FRT_F32, .o = oref.data, .o_st = 128, .o_sh = 32,
                       .p = p};
    cr_assert_eq(frt_ref_attn(&a), FRT_OK);
    cr_assert_leq(tu_max_rel_err(o.data, oref.data, 9 * 4 * 32, 0.1), 1e-5);
    cr_assert_eq(frt_attention(be, &o, &q, &k, &q, &p), FRT_ERR_INVALID_ARG);
    frt_tensor *all[] = {&x, &odd, &cx, &cw, &cb, &cy, &q, &k, &v, &o, &oref};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) frt_tensor_free(all[i]);
}

Test(backend, cuda_absent_is_a_clean_error)
{
    frt_backend *be = (frt_backend *)1;
    frt_status s = frt_backend_cuda_create(0, &be);
    if (s == FRT_OK) {
        frt_backend_free(be);
        cr_skip_test("a CUDA GPU is present");
    }
    cr_assert_eq(s, FRT_ERR_DEVICE);
    cr_assert_null(be);
    cr_assert_gt(strlen(frt_last_error()), 0);
}
