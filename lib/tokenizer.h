/* Internal: the Llama tokenizer (SentencePiece BPE with byte fallback).
 *
 * Loads a SentencePiece `tokenizer.model` (the ModelProto protobuf, parsed and
 * validated here) or a Hugging Face Llama-style `tokenizer.json`, and encodes and
 * decodes exactly as python-sentencepiece 0.1.97 does for BPE models:
 *
 * Encode: ' ' becomes U+2581 ("▁"), a "▁" is prepended when the model's
 * normalizer asks for the dummy prefix, runs of spaces are collapsed when it asks
 * for remove_extra_whitespaces; bytes that are not valid UTF-8 become U+FFFD, one
 * per byte (what sentencepiece does with them). Then the text is split into
 * characters (user-defined pieces such as "<image>" are matched whole, longest
 * first, and never merged), and the adjacent pair whose concatenation is the
 * best-scoring piece is merged repeatedly (ties: leftmost), in O(n log n) with a
 * priority queue. Pieces left unknown become <0xXX> byte pieces (byte fallback)
 * or the unknown id. Control pieces written in the text ("<s>") are ordinary
 * text, as in sentencepiece; to put a BOS/EOS in a prompt, splice its id.
 *
 * Decode: control pieces (BOS/EOS) give nothing, the unknown piece gives " ⁇ "
 * (the model's unk_surface), "▁" becomes ' ', the leading "▁" of the first
 * piece is dropped when the model adds a dummy prefix, and runs of byte pieces
 * are reassembled into UTF-8 (each byte that cannot be part of a valid
 * character gives U+FFFD).
 *
 * Only BPE models with identity normalization (no precompiled character map,
 * as Llama's) are supported; others fail with FRT_ERR_UNSUPPORTED.
 *
 * tokenizer.json goes through the same encoder and decoder: its vocabulary
 * gives the ids, added_tokens the types (special: control, else user-defined),
 * and a piece's merge priority is the rank of the first merge that makes it
 * (only such pieces are ever made by merging). For a tokenizer.json converted
 * from a SentencePiece model, as Llama's are, this gives sentencepiece's ids
 * (checked on the goldens). Where Hugging Face's own BPE differs it is not
 * followed: special tokens written in the text are not matched, unknown
 * characters fall back to bytes after merging rather than before, and decode
 * follows sentencepiece (" ⁇ " for the unknown piece). Byte-level BPE files
 * (Llama 3, GPT-2: a ByteLevel pre-tokenizer) fail with FRT_ERR_UNSUPPORTED.
 *
 * Thread-safety: a loaded frt_tokenizer is immutable; every function taking a
 * const frt_tokenizer * may be called from any number of threads at once. An
 * frt_detok belongs to one thread at a time. */
#ifndef FRT_TOKENIZER_H
#define FRT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

/* Longest input frt_tokenizer_encode accepts, in bytes (FRT_ERR_LIMIT beyond). */
#define FRT_TOK_MAX_TEXT (1u << 20)
/* Longest piece a model may hold, in bytes (FRT_ERR_LIMIT at load beyond). */
#define FRT_TOK_MAX_PIECE 512
/* Most pieces a model may hold (FRT_ERR_LIMIT at load beyond). */
#define FRT_TOK_MAX_VOCAB (1 << 21)

typedef struct frt_tokenizer frt_tokenizer;

/* SentencePiece piece types (the ModelProto enum). */
typedef enum frt_piece_type {
    FRT_PIECE_NORMAL = 1,
    FRT_PIECE_UNKNOWN = 2,
    FRT_PIECE_CONTROL = 3,
    FRT_PIECE_USER_DEFINED = 4,
    FRT_PIECE_UNUSED = 5,
    FRT_PIECE_BYTE = 6
} frt_piece_type;

/* Load from a file or a model directory. A directory is searched for
 * tokenizer.model, then tokenizer.json; a file is read as JSON when its name
 * ends in ".json", else as a SentencePiece model. Errors: FRT_ERR_NOT_FOUND (no
 * such file, or a directory with neither), FRT_ERR_IO, FRT_ERR_LIMIT (file over
 * 64 MiB, too many pieces, a piece too long), FRT_ERR_FORMAT (malformed; the
 * message names the field and byte offset, also in frt_last_error_detail),
 * FRT_ERR_UNSUPPORTED (not BPE, a normalization map), FRT_ERR_NOMEM. *out is
 * NULL on failure; free a tokenizer with frt_tokenizer_free. */
