/* The Llama tokenizer against python-sentencepiece: ids and decoded text of the goldens in
 * tests/data/tokenizer (tools/tokenizer/make_goldens.py), streaming decode against whole
 * decode, round trips, and the loader's refusal of every malformed model file. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "error.h"
#include "testutil.h"
#include "tokenizer.h"
#include "tokenizer_impl.h"

#define TOK_DIR FRT_TEST_DATA "/tokenizer"

/* ---- small helpers ------------------------------------------------------------------ */

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static frt_tokenizer *load(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", TOK_DIR, name);
    frt_tokenizer *t = NULL;
    frt_status s = frt_tokenizer_load(path, &t);
    cr_assert_eq(s, FRT_OK, "load %s: %s", path, frt_last_error());
    return t;
}

/* "-" or hex digits into bytes; returns the length. */
static size_t unhex(const char *h, uint8_t *out)
{
    if (strcmp(h, "-") == 0) return 0;
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        cr_assert_eq(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static size_t parse_ids(char *s, int32_t *ids)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0) return 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) ids[n++] = (int32_t)atol(tok);
    return n;
}

/* Every byte sequence the tokenizer hands out must be whole UTF-8 characters. */
static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int c = frt_tok_utf8_len((const uint8_t *)s + i, n - i, true);
        if (c <= 0) return false;
        i += (size_t)c;
    }
    return true;
}

/* Decode ids one at a time; checks every chunk is whole characters; returns the
 * concatenation (malloc'ed). */
static char *stream_decode(const frt_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    frt_detok d;
    frt_detok_init(&d, t);
    size_t cap = 64, o = 0;
    char *out = malloc(cap);
    const char *chunk;
    size_t clen;
    for (size_t i = 0; i <= n; i++) {
        if (i < n)
            cr_assert_eq(frt_detok_push(&d, ids[i], &chunk, &clen), FRT_OK);
        else
            frt_detok_flush(&d, &chunk, &clen);
        cr_assert(valid_utf8(chunk, clen), "stream chunk %zu splits a character", i);
        while (o + clen + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + o, chunk, clen);
        o += clen;
    }
    out[o] = 0;
    *len = o;
    return out;
}

static void show(const char *what, const uint8_t *s, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %02x", s[i]);
    fprintf(stderr, "\n");
}

/* ---- goldens -------------------------------------------------------------------------- */

typedef struct {
    int encode_cases, decode_cases, failures;
} golden_stats;

/* Run every case of goldens.txt for the model named on its M line; the main model is
 * also run through its tokenizer.json twin. */
static golden_stats run_goldens(const char *model, bool via_json)
{
    size_t len;
    char *text = read_text(TOK_DIR "/goldens.txt", &len);
    uint8_t *in = malloc(len), *want = malloc(len);
    int32_t *want_ids = malloc(len * sizeof *want_ids);
    golden_stats st = {0, 0, 0};
    frt_tokenizer *t = NULL;
    bool active = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        int nf = 0;
        for (char *p = line; nf < 4; nf++) {
            f[nf] = p;
            char *sp = strchr(p, ' ');
            if (!sp) {
                nf++;
                break;
            }
            *sp = 0;
            p = sp + 1;
        }
        if (strcmp(f[0], "M") == 0) {
            active = strcmp(f[1], model) == 0;
            if (active && !t) t = load(via_json ? "tokenizer.json" : model);
            continue;
        }
        if (!active) continue;
        size_t nin = 0, nwant, nwant_ids;
        if (strcmp(f[0], "E") == 0) {
            cr_assert_eq(nf, 4);
            nin = unhex(f[1], in);
            nwant_ids = parse_ids(f[2], want_ids);
            nwant = strcmp(f[3], "=") == 0 ? (memcpy(want, in, nin), nin) : unhex(f[3], want);
            st.encode_cases++;
            int32_t *ids;
            size_t n;
            cr_assert_eq(frt_tokenizer_encode(t, (const char *)in, nin, false, false, &ids, &n),
                         FRT_OK, "%s", frt_last_error());
            if (n != nwant_ids || memcmp(ids, want_ids, n * sizeof *ids) != 0) {
                if (st.failures++ < 5) {
                    fprintf(stderr, "%s: encode mismatch\n", model);
                    show("input", in, nin);
                    fprintf(stderr, "  want:");
                    for (size_t i = 0; i < nwant_ids; i++) fprintf(stderr, " %d", want_ids[i]);
                    fprintf(stderr, "\n  got: ");
                    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
                    fprintf(stderr, "\n");
                }
            }
            frt_free(ids);
        } else {
            cr_assert_eq(nf, 3);
            nwant_ids = parse_ids(f[1], want_ids);
            nwant = unhex(f[2], want);
            st.decode_cases++;
        }
        char *dec;
        size_t dlen;
        cr_assert_eq(frt_tokenizer_decode(t, want_ids, nwant_ids, &dec, &dlen), FRT_OK, "%s",
                     frt_last_error());
        if (dlen != nwant || memcmp(dec, want, dlen) != 0) {
            if (st.failures++ < 5) {
                fprintf(stderr, "%s: decode mismatch, ids %s\n", model,
                        f[0][0] == 'E' ? f[2] : f[1]);
                show("want", want, nwant);
                show("got", (const uint8_t *)dec, dlen);
            }
        }
        size_t slen;
        char *streamed = stream_decode(t, want_ids, nwant_ids, &slen);
        cr_assert(slen == dlen && memcmp(streamed, dec, dlen) == 0,
                  "%s: streaming decode differs from whole decode", model);
        free(streamed);
        frt_free(dec);
    }
    frt_tokenizer_free(t);
    free(in);
    free(want);
    free(want_ids);
    free(text);
    return st;
}

