/* Loading a tokenizer: SentencePiece's tokenizer.model (a ModelProto protobuf,
 * read by hand: nothing in it is trusted) and Hugging Face's tokenizer.json. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer_impl.h"

#define TOK_MAX_FILE (64u << 20)

/* ---- protobuf wire format ---------------------------------------------------------- */

typedef struct {
    const uint8_t *base, *p, *end;
    const char *file;
} pb_reader;

enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 };

static int64_t pb_offset(const pb_reader *r)
{
    return (int64_t)(r->p - r->base);
}

static frt_status pb_varint(pb_reader *r, const char *what, uint64_t *out)
{
    int64_t at = pb_offset(r);
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end)
            return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                                "tokenizer.model: varint of %s runs past the end of its message",
                                what);
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                                "tokenizer.model: varint of %s overflows 64 bits", what);
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (b < 0x80) {
            *out = v;
            return FRT_OK;
        }
    }
    return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                        "tokenizer.model: varint of %s is longer than 10 bytes", what);
}

/* The next field's number and wire type; groups and unknown wire types are errors. */
static frt_status pb_key(pb_reader *r, const char *msg, uint32_t *field, int *wire)
{
    int64_t at = pb_offset(r);
    uint64_t key = 0;
    FRT_TRY(pb_varint(r, msg, &key));
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    if (key >> 3 == 0 || key >> 3 > 0x1FFFFFFF)
        return frt_error_at(FRT_ERR_FORMAT, r->file, msg, at,
                            "tokenizer.model: invalid field number %llu in %s",
                            (unsigned long long)(key >> 3), msg);
    if (*wire != PB_VARINT && *wire != PB_I64 && *wire != PB_LEN && *wire != PB_I32)
        return frt_error_at(FRT_ERR_FORMAT, r->file, msg, at,
                            "tokenizer.model: field %u of %s has unsupported wire type %d", *field,
                            msg, *wire);
    return FRT_OK;
}

/* A length-delimited payload: a sub-reader over it, the parent moved past it. */
static frt_status pb_bytes(pb_reader *r, const char *what, pb_reader *sub)
{
    int64_t at = pb_offset(r);
    uint64_t n = 0;
    FRT_TRY(pb_varint(r, what, &n));
    if (n > (uint64_t)(r->end - r->p))
        return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                            "tokenizer.model: %s claims %llu bytes, only %zu remain", what,
                            (unsigned long long)n, (size_t)(r->end - r->p));
    *sub = (pb_reader){r->base, r->p, r->p + n, r->file};
    r->p += n;
    return FRT_OK;
}

static frt_status pb_skip(pb_reader *r, int wire, const char *what)
{
    int64_t at = pb_offset(r);
    uint64_t v;
    pb_reader sub = {0};
    size_t n = wire == PB_I64 ? 8 : 4;
    switch (wire) {
    case PB_VARINT: return pb_varint(r, what, &v);
    case PB_LEN: return pb_bytes(r, what, &sub);
    default:
        if ((size_t)(r->end - r->p) < n)
            return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                                "tokenizer.model: fixed-size field of %s is truncated", what);
        r->p += n;
        return FRT_OK;
    }
}

static frt_status pb_expect(const pb_reader *r, int wire, int want, const char *what, int64_t at)
{
    if (wire == want) return FRT_OK;
    return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                        "tokenizer.model: %s has wire type %d, expected %d", what, wire, want);
}

/* Copy a string field into buf (cap bytes with the NUL); FRT_ERR_LIMIT if longer. */
static frt_status pb_string(pb_reader *r, const char *what, char *buf, size_t cap, size_t *len)
{
    int64_t at = pb_offset(r);
    pb_reader s = {0};
    FRT_TRY(pb_bytes(r, what, &s));
    size_t n = (size_t)(s.end - s.p);
    if (n >= cap)
        return frt_error_at(FRT_ERR_LIMIT, r->file, what, at,
                            "tokenizer.model: %s is %zu bytes (limit %zu)", what, n, cap - 1);
    memcpy(buf, s.p, n);
    buf[n] = 0;
    if (len) *len = n;
    for (size_t i = 0; i < n;) {
        int c = frt_tok_utf8_len((const uint8_t *)buf + i, n - i, true);
        if (c <= 0)
            return frt_error_at(FRT_ERR_FORMAT, r->file, what, at,
                                "tokenizer.model: %s is not valid UTF-8", what);
        i += (size_t)c;
    }
    return FRT_OK;
}