frt_status frt_tokenizer_load(const char *path, frt_tokenizer **out);
/* Same, from a tokenizer.model image in memory (len bytes, not kept); name is
 * used in messages (may be NULL). */
frt_status frt_tokenizer_load_model(const void *data, size_t len, const char *name,
                                    frt_tokenizer **out);
/* Same, from tokenizer.json text in memory (len bytes, not kept). */
frt_status frt_tokenizer_load_json(const char *text, size_t len, const char *name,
                                   frt_tokenizer **out);
void frt_tokenizer_free(frt_tokenizer *tok); /* NULL is a no-op */

/* Encode len bytes of text (need not be NUL-terminated; may hold NULs and
 * invalid UTF-8). *ids gets a buffer of *n ids allocated with frt_alloc, owned
 * by the caller (frt_free); it is a valid pointer also when *n is 0. add_bos /
 * add_eos put the model's BOS / EOS id first / last (FRT_ERR_INVALID_ARG when
 * the model has none). Errors: FRT_ERR_LIMIT (len > FRT_TOK_MAX_TEXT),
 * FRT_ERR_INVALID_ARG (NULL pointers), FRT_ERR_NOMEM; *ids is NULL and *n 0 then. */
frt_status frt_tokenizer_encode(const frt_tokenizer *tok, const char *text, size_t len,
                                bool add_bos, bool add_eos, int32_t **ids, size_t *n);

/* Decode n ids into a NUL-terminated UTF-8 string allocated with frt_alloc,
 * owned by the caller (frt_free); *len (may be NULL) gets its length.
 * FRT_ERR_INVALID_ARG names the first id outside [0, vocab size). */
frt_status frt_tokenizer_decode(const frt_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                                size_t *len);

int32_t frt_tokenizer_vocab_size(const frt_tokenizer *tok);
/* Special ids, -1 when the model has none. */
int32_t frt_tokenizer_bos(const frt_tokenizer *tok);
int32_t frt_tokenizer_eos(const frt_tokenizer *tok);
int32_t frt_tokenizer_unk(const frt_tokenizer *tok);
/* Id of a piece given by its exact text ("<s>", "▁the", "<0x0A>"), -1 if absent. */
int32_t frt_tokenizer_id_of(const frt_tokenizer *tok, const char *piece, size_t len);
/* Text of a piece as stored (with "▁"), NUL-terminated and owned by tok; NULL
 * when id is out of range. *len (may be NULL) gets its length. */
const char *frt_tokenizer_piece(const frt_tokenizer *tok, int32_t id, size_t *len);
/* Piece type and score; 0 for an out-of-range id. */
frt_piece_type frt_tokenizer_piece_type(const frt_tokenizer *tok, int32_t id);
float frt_tokenizer_score(const frt_tokenizer *tok, int32_t id);

/* Streaming decode: push ids one at a time as a model produces them and get
 * the text each one completes. The concatenation of all outputs (pushes, then
 * flush) equals frt_tokenizer_decode of the same ids, and no output ends inside
 * a UTF-8 character: bytes of a character spelt with byte pieces are held until
 * the character is complete (or cannot be, then each gives U+FFFD). A plain
 * struct so it needs no allocation; treat its fields as private. */
typedef struct frt_detok {
    const frt_tokenizer *tok;
    uint8_t pending[4]; /* bytes of an unfinished character from byte pieces */
    int npending;
    bool is_bos_ws;   /* the next piece's leading "▁" is the dummy prefix */
    bool bos_ws_seen; /* the last non-byte piece consumed that prefix */
    bool any_text;    /* something was emitted */
    size_t out_len;
    char out[FRT_TOK_MAX_PIECE + 32];
} frt_detok;

/* Start a stream (also resets one). tok must outlive the stream. The stream
 * decodes like frt_tokenizer_decode: the first piece loses its leading space. */
void frt_detok_init(frt_detok *d, const frt_tokenizer *tok);
/* Same, for ids that continue text decoded before (a model's answer after its
 * prompt): the first piece keeps its leading space. */
void frt_detok_init_continuation(frt_detok *d, const frt_tokenizer *tok);
/* Push one id. *text gets the newly completed text (NUL-terminated, may be ""),
 * owned by d and valid until the next call on d; *len its length (may be NULL).
 * FRT_ERR_INVALID_ARG for an id out of range (the stream is unchanged). */
frt_status frt_detok_push(frt_detok *d, int32_t id, const char **text, size_t *len);
/* End of the ids: the held bytes of an unfinished character come out as U+FFFD
 * each. The stream may be reused after frt_detok_init. */
void frt_detok_flush(frt_detok *d, const char **text, size_t *len);

#endif