Test(tokenizer, goldens_llama_model)
{
    golden_stats st = run_goldens("tokenizer.model", false);
    cr_assert_eq(st.encode_cases, 1000);
    cr_assert_geq(st.decode_cases, 300);
    cr_assert_eq(st.failures, 0, "%d golden mismatches", st.failures);
}

Test(tokenizer, goldens_llama_json)
{
    golden_stats st = run_goldens("tokenizer.model", true);
    cr_assert_eq(st.encode_cases, 1000);
    cr_assert_eq(st.failures, 0, "%d golden mismatches through tokenizer.json", st.failures);
}

Test(tokenizer, goldens_variants)
{
    static const char *const models[] = {"ws.model", "noprefix.model", "unused.model"};
    for (int i = 0; i < 3; i++) {
        golden_stats st = run_goldens(models[i], false);
        cr_assert_gt(st.encode_cases, 100, "%s", models[i]);
        cr_assert_gt(st.decode_cases, 50, "%s", models[i]);
        cr_assert_eq(st.failures, 0, "%s: %d golden mismatches", models[i], st.failures);
    }
}

/* ---- API behaviour ---------------------------------------------------------------------- */

Test(tokenizer, specials_and_lookup)
{
    frt_tokenizer *t = load("tokenizer.model");
    cr_assert_eq(frt_tokenizer_vocab_size(t), 2000);
    cr_assert_eq(frt_tokenizer_unk(t), 0);
    cr_assert_eq(frt_tokenizer_bos(t), 1);
    cr_assert_eq(frt_tokenizer_eos(t), 2);
    cr_assert_eq(frt_tokenizer_id_of(t, "<s>", 3), 1);
    cr_assert_eq(frt_tokenizer_id_of(t, "<image>", 7), 3);
    cr_assert_eq(frt_tokenizer_piece_type(t, 3), FRT_PIECE_USER_DEFINED);
    cr_assert_eq(frt_tokenizer_piece_type(t, 1), FRT_PIECE_CONTROL);
    cr_assert_eq(frt_tokenizer_piece_type(t, 0), FRT_PIECE_UNKNOWN);
    int32_t nl = frt_tokenizer_id_of(t, "<0x0A>", 6);
    cr_assert_eq(frt_tokenizer_piece_type(t, nl), FRT_PIECE_BYTE);
    cr_assert_eq(frt_tokenizer_id_of(t, "no such piece", 13), -1);
    size_t len;
    cr_assert_str_eq(frt_tokenizer_piece(t, 2, &len), "</s>");
    cr_assert_eq(len, 4);
    cr_assert_null(frt_tokenizer_piece(t, 2000, NULL));
    cr_assert_null(frt_tokenizer_piece(t, -1, NULL));
    cr_assert_eq(frt_tokenizer_piece_type(t, 5000), 0);

    /* BOS/EOS wrap the plain ids and decode to nothing, also the leading space stays dropped. */
    const char *s = "hello world";
    int32_t *a, *b;
    size_t na, nb;
    cr_assert_eq(frt_tokenizer_encode(t, s, strlen(s), false, false, &a, &na), FRT_OK);
    cr_assert_eq(frt_tokenizer_encode(t, s, strlen(s), true, true, &b, &nb), FRT_OK);
    cr_assert_eq(nb, na + 2);
    cr_assert_eq(b[0], 1);
    cr_assert_eq(b[nb - 1], 2);
    cr_assert_arr_eq(b + 1, a, na * sizeof *a);
    char *text;
    cr_assert_eq(frt_tokenizer_decode(t, b, nb, &text, NULL), FRT_OK);
    cr_assert_str_eq(text, s);
    frt_free(text);
    frt_free(a);
    frt_free(b);

    /* Empty text: no ids, but a valid buffer; with BOS just BOS. */
    cr_assert_eq(frt_tokenizer_encode(t, NULL, 0, false, false, &a, &na), FRT_OK);
    cr_assert_not_null(a);
    cr_assert_eq(na, 0);
    frt_free(a);
    cr_assert_eq(frt_tokenizer_encode(t, "", 0, true, false, &a, &na), FRT_OK);
    cr_assert_eq(na, 1);
    cr_assert_eq(a[0], 1);
    frt_free(a);
    cr_assert_eq(frt_tokenizer_decode(t, NULL, 0, &text, &len), FRT_OK);
    cr_assert_str_eq(text, "");
    frt_free(text);
    frt_tokenizer_free(t);
}

Test(tokenizer, bad_arguments)
{
    frt_tokenizer *t = load("tokenizer.model");
    int32_t *ids = (int32_t *)1;
    size_t n = 7;
    cr_assert_eq(frt_tokenizer_encode(t, NULL, 3, false, false, &ids, &n), FRT_ERR_INVALID_ARG);
    cr_assert_null(ids);
    cr_assert_eq(n, 0);
    char *big = calloc(FRT_TOK_MAX_TEXT + 1, 1);
    cr_assert_eq(frt_tokenizer_encode(t, big, FRT_TOK_MAX_TEXT + 1, false, false, &ids, &n),
                 FRT_ERR_LIMIT);
    free(big);
    int32_t bad[] = {5, 2000};
    char *text = (char *)1;
    cr_assert_eq(frt_tokenizer_decode(t, bad, 2, &text, NULL), FRT_ERR_INVALID_ARG);
    cr_assert_null(text);
    cr_assert(strstr(frt_last_error(), "2000"), "%s", frt_last_error());
    bad[1] = -1;
    cr_assert_eq(frt_tokenizer_decode(t, bad, 2, &text, NULL), FRT_ERR_INVALID_ARG);
    frt_detok d;
    frt_detok_init(&d, t);
    const char *chunk;
    cr_assert_eq(frt_detok_push(&d, 2000, &chunk, NULL), FRT_ERR_INVALID_ARG);
    cr_assert_str_eq(chunk, "");
    frt_tokenizer_free(t);
    frt_tokenizer_free(NULL);
}

