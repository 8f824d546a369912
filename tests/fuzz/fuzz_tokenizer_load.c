/* libFuzzer: loading a tokenizer itself, a SentencePiece tokenizer.model
 * (protobuf) or a tokenizer.json, chosen by the first byte. A model that
 * loads then encodes and decodes a short text and its own pieces. */
#include "alloc.h"
#include "fuzz_util.h"
#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void exercise(const frt_tokenizer *tok)
{
    static const char text[] = "Hello  wörld <image>\n\xff\xfe 12.5%";
    int32_t *ids = NULL;
    size_t n = 0;
    bool bos = frt_tokenizer_bos(tok) >= 0 && frt_tokenizer_eos(tok) >= 0;
    if (frt_tokenizer_encode(tok, text, sizeof text - 1, bos, bos, &ids, &n) == FRT_OK) {
        char *out = NULL;
        if (frt_tokenizer_decode(tok, ids, n, &out, NULL) == FRT_OK) frt_free(out);
        frt_free(ids);
    }
    int32_t vocab = frt_tokenizer_vocab_size(tok);
    int32_t some[64];
    int k = 0;
    for (int32_t id = 0; id < vocab && k < 64; id += 1 + vocab / 64) some[k++] = id;
    frt_detok d;
    frt_detok_init(&d, tok);
    const char *t;
    for (int i = 0; i < k; i++) {
        size_t len;
        const char *piece = frt_tokenizer_piece(tok, some[i], &len);
        if (piece) (void)frt_tokenizer_id_of(tok, piece, len);
        (void)frt_detok_push(&d, some[i], &t, NULL);
    }
    frt_detok_flush(&d, &t, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    frt_tokenizer *tok = NULL;
    frt_status s =
        data[0] & 1 ? frt_tokenizer_load_json((const char *)data + 1, size - 1, "fuzz.json", &tok)
                    : frt_tokenizer_load_model(data + 1, size - 1, "fuzz.model", &tok);
    if (s == FRT_OK) {
        exercise(tok);
        frt_tokenizer_free(tok);
    }
    return 0;
}
