/* libFuzzer: encode and decode with fixed tokenizers (tests/data/tokenizer).
 * The first byte picks the tokenizer and what the rest is: text to encode
 * (then decoded back), or ids (little-endian 16-bit, some out of range) to
 * decode at once and as a stream. The stream's concatenated output must equal
 * the one-shot decode (the tokenizer's documented contract): a mismatch
 * aborts, so the fuzzer reports it. */
#include "fuzz_util.h"
#include "tokenizer.h"

#include "alloc.h"

#define NTOK 3
static frt_tokenizer *toks[NTOK];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    static const char *const files[NTOK] = {"tokenizer.model", "noprefix.model", "tokenizer.json"};
    for (int i = 0; i < NTOK; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tokenizer/%s", FRT_TEST_DATA, files[i]);
        if (frt_tokenizer_load(path, &toks[i]) != FRT_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", frt_last_error());
            abort();
        }
    }
    return 0;
}

static void encode_text(const frt_tokenizer *tok, const uint8_t *data, size_t size, bool bos)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (frt_tokenizer_encode(tok, (const char *)data, size, bos, bos, &ids, &n) != FRT_OK) return;
    char *text = NULL;
    if (frt_tokenizer_decode(tok, ids, n, &text, NULL) == FRT_OK) frt_free(text);
    frt_free(ids);
}

/* Append s[0..n) to the growing buffer *b of *len bytes (cap *cap). */
static void append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *b = realloc(*b, *cap);
        if (!*b) abort();
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
}

static void decode_ids(const frt_tokenizer *tok, const uint8_t *data, size_t size, bool cont)
{
    int32_t vocab = frt_tokenizer_vocab_size(tok);
    size_t n = size / 2;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids), *valid = malloc((n ? n : 1) * sizeof *ids);
    if (!ids || !valid) abort();
    size_t nvalid = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
        /* Mostly real ids; the top of the range is out of bounds or negative. */
        ids[i] = v >= 0xFFF0 ? (int32_t)v - 0xFFF8 + (v & 1 ? vocab : 0) : v % vocab;
        if (ids[i] >= 0 && ids[i] < vocab) valid[nvalid++] = ids[i];
    }

    char *whole = NULL;
    size_t whole_len = 0;
    frt_status s = frt_tokenizer_decode(tok, ids, n, &whole, &whole_len);
    if (nvalid != n && s != FRT_ERR_INVALID_ARG) abort();
    if (s == FRT_OK) frt_free(whole);
    whole = NULL;
    if (frt_tokenizer_decode(tok, valid, nvalid, &whole, &whole_len) != FRT_OK) abort();

    frt_detok d;
    if (cont)
        frt_detok_init_continuation(&d, tok);
    else
        frt_detok_init(&d, tok);
    char *streamed = NULL;
    size_t slen = 0, scap = 0;
    append(&streamed, &slen, &scap, "", 0);
    for (size_t i = 0; i < n; i++) {
        const char *t;
        size_t tl;
        frt_status ps = frt_detok_push(&d, ids[i], &t, &tl);
        if ((ps == FRT_OK) != (ids[i] >= 0 && ids[i] < vocab)) abort();
        if (ps == FRT_OK) append(&streamed, &slen, &scap, t, tl);
    }
    const char *t;
    size_t tl;
    frt_detok_flush(&d, &t, &tl);
    append(&streamed, &slen, &scap, t, tl);
    if (!cont && (slen != whole_len || memcmp(streamed, whole, slen) != 0)) {
        fprintf(stderr, "stream decode \"%s\" != decode \"%s\"\n", streamed, whole);
        abort();
    }
    free(streamed);
    frt_free(whole);
    free(ids);
    free(valid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const frt_tokenizer *tok = toks[data[0] % NTOK];
    int mode = data[0] / NTOK % 4;
    if (mode < 2)
        encode_text(tok, data + 1, size - 1, mode == 1);
    else
        decode_ids(tok, data + 1, size - 1, mode == 3);
    return 0;
}