/* ---- ModelProto ---------------------------------------------------------------------- */

/* SentencePiece { 1: piece, 2: score (float), 3: type } */
static frt_status parse_piece(frt_tokenizer *t, pb_reader *r)
{
    int64_t start = pb_offset(r);
    const uint8_t *piece = NULL;
    size_t len = 0;
    float score = 0.0f;
    uint64_t type = FRT_PIECE_NORMAL;
    char what[48];
    snprintf(what, sizeof what, "pieces[%d]", t->n);
    while (r->p < r->end) {
        int64_t at = pb_offset(r);
        uint32_t field;
        int wire;
        FRT_TRY(pb_key(r, what, &field, &wire));
        if (field == 1) {
            pb_reader s = {0};
            FRT_TRY(pb_expect(r, wire, PB_LEN, "SentencePiece.piece", at));
            FRT_TRY(pb_bytes(r, "SentencePiece.piece", &s));
            piece = s.p;
            len = (size_t)(s.end - s.p);
        } else if (field == 2) {
            FRT_TRY(pb_expect(r, wire, PB_I32, "SentencePiece.score", at));
            if (r->end - r->p < 4)
                return frt_error_at(FRT_ERR_FORMAT, r->file, "SentencePiece.score", at,
                                    "tokenizer.model: score of %s is truncated", what);
            uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                            (uint32_t)r->p[3] << 24;
            memcpy(&score, &bits, 4);
            r->p += 4;
        } else if (field == 3) {
            FRT_TRY(pb_expect(r, wire, PB_VARINT, "SentencePiece.type", at));
            FRT_TRY(pb_varint(r, "SentencePiece.type", &type));
            if (type < FRT_PIECE_NORMAL || type > FRT_PIECE_BYTE)
                return frt_error_at(FRT_ERR_FORMAT, r->file, "SentencePiece.type", at,
                                    "tokenizer.model: %s has unknown type %llu", what,
                                    (unsigned long long)type);
        } else
            FRT_TRY(pb_skip(r, wire, what));
    }
    if (!piece)
        return frt_error_at(FRT_ERR_FORMAT, r->file, what, start,
                            "tokenizer.model: %s has no piece string", what);
    return frt_tok_add(t, (const char *)piece, len, score, (frt_piece_type)type, r->file, start);
}

typedef struct {
    uint64_t model_type; /* UNIGRAM=1 BPE=2 WORD=3 CHAR=4; 1 when absent */
    bool whitespace_suffix;
    bool charsmap; /* a normalization or denormalization map is present */
} pb_spec;

static frt_status parse_trainer(frt_tokenizer *t, pb_reader *r, pb_spec *spec)
{
    while (r->p < r->end) {
        int64_t at = pb_offset(r);
        uint32_t field;
        int wire;
        uint64_t v = 0;
        FRT_TRY(pb_key(r, "TrainerSpec", &field, &wire));
        switch (field) {
        case 3:
            FRT_TRY(pb_expect(r, wire, PB_VARINT, "TrainerSpec.model_type", at));
            FRT_TRY(pb_varint(r, "TrainerSpec.model_type", &spec->model_type));
            break;
        case 24:
            FRT_TRY(pb_expect(r, wire, PB_VARINT, "TrainerSpec.treat_whitespace_as_suffix", at));
            FRT_TRY(pb_varint(r, "TrainerSpec.treat_whitespace_as_suffix", &v));
            spec->whitespace_suffix = v != 0;
            break;
        case 35:
            FRT_TRY(pb_expect(r, wire, PB_VARINT, "TrainerSpec.byte_fallback", at));
            FRT_TRY(pb_varint(r, "TrainerSpec.byte_fallback", &v));
            t->byte_fallback = v != 0;
            break;
        case 44:
            FRT_TRY(pb_expect(r, wire, PB_LEN, "TrainerSpec.unk_surface", at));
            FRT_TRY(pb_string(r, "TrainerSpec.unk_surface", t->unk_surface, sizeof t->unk_surface,
                              &t->unk_surface_len));
            break;
        case 46:
            FRT_TRY(pb_expect(r, wire, PB_LEN, "TrainerSpec.bos_piece", at));
            FRT_TRY(pb_string(r, "TrainerSpec.bos_piece", t->bos_piece, sizeof t->bos_piece, NULL));
            break;
        case 47:
            FRT_TRY(pb_expect(r, wire, PB_LEN, "TrainerSpec.eos_piece", at));
            FRT_TRY(pb_string(r, "TrainerSpec.eos_piece", t->eos_piece, sizeof t->eos_piece, NULL));
            break;
        default: FRT_TRY(pb_skip(r, wire, "TrainerSpec"));
        }
    }
    return FRT_OK;
}