/* Streaming holds the bytes of a character spelt in byte pieces until it is whole. */
Test(tokenizer, stream_holds_partial_characters)
{
    frt_tokenizer *t = load("tokenizer.model");
    /* U+1F600 as four byte pieces, then "a" */
    static const char *const pieces[] = {"<0xF0>", "<0x9F>", "<0x98>", "<0x80>"};
    frt_detok d;
    frt_detok_init(&d, t);
    const char *chunk;
    size_t len;
    for (int i = 0; i < 4; i++) {
        int32_t id = frt_tokenizer_id_of(t, pieces[i], 6);
        cr_assert_geq(id, 0);
        cr_assert_eq(frt_detok_push(&d, id, &chunk, &len), FRT_OK);
        if (i < 3)
            cr_assert_eq(len, 0, "byte %d leaked out early", i);
        else
            cr_assert_str_eq(chunk, "\xF0\x9F\x98\x80");
    }
    /* A broken sequence: lead byte then a control token gives U+FFFD before nothing. */
    cr_assert_eq(frt_detok_push(&d, frt_tokenizer_id_of(t, "<0xE2>", 6), &chunk, &len), FRT_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(frt_detok_push(&d, 2, &chunk, &len), FRT_OK);
    cr_assert_str_eq(chunk, "\xEF\xBF\xBD");
    cr_assert_eq(frt_detok_push(&d, frt_tokenizer_id_of(t, "<0xC3>", 6), &chunk, &len), FRT_OK);
    frt_detok_flush(&d, &chunk, &len);
    cr_assert_str_eq(chunk, "\xEF\xBF\xBD");

    /* A fresh stream drops the dummy-prefix space of its first piece, a continuation
     * keeps it. */
    int32_t the = frt_tokenizer_id_of(t, "\xE2\x96\x81the", 6);
    cr_assert_geq(the, 0);
    frt_detok_init(&d, t);
    cr_assert_eq(frt_detok_push(&d, the, &chunk, &len), FRT_OK);
    cr_assert_str_eq(chunk, "the");
    frt_detok_init_continuation(&d, t);
    cr_assert_eq(frt_detok_push(&d, the, &chunk, &len), FRT_OK);
    cr_assert_str_eq(chunk, " the");
    cr_assert_eq(len, 4);
    frt_tokenizer_free(t);
}

/* Any valid UTF-8 text without U+2581 comes back unchanged, and streaming agrees. */
Test(tokenizer, random_round_trip)
{
    frt_tokenizer *t = load("tokenizer.model");
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    static const uint32_t ranges[][2] = {{0x00, 0x7F},       {0x20, 0x7E},     {0x80, 0x7FF},
                                         {0x800, 0xD7FF},    {0xE000, 0xFFFF}, {0x10000, 0x10FFFF},
                                         {0x1F300, 0x1FAFF}, {0x4E00, 0x9FFF}};
    char buf[4096];
    for (int iter = 0; iter < 300; iter++) {
        size_t n = 0, count = tu_next(&r) % 200;
        for (size_t k = 0; k < count; k++) {
            const uint32_t *rg = ranges[tu_next(&r) % 8];
            uint32_t c = rg[0] + (uint32_t)(tu_next(&r) % (rg[1] - rg[0] + 1));
            if (c == 0x2581 || (c >= 0xD800 && c <= 0xDFFF)) c = ' ';
            if (c < 0x80)
                buf[n++] = (char)c;
            else if (c < 0x800) {
                buf[n++] = (char)(0xC0 | c >> 6);
                buf[n++] = (char)(0x80 | (c & 0x3F));
            } else if (c < 0x10000) {
                buf[n++] = (char)(0xE0 | c >> 12);
                buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (c & 0x3F));
            } else {
                buf[n++] = (char)(0xF0 | c >> 18);
                buf[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
                buf[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
                buf[n++] = (char)(0x80 | (c & 0x3F));
            }
        }
        int32_t *ids;
        size_t nids;
        cr_assert_eq(frt_tokenizer_encode(t, buf, n, true, false, &ids, &nids), FRT_OK);
        char *text;
        size_t len;
        cr_assert_eq(frt_tokenizer_decode(t, ids, nids, &text, &len), FRT_OK);
        cr_assert(len == n && memcmp(text, buf, n) == 0, "round trip %d differs", iter);
        size_t slen;
        char *s = stream_decode(t, ids, nids, &slen);
        cr_assert(slen == n && memcmp(s, buf, n) == 0);
        free(s);
        frt_free(text);
        frt_free(ids);
    }
    frt_tokenizer_free(t);
}

/* Long inputs stay O(n log n): 1 MiB of prose, of one repeated letter and of bytes that
 * all need byte fallback. */
Test(tokenizer, long_text_is_fast)
{
    frt_tokenizer *t = load("tokenizer.model");
    size_t n = FRT_TOK_MAX_TEXT;
    char *buf = malloc(n);
    static const char prose[] = "the model reads frames and answers questions, 12345 times. ";
    for (int kind = 0; kind < 3; kind++) {
        for (size_t i = 0; i < n; i++)
            buf[i] = kind == 0 ? prose[i % (sizeof prose - 1)] : kind == 1 ? 'a' : (char)0xFF;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int32_t *ids;
        size_t nids;
        cr_assert_eq(frt_tokenizer_encode(t, buf, n, false, false, &ids, &nids), FRT_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(stderr, "encode 1 MiB (kind %d): %zu ids in %.3f s (%.1f MB/s)\n", kind, nids, s,
                (double)n / s / 1e6);
        cr_assert_lt(s, 30.0);
        cr_assert_gt(nids, 0);
        if (kind == 2) cr_assert_eq(nids, 3 * n + 1, "U+FFFD per byte, as 3 byte pieces");
        frt_free(ids);
    }
    free(buf);
    frt_tokenizer_free(t);
}

/* ---- loading: files and directories ---------------------------------------------------- */

Test(tokenizer, load_paths)
{
    frt_tokenizer *t = (frt_tokenizer *)1;
    cr_assert_eq(frt_tokenizer_load(TOK_DIR "/no-such.model", &t), FRT_ERR_NOT_FOUND);
    cr_assert_null(t);
    char *dir = tu_tmpdir();
    cr_assert_eq(frt_tokenizer_load(dir, &t), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "tokenizer.model"), "%s", frt_last_error());
    /* A directory with only tokenizer.json uses it; with both, tokenizer.model. */
    size_t len;
    char *json = read_text(TOK_DIR "/tokenizer.json", &len);
    free(tu_write_file(dir, "tokenizer.json", json, len));
    cr_assert_eq(frt_tokenizer_load(dir, &t), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_tokenizer_vocab_size(t), 2000);
    frt_tokenizer_free(t);
    char *model = read_text(TOK_DIR "/ws.model", &len);
    free(tu_write_file(dir, "tokenizer.model", model, len));
    cr_assert_eq(frt_tokenizer_load(dir, &t), FRT_OK);
    cr_assert_eq(frt_tokenizer_vocab_size(t), 600);
    frt_tokenizer_free(t);
    cr_assert_eq(frt_tokenizer_load(NULL, &t), FRT_ERR_INVALID_ARG);
    free(json);
    free(model);
    tu_rmtree(dir);
    free(dir);
}

/* ---- loading: malformed tokenizer.model -------------------------------------------------- */

/* A tiny protobuf writer for crafting models. */
typedef struct {
    uint8_t *b;
    size_t n, cap;
} pbw;

static void pbw_raw(pbw *w, const void *p, size_t n)
{
    while (w->n + n > w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void pbw_varint(pbw *w, uint64_t v)
{
    do {
        uint8_t b = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) b |= 0x80;
        pbw_raw(w, &b, 1);
    } while (v);
}
static void pbw_bytes(pbw *w, uint32_t field, const void *p, size_t n)
{
    pbw_varint(w, (uint64_t)field << 3 | 2);
    pbw_varint(w, n);
    pbw_raw(w, p, n);
}
static void pbw_uint(pbw *w, uint32_t field, uint64_t v)
{
    pbw_varint(w, (uint64_t)field << 3);
    pbw_varint(w, v);
}
static void pbw_piece(pbw *w, const char *s, size_t len, float score, int type)
{
    pbw p = {0};
    pbw_bytes(&p, 1, s, len);
    uint32_t bits;
    memcpy(&bits, &score, 4);
    pbw_varint(&p, 2 << 3 | 5);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                     (uint8_t)(bits >> 24)};
    pbw_raw(&p, le, 4);
    pbw_uint(&p, 3, (uint64_t)type);
    pbw_bytes(w, 1, p.b, p.n);
    free(p.b);
}

typedef struct {
    bool byte_fallback, no_unk, bytes, dup, unigram, charsmap;
    int missing_byte; /* -1: all present */
} model_opts;

/* A valid little BPE model (unk, <s>, </s>, optional 256 byte pieces, a few letters and
 * merges) with the defects opts asks for. */
static pbw craft(model_opts o)
{
    pbw w = {0};
    if (!o.no_unk) pbw_piece(&w, "<unk>", 5, 0, FRT_PIECE_UNKNOWN);
    pbw_piece(&w, "<s>", 3, 0, FRT_PIECE_CONTROL);
    pbw_piece(&w, "</s>", 4, 0, FRT_PIECE_CONTROL);
    if (o.bytes)
        for (int b = 0; b < 256; b++) {
            if (b == o.missing_byte) continue;
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            pbw_piece(&w, s, 6, 0, FRT_PIECE_BYTE);
        }
    static const char *const normal[] = {"ab",
                                         "\xE2\x96\x81"
                                         "a",
                                         "a", "b", "\xE2\x96\x81"};
    for (int i = 0; i < 5; i++) pbw_piece(&w, normal[i], strlen(normal[i]), -(float)i, 1);
    if (o.dup) pbw_piece(&w, "a", 1, -9, 1);
    pbw t = {0};
    pbw_uint(&t, 3, o.unigram ? 1 : 2);
    if (o.byte_fallback) pbw_uint(&t, 35, 1);
    pbw_bytes(&w, 2, t.b, t.n);
    pbw nspec = {0};
    pbw_bytes(&nspec, 1, "identity", 8);
    if (o.charsmap) pbw_bytes(&nspec, 2, "\x01\x02", 2);
    pbw_uint(&nspec, 3, 1);
    pbw_uint(&nspec, 4, 0);
    pbw_bytes(&w, 3, nspec.b, nspec.n);
    free(t.b);
    free(nspec.b);
    return w;
}

static frt_status load_buf(const pbw *w)
{
    frt_tokenizer *t = (frt_tokenizer *)1;
    frt_status s = frt_tokenizer_load_model(w->b, w->n, "crafted.model", &t);
    if (s == FRT_OK)
        frt_tokenizer_free(t);
    else
        cr_assert_null(t);
    return s;
}

static void expect_fail(const pbw *w, frt_status want, const char *needle)
{
    frt_status s = load_buf(w);
    cr_assert_eq(s, want, "got %s (%s), want %s", frt_status_name(s), frt_last_error(),
                 frt_status_name(want));
    cr_assert(strstr(frt_last_error(), needle), "message \"%s\" lacks \"%s\"", frt_last_error(),
              needle);
}

Test(tokenizer, crafted_models)
{
    pbw w = craft((model_opts){.missing_byte = -1});
    cr_assert_eq(load_buf(&w), FRT_OK, "%s", frt_last_error());
    /* "▁ab▁a": "ab" (score 0) goes first, which leaves the first "▁" alone. */
    frt_tokenizer *t;
    cr_assert_eq(frt_tokenizer_load_model(w.b, w.n, NULL, &t), FRT_OK);
    int32_t *ids;
    size_t n;
    cr_assert_eq(frt_tokenizer_encode(t, "ab a", 4, false, false, &ids, &n), FRT_OK);
    int32_t want[] = {7, 3, 4};
    cr_assert_eq(n, 3);
    cr_assert_arr_eq(ids, want, sizeof want);
    frt_free(ids);
    frt_tokenizer_free(t);
    free(w.b);

    w = craft((model_opts){.byte_fallback = true, .bytes = true, .missing_byte = -1});
    cr_assert_eq(load_buf(&w), FRT_OK, "%s", frt_last_error());
    free(w.b);
    w = craft((model_opts){.byte_fallback = true, .bytes = true, .missing_byte = 0x41});
    expect_fail(&w, FRT_ERR_FORMAT, "256 byte pieces");
    free(w.b);
    w = craft((model_opts){.byte_fallback = false, .bytes = true, .missing_byte = -1});
    expect_fail(&w, FRT_ERR_FORMAT, "byte_fallback");
    free(w.b);
    w = craft((model_opts){.no_unk = true, .missing_byte = -1});
    expect_fail(&w, FRT_ERR_FORMAT, "no unknown piece");
    free(w.b);
    w = craft((model_opts){.dup = true, .missing_byte = -1});
    expect_fail(&w, FRT_ERR_FORMAT, "twice");
    free(w.b);
    w = craft((model_opts){.unigram = true, .missing_byte = -1});
    expect_fail(&w, FRT_ERR_UNSUPPORTED, "BPE");
    free(w.b);
    w = craft((model_opts){.charsmap = true, .missing_byte = -1});
    expect_fail(&w, FRT_ERR_UNSUPPORTED, "normalization");
    free(w.b);
}

/* One broken field, placed after a valid prefix so the offset can be checked. */
Test(tokenizer, malformed_fields)
{
    pbw base = craft((model_opts){.missing_byte = -1});
    struct {
        const char *name;
        uint8_t bytes[24];
        size_t n;
        frt_status want;
        const char *needle;
    } cases[] = {
        {"varint longer than 10 bytes",
         {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},
         12,
         FRT_ERR_FORMAT,
         "varint"},
        {"varint over 64 bits",
         {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02},
         11,
         FRT_ERR_FORMAT,
         "overflows"},
        {"truncated varint", {0x30, 0xFF}, 2, FRT_ERR_FORMAT, "past the end"},
        {"length past the end", {0x0A, 0x7F, 0x0A}, 3, FRT_ERR_FORMAT, "claims 127 bytes"},
        {"group wire type", {0x0B}, 1, FRT_ERR_FORMAT, "wire type 3"},
        {"field number 0", {0x00, 0x00}, 2, FRT_ERR_FORMAT, "field number 0"},
        {"pieces as varint", {0x08, 0x01}, 2, FRT_ERR_FORMAT, "pieces has wire type 0"},
        {"empty piece", {0x0A, 0x02, 0x0A, 0x00}, 4, FRT_ERR_FORMAT, "empty"},
        {"invalid UTF-8 piece", {0x0A, 0x03, 0x0A, 0x01, 0xFF}, 5, FRT_ERR_FORMAT, "UTF-8"},
        {"overlong UTF-8 piece", {0x0A, 0x04, 0x0A, 0x02, 0xC0, 0x80}, 6, FRT_ERR_FORMAT, "UTF-8"},
        {"unknown type", {0x0A, 0x05, 0x0A, 0x01, 'z', 0x18, 0x07}, 7, FRT_ERR_FORMAT, "type 7"},
        {"NaN score",
         {0x0A, 0x08, 0x0A, 0x01, 'z', 0x15, 0x00, 0x00, 0xC0, 0x7F},
         10,
         FRT_ERR_FORMAT,
         "non-finite"},
        {"truncated score", {0x0A, 0x05, 0x0A, 0x01, 'z', 0x15, 0x00}, 7, FRT_ERR_FORMAT, "score"},
        {"piece without string", {0x0A, 0x02, 0x18, 0x01}, 4, FRT_ERR_FORMAT, "no piece string"},
        {"score as varint",
         {0x0A, 0x05, 0x0A, 0x01, 'z', 0x10, 0x01},
         7,
         FRT_ERR_FORMAT,
         "score has wire type 0"},
        {"second unknown piece",
         {0x0A, 0x05, 0x0A, 0x01, 'z', 0x18, 0x02},
         7,
         FRT_ERR_FORMAT,
         "two unknown"},
        {"bad byte piece",
         {0x0A, 0x05, 0x0A, 0x01, 'z', 0x18, 0x06},
         7,
         FRT_ERR_FORMAT,
         "not <0xXX>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pbw w = {0};
        pbw_raw(&w, base.b, base.n);
        pbw_raw(&w, cases[i].bytes, cases[i].n);
        frt_status s = load_buf(&w);
        cr_assert_eq(s, cases[i].want, "%s: got %s (%s)", cases[i].name, frt_status_name(s),
                     frt_last_error());
        cr_assert(strstr(frt_last_error(), cases[i].needle), "%s: message \"%s\" lacks \"%s\"",
                  cases[i].name, frt_last_error(), cases[i].needle);
        int64_t off;
        const char *file;
        frt_last_error_detail(&file, NULL, &off);
        cr_assert_str_eq(file, "crafted.model");
        if (cases[i].needle[0] != 't' && strcmp(cases[i].needle, "not <0xXX>") != 0)
            cr_assert(off >= (int64_t)base.n && off < (int64_t)w.n,
                      "%s: offset %lld not in the "
                      "broken field",
                      cases[i].name, (long long)off);
        free(w.b);
    }
    /* A piece over the length cap. */
    pbw w = {0};
    pbw_raw(&w, base.b, base.n);
    char *longp = malloc(FRT_TOK_MAX_PIECE + 1);
    memset(longp, 'x', FRT_TOK_MAX_PIECE + 1);
    pbw_piece(&w, longp, FRT_TOK_MAX_PIECE + 1, 0, 1);
    cr_assert_eq(load_buf(&w), FRT_ERR_LIMIT);
    free(longp);
    free(w.b);
    free(base.b);
}

/* Every cut of the real model file, and random corruption, fails cleanly (or loads a
 * still well-formed prefix). */
Test(tokenizer, truncated_and_garbled)
{
    size_t len;
    char *data = read_text(TOK_DIR "/tokenizer.model", &len);
    /* The pieces come first; the specs follow them. */
    size_t specs = 0;
    for (size_t i = 0; i + 1 < len;) {
        uint8_t key = (uint8_t)data[i];
        size_t n = 0, shift = 0, j = i + 1;
        while ((uint8_t)data[j] & 0x80) n |= (size_t)(data[j++] & 0x7F) << shift, shift += 7;
        n |= (size_t)data[j++] << shift;
        if (key != 0x0A) {
            specs = i;
            break;
        }
        i = j + n;
    }
    cr_assert_gt(specs, 1000);
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (int k = 0; k < 400; k++) {
        size_t cut = k < 100 ? (size_t)k : (size_t)(tu_next(&r) % len);
        frt_tokenizer *t = NULL;
        frt_status s = frt_tokenizer_load_model(data, cut, "cut.model", &t);
        if (cut < specs) cr_assert_neq(s, FRT_OK, "a model cut at %zu of %zu loaded", cut, len);
        cr_assert(s == FRT_OK || s == FRT_ERR_FORMAT || s == FRT_ERR_UNSUPPORTED, "cut %zu: %s",
                  cut, frt_status_name(s));
        if (s != FRT_OK) cr_assert_neq(frt_last_error()[0], 0);
        frt_tokenizer_free(t);
    }
    char *copy = malloc(len);
    for (int k = 0; k < 300; k++) {
        memcpy(copy, data, len);
        for (int f = 0; f < 1 + k % 8; f++) copy[tu_next(&r) % len] = (char)tu_next(&r);
        frt_tokenizer *t = NULL;
        frt_status s = frt_tokenizer_load_model(copy, len, "garbled.model", &t);
        cr_assert(s == FRT_OK || s == FRT_ERR_FORMAT || s == FRT_ERR_UNSUPPORTED ||
                      s == FRT_ERR_LIMIT,
                  "%s", frt_status_name(s));
        if (s == FRT_OK) {
            /* whatever loaded must still encode and decode safely */
            int32_t *ids;
            size_t n;
            const char *text = "hello \xF0\x9F\x98\x80 world\xFF";
            cr_assert_eq(frt_tokenizer_encode(t, text, strlen(text), true, false, &ids, &n),
                         frt_tokenizer_bos(t) >= 0 ? FRT_OK : FRT_ERR_INVALID_ARG);
            if (frt_tokenizer_bos(t) >= 0) {
                char *dec;
                cr_assert_eq(frt_tokenizer_decode(t, ids, n, &dec, NULL), FRT_OK);
                frt_free(dec);
                frt_free(ids);
            }
        }
        frt_tokenizer_free(t);
    }
    free(copy);
    free(data);
}

/* ---- loading: malformed tokenizer.json --------------------------------------------------- */

static void expect_json(const char *text, frt_status want, const char *needle)
{
    frt_tokenizer *t = NULL;
    frt_status s = frt_tokenizer_load_json(text, strlen(text), "t.json", &t);
    cr_assert_eq(s, want, "%s: got %s (%s)", text, frt_status_name(s), frt_last_error());
    if (s == FRT_OK)
        frt_tokenizer_free(t);
    else
        cr_assert(strstr(frt_last_error(), needle), "\"%s\" lacks \"%s\"", frt_last_error(),
                  needle);
}

#define NORM                                                                                       \
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":"    \
    "\"\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]}"

Test(tokenizer, json_failures)
{
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3},"
                "\"merges\":[\"a b\"],\"unk_token\":\"<unk>\"}," NORM "}",
                FRT_OK, "");
    expect_json("{\"model\":", FRT_ERR_FORMAT, "not a JSON object");
    expect_json("[1]", FRT_ERR_FORMAT, "not a JSON object");
    expect_json("{}", FRT_ERR_FORMAT, "no model");
    expect_json("{\"model\":{\"type\":\"Unigram\",\"vocab\":{},\"merges\":[]}}",
                FRT_ERR_UNSUPPORTED, "not BPE");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0},\"merges\":[]},"
                "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                FRT_ERR_UNSUPPORTED, "pre-tokenizer");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0},\"merges\":[]},"
                "\"normalizer\":{\"type\":\"NFKC\"}}",
                FRT_ERR_UNSUPPORTED, "normalizers");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":2},\"merges\":[],"
                "\"unk_token\":\"<unk>\"}," NORM "}",
                FRT_ERR_FORMAT, "no piece has id 1");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":0},\"merges\":[],"
                "\"unk_token\":\"<unk>\"}," NORM "}",
                FRT_ERR_FORMAT, "two pieces");
    expect_json(
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":1.5},\"merges\":[]}," NORM "}",
        FRT_ERR_FORMAT, "not an integer");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":1},\"merges\":[\"a "
                "c\"],\"unk_token\":\"<unk>\"}," NORM "}",
                FRT_ERR_FORMAT, "not in the vocabulary");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0,\"a\":1},\"merges\":[\"abc\"],"
                "\"unk_token\":\"<unk>\"}," NORM "}",
                FRT_ERR_FORMAT, "not two pieces");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}," NORM "}",
                FRT_ERR_FORMAT, "no unknown piece");
    expect_json("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"<unk>\":0},\"merges\":[],"
                "\"unk_token\":\"<unk>\"},\"added_tokens\":[{\"id\":0,\"content\":\"<s>\"}]," NORM
                "}",
                FRT_ERR_FORMAT, "disagrees");
}

