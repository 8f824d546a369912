/* safetensors loading: valid single-file, sharded and directory checkpoints, and every
 * malformation the loader must refuse with a clear message. Fixtures are crafted here, one
 * header string per case. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "safetensors.h"
#include "tensor.h"
#include "testutil.h"

static char *g_dir;

static void setup(void)
{
    g_dir = tu_tmpdir();
    cr_assert(g_dir);
}

static void teardown(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
    g_dir = NULL;
    tu_check_leaks();
}

TestSuite(st, .init = setup, .fini = teardown);

/* ---- fixture writers ------------------------------------------------------ */

/* Write [u64 hlen][header][data] as dir/name; hlen overrides the length field when nonzero. */
static char *write_raw(const char *name, uint64_t hlen, const char *header, const void *data,
                       size_t data_len)
{
    size_t n = strlen(header);
    uint8_t *buf = malloc(8 + n + data_len + 1);
    cr_assert(buf);
    uint64_t len = hlen ? hlen : n;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(len >> (8 * i));
    memcpy(buf + 8, header, n);
    if (data_len) memcpy(buf + 8 + n, data, data_len);
    char *p = tu_write_file(g_dir, name, buf, 8 + n + data_len);
    cr_assert(p);
    free(buf);
    return p;
}

/* A header whose data section is data_len bytes of a fixed pattern. */
static char *write_st(const char *name, const char *header, size_t data_len)
{
    uint8_t *data = calloc(1, data_len + 1);
    for (size_t i = 0; i < data_len; i++) data[i] = (uint8_t)(i * 7 + 1);
    char *p = write_raw(name, 0, header, data, data_len);
    free(data);
    return p;
}

typedef struct {
    const char *name, *dtype, *shape; /* shape as JSON, e.g. "[2,3]" */
    const void *data;
    size_t nbytes;
} tspec;

/* Lay the tensors out back to back in the given order, pad the header to 8 bytes like the
 * reference writer does, and write dir/name. */
static char *build_st(const char *name, const tspec *t, int n, const char *metadata)
{
    enum { CAP = 1 << 20 };
    char *header = malloc(CAP);
    size_t h = (size_t)snprintf(header, CAP, "{");
    if (metadata)
        h += (size_t)snprintf(header + h, CAP - h, "\"__metadata__\":%s%s", metadata, n ? "," : "");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        h += (size_t)snprintf(header + h, CAP - h,
                              "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                              i ? "," : "", t[i].name, t[i].dtype, t[i].shape, off,
                              off + t[i].nbytes);
        off += t[i].nbytes;
    }
    h += (size_t)snprintf(header + h, CAP - h, "}");
    while (h % 8) header[h++] = ' ';
    header[h] = '\0';
    cr_assert(h < CAP);
    uint8_t *data = malloc(off + 1);
    off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].nbytes) memcpy(data + off, t[i].data, t[i].nbytes);
        off += t[i].nbytes;
    }
    char *p = write_raw(name, 0, header, data, off);
    free(data);
    free(header);
    return p;
}

/* Open must fail with want, name the problem, and leave *out alone. */
static void expect_fail_path(const char *path, frt_status want, const char *needle)
{
    frt_st *sentinel = (frt_st *)&g_dir, *st = sentinel;
    frt_status s = frt_st_open(path, &st);
    cr_assert_eq(s, want, "status %s, want %s (%s)", frt_status_name(s), frt_status_name(want),
                 frt_last_error());
    cr_assert_eq(frt_last_status(), want);
    cr_assert(strstr(frt_last_error(), needle), "message \"%s\" lacks \"%s\"", frt_last_error(),
              needle);
    cr_assert_eq(st, sentinel, "*out written on failure");
}

static void expect_fail(const char *header, size_t data_len, frt_status want, const char *needle)
{
    char *p = write_st("bad.safetensors", header, data_len);
    expect_fail_path(p, want, needle);
    /* every file-level message names the file */
    cr_assert(strstr(frt_last_error(), "bad.safetensors"), "%s", frt_last_error());
    free(p);
}

static frt_st *open_ok(const char *path)
{
    frt_st *st = NULL;
    frt_status s = frt_st_open(path, &st);
    cr_assert_eq(s, FRT_OK, "%s: %s", frt_status_name(s), frt_last_error());
    cr_assert(st);
    return st;
}

/* ---- valid checkpoints ---------------------------------------------------- */