/* NormalizerSpec (and the denormalizer, which has the same layout). */
static frt_status parse_normalizer(frt_tokenizer *t, pb_reader *r, pb_spec *spec, bool denorm)
{
    const char *msg = denorm ? "denormalizer_spec" : "normalizer_spec";
    while (r->p < r->end) {
        int64_t at = pb_offset(r);
        uint32_t field;
        int wire;
        uint64_t v = 0;
        pb_reader s = {0};
        FRT_TRY(pb_key(r, msg, &field, &wire));
        if (field == 2) {
            FRT_TRY(pb_expect(r, wire, PB_LEN, "precompiled_charsmap", at));
            FRT_TRY(pb_bytes(r, "precompiled_charsmap", &s));
            if (s.end > s.p) spec->charsmap = true;
        } else if (!denorm && field >= 3 && field <= 5) {
            FRT_TRY(pb_expect(r, wire, PB_VARINT, msg, at));
            FRT_TRY(pb_varint(r, msg, &v));
            if (field == 3) t->add_dummy_prefix = v != 0;
            if (field == 4) t->remove_extra_ws = v != 0;
            if (field == 5) t->escape_ws = v != 0;
        } else
            FRT_TRY(pb_skip(r, wire, msg));
    }
    return FRT_OK;
}

/* ModelProto { 1: repeated pieces, 2: trainer_spec, 3: normalizer_spec,
 * 4: self_test_data, 5: denormalizer_spec } */
static frt_status parse_model(frt_tokenizer *t, const uint8_t *data, size_t len, const char *file)
{
    pb_reader r = {data, data, data + len, file};
    pb_spec spec = {1, false, false};
    while (r.p < r.end) {
        int64_t at = pb_offset(&r);
        uint32_t field;
        int wire;
        pb_reader sub = {0};
        FRT_TRY(pb_key(&r, "ModelProto", &field, &wire));
        if (field >= 1 && field <= 5 && field != 4) {
            static const char *const names[] = {
                "", "pieces", "trainer_spec", "normalizer_spec", "", "denormalizer_spec"};
            FRT_TRY(pb_expect(&r, wire, PB_LEN, names[field], at));
            FRT_TRY(pb_bytes(&r, names[field], &sub));
            if (field == 1) FRT_TRY(parse_piece(t, &sub));
            if (field == 2) FRT_TRY(parse_trainer(t, &sub, &spec));
            if (field == 3 || field == 5) FRT_TRY(parse_normalizer(t, &sub, &spec, field == 5));
        } else
            FRT_TRY(pb_skip(&r, wire, "ModelProto"));
    }
    if (spec.model_type != 2)
        return frt_error_at(FRT_ERR_UNSUPPORTED, file, "TrainerSpec.model_type", -1,
                            "tokenizer.model: model type %llu is not BPE (2); only BPE models "
                            "are supported",
                            (unsigned long long)spec.model_type);
    if (spec.whitespace_suffix)
        return frt_error_at(FRT_ERR_UNSUPPORTED, file, "TrainerSpec.treat_whitespace_as_suffix", -1,
                            "tokenizer.model: whitespace as suffix is not supported");
    if (spec.charsmap)
        return frt_error_at(FRT_ERR_UNSUPPORTED, file, "precompiled_charsmap", -1,
                            "tokenizer.model: normalization maps (nfkc etc.) are not supported; "
                            "only identity normalization as in Llama");
    return frt_tok_finish(t, file, false);
}

