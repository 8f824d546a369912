/* Limits: every size read from outside is checked before it is used, and
 * each cap answers with its own clear error (docs/RELIABILITY.md, "Limits",
 * lists them with these tests). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "audio_io.h"
#include "clip.h"
#include "config.h"
#include "error.h"
#include "flashrt/speech.h"
#include "flashrt/vstream.h"
#include "frontend.h"
#include "llama.h"
#include "memory.h"
#include "safetensors.h"
#include "testutil.h"
#include "tokenizer.h"

static char *g_dir;

static void setup(void)
{
    frt_log_set_level(FRT_LOG_OFF);
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

TestSuite(limits, .init = setup, .fini = teardown);

/* ---- safetensors ------------------------------------------------------------ */

/* A safetensors file of the given header (padded to 8) and data bytes. */
static frt_status open_st(const char *header, size_t data_len, frt_st **st)
{
    size_t h = strlen(header), hp = (h + 7) / 8 * 8, n = 8 + hp + data_len;
    unsigned char *buf = calloc(1, n);
    cr_assert(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', hp - h);
    char *path = tu_write_file(g_dir, "t.safetensors", buf, n);
    free(buf);
    frt_status s = frt_st_open(path, st);
    free(path);
    return s;
}

Test(limits, safetensors_shape_product_overflows_int64)
{
    frt_st *st = NULL;
    cr_expect_eq(open_st("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                         "\"data_offsets\":[0,0]}}",
                         0, &st),
                 FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "overflows"), "%s", frt_last_error());
    cr_expect_null(st);
}

/* Found by fuzz_safetensors: an empty tensor whose other dims multiply past
 * int64 loaded, and frt_st_get overflowed computing its strides. */
Test(limits, safetensors_empty_tensor_with_overflowing_strides)
{
    frt_st *st = NULL;
    cr_expect_eq(open_st("{\"t\":{\"dtype\":\"I32\",\"shape\":[0,1000000,4503598627370496],"
                         "\"data_offsets\":[0,0]}}",
                         0, &st),
                 FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "overflows"), "%s", frt_last_error());
    /* The same without the overflow loads: an empty tensor is fine. */
    cr_assert_eq(open_st("{\"t\":{\"dtype\":\"I32\",\"shape\":[0,1000000,4096],"
                         "\"data_offsets\":[0,0]}}",
                         0, &st),
                 FRT_OK, "%s", frt_last_error());
    frt_tensor t;
    cr_expect_eq(frt_st_get(st, "t", &t), FRT_OK);
    frt_st_close(st);
}

Test(limits, safetensors_header_length_cap_and_bounds)
{
    unsigned char buf[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}'}; /* 2^40 */
    char *path = tu_write_file(g_dir, "big.safetensors", buf, sizeof buf);
    frt_st *st = NULL;
    cr_expect_eq(frt_st_open(path, &st), FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "cap"), "%s", frt_last_error());
    free(path);
    cr_expect_eq(open_st("{\"t\":{\"dtype\":\"I8\",\"shape\":[9007199254740991],"
                         "\"data_offsets\":[0,9007199254740991]}}",
                         4, &st),
                 FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "out of bounds"), "%s", frt_last_error());
}

/* ---- config.json ------------------------------------------------------------ */

static frt_config *parse(const char *json)
{
    frt_config *c = NULL;
    cr_assert_eq(frt_config_parse(json, strlen(json), "config.json", &c), FRT_OK, "%s",
                 frt_last_error());
    return c;
}

Test(limits, config_text_cap)
{
    size_t n = (16u << 20) + 1;
    char *text = malloc(n);
    cr_assert(text);
    memset(text, ' ', n);
    text[0] = '{';
    text[n - 1] = '}';
    frt_config *c = NULL;
    cr_expect_eq(frt_config_parse(text, n, "config.json", &c), FRT_ERR_LIMIT);
    free(text);
}