Test(st, single_file_all_dtypes)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    float f32[6], scalar = tu_normal(&r), mis[5];
    uint16_t f16[5], bf16[6];
    int32_t i32[4];
    int8_t i8[7];
    int64_t i64[2] = {1, -2};
    for (int i = 0; i < 6; i++) f32[i] = tu_normal(&r);
    for (int i = 0; i < 5; i++) f16[i] = frt_f32_to_f16(tu_normal(&r));
    for (int i = 0; i < 6; i++) bf16[i] = frt_f32_to_bf16(tu_normal(&r));
    for (int i = 0; i < 4; i++) i32[i] = (int32_t)tu_next(&r);
    for (int i = 0; i < 7; i++) i8[i] = (int8_t)tu_next(&r);
    for (int i = 0; i < 5; i++) mis[i] = tu_normal(&r);
    float four[4] = {1, 2, 3, 4};
    const tspec t[] = {
        {"w.f32", "F32", "[2,3]", f32, sizeof f32},
        {"w.f16", "F16", "[5]", f16, sizeof f16},
        {"w.bf16", "BF16", "[3,1,2]", bf16, sizeof bf16},
        {"w.i32", "I32", "[4]", i32, sizeof i32},
        {"w.i8", "I8", "[7]", i8, sizeof i8},
        /* after 7 bytes of I8 this f32 tensor sits at a misaligned offset */
        {"w.misaligned", "F32", "[5]", mis, sizeof mis},
        {"w.scalar", "F32", "[]", &scalar, sizeof scalar},
        {"w.empty", "F32", "[0,3]", NULL, 0},
        {"w.four", "F32", "[1,2,1,2]", four, sizeof four},
        {"w.i64", "I64", "[2]", i64, sizeof i64},
        {"w.five", "F32", "[1,1,1,1,4]", four, sizeof four},
    };
    int n = (int)(sizeof t / sizeof t[0]);
    char *p = build_st("model.safetensors", t, n, "{\"format\":\"pt\"}");
    frt_st *st = open_ok(p);
    cr_assert_eq(frt_st_count(st), n);
    for (int i = 0; i < n; i++) cr_assert_str_eq(frt_st_name(st, i), t[i].name);
    cr_assert_null(frt_st_name(st, n));
    cr_assert_null(frt_st_name(st, -1));

    frt_tensor v;
    cr_assert_eq(frt_st_get(st, "w.f32", &v), FRT_OK);
    cr_assert_eq(v.dtype, FRT_F32);
    cr_assert_eq(v.ndim, 2);
    cr_assert(v.shape[0] == 2 && v.shape[1] == 3 && v.stride[0] == 3 && v.stride[1] == 1);
    cr_assert_not(v.owns_data);
    cr_assert_eq(memcmp(v.data, f32, sizeof f32), 0);

    cr_assert_eq(frt_st_get(st, "w.f16", &v), FRT_OK);
    cr_assert(v.dtype == FRT_F16 && v.ndim == 1 && v.shape[0] == 5);
    cr_assert_eq(memcmp(v.data, f16, sizeof f16), 0);
    cr_assert_eq(frt_st_get(st, "w.bf16", &v), FRT_OK);
    cr_assert(v.dtype == FRT_BF16 && v.ndim == 3 && v.shape[0] == 3 && v.shape[2] == 2);
    cr_assert_eq(memcmp(v.data, bf16, sizeof bf16), 0);
    cr_assert_eq(frt_st_get(st, "w.i32", &v), FRT_OK);
    cr_assert_eq(v.dtype, FRT_I32);
    cr_assert_eq(memcmp(v.data, i32, sizeof i32), 0);
    cr_assert_eq(frt_st_get(st, "w.i8", &v), FRT_OK);
    cr_assert_eq(v.dtype, FRT_I8);
    cr_assert_eq(memcmp(v.data, i8, sizeof i8), 0);

    cr_assert_eq(frt_st_get(st, "w.misaligned", &v), FRT_OK);
    cr_assert_eq((uintptr_t)v.data % 4, 0, "misaligned f32 tensor handed out");
    cr_assert_eq(memcmp(v.data, mis, sizeof mis), 0);

    cr_assert_eq(frt_st_get(st, "w.scalar", &v), FRT_OK);
    cr_assert(v.ndim == 1 && v.shape[0] == 1);
    cr_assert_eq(memcmp(v.data, &scalar, 4), 0);
    cr_assert_eq(frt_st_get(st, "w.empty", &v), FRT_OK);
    cr_assert(v.ndim == 2 && v.shape[0] == 0 && v.shape[1] == 3);
    cr_assert_eq(frt_tensor_numel(&v), 0);
    cr_assert_eq(frt_st_get(st, "w.four", &v), FRT_OK);
    cr_assert(v.ndim == 4 && v.shape[1] == 2 && v.shape[3] == 2);
    cr_assert_eq(memcmp(v.data, four, sizeof four), 0);

    /* known safetensors dtype we do not support, and too many dims: refused on access only */
    cr_assert_eq(frt_st_get(st, "w.i64", &v), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "I64"), "%s", frt_last_error());
    cr_assert_eq(frt_st_get(st, "w.five", &v), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "5 dims"), "%s", frt_last_error());

    cr_assert_eq(frt_st_get(st, "nope", &v), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "'nope'"), "%s", frt_last_error());

    frt_tensor f;
    cr_assert_eq(frt_st_get_f32(st, "w.f16", &f), FRT_OK);
    cr_assert(f.owns_data && f.dtype == FRT_F32 && f.ndim == 1 && f.shape[0] == 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(((float *)f.data)[i], frt_f16_to_f32(f16[i]), "f16 %d", i);
    frt_tensor_free(&f);
    cr_assert_eq(frt_st_get_f32(st, "w.bf16", &f), FRT_OK);
    cr_assert(f.ndim == 3 && f.shape[0] == 3 && f.shape[1] == 1 && f.shape[2] == 2);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(((float *)f.data)[i], frt_bf16_to_f32(bf16[i]), "bf16 %d", i);
    frt_tensor_free(&f);
    cr_assert_eq(frt_st_get_f32(st, "w.f32", &f), FRT_OK);
    cr_assert_eq(memcmp(f.data, f32, sizeof f32), 0);
    cr_assert_neq(f.data, v.data);
    frt_tensor_free(&f);
    cr_assert_eq(frt_st_get_f32(st, "w.empty", &f), FRT_OK);
    cr_assert_eq(frt_tensor_numel(&f), 0);
    frt_tensor_free(&f);
    f.data = &g_dir;
    cr_assert_eq(frt_st_get_f32(st, "w.i32", &f), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "I32"), "%s", frt_last_error());
    cr_assert_eq(f.data, (void *)&g_dir, "*out written on failure");

    cr_assert_eq(frt_st_get_shaped(st, "w.f32", 2, (int64_t[]){2, 3}, &v), FRT_OK);
    cr_assert_eq(memcmp(v.data, f32, sizeof f32), 0);
    cr_assert_eq(frt_st_get_shaped(st, "w.f32", 2, (int64_t[]){3, 2}, &v), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "expected [3, 2], found [2, 3]"), "%s", frt_last_error());
    cr_assert_eq(frt_st_get_shaped(st, "w.f32", 1, (int64_t[]){6}, &v), FRT_ERR_FORMAT);
    cr_assert_eq(frt_st_get_shaped(st, "w.scalar", 1, (int64_t[]){1}, &v), FRT_OK);
    cr_assert_eq(frt_st_get_shaped(st, "nope", 1, (int64_t[]){1}, &v), FRT_ERR_NOT_FOUND);

    frt_st_close(st);
    frt_st_close(NULL);
    free(p);
}