frt_status frt_tokenizer_load_model(const void *data, size_t len, const char *name,
                                    frt_tokenizer **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load_model: NULL out");
    *out = NULL;
    if (!data && len) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load_model: NULL data");
    if (len > TOK_MAX_FILE)
        return frt_error_at(FRT_ERR_LIMIT, name, NULL, -1, "tokenizer.model: %zu bytes exceeds %u",
                            len, TOK_MAX_FILE);
    frt_tokenizer *t;
    FRT_TRY(frt_tok_new(&t));
    frt_status s = parse_model(t, data, len, name ? name : "tokenizer.model");
    if (s != FRT_OK) {
        frt_tokenizer_free(t);
        return s;
    }
    *out = t;
    return FRT_OK;
}

/* ---- tokenizer.json ------------------------------------------------------------------ */

static frt_status json_fail(frt_status s, const char *file, const char *key, const char *what)
{
    return frt_error_at(s, file, key, -1, "tokenizer.json: %s", what);
}

static bool json_str_is(const cJSON *o, const char *key, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

/* One normalizer step: Prepend("▁") or Replace(" " -> "▁"); anything else would
 * change the text in ways the encoder does not follow. */
static frt_status json_norm_step(const cJSON *it, const char *file, bool *prepend, bool *replace)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(it, "pattern");
    if (json_str_is(it, "type", "Prepend") && json_str_is(it, "prepend", FRT_TOK_SPACE))
        *prepend = true;
    else if (json_str_is(it, "type", "Replace") && json_str_is(pat, "String", " ") &&
             json_str_is(it, "content", FRT_TOK_SPACE))
        *replace = true;
    else
        return json_fail(FRT_ERR_UNSUPPORTED, file, "normalizer",
                         "only Prepend(\"\xE2\x96\x81\") and Replace(\" \" -> "
                         "\"\xE2\x96\x81\") normalizers are supported");
    return FRT_OK;
}

/* The text transforms must be Llama's: ' ' -> "▁" with a "▁" in front, either as
 * normalizer Prepend + Replace or as a Metaspace pre-tokenizer that does not split. */
static frt_status json_text_rules(frt_tokenizer *t, const cJSON *root, const char *file)
{
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    bool prepend = false, replace = false;
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers"), *it;
        if (json_str_is(norm, "type", "Sequence") && cJSON_IsArray(list)) {
            cJSON_ArrayForEach(it, list) FRT_TRY(json_norm_step(it, file, &prepend, &replace));
        } else
            FRT_TRY(json_norm_step(norm, file, &prepend, &replace));
    }
    if (pre && !cJSON_IsNull(pre)) {
        const cJSON *split = cJSON_GetObjectItemCaseSensitive(pre, "split");
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(pre, "add_prefix_space");
        if (!json_str_is(pre, "type", "Metaspace") ||
            !json_str_is(pre, "replacement", FRT_TOK_SPACE) || cJSON_IsTrue(split))
            return json_fail(FRT_ERR_UNSUPPORTED, file, "pre_tokenizer",
                             "only a non-splitting Metaspace(\"\xE2\x96\x81\") pre-tokenizer is "
                             "supported (this is not a SentencePiece-style BPE)");
        replace = true;
        prepend |= json_str_is(pre, "prepend_scheme", "first") ||
                   json_str_is(pre, "prepend_scheme", "always") || cJSON_IsTrue(aps);
    }
    if (!replace)
        return json_fail(FRT_ERR_UNSUPPORTED, file, "normalizer",
                         "spaces are not replaced by \"\xE2\x96\x81\"; not a Llama tokenizer");
    t->add_dummy_prefix = prepend;
    t->remove_extra_ws = false;
    t->escape_ws = true;
    return FRT_OK;
}

/* Split a merge entry ("a b" or ["a", "b"]) into its halves. */
static bool json_merge(const cJSON *m, const char **a, size_t *alen, const char **b, size_t *blen)
{
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return false;
        *a = s;
        *alen = (size_t)(sp - s);
        *b = sp + 1;
        *blen = strlen(sp + 1);
        return true;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
        cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring;
        *alen = strlen(*a);
        *b = m->child->next->valuestring;
        *blen = strlen(*b);
        return true;
    }
    return false;
}