/* ---- more behaviour ---------------------------------------------------------------------- */

/* sentencepiece's DecodeUTF8, written the way its source does it (masks and code point
 * ranges), as the twin of frt_tok_utf8_len. */
static int ref_utf8_len(const uint8_t *p, size_t n)
{
    uint32_t cp;
    if (p[0] < 0x80) return 1;
    if (n >= 2 && (p[0] & 0xE0) == 0xC0) {
        cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && cp >= 0x80) return 2;
    } else if (n >= 3 && (p[0] & 0xF0) == 0xE0) {
        cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && cp >= 0x800 &&
            (cp < 0xD800 || cp > 0xDFFF))
            return 3;
    } else if (n >= 4 && (p[0] & 0xF8) == 0xF0) {
        cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
             (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
        if ((p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 &&
            cp >= 0x10000 && cp <= 0x10FFFF)
            return 4;
    }
    return 0;
}

Test(tokenizer, utf8_matches_sentencepiece)
{
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                    0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    enum { NT = sizeof tails };
    for (int b0 = 0; b0 < 256; b0++)
        for (int b1 = 0; b1 < 256; b1++)
            for (int i = 0; i < NT; i++)
                for (int j = 0; j < NT; j++) {
                    uint8_t p[4] = {(uint8_t)b0, (uint8_t)b1, tails[i], tails[j]};
                    for (size_t n = 1; n <= 4; n++) {
                        int want = ref_utf8_len(p, n), got = frt_tok_utf8_len(p, n, true);
                        cr_assert_eq(got, want, "%02x %02x %02x %02x n=%zu: %d, want %d", p[0],
                                     p[1], p[2], p[3], n, got, want);
                        /* Unfinished means: some continuation would make it valid. */
                        int part = frt_tok_utf8_len(p, n, false);
                        if (part >= 0)
                            cr_assert_eq(part, want);
                        else
                            cr_assert(want == 0 && n < 4);
                    }
                }
}

/* A prefix is "unfinished" only if some completion is valid. */
Test(tokenizer, utf8_unfinished_prefixes)
{
    for (int b0 = 0; b0 < 256; b0++)
        for (int b1 = -1; b1 < 256; b1++) {
            uint8_t p[4] = {(uint8_t)b0, (uint8_t)(b1 < 0 ? 0 : b1), 0, 0};
            size_t n = b1 < 0 ? 1 : 2;
            bool completes = false;
            for (int c2 = 0x80; c2 <= 0xBF && !completes; c2++)
                for (int c3 = 0x80; c3 <= 0xBF && !completes; c3++) {
                    uint8_t q[4] = {p[0], n == 2 ? p[1] : (uint8_t)c2, (uint8_t)c2, (uint8_t)c3};
                    for (size_t m = n + 1; m <= 4 && !completes; m++)
                        completes = ref_utf8_len(q, m) == (int)m;
                }
            if (ref_utf8_len(p, n) > 0) continue;
            int part = frt_tok_utf8_len(p, n, false);
            cr_assert_eq(part < 0, completes, "%02x %02x (n=%zu): unfinished %d, completes %d",
                         p[0], p[1], n, part < 0, completes);
        }
}

Test(tokenizer, injected_allocation_failures)
{
    frt_tokenizer *t = load("tokenizer.model");
    int32_t *ids = (int32_t *)1;
    size_t n = 5;
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_tokenizer_encode(t, "hello", 5, true, false, &ids, &n), FRT_ERR_NOMEM);
    cr_assert_null(ids);
    cr_assert_eq(n, 0);
    int32_t some[] = {1, 400, 500};
    char *text = (char *)1;
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_tokenizer_decode(t, some, 3, &text, NULL), FRT_ERR_NOMEM);
    cr_assert_null(text);
    frt_alloc_fail_after(0);
    frt_tokenizer_free(t);
}