Test(st, many_tensors_lookup)
{
    enum { N = 1500 };
    static tspec t[N];
    static char names[N][32];
    static float vals[N];
    for (int i = 0; i < N; i++) {
        /* not in sorted order, so the lookup table really is sorted */
        snprintf(names[i], sizeof names[i], "layers.%d.w", (i * 7919) % N);
        vals[i] = (float)i;
        t[i] = (tspec){names[i], "F32", "[1]", &vals[i], 4};
    }
    char *p = build_st("model.safetensors", t, N, NULL);
    frt_st *st = open_ok(p);
    cr_assert_eq(frt_st_count(st), N);
    for (int i = 0; i < N; i++) {
        frt_tensor v;
        cr_assert_eq(frt_st_get(st, names[i], &v), FRT_OK, "%s", names[i]);
        cr_assert_eq(*(float *)v.data, (float)i);
    }
    frt_st_close(st);
    free(p);
}

/* Three shards and their index; returns the index path. */
static char *build_sharded(const char *index_body)
{
    static const float a[3] = {1, 2, 3}, b[2] = {4, 5}, c[1] = {6};
    static const uint16_t d[2] = {0x3c00, 0xc000}; /* f16 1, -2 */
    const tspec s1[] = {{"a", "F32", "[3]", a, sizeof a}, {"b", "F32", "[2,1]", b, sizeof b}};
    const tspec s2[] = {{"c", "F32", "[1]", c, sizeof c}};
    const tspec s3[] = {{"d", "F16", "[2]", d, sizeof d}};
    free(build_st("model-00001-of-00003.safetensors", s1, 2, NULL));
    free(build_st("model-00002-of-00003.safetensors", s2, 1, NULL));
    free(build_st("model-00003-of-00003.safetensors", s3, 1, "{}"));
    const char *body = index_body ? index_body
                                  : "{\"metadata\":{\"total_size\":32},\"weight_map\":{"
                                    "\"d\":\"model-00003-of-00003.safetensors\","
                                    "\"a\":\"model-00001-of-00003.safetensors\","
                                    "\"c\":\"model-00002-of-00003.safetensors\","
                                    "\"b\":\"model-00001-of-00003.safetensors\"}}";
    char *p = tu_write_file(g_dir, "model.safetensors.index.json", body, strlen(body));
    cr_assert(p);
    return p;
}