static frt_status json_build(frt_tokenizer *t, const cJSON *root, const char *file)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return json_fail(FRT_ERR_FORMAT, file, "model", "no model object");
    if (!json_str_is(model, "type", "BPE"))
        return json_fail(FRT_ERR_UNSUPPORTED, file, "model.type", "model type is not BPE");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (!cJSON_IsObject(vocab))
        return json_fail(FRT_ERR_FORMAT, file, "model.vocab", "model.vocab is not an object");
    if (!cJSON_IsArray(merges))
        return json_fail(FRT_ERR_FORMAT, file, "model.merges", "model.merges is not an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return json_fail(FRT_ERR_FORMAT, file, "added_tokens", "added_tokens is not an array");
    t->byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    FRT_TRY(json_text_rules(t, root, file));

    /* Pieces by id: the vocabulary, then added tokens beyond it. */
    int64_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= FRT_TOK_MAX_VOCAB ||
            it->valuedouble != (double)(int64_t)it->valuedouble)
            return frt_error_at(FRT_ERR_FORMAT, file, it->string, -1,
                                "tokenizer.json: vocab id of \"%.64s\" is not an integer in "
                                "[0, %d)",
                                it->string, FRT_TOK_MAX_VOCAB);
        if ((int64_t)it->valuedouble + 1 > n) n = (int64_t)it->valuedouble + 1;
    }
    cJSON_ArrayForEach(it, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= FRT_TOK_MAX_VOCAB ||
            id->valuedouble != (double)(int64_t)id->valuedouble || !cJSON_IsString(content))
            return json_fail(FRT_ERR_FORMAT, file, "added_tokens",
                             "an added token lacks an integer id or a content string");
        if ((int64_t)id->valuedouble + 1 > n) n = (int64_t)id->valuedouble + 1;
    }
    const char **text = calloc((size_t)n + 1, sizeof *text); /* piece of each id */
    uint8_t *types = calloc((size_t)n + 1, 1);
    if (!text || !types) {
        free(text);
        free(types);
        return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
    }
    frt_status s = FRT_OK;
    cJSON_ArrayForEach(it, vocab)
    {
        int64_t id = (int64_t)it->valuedouble;
        if (text[id]) {
            s = frt_error_at(FRT_ERR_FORMAT, file, it->string, -1,
                             "tokenizer.json: id %lld is given to two pieces", (long long)id);
            goto done;
        }
        text[id] = it->string;
        types[id] = FRT_PIECE_NORMAL;
        if (t->byte_fallback && frt_tok_byte_value(it->string, strlen(it->string)) >= 0)
            types[id] = FRT_PIECE_BYTE;
        if (cJSON_IsString(unk) && strcmp(it->string, unk->valuestring) == 0)
            types[id] = FRT_PIECE_UNKNOWN;
    }
    cJSON_ArrayForEach(it, added)
    {
        int64_t id = (int64_t)cJSON_GetObjectItemCaseSensitive(it, "id")->valuedouble;
        const char *content = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        if (text[id] && strcmp(text[id], content) != 0) {
            s = frt_error_at(FRT_ERR_FORMAT, file, content, -1,
                             "tokenizer.json: added token %lld disagrees with the vocabulary",
                             (long long)id);
            goto done;
        }
        text[id] = content;
        bool special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
        if (types[id] != FRT_PIECE_UNKNOWN)
            types[id] = special ? FRT_PIECE_CONTROL : FRT_PIECE_USER_DEFINED;
    }
    for (int64_t id = 0; id < n; id++) {
        if (!text[id]) {
            s = frt_error_at(FRT_ERR_FORMAT, file, "model.vocab", -1,
                             "tokenizer.json: no piece has id %lld", (long long)id);
            goto done;
        }
        s = frt_tok_add(t, text[id], strlen(text[id]), 0.0f, (frt_piece_type)types[id], file, -1);
        if (s != FRT_OK) goto done;
    }
    s = frt_tok_finish(t, file, true);
    if (s != FRT_OK) goto done;

    /* Merges, best first: a piece's score is minus the rank of the first merge
     * that makes it, and only such pieces can be made by merging. */
    char buf[2 * FRT_TOK_MAX_PIECE];
    int64_t rank = 0;
    cJSON_ArrayForEach(it, merges)
    {
        const char *a, *b;
        size_t alen, blen;
        if (!json_merge(it, &a, &alen, &b, &blen) || alen + blen > sizeof buf) {
            s = frt_error_at(FRT_ERR_FORMAT, file, "model.merges", -1,
                             "tokenizer.json: merge %lld is not two pieces", (long long)rank);
            goto done;
        }
        memcpy(buf, a, alen);
        memcpy(buf + alen, b, blen);
        int32_t id = frt_tok_lookup(t, buf, alen + blen);
        if (id < 0 || frt_tok_lookup(t, a, alen) < 0 || frt_tok_lookup(t, b, blen) < 0) {
            s = frt_error_at(FRT_ERR_FORMAT, file, "model.merges", -1,
                             "tokenizer.json: merge %lld (\"%.*s\" \"%.*s\") uses or makes a "
                             "piece not in the vocabulary",
                             (long long)rank, (int)alen, a, (int)blen, b);
            goto done;
        }
        if (!t->mergeable[id] && t->type[id] == FRT_PIECE_NORMAL) {
            t->mergeable[id] = 1;
            t->score[id] = -(float)rank;
        }
        rank++;
    }