Test(limits, config_sizes_far_too_large)
{
    frt_st *empty = NULL;
    cr_assert_eq(frt_st_from_memory(NULL, 0, "empty", &empty), FRT_OK);
    static const char *const cases[][2] = {
        {"{\"hidden_size\": 1099511627776}", "hidden_size"},
        {"{\"num_hidden_layers\": 1099511627776}", "num_hidden_layers"},
        {"{\"vocab_size\": 1e300}", "vocab_size"},
        {"{\"num_attention_heads\": -1}", "num_attention_heads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        frt_config *c = parse(cases[i][0]);
        frt_llama *m = NULL;
        cr_expect_eq(frt_llama_open(empty, c, NULL, NULL, &m), FRT_ERR_FORMAT, "%s", cases[i][0]);
        cr_expect(strstr(frt_last_error(), cases[i][1]), "%s: %s", cases[i][0], frt_last_error());
        frt_config_free(c);
    }
    frt_config *c = parse("{\"image_size\": 1099511627776}");
    frt_clip *clip = NULL;
    cr_expect_eq(frt_clip_open(empty, c, NULL, NULL, &clip), FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "image_size"), "%s", frt_last_error());
    frt_config_free(c);

    c = parse("{\"mm_hidden_size\": 1099511627776}");
    frt_star_config sc;
    frt_star_config_default(&sc, 1024);
    cr_expect_eq(frt_star_config_read(c, &sc), FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "mm_hidden_size"), "%s", frt_last_error());
    frt_config_free(c);
    frt_st_close(empty);
}

/* ---- STAR memory sizes ------------------------------------------------------ */

Test(limits, star_memory_sizes)
{
    frt_star_config c;
    frt_star_config_default(&c, 1024);
    cr_expect_eq(frt_star_config_check(&c), FRT_OK, "%s", frt_last_error());

    /* q/k of 2^16 x 2^20 floats (both within what config.json may say). */
    c.hidden = 1 << 16;
    c.dim = 1 << 20;
    c.p_spa = c.p_tem = c.p_abs = 1;
    cr_expect_eq(frt_star_config_check(&c), FRT_ERR_LIMIT);

    /* A frame of 2^16 x 2^16 x 2^10 floats overflowed int while no
     * spatial or retrieved token counted it. */
    frt_star_config_default(&c, 1024);
    c.p_spa = 1 << 16;
    c.p_tem = c.p_abs = 1;
    c.n_spa = c.n_ret = 0;
    cr_expect_eq(frt_star_config_check(&c), FRT_ERR_LIMIT);

    /* A feature buffer of 2^20 full frames (256 GiB) is over the cap. */
    frt_star_config_default(&c, 1024);
    c.n_buff = 1 << 20;
    cr_expect_eq(frt_star_config_check(&c), FRT_ERR_LIMIT);
    cr_expect(strstr(frt_last_error(), "GiB"), "%s", frt_last_error());
    frt_star *m = NULL;
    float w[32 * 1024] = {0};
    cr_expect_eq(frt_star_create(&c, w, w, w, w, &m), FRT_ERR_LIMIT);
    cr_expect_null(m);
}

/* ---- tokenizer ---------------------------------------------------------------- */

/* The normalizer of a Llama tokenizer.json (spaces to U+2581, one prepended). */
#define NORM                                                                                       \
    "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", "          \
    "\"prepend\": \"\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "         \
    "\"content\": \"\u2581\"}]}"

Test(limits, tokenizer_text_and_piece)
{
    frt_tokenizer *tok = NULL;
    cr_assert_eq(frt_tokenizer_load(FRT_TEST_DATA "/tokenizer/tokenizer.model", &tok), FRT_OK);
    size_t n = FRT_TOK_MAX_TEXT + 1;
    char *text = malloc(n);
    cr_assert(text);
    memset(text, 'a', n);
    int32_t *ids = NULL;
    size_t nids = 0;
    cr_expect_eq(frt_tokenizer_encode(tok, text, n, false, false, &ids, &nids), FRT_ERR_LIMIT);
    cr_expect_null(ids);
    free(text);
    frt_tokenizer_free(tok);

    char piece[FRT_TOK_MAX_PIECE + 2];
    memset(piece, 'x', sizeof piece - 1);
    piece[sizeof piece - 1] = 0;
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<unk>\": 0, \"%s\": 1}, "
             "\"merges\": [], \"unk_token\": \"<unk>\"}, %s}",
             piece, NORM);
    tok = NULL;
    cr_expect_eq(frt_tokenizer_load_json(json, strlen(json), "tokenizer.json", &tok), FRT_ERR_LIMIT,
                 "%s", frt_last_error());
    cr_expect_null(tok);

    /* A tokenizer.model over the 64 MiB cap (zero pages: nothing is written). */
    size_t big = (64u << 20) + 1;
    char *model = calloc(1, big);
    cr_assert(model);
    cr_expect_eq(frt_tokenizer_load_model(model, big, "tokenizer.model", &tok), FRT_ERR_LIMIT);
    cr_expect_eq(frt_tokenizer_load_json(model, big, "tokenizer.json", &tok), FRT_ERR_LIMIT);
    free(model);

    /* An id at the vocabulary cap (it would size the piece table). */
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<unk>\": 0, \"a\": %d}, "
             "\"merges\": []}, %s}",
             FRT_TOK_MAX_VOCAB, NORM);
    cr_expect_eq(frt_tokenizer_load_json(json, strlen(json), "tokenizer.json", &tok),
                 FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "vocab id"), "%s", frt_last_error());
    cr_expect_null(tok);
}