static void check_sharded(frt_st *st)
{
    cr_assert_eq(frt_st_count(st), 4);
    /* shard order, then file order */
    cr_assert_str_eq(frt_st_name(st, 0), "a");
    cr_assert_str_eq(frt_st_name(st, 1), "b");
    cr_assert_str_eq(frt_st_name(st, 2), "c");
    cr_assert_str_eq(frt_st_name(st, 3), "d");
    frt_tensor v;
    cr_assert_eq(frt_st_get_shaped(st, "b", 2, (int64_t[]){2, 1}, &v), FRT_OK);
    cr_assert(((float *)v.data)[0] == 4 && ((float *)v.data)[1] == 5);
    cr_assert_eq(frt_st_get(st, "c", &v), FRT_OK);
    cr_assert_eq(((float *)v.data)[0], 6);
    cr_assert_eq(frt_st_get(st, "a", &v), FRT_OK);
    cr_assert_eq(((float *)v.data)[2], 3);
    frt_tensor f;
    cr_assert_eq(frt_st_get_f32(st, "d", &f), FRT_OK);
    cr_assert(((float *)f.data)[0] == 1 && ((float *)f.data)[1] == -2);
    frt_tensor_free(&f);
}

Test(st, sharded_index)
{
    char *p = build_sharded(NULL);
    frt_st *st = open_ok(p);
    check_sharded(st);
    frt_st_close(st);
    free(p);
}