/* Without byte fallback an unknown character is the unknown id, decoded as the model's
 * unk_surface; a custom BOS piece is found by name. */
Test(tokenizer, unknown_without_byte_fallback)
{
    pbw w = {0};
    pbw_piece(&w, "<unk>", 5, 0, FRT_PIECE_UNKNOWN);
    pbw_piece(&w, "[BOS]", 5, 0, FRT_PIECE_CONTROL);
    pbw_piece(&w, "\xE2\x96\x81", 3, -1, 1);
    pbw_piece(&w, "a", 1, -2, 1);
    pbw t = {0};
    pbw_uint(&t, 3, 2);
    pbw_bytes(&t, 44, "<?>", 3);
    pbw_bytes(&t, 46, "[BOS]", 5);
    pbw_bytes(&w, 2, t.b, t.n);
    frt_tokenizer *tok;
    cr_assert_eq(frt_tokenizer_load_model(w.b, w.n, NULL, &tok), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_tokenizer_bos(tok), 1);
    cr_assert_eq(frt_tokenizer_eos(tok), -1);
    int32_t *ids;
    size_t n;
    cr_assert_eq(frt_tokenizer_encode(tok, "a\xC3\xA9", 3, true, false, &ids, &n), FRT_OK);
    int32_t want[] = {1, 2, 3, 0};
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(ids, want, sizeof want);
    char *text;
    cr_assert_eq(frt_tokenizer_decode(tok, ids, n, &text, NULL), FRT_OK);
    cr_assert_str_eq(text, "a<?>");
    frt_free(text);
    frt_free(ids);
    cr_assert_eq(frt_tokenizer_encode(tok, "a", 1, false, true, &ids, &n), FRT_ERR_INVALID_ARG);
    frt_tokenizer_free(tok);
    free(t.b);
    free(w.b);
}