/* ---- text ------------------------------------------------------------------- */

/* Found by fuzz_frontend: a run of terminators ("!!!!...") was taken whole,
 * however long, so one "sentence" could be the whole text. */
Test(limits, sentence_length_on_any_text)
{
    static const char *const fills[] = {"!", "?", ".", "\"", "\xe2\x80\xa6", "a"};
    for (size_t f = 0; f < sizeof fills / sizeof *fills; f++) {
        frt_strbuf b = {0};
        cr_assert_eq(frt_strbuf_append(&b, "Go", 2), FRT_OK);
        for (int i = 0; i < 5000; i++)
            cr_assert_eq(frt_strbuf_append(&b, fills[f], strlen(fills[f])), FRT_OK);
        cr_assert_eq(frt_strbuf_append(&b, " end", 4), FRT_OK);
        size_t pos = 0, a, e, total = 0;
        while (frt_sentence_next(b.s, b.len, &pos, &a, &e)) {
            cr_expect_leq(e - a, FRT_SENTENCE_MAX + 4, "fill '%s': sentence of %zu bytes", fills[f],
                          e - a);
            total += e - a;
        }
        cr_expect_geq(total, b.len - 1, "fill '%s': text lost", fills[f]);
        frt_strbuf_free(&b);
    }
}

#ifdef FRT_HAVE_ESPEAK
/* Found by fuzz_frontend: espeak-ng 1.51 reads freed memory on words that
 * mix an Armenian letter with IPA or modifier letters and a Latin one,
 * overflows its stack on "a." and 240 letters, and reads past the end of the
 * text after a control character. The G2P hands it text that avoids all
 * three; under ASan (the first and third) or the stack protector (the
 * second) this test fails if it stops doing so. */
Test(limits, espeak_inputs_that_break_espeak_ng)
{
    frt_g2p *g = NULL;
    cr_assert_eq(frt_g2p_espeak_open(NULL, &g), FRT_OK, "%s", frt_last_error());
    char long_word[243] = "a.";
    memset(long_word + 2, 'b', 240);
    const char *const texts[] = {"\xD6\x88\xCB\x88J",
                                 "\xD5\xB1\xCB\x90"
                                 "a",
                                 "T;;;'pox,' 8hmefr)\xD6\x88\xCB\x88J..'",
                                 "\xD6\x88\xCA\x89"
                                 "c",
                                 "\xD6\x87\xC9\x90"
                                 "c",
                                 "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\x01"
                                 "BBBBxxxxx",
                                 long_word};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        frt_strbuf out = {0};
        cr_expect_eq(g->phonemize(g, texts[i], strlen(texts[i]), &out), FRT_OK);
        frt_strbuf_free(&out);
    }
    frt_g2p_free(g);
}
#endif

static int on_chunk(const frt_speech_chunk *c, void *user)
{
    (void)c;
    (void)user;
    return 0;
}

Test(limits, speech_text_per_call)
{
    frt_speech *sp = NULL;
    cr_assert_eq(frt_speech_open(FRT_TEST_DATA "/speech/flashspeech-tiny", &sp), FRT_OK, "%s",
                 frt_last_error());
    size_t n = (size_t)FRT_SPEECH_MAX_TEXT + 1;
    char *text = malloc(n + 1);
    cr_assert(text);
    memset(text, 'a', n);
    text[n] = 0;
    cr_expect_eq(frt_speech_synthesize(sp, text, NULL, on_chunk, NULL), FRT_ERR_LIMIT);
    cr_expect(strstr(frt_last_error(), "longer than"), "%s", frt_last_error());
    free(text);
    frt_speech_close(sp);
}