Test(st, directory_open)
{
    char *p = build_sharded(NULL);
    frt_st *st = open_ok(g_dir);
    check_sharded(st); /* the index wins over model.safetensors */
    frt_st_close(st);
    free(p);

    char *sub = malloc(strlen(g_dir) + 8);
    sprintf(sub, "%s/single", g_dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    expect_fail_path(sub, FRT_ERR_NOT_FOUND, "model.safetensors.index.json");
    cr_assert(strstr(frt_last_error(), "model.safetensors"));
    const float x[2] = {7, 8};
    const tspec t[] = {{"x", "F32", "[2]", x, sizeof x}};
    char *saved = g_dir;
    g_dir = sub;
    free(build_st("model.safetensors", t, 1, NULL));
    g_dir = saved;
    st = open_ok(sub);
    frt_tensor v;
    cr_assert_eq(frt_st_get(st, "x", &v), FRT_OK);
    cr_assert_eq(((float *)v.data)[1], 8);
    frt_st_close(st);
    free(sub);
}

Test(st, fault_injection_cleans_up)
{
    char *p = build_sharded(NULL);
    /* every allocation the loader makes fails once in turn; ASan reports any leak */
    int failures = 0;
    for (long n = 1; n < 1000; n++) {
        frt_st *sentinel = (frt_st *)&g_dir, *st = sentinel;
        frt_alloc_fail_after(n);
        frt_status s = frt_st_open(p, &st);
        frt_alloc_fail_after(0);
        if (s == FRT_OK) {
            check_sharded(st);
            frt_st_close(st);
            break;
        }
        cr_assert_eq(s, FRT_ERR_NOMEM, "%s", frt_last_error());
        cr_assert_eq(st, sentinel);
        failures++;
    }
    cr_assert_gt(failures, 5);
    free(p);
}

/* ---- malformed files ------------------------------------------------------ */

#define T24 "\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"

Test(st, valid_baseline_of_malformed_cases)
{
    /* the base the malformed cases below alter must itself load */
    char *p = write_st("ok.safetensors", "{" T24 "}", 24);
    frt_st_close(open_ok(p));
    free(p);
}

Test(st, truncated_below_8_bytes)
{
    char *p = tu_write_file(g_dir, "bad.safetensors", "abc", 3);
    expect_fail_path(p, FRT_ERR_FORMAT, "shorter than the 8-byte");
    free(p);
    p = tu_write_file(g_dir, "empty.safetensors", "", 0);
    expect_fail_path(p, FRT_ERR_FORMAT, "truncated");
    free(p);
}

Test(st, data_section_cut_short)
{
    expect_fail("{" T24 "}", 20, FRT_ERR_FORMAT, "out of bounds");
    cr_assert(strstr(frt_last_error(), "truncated"));
    const char *file, *tensor;
    int64_t off;
    frt_last_error_detail(&file, &tensor, &off);
    cr_assert_str_eq(tensor, "t");
    cr_assert(strstr(file, "bad.safetensors"));
}

Test(st, header_length_bad)
{
    const char *h = "{" T24 "}";
    char *p = write_raw("bad.safetensors", strlen(h) + 25, h, "012345678901234567890123", 24);
    expect_fail_path(p, FRT_ERR_FORMAT, "past the end of the file");
    free(p);
    p = write_raw("bad.safetensors", 1ull << 62, h, "012345678901234567890123", 24);
    expect_fail_path(p, FRT_ERR_FORMAT, "cap");
    free(p);
    p = write_raw("bad.safetensors", (100ull << 20) + 1, h, "012345678901234567890123", 24);
    expect_fail_path(p, FRT_ERR_FORMAT, "cap");
    free(p);
    /* a length of 0 can only be written through the override, so craft it by hand */
    uint8_t zero[16] = {0};
    p = tu_write_file(g_dir, "bad.safetensors", zero, sizeof zero);
    expect_fail_path(p, FRT_ERR_FORMAT, "header length is 0");
    free(p);
}

Test(st, bad_json)
{
    expect_fail("{\"t\":{\"dtype\":\"F32\",", 0, FRT_ERR_FORMAT, "not valid JSON");
    expect_fail("{\"t\":{} garbage", 0, FRT_ERR_FORMAT, "not valid JSON");
    expect_fail("{}xyz", 0, FRT_ERR_FORMAT, "trailing bytes");
    expect_fail("[1,2]", 0, FRT_ERR_FORMAT, "not a JSON object");
    expect_fail("\"str\"", 0, FRT_ERR_FORMAT, "not a JSON object");
}

Test(st, empty_object_and_padding_ok)
{
    char *p = write_st("ok.safetensors", "{}      ", 0);
    frt_st *st = open_ok(p);
    cr_assert_eq(frt_st_count(st), 0);
    frt_st_close(st);
    free(p);
    p = write_st("ok.safetensors", "{\"__metadata__\":null}", 0);
    st = open_ok(p);
    cr_assert_eq(frt_st_count(st), 0);
    frt_tensor v;
    cr_assert_eq(frt_st_get(st, "x", &v), FRT_ERR_NOT_FOUND);
    frt_st_close(st);
    free(p);
}

Test(st, entry_fields)
{
    expect_fail("{\"t\":3}", 0, FRT_ERR_FORMAT, "not an object");
    expect_fail("{\"t\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FRT_ERR_FORMAT, "no dtype");
    expect_fail("{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, FRT_ERR_FORMAT,
                "dtype is not a string");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, FRT_ERR_FORMAT,
                "no shape");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
                FRT_ERR_FORMAT, "shape is not an array");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, FRT_ERR_FORMAT, "no data_offsets");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, FRT_ERR_FORMAT,
                "data_offsets is not a pair");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                FRT_ERR_FORMAT, "data_offsets is not a pair");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,\"4\"]}}", 4,
                FRT_ERR_FORMAT, "data_offsets is not a pair");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                FRT_ERR_FORMAT, "data_offsets is not a pair");
    expect_fail("{\"__metadata__\":[1]," T24 "}", 24, FRT_ERR_FORMAT, "__metadata__");
    expect_fail("{\"__metadata__\":{\"a\":1}," T24 "}", 24, FRT_ERR_FORMAT, "not a string");
    expect_fail("{\"__metadata__\":{},\"__metadata__\":{}," T24 "}", 24, FRT_ERR_FORMAT,
                "duplicate __metadata__");
    /* the place names the tensor */
    const char *tensor;
    frt_last_error_detail(NULL, &tensor, NULL);
    cr_assert_str_eq(tensor, "__metadata__");
}