/* Newer Hugging Face files spell the space handling as a Metaspace pre-tokenizer, and may
 * add tokens beyond the BPE vocabulary. */
Test(tokenizer, json_metaspace_and_added_tokens)
{
    const char *json =
        "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":false,"
        "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"\u2581\":2,\"a\":3,\"b\":4,\"ab\":5,\"\u2581ab\":6},"
        "\"merges\":[\"a b\",\"\u2581 ab\"]},"
        "\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true},"
        "{\"id\":7,\"content\":\"<image>\",\"special\":false}],"
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":"
        "\"\u2581\",\"prepend_scheme\":\"first\",\"split\":false}}";
    frt_tokenizer *t;
    cr_assert_eq(frt_tokenizer_load_json(json, strlen(json), NULL, &t), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_eq(frt_tokenizer_vocab_size(t), 8);
    cr_assert_eq(frt_tokenizer_piece_type(t, 7), FRT_PIECE_USER_DEFINED);
    cr_assert_eq(frt_tokenizer_bos(t), 1);
    int32_t *ids;
    size_t n;
    cr_assert_eq(frt_tokenizer_encode(t, "ab<image> ab", 12, true, false, &ids, &n), FRT_OK);
    int32_t want[] = {1, 6, 7, 6};
    cr_assert_eq(n, 4);
    cr_assert_arr_eq(ids, want, sizeof want);
    char *text;
    cr_assert_eq(frt_tokenizer_decode(t, ids, n, &text, NULL), FRT_OK);
    cr_assert_str_eq(text, "ab<image> ab");
    frt_free(text);
    frt_free(ids);
    frt_tokenizer_free(t);
}

typedef struct {
    const frt_tokenizer *t;
    int failures;
} thread_arg;

static void *encode_loop(void *p)
{
    thread_arg *a = p;
    static const char *const texts[] = {"hello world", "  \xF0\x9F\x98\x80 <image> 42\n",
                                        "the model reads frames"};
    int32_t *first[3] = {0};
    size_t nfirst[3] = {0};
    for (int it = 0; it < 300; it++) {
        int k = it % 3;
        int32_t *ids;
        size_t n;
        if (frt_tokenizer_encode(a->t, texts[k], strlen(texts[k]), true, true, &ids, &n)) {
            a->failures++;
            continue;
        }
        if (!first[k]) {
            first[k] = ids;
            nfirst[k] = n;
            continue;
        }
        if (n != nfirst[k] || memcmp(ids, first[k], n * sizeof *ids)) a->failures++;
        frt_free(ids);
    }
    for (int k = 0; k < 3; k++) frt_free(first[k]);
    return NULL;
}

/* One tokenizer, used from several threads at once. */
Test(tokenizer, shared_between_threads)
{
    frt_tokenizer *t = load("tokenizer.model");
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, encode_loop, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].failures, 0);
    }
    frt_tokenizer_free(t);
}