/* ---- vstream questions -------------------------------------------------------- */

static void on_answer(const frt_vstream_answer *a, void *user)
{
    (void)a;
    (void)user;
}

Test(limits, vstream_question_10mb)
{
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.tokenizer = FRT_TEST_DATA "/tokenizer/ws.model";
    frt_vstream *vs = NULL;
    cr_assert_eq(frt_vstream_open(FRT_TEST_DATA "/models/vstream-tiny", &o, &vs), FRT_OK, "%s",
                 frt_last_error());
    size_t n = 10u << 20;
    char *q = malloc(n + 1);
    cr_assert(q);
    memset(q, 'a', n);
    q[n] = 0;
    uint64_t id = 0;
    cr_expect_eq(frt_vstream_ask(vs, q, on_answer, NULL, &id), FRT_ERR_LIMIT);
    cr_expect(strstr(frt_last_error(), "longer than"), "%s", frt_last_error());
    cr_expect_eq(id, 0);
    free(q);
    frt_vstream_close(vs);
}

/* ---- audio ------------------------------------------------------------------ */

/* A WAV file of one channel count and rate: 2 frames of PCM16 zeros, or
 * with float_value non-zero, 64 float32 frames of that value. */
static char *wav(const char *name, uint32_t rate, uint16_t channels, float float_value)
{
    unsigned char h[44 + 64 * 4];
    bool f32 = float_value != 0;
    uint16_t fmt = f32 ? 3 : 1, bits = f32 ? 32 : 16;
    uint32_t block = bits / 8u * channels, data = f32 ? 64 * block : 4;
    memcpy(h, "RIFF", 4);
    uint32_t riff = 36 + data, fmt_len = 16;
    memcpy(h + 4, &riff, 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    memcpy(h + 16, &fmt_len, 4);
    uint32_t bps = rate * block;
    uint16_t ba = (uint16_t)block;
    memcpy(h + 20, &fmt, 2);
    memcpy(h + 22, &channels, 2);
    memcpy(h + 24, &rate, 4);
    memcpy(h + 28, &bps, 4);
    memcpy(h + 32, &ba, 2);
    memcpy(h + 34, &bits, 2);
    memcpy(h + 36, "data", 4);
    memcpy(h + 40, &data, 4);
    memset(h + 44, 0, sizeof h - 44);
    for (int i = 0; f32 && i < 64 * channels; i++) memcpy(h + 44 + 4 * i, &float_value, 4);
    return tu_write_file(g_dir, name, h, 44 + data);
}

Test(limits, audio_rate_and_channels)
{
    float *pcm = NULL;
    size_t n = 0;
    char *ok = wav("ok.wav", 16000, 1, 0);
    cr_expect_eq(frt_audio_read(ok, 16000, &pcm, &n), FRT_OK, "%s", frt_last_error());
    cr_expect_eq(n, 2);
    free(pcm);
    free(ok);
    char *fast = wav("fast.wav", 4000000, 1, 0);
    pcm = NULL;
    cr_expect_eq(frt_audio_read(fast, 16000, &pcm, &n), FRT_ERR_FORMAT);
    cr_expect_null(pcm);
    free(fast);
    char *wide = wav("wide.wav", 16000, 1000, 0);
    cr_expect_eq(frt_audio_read(wide, 16000, &pcm, &n), FRT_ERR_FORMAT);
    free(wide);
    cr_expect_eq(frt_resample(NULL, SIZE_MAX / 4, 8000, 16000, &pcm, &n), FRT_ERR_LIMIT);
}

/* Found by fuzz_audio: float samples near FLT_MAX came out of the resampler
 * as Inf. They are clipped to full scale on reading. */
Test(limits, audio_float_beyond_full_scale)
{
    char *path = wav("loud.wav", 22050, 1, 3.0e38f);
    float *pcm = NULL;
    size_t n = 0;
    cr_assert_eq(frt_audio_read(path, 16000, &pcm, &n), FRT_OK, "%s", frt_last_error());
    cr_expect_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(isfinite(pcm[i]) && fabsf(pcm[i]) < 1.2f, "%g", pcm[i]);
    free(pcm);
    free(path);
}