Test(st, unknown_dtype)
{
    expect_fail("{\"t\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                FRT_ERR_FORMAT, "unknown dtype 'Q7'");
    expect_fail("{\"t\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                FRT_ERR_FORMAT, "unknown dtype 'f32'");
}

Test(st, shape_errors)
{
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
                FRT_ERR_FORMAT, "size mismatch");
    cr_assert(strstr(frt_last_error(), "needs 24 bytes"), "%s", frt_last_error());
    cr_assert(strstr(frt_last_error(), "span 20"), "%s", frt_last_error());
    expect_fail("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24,
                FRT_ERR_FORMAT, "size mismatch");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                FRT_ERR_FORMAT, "shape entry 0 is not a non-negative integer");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,2.5],\"data_offsets\":[0,4]}}", 4,
                FRT_ERR_FORMAT, "shape entry 1 is not a non-negative integer");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                FRT_ERR_FORMAT, "shape entry 0");
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
                FRT_ERR_FORMAT, "below 2^53");
    /* element count overflows 64 bits */
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                "\"data_offsets\":[0,8]}}",
                8, FRT_ERR_FORMAT, "overflows");
    /* element count fits, bit count does not */
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776,2097152],"
                "\"data_offsets\":[0,8]}}",
                8, FRT_ERR_FORMAT, "overflows");
    /* checked left to right like the reference reader: a zero after an overflowing prefix is
     * still refused */
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296,0],"
                "\"data_offsets\":[0,0]}}",
                0, FRT_ERR_FORMAT, "overflows");
}

Test(st, offsets_errors)
{
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[250],\"data_offsets\":[0,1000]}}", 24,
                FRT_ERR_FORMAT, "out of bounds");
    const char *h = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,20]}}";
    expect_fail(h, 24, FRT_ERR_FORMAT, "begin 24 > end 20");
    int64_t at;
    frt_last_error_detail(NULL, NULL, &at);
    cr_assert_eq(at, (int64_t)(8 + strlen(h) + 24), "offset %lld", (long long)at);
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[16,40]}}",
                40, FRT_ERR_FORMAT, "overlap");
    cr_assert(strstr(frt_last_error(), "'a'"), "%s", frt_last_error());
    const char *tensor;
    int64_t off;
    frt_last_error_detail(NULL, &tensor, &off);
    cr_assert_str_eq(tensor, "b");
    cr_assert_gt(off, 16);
    /* the overlap is found whatever the header order */
    expect_fail("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[20,24]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}",
                24, FRT_ERR_FORMAT, "overlap");
    /* identical spans overlap too */
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                4, FRT_ERR_FORMAT, "overlap");
}

Test(st, gaps_and_empty_tensors_sharing_an_offset_ok)
{
    char *p = write_st("ok.safetensors",
                       "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                       "\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                       "\"e2\":{\"dtype\":\"I8\",\"shape\":[0,5],\"data_offsets\":[8,8]},"
                       "\"z\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]}}",
                       16);
    frt_st *st = open_ok(p);
    cr_assert_eq(frt_st_count(st), 4);
    frt_st_close(st);
    free(p);
}

Test(st, duplicate_names)
{
    expect_fail("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, FRT_ERR_FORMAT, "duplicate tensor name 't'");
}

Test(st, unsupported_dtype_validated_like_others)
{
    /* an F64 tensor is accepted at open, but its byte span is still checked */
    expect_fail("{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                FRT_ERR_FORMAT, "size mismatch");
    expect_fail("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1,
                FRT_ERR_FORMAT, "size mismatch");
    char *p = write_st("ok.safetensors",
                       "{\"t\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]},"
                       "\"u\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[2,4]}}",
                       4);
    frt_st *st = open_ok(p);
    frt_tensor v;
    cr_assert_eq(frt_st_get(st, "u", &v), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "BOOL"), "%s", frt_last_error());
    cr_assert_eq(frt_st_get_f32(st, "t", &v), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "F4"), "%s", frt_last_error());
    frt_st_close(st);
    free(p);
}