done:
    free(text);
    free(types);
    return s;
}

frt_status frt_tokenizer_load_json(const char *text, size_t len, const char *name,
                                   frt_tokenizer **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load_json: NULL out");
    *out = NULL;
    if (!text && len) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load_json: NULL text");
    const char *file = name ? name : "tokenizer.json";
    if (len > TOK_MAX_FILE)
        return frt_error_at(FRT_ERR_LIMIT, file, NULL, -1, "tokenizer.json: %zu bytes exceeds %u",
                            len, TOK_MAX_FILE);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        int64_t at = end && end >= text && end <= text + len ? (int64_t)(end - text) : -1;
        cJSON_Delete(root);
        return frt_error_at(FRT_ERR_FORMAT, file, NULL, at, "tokenizer.json: not a JSON object");
    }
    frt_tokenizer *t;
    frt_status s = frt_tok_new(&t);
    if (s == FRT_OK) s = json_build(t, root, file);
    cJSON_Delete(root);
    if (s != FRT_OK) {
        frt_tokenizer_free(t);
        return s;
    }
    *out = t;
    return FRT_OK;
}

/* ---- files ------------------------------------------------------------------------------ */

static frt_status read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return frt_error_at(e == ENOENT ? FRT_ERR_NOT_FOUND : FRT_ERR_IO, path, NULL, -1,
                            "tokenizer: cannot open: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return frt_error_at(FRT_ERR_IO, path, NULL, -1, "tokenizer: not a regular file");
    }
    if ((uint64_t)st.st_size > TOK_MAX_FILE) {
        fclose(f);
        return frt_error_at(FRT_ERR_LIMIT, path, NULL, -1,
                            "tokenizer: file of %lld bytes exceeds %u", (long long)st.st_size,
                            TOK_MAX_FILE);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return frt_error_at(FRT_ERR_IO, path, NULL, -1, "tokenizer: short read");
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return FRT_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

frt_status frt_tokenizer_load(const char *path, frt_tokenizer **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load: NULL out");
    *out = NULL;
    if (!path) return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_load: NULL path");
    struct stat st;
    char *file = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        static const char *const names[] = {"tokenizer.model", "tokenizer.json"};
        for (int i = 0; i < 2 && !file; i++) {
            size_t n = strlen(path) + strlen(names[i]) + 2;
            char *p = malloc(n);
            if (!p) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
            snprintf(p, n, "%s/%s", path, names[i]);
            if (stat(p, &st) == 0)
                file = p;
            else
                free(p);
        }
        if (!file)
            return frt_error_at(FRT_ERR_NOT_FOUND, path, NULL, -1,
                                "tokenizer: directory has neither tokenizer.model nor "
                                "tokenizer.json");
    } else {
        file = strdup(path);
        if (!file) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
    }
    char *data = NULL;
    size_t len = 0;
    frt_status s = read_all(file, &data, &len);
    if (s == FRT_OK) {
        if (ends_with(file, ".json"))
            s = frt_tokenizer_load_json(data, len, file, out);
        else
            s = frt_tokenizer_load_model(data, len, file, out);
        free(data);
    }
    free(file);
    return s;
}
