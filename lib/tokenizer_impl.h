/* Private to lib/tokenizer*.c: the tokenizer's tables and the builder the two
 * file loaders (tokenizer.model, tokenizer.json) fill them through. */
#ifndef FRT_TOKENIZER_IMPL_H
#define FRT_TOKENIZER_IMPL_H

#include "tokenizer.h"

/* The space marker U+2581 in UTF-8. */
#define FRT_TOK_SPACE     "\xE2\x96\x81"
#define FRT_TOK_SPACE_LEN 3

struct frt_tokenizer {
    int32_t n, cap;
    char *chars; /* every piece, NUL-terminated, back to back */
    size_t chars_len, chars_cap;
    uint32_t *off; /* piece i is chars + off[i], len[i] bytes */
    uint16_t *len;
    float *score;
    uint8_t *type;      /* frt_piece_type */
    uint8_t *mergeable; /* may be the result of merging two adjacent symbols */
    int32_t *table;     /* open addressing piece -> id, -1 empty */
    uint32_t mask;
    int32_t byte_id[256]; /* -1 where the model has no <0xXX> piece */
    int32_t unk, bos, eos;
    int32_t *user; /* user-defined ids, longest first */
    int32_t nuser;
    bool has_unused;
    /* normalizer and trainer settings the encoder and decoder follow */
    bool add_dummy_prefix, remove_extra_ws, escape_ws, byte_fallback;
    char unk_surface[FRT_TOK_MAX_PIECE + 1];
    size_t unk_surface_len;
    /* names of the special pieces, resolved to ids by frt_tok_finish */
    char unk_piece[64], bos_piece[64], eos_piece[64];
};

/* An empty tokenizer with sentencepiece's defaults (dummy prefix, collapse
 * whitespace, escape spaces, no byte fallback, " ⁇ ", <unk> <s> </s>). */
frt_status frt_tok_new(frt_tokenizer **out);
/* Append a piece (ids are given in order). file and offset go into messages. */
frt_status frt_tok_add(frt_tokenizer *t, const char *s, size_t len, float score,
                       frt_piece_type type, const char *file, int64_t offset);
/* Index the pieces and check the model as sentencepiece's loader does: one
 * unknown piece, no duplicates, byte pieces only with byte fallback and then
 * all 256. mergeable is taken from the types unless keep_mergeable. */
frt_status frt_tok_finish(frt_tokenizer *t, const char *file, bool keep_mergeable);
/* Id of the piece spelt s[0..len), -1 when absent. */
int32_t frt_tok_lookup(const frt_tokenizer *t, const char *s, size_t len);

/* The byte a piece spelt "<0xXX>" (upper-case hex) stands for, else -1. */
int frt_tok_byte_value(const char *s, size_t len);

/* Length of the UTF-8 character at p (n bytes available) as sentencepiece's
 * strict decoder sees it: > 0 for a valid character, 0 when p[0] cannot start
 * one, -1 when the n bytes are a valid but unfinished prefix (only when
 * !final; with final an unfinished prefix is invalid, 0). */
int frt_tok_utf8_len(const uint8_t *p, size_t n, bool final);

#endif