Test(st, missing_path)
{
    char *p = malloc(strlen(g_dir) + 32);
    sprintf(p, "%s/none.safetensors", g_dir);
    expect_fail_path(p, FRT_ERR_NOT_FOUND, "none.safetensors");
    sprintf(p, "%s/none.json", g_dir);
    expect_fail_path(p, FRT_ERR_NOT_FOUND, "none.json");
    free(p);
    frt_st *st = NULL;
    cr_assert_eq(frt_st_open(NULL, &st), FRT_ERR_INVALID_ARG);
}

/* ---- sharded failures ----------------------------------------------------- */

static void expect_index_fail(const char *body, frt_status want, const char *needle)
{
    char *p = build_sharded(body);
    expect_fail_path(p, want, needle);
    free(p);
}

#define SH1 "\"model-00001-of-00003.safetensors\""
#define SH2 "\"model-00002-of-00003.safetensors\""
#define SH3 "\"model-00003-of-00003.safetensors\""

Test(st, index_missing_shard)
{
    expect_index_fail("{\"weight_map\":{\"a\":" SH1 ",\"x\":\"model-00004-of-00003.safetensors\"}}",
                      FRT_ERR_NOT_FOUND, "model-00004-of-00003.safetensors");
    cr_assert(strstr(frt_last_error(), "missing"), "%s", frt_last_error());
}

Test(st, index_shard_escapes_directory)
{
    expect_index_fail("{\"weight_map\":{\"a\":\"../model-00001-of-00003.safetensors\"}}",
                      FRT_ERR_FORMAT, "no '/' or '..'");
    expect_index_fail("{\"weight_map\":{\"a\":\"/etc/passwd\"}}", FRT_ERR_FORMAT, "no '/' or '..'");
    expect_index_fail("{\"weight_map\":{\"a\":\"..\"}}", FRT_ERR_FORMAT, "no '/' or '..'");
    expect_index_fail("{\"weight_map\":{\"a\":\"\"}}", FRT_ERR_FORMAT, "plain file name");
}

Test(st, index_tensor_absent_from_its_shard)
{
    expect_index_fail("{\"weight_map\":{\"a\":" SH1 ",\"zz\":" SH2 "}}", FRT_ERR_FORMAT,
                      "not in that shard");
    cr_assert(strstr(frt_last_error(), "'zz'"), "%s", frt_last_error());
    /* present, but in another shard than the index says */
    expect_index_fail("{\"weight_map\":{\"a\":" SH2 ",\"b\":" SH1 ",\"c\":" SH2 "}}",
                      FRT_ERR_FORMAT, "not in that shard");
    cr_assert(strstr(frt_last_error(), "found in"), "%s", frt_last_error());
}

Test(st, index_malformed)
{
    expect_index_fail("{\"metadata\":{}}", FRT_ERR_FORMAT, "weight_map");
    expect_index_fail("[]", FRT_ERR_FORMAT, "weight_map");
    expect_index_fail("{\"weight_map\":{\"a\":1}}", FRT_ERR_FORMAT, "not a shard file name");
    expect_index_fail("{\"weight_map\":{\"a\":" SH1 ",\"a\":" SH1 "}}", FRT_ERR_FORMAT,
                      "duplicate tensor name 'a'");
    expect_index_fail("{\"weight_map\":{\"a\":" SH1 ",}", FRT_ERR_FORMAT, "invalid JSON");
}

Test(st, duplicate_across_shards)
{
    char *p = build_sharded("{\"weight_map\":{\"a\":" SH1 ",\"c\":" SH2 ",\"b\":" SH3 "}}");
    const float x[1] = {9};
    const tspec t[] = {{"c", "F32", "[1]", x, sizeof x}};
    free(build_st("model-00003-of-00003.safetensors", t, 1, NULL));
    expect_fail_path(p, FRT_ERR_FORMAT, "duplicate tensor name 'c'");
    cr_assert(strstr(frt_last_error(), "also in shard"), "%s", frt_last_error());
    free(p);
}

Test(st, bad_shard_reported_with_its_name)
{
    char *p = build_sharded(NULL);
    free(tu_write_file(g_dir, "model-00002-of-00003.safetensors", "xy", 2));
    expect_fail_path(p, FRT_ERR_FORMAT, "model-00002-of-00003.safetensors");
    cr_assert(strstr(frt_last_error(), "shorter than the 8-byte"));
    free(p);
}

/* ---- in-memory checkpoints ------------------------------------------------ */

Test(st, from_memory_lookup_and_errors)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    float f32[6];
    uint16_t bf16[4];
    int32_t i32[3];
    for (int i = 0; i < 6; i++) f32[i] = tu_normal(&r);
    for (int i = 0; i < 4; i++) bf16[i] = frt_f32_to_bf16(tu_normal(&r));
    for (int i = 0; i < 3; i++) i32[i] = (int32_t)tu_next(&r);
    frt_st_mem_tensor t[] = {
        {"b.w", FRT_F32, 2, {2, 3}, f32},
        {"a.bf16", FRT_BF16, 3, {1, 2, 2}, bf16},
        {"c.i32", FRT_I32, 1, {3}, i32},
        {"d.empty", FRT_F32, 2, {0, 4}, NULL},
    };
    frt_st *st = NULL;
    cr_assert_eq(frt_st_from_memory(t, 4, "mem", &st), FRT_OK);
    cr_assert_eq(frt_st_count(st), 4);
    for (int i = 0; i < 4; i++) cr_assert_str_eq(frt_st_name(st, i), t[i].name);
    frt_tensor v;
    cr_assert_eq(frt_st_get_shaped(st, "b.w", 2, (int64_t[]){2, 3}, &v), FRT_OK);
    cr_assert(v.data == (void *)f32 && v.dtype == FRT_F32 && !v.owns_data);
    cr_assert_eq(frt_st_get(st, "c.i32", &v), FRT_OK);
    cr_assert(v.data == (void *)i32 && v.dtype == FRT_I32 && v.shape[0] == 3);
    cr_assert_eq(frt_st_get_shaped(st, "a.bf16", 2, (int64_t[]){2, 2}, &v), FRT_ERR_FORMAT);
    cr_assert_eq(frt_st_get(st, "nope", &v), FRT_ERR_NOT_FOUND);
    frt_tensor f;
    cr_assert_eq(frt_st_get_f32(st, "a.bf16", &f), FRT_OK);
    for (int i = 0; i < 4; i++) cr_assert_eq(((float *)f.data)[i], frt_bf16_to_f32(bf16[i]));
    frt_tensor_free(&f);
    frt_st_close(st);

    /* names are copied: the caller's strings may go away after the call */
    char name[8] = "x";
    frt_st_mem_tensor one = {name, FRT_F32, 1, {6}, f32};
    cr_assert_eq(frt_st_from_memory(&one, 1, NULL, &st), FRT_OK);
    name[0] = 'y';
    cr_assert_eq(frt_st_get(st, "x", &v), FRT_OK);
    frt_st_close(st);

    frt_st *bad = (frt_st *)&t;
    frt_st_mem_tensor dup[] = {{"a", FRT_F32, 1, {2}, f32}, {"a", FRT_F32, 1, {2}, f32 + 2}};
    cr_assert_eq(frt_st_from_memory(dup, 2, "mem", &bad), FRT_ERR_FORMAT);
    cr_assert_not_null(strstr(frt_last_error(), "duplicate"));
    frt_st_mem_tensor mis = {"m", FRT_F32, 1, {2}, (const char *)f32 + 1};
    cr_assert_eq(frt_st_from_memory(&mis, 1, "mem", &bad), FRT_ERR_INVALID_ARG);
    frt_st_mem_tensor i64 = {"i", (frt_dtype)99, 1, {2}, f32};
    cr_assert_eq(frt_st_from_memory(&i64, 1, "mem", &bad), FRT_ERR_INVALID_ARG);
    frt_st_mem_tensor nodata = {"n", FRT_F32, 1, {2}, NULL};
    cr_assert_eq(frt_st_from_memory(&nodata, 1, "mem", &bad), FRT_ERR_INVALID_ARG);
    frt_st_mem_tensor dims = {"d", FRT_F32, 0, {2}, f32};
    cr_assert_eq(frt_st_from_memory(&dims, 1, "mem", &bad), FRT_ERR_INVALID_ARG);
    frt_st_mem_tensor neg = {"g", FRT_F32, 1, {-1}, f32};
    cr_assert_eq(frt_st_from_memory(&neg, 1, "mem", &bad), FRT_ERR_INVALID_ARG);
    /* *out is written only on success */
    cr_assert_eq(bad, (frt_st *)&t);
}
