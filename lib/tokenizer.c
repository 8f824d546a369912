/* SentencePiece BPE encode and decode, following sentencepiece 0.1.97
 * (normalizer.cc, bpe_model.cc, sentencepiece_processor.cc) so that ids match
 * python-sentencepiece exactly. The file loaders are in tokenizer_load.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "tokenizer_impl.h"

static const char k_replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ---- UTF-8 ------------------------------------------------------------------- */

int frt_tok_utf8_len(const uint8_t *p, size_t n, bool final)
{
    if (n == 0) return 0;
    uint8_t b0 = p[0];
    if (b0 < 0x80) return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF)
        need = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        if (b0 == 0xE0) lo = 0xA0; /* overlong */
        if (b0 == 0xED) hi = 0x9F; /* surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        if (b0 == 0xF0) lo = 0x90; /* overlong */
        if (b0 == 0xF4) hi = 0x8F; /* beyond U+10FFFF */
    } else
        return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) return final ? 0 : -1;
        uint8_t b = p[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return need;
}

/* ---- building and looking up pieces --------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

frt_status frt_tok_new(frt_tokenizer **out)
{
    frt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
    t->unk = t->bos = t->eos = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = true;
    memcpy(t->unk_surface, " \xE2\x81\x87 ", 5);
    t->unk_surface_len = 5;
    strcpy(t->unk_piece, "<unk>");
    strcpy(t->bos_piece, "<s>");
    strcpy(t->eos_piece, "</s>");
    *out = t;
    return FRT_OK;
}

frt_status frt_tok_add(frt_tokenizer *t, const char *s, size_t len, float score,
                       frt_piece_type type, const char *file, int64_t offset)
{
    if (t->n >= FRT_TOK_MAX_VOCAB)
        return frt_error_at(FRT_ERR_LIMIT, file, "pieces", offset, "tokenizer: more than %d pieces",
                            FRT_TOK_MAX_VOCAB);
    if (len == 0)
        return frt_error_at(FRT_ERR_FORMAT, file, "piece", offset, "tokenizer: piece %d is empty",
                            t->n);
    if (len > FRT_TOK_MAX_PIECE)
        return frt_error_at(FRT_ERR_LIMIT, file, "piece", offset,
                            "tokenizer: piece %d is %zu bytes (limit %d)", t->n, len,
                            FRT_TOK_MAX_PIECE);
    for (size_t i = 0; i < len;) {
        int c = frt_tok_utf8_len((const uint8_t *)s + i, len - i, true);
        if (c <= 0)
            return frt_error_at(FRT_ERR_FORMAT, file, "piece", offset,
                                "tokenizer: piece %d is not valid UTF-8 (byte %zu)", t->n, i);
        i += (size_t)c;
    }
    if (!isfinite(score))
        return frt_error_at(FRT_ERR_FORMAT, file, "score", offset,
                            "tokenizer: piece %d has a non-finite score", t->n);
    if (type < FRT_PIECE_NORMAL || type > FRT_PIECE_BYTE)
        return frt_error_at(FRT_ERR_FORMAT, file, "type", offset,
                            "tokenizer: piece %d has unknown type %d", t->n, (int)type);
    if (t->n == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 1024;
        uint32_t *off = realloc(t->off, (size_t)cap * sizeof *off);
        if (off) t->off = off;
        uint16_t *ln = realloc(t->len, (size_t)cap * sizeof *ln);
        if (ln) t->len = ln;
        float *sc = realloc(t->score, (size_t)cap * sizeof *sc);
        if (sc) t->score = sc;
        uint8_t *ty = realloc(t->type, (size_t)cap);
        if (ty) t->type = ty;
        uint8_t *mg = realloc(t->mergeable, (size_t)cap);
        if (mg) t->mergeable = mg;
        if (!off || !ln || !sc || !ty || !mg)
            return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
        t->cap = cap;
    }
    if (t->chars_len + len + 1 > t->chars_cap) {
        size_t cap = t->chars_cap ? t->chars_cap * 2 : 16384;
        while (cap < t->chars_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX)
            return frt_error_at(FRT_ERR_LIMIT, file, "pieces", offset,
                                "tokenizer: pieces exceed 4 GiB");
        char *c = realloc(t->chars, cap);
        if (!c) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
        t->chars = c;
        t->chars_cap = cap;
    }
    int32_t id = t->n++;
    t->off[id] = (uint32_t)t->chars_len;
    memcpy(t->chars + t->chars_len, s, len);
    t->chars[t->chars_len + len] = 0;
    t->chars_len += len + 1;
    t->len[id] = (uint16_t)len;
    t->score[id] = score;
    t->type[id] = (uint8_t)type;
    t->mergeable[id] = 0;
    return FRT_OK;
}

int32_t frt_tok_lookup(const frt_tokenizer *t, const char *s, size_t len)
{
    if (!t->table || len == 0 || len > FRT_TOK_MAX_PIECE) return -1;
    for (uint32_t i = (uint32_t)hash_bytes(s, len) & t->mask;; i = (i + 1) & t->mask) {
        int32_t id = t->table[i];
        if (id < 0) return -1;
        if (t->len[id] == len && memcmp(t->chars + t->off[id], s, len) == 0) return id;
    }
}

int frt_tok_byte_value(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!hi || !lo || !s[3] || !s[4]) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

static int cmp_user_len(const void *a, const void *b, void *ctx)
{
    const frt_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

frt_status frt_tok_finish(frt_tokenizer *t, const char *file, bool keep_mergeable)
{
    if (t->n == 0) return frt_error_at(FRT_ERR_FORMAT, file, "pieces", -1, "tokenizer: no pieces");
    uint32_t size = 1;
    while (size < 2u * (uint32_t)t->n) size <<= 1;
    t->table = malloc((size_t)size * sizeof *t->table);
    if (!t->table) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
    memset(t->table, 0xFF, (size_t)size * sizeof *t->table);
    t->mask = size - 1;
    int32_t nbytes = 0;
    t->nuser = 0;
    for (int32_t id = 0; id < t->n; id++) {
        const char *s = t->chars + t->off[id];
        size_t len = t->len[id];
        uint32_t i = (uint32_t)hash_bytes(s, len) & t->mask;
        for (; t->table[i] >= 0; i = (i + 1) & t->mask) {
            int32_t o = t->table[i];
            if (t->len[o] == len && memcmp(t->chars + t->off[o], s, len) == 0)
                return frt_error_at(FRT_ERR_FORMAT, file, s, -1,
                                    "tokenizer: piece \"%s\" appears twice (ids %d and %d)", s, o,
                                    id);
        }
        t->table[i] = id;
        switch ((frt_piece_type)t->type[id]) {
        case FRT_PIECE_UNKNOWN:
            if (t->unk >= 0)
                return frt_error_at(FRT_ERR_FORMAT, file, s, -1,
                                    "tokenizer: two unknown pieces (ids %d and %d)", t->unk, id);
            t->unk = id;
            break;
        case FRT_PIECE_BYTE: {
            int b = frt_tok_byte_value(s, len);
            if (b < 0)
                return frt_error_at(FRT_ERR_FORMAT, file, s, -1,
                                    "tokenizer: byte piece %d is \"%s\", not <0xXX>", id, s);
            t->byte_id[b] = id;
            nbytes++;
            break;
        }
        case FRT_PIECE_USER_DEFINED: t->nuser++; break;
        case FRT_PIECE_UNUSED: t->has_unused = true; break;
        default: break;
        }
        if (!keep_mergeable) {
            frt_piece_type ty = (frt_piece_type)t->type[id];
            t->mergeable[id] =
                ty == FRT_PIECE_NORMAL || ty == FRT_PIECE_USER_DEFINED || ty == FRT_PIECE_UNUSED;
        }
    }
    if (t->unk < 0)
        return frt_error_at(FRT_ERR_FORMAT, file, "pieces", -1,
                            "tokenizer: the model has no unknown piece");
    if (nbytes && !t->byte_fallback)
        return frt_error_at(FRT_ERR_FORMAT, file, "pieces", -1,
                            "tokenizer: byte pieces found although byte_fallback is off");
    if (t->byte_fallback && nbytes != 256)
        return frt_error_at(FRT_ERR_FORMAT, file, "pieces", -1,
                            "tokenizer: byte_fallback needs 256 byte pieces, found %d", nbytes);
    if (t->nuser) {
        t->user = malloc((size_t)t->nuser * sizeof *t->user);
        if (!t->user) return frt_error(FRT_ERR_NOMEM, "tokenizer: out of memory");
        int32_t k = 0;
        for (int32_t id = 0; id < t->n; id++)
            if (t->type[id] == FRT_PIECE_USER_DEFINED) t->user[k++] = id;
        qsort_r(t->user, (size_t)t->nuser, sizeof *t->user, cmp_user_len, t);
    }
    /* As sentencepiece's bos_id(): the named piece, and only if it is a control piece. */
    int32_t id = frt_tok_lookup(t, t->bos_piece, strlen(t->bos_piece));
    t->bos = id >= 0 && t->type[id] == FRT_PIECE_CONTROL ? id : -1;
    id = frt_tok_lookup(t, t->eos_piece, strlen(t->eos_piece));
    t->eos = id >= 0 && t->type[id] == FRT_PIECE_CONTROL ? id : -1;
    return FRT_OK;
}

void frt_tokenizer_free(frt_tokenizer *tok)
{
    if (!tok) return;
    free(tok->chars);
    free(tok->off);
    free(tok->len);
    free(tok->score);
    free(tok->type);
    free(tok->mergeable);
    free(tok->table);
    free(tok->user);
    free(tok);
}

int32_t frt_tokenizer_vocab_size(const frt_tokenizer *tok)
{
    return tok->n;
}
int32_t frt_tokenizer_bos(const frt_tokenizer *tok)
{
    return tok->bos;
}
int32_t frt_tokenizer_eos(const frt_tokenizer *tok)
{
    return tok->eos;
}
int32_t frt_tokenizer_unk(const frt_tokenizer *tok)
{
    return tok->unk;
}

int32_t frt_tokenizer_id_of(const frt_tokenizer *tok, const char *piece, size_t len)
{
    return piece ? frt_tok_lookup(tok, piece, len) : -1;
}

const char *frt_tokenizer_piece(const frt_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n) return NULL;
    if (len) *len = tok->len[id];
    return tok->chars + tok->off[id];
}

frt_piece_type frt_tokenizer_piece_type(const frt_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n ? (frt_piece_type)tok->type[id] : (frt_piece_type)0;
}

float frt_tokenizer_score(const frt_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n ? tok->score[id] : 0.0f;
}

/* ---- encode ---------------------------------------------------------------------- */

/* normalizer.cc with the identity rule: escape spaces, dummy prefix, optional
 * whitespace collapsing, invalid bytes to U+FFFD. out holds 3 * len + 3 bytes. */
static size_t normalize(const frt_tokenizer *t, const uint8_t *in, size_t len, char *out)
{
    const char *space = t->escape_ws ? FRT_TOK_SPACE : " ";
    size_t space_len = t->escape_ws ? FRT_TOK_SPACE_LEN : 1;
    size_t i = 0, o = 0;
    if (t->remove_extra_ws)
        while (i < len && in[i] == ' ') i++;
    if (i == len) return 0;
    if (t->add_dummy_prefix) {
        memcpy(out, space, space_len);
        o = space_len;
    }
    bool prev_space = t->remove_extra_ws;
    while (i < len) {
        int c = frt_tok_utf8_len(in + i, len - i, true);
        if (c <= 0) {
            memcpy(out + o, k_replacement, 3);
            o += 3;
            i++;
            prev_space = false;
            continue;
        }
        if (in[i] == ' ') {
            i++;
            if (prev_space) continue;
            memcpy(out + o, space, space_len);
            o += space_len;
            prev_space = t->remove_extra_ws;
            continue;
        }
        memcpy(out + o, in + i, (size_t)c);
        o += (size_t)c;
        i += (size_t)c;
        prev_space = false;
    }
    if (t->remove_extra_ws)
        while (o >= space_len && memcmp(out + o - space_len, space, space_len) == 0) o -= space_len;
    return o;
}

typedef struct {
    uint32_t begin, len; /* bytes of the normalized text; len 0 once merged away */
    int32_t prev, next;
    bool frozen; /* a user-defined piece: never merged */
} tok_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the merged piece, to spot stale entries */
} tok_pair;

/* sentencepiece's agenda order: best score first, then leftmost. */
static bool pair_before(const tok_pair *a, const tok_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(tok_pair *h, size_t *n, tok_pair p)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = p;
}

static tok_pair heap_pop(tok_pair *h, size_t *n)
{
    tok_pair top = h[0], last = h[--*n];
    size_t i = 0, count = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (count) h[i] = last;
    return top;
}

/* Where an unused piece came from, for resegmentation (bpe_model.cc's rev_merge). */
typedef struct {
    uint32_t lbegin, llen, rbegin, rlen;
    bool set;
} tok_rev;

typedef struct {
    const frt_tokenizer *t;
    const char *text;
    tok_sym *sym;
    tok_pair *heap;
    size_t nheap;
    tok_rev *rev;
    int32_t *ids;
    size_t nids;
} tok_work;

static void maybe_add_pair(tok_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || w->sym[left].frozen || w->sym[right].frozen) return;
    size_t size = (size_t)w->sym[left].len + w->sym[right].len;
    int32_t id = frt_tok_lookup(w->t, w->text + w->sym[left].begin, size);
    if (id < 0 || !w->t->mergeable[id]) return;
    heap_push(w->heap, &w->nheap, (tok_pair){w->t->score[id], left, right, (uint32_t)size});
    if (w->rev && w->t->type[id] == FRT_PIECE_UNUSED)
        w->rev[id] = (tok_rev){w->sym[left].begin, w->sym[left].len, w->sym[right].begin,
                               w->sym[right].len, true};
}

static void emit_piece(tok_work *w, uint32_t begin, uint32_t len)
{
    const frt_tokenizer *t = w->t;
    int32_t id = frt_tok_lookup(t, w->text + begin, len);
    if (id >= 0 && w->rev && t->type[id] == FRT_PIECE_UNUSED && w->rev[id].set) {
        tok_rev r = w->rev[id];
        emit_piece(w, r.lbegin, r.llen);
        emit_piece(w, r.rbegin, r.rlen);
        return;
    }
    if (id < 0) id = t->unk;
    if (id == t->unk && t->byte_fallback) {
        for (uint32_t i = 0; i < len; i++)
            w->ids[w->nids++] = t->byte_id[(uint8_t)w->text[begin + i]];
        return;
    }
    w->ids[w->nids++] = id;
}

/* Length of the longest user-defined piece at s (n bytes), 0 if none. */
static uint32_t match_user(const frt_tokenizer *t, const char *s, size_t n)
{
    for (int32_t k = 0; k < t->nuser; k++) {
        int32_t id = t->user[k];
        if (t->len[id] <= n && memcmp(s, t->chars + t->off[id], t->len[id]) == 0) return t->len[id];
    }
    return 0;
}

frt_status frt_tokenizer_encode(const frt_tokenizer *tok, const char *text, size_t len,
                                bool add_bos, bool add_eos, int32_t **ids, size_t *n)
{
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!tok || !ids || !n || (!text && len))
        return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_encode: NULL argument");
    if (len > FRT_TOK_MAX_TEXT)
        return frt_error(FRT_ERR_LIMIT, "tokenizer_encode: text of %zu bytes exceeds %u", len,
                         FRT_TOK_MAX_TEXT);
    if ((add_bos && tok->bos < 0) || (add_eos && tok->eos < 0))
        return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_encode: the model has no %s piece",
                         add_bos && tok->bos < 0 ? "BOS" : "EOS");

    /* Every input byte becomes at most 3 normalized bytes and one character (one
     * symbol), each normalized byte at most one id, each merge at most two new
     * queue entries. */
    size_t cap = 3 * len + FRT_TOK_SPACE_LEN, nchars = len + 1;
    char *norm = malloc(cap);
    tok_sym *sym = malloc(nchars * sizeof *sym);
    tok_pair *heap = malloc(3 * nchars * sizeof *heap);
    int32_t *out = frt_alloc((cap + 2) * sizeof *out);
    tok_rev *rev = tok->has_unused ? calloc((size_t)tok->n, sizeof *rev) : NULL;
    if (!norm || !sym || !heap || !out || (tok->has_unused && !rev)) {
        free(norm);
        free(sym);
        free(heap);
        frt_free(out);
        free(rev);
        return frt_error(FRT_ERR_NOMEM, "tokenizer_encode: out of memory");
    }

    size_t nlen = normalize(tok, (const uint8_t *)text, len, norm);
    tok_work w = {tok, norm, sym, heap, 0, rev, out, 0};
    if (add_bos) out[w.nids++] = tok->bos;

    int32_t nsym = 0;
    for (size_t i = 0; i < nlen; nsym++) {
        uint32_t l = match_user(tok, norm + i, nlen - i);
        bool frozen = l > 0;
        if (!frozen) {
            /* sentencepiece's OneCharLen: the lead byte decides (text is valid here). */
            static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
            l = lens[(uint8_t)norm[i] >> 4];
            if (l > nlen - i) l = (uint32_t)(nlen - i);
        }
        sym[nsym] = (tok_sym){(uint32_t)i, l, nsym - 1, -1, frozen};
        if (nsym > 0) sym[nsym - 1].next = nsym;
        i += l;
    }
    for (int32_t i = 1; i < nsym; i++) maybe_add_pair(&w, i - 1, i);

    while (w.nheap) {
        tok_pair top = heap_pop(heap, &w.nheap);
        tok_sym *l = &sym[top.left], *r = &sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) sym[r->next].prev = top.left;
        r->len = 0;
        maybe_add_pair(&w, l->prev, top.left);
        maybe_add_pair(&w, top.left, l->next);
    }
    for (int32_t i = nsym ? 0 : -1; i >= 0; i = sym[i].next)
        emit_piece(&w, sym[i].begin, sym[i].len);

    if (add_eos) out[w.nids++] = tok->eos;
    free(norm);
    free(sym);
    free(heap);
    free(rev);
    *ids = out;
    *n = w.nids;
    return FRT_OK;
}

/* ---- decode ---------------------------------------------------------------------- */

/* Bytes a byte-run decoder appends for bytes p[0..n) at the end of the run or
 * while it continues (final false: an unfinished character is left; the count
 * consumed goes to *used). Returns the bytes written to out (4 * n at most). */
static size_t decode_bytes(const uint8_t *p, size_t n, bool final, char *out, size_t *used)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int c = frt_tok_utf8_len(p + i, n - i, final);
        if (c < 0) break;
        if (c == 0) {
            memcpy(out + o, k_replacement, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, (size_t)c);
            o += (size_t)c;
            i += (size_t)c;
        }
    }
    *used = i;
    return o;
}

/* Surface of a non-byte piece (DecodeSentencePiece). *bos_ws_seen tells whether
 * the leading marker was consumed as the dummy prefix. */
static size_t piece_surface(const frt_tokenizer *t, int32_t id, bool is_bos_ws, bool *bos_ws_seen,
                            char *out)
{
    *bos_ws_seen = false;
    if (t->type[id] == FRT_PIECE_CONTROL) return 0;
    if (t->type[id] == FRT_PIECE_UNKNOWN) {
        memcpy(out, t->unk_surface, t->unk_surface_len);
        return t->unk_surface_len;
    }
    const char *s = t->chars + t->off[id];
    size_t len = t->len[id], o = 0;
    if (is_bos_ws && (t->add_dummy_prefix || t->remove_extra_ws) && len >= FRT_TOK_SPACE_LEN &&
        memcmp(s, FRT_TOK_SPACE, FRT_TOK_SPACE_LEN) == 0) {
        s += FRT_TOK_SPACE_LEN;
        len -= FRT_TOK_SPACE_LEN;
        *bos_ws_seen = !t->remove_extra_ws;
    }
    for (size_t i = 0; i < len;) {
        if (i + FRT_TOK_SPACE_LEN <= len && memcmp(s + i, FRT_TOK_SPACE, FRT_TOK_SPACE_LEN) == 0) {
            out[o++] = ' ';
            i += FRT_TOK_SPACE_LEN;
        } else
            out[o++] = s[i++];
    }
    return o;
}

/* Most bytes piece_surface can write for id. */
static size_t surface_bound(const frt_tokenizer *t, int32_t id)
{
    if (t->type[id] == FRT_PIECE_UNKNOWN) return t->unk_surface_len;
    return t->len[id];
}

frt_status frt_tokenizer_decode(const frt_tokenizer *tok, const int32_t *ids, size_t n, char **text,
                                size_t *len)
{
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!tok || !text || (!ids && n))
        return frt_error(FRT_ERR_INVALID_ARG, "tokenizer_decode: NULL argument");
    size_t cap = 1, nbytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n)
            return frt_error(FRT_ERR_INVALID_ARG,
                             "tokenizer_decode: id %d at position %zu is outside [0, %d)", ids[i],
                             i, tok->n);
        bool is_byte = tok->type[ids[i]] == FRT_PIECE_BYTE;
        nbytes += is_byte;
        /* a byte becomes at most one U+FFFD (3 bytes) */
        cap += is_byte ? 3 : surface_bound(tok, ids[i]);
    }
    char *out = frt_alloc(cap);
    uint8_t *run = malloc(nbytes + 1);
    if (!out || !run) {
        frt_free(out);
        free(run);
        return frt_error(FRT_ERR_NOMEM, "tokenizer_decode: out of memory");
    }
    /* As sentencepiece: runs of byte pieces are decoded as a whole when a
     * non-byte piece (or the end) closes them; the dummy-prefix marker is
     * dropped from the first piece while nothing has been written yet. */
    size_t o = 0, nrun = 0, used;
    bool is_bos_ws = true, bos_ws_seen = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (tok->type[id] == FRT_PIECE_BYTE) {
            run[nrun++] = (uint8_t)frt_tok_byte_value(tok->chars + tok->off[id], tok->len[id]);
            continue;
        }
        o += decode_bytes(run, nrun, true, out + o, &used);
        nrun = 0;
        if (bos_ws_seen || o > 0) is_bos_ws = false;
        o += piece_surface(tok, id, is_bos_ws, &bos_ws_seen, out + o);
    }
    o += decode_bytes(run, nrun, true, out + o, &used);
    free(run);
    out[o] = 0;
    *text = out;
    if (len) *len = o;
    return FRT_OK;
}

/* ---- streaming decode -------------------------------------------------------------- */

void frt_detok_init(frt_detok *d, const frt_tokenizer *tok)
{
    memset(d, 0, offsetof(frt_detok, out));
    d->tok = tok;
    d->is_bos_ws = true;
    d->out[0] = 0;
}

void frt_detok_init_continuation(frt_detok *d, const frt_tokenizer *tok)
{
    frt_detok_init(d, tok);
    d->is_bos_ws = false;
}

/* Emit the held bytes that are settled; all of them when final. */
static void detok_drain(frt_detok *d, bool final)
{
    size_t used;
    size_t o = decode_bytes(d->pending, (size_t)d->npending, final, d->out + d->out_len, &used);
    d->out_len += o;
    d->any_text |= o > 0;
    memmove(d->pending, d->pending + used, (size_t)d->npending - used);
    d->npending -= (int)used;
}

frt_status frt_detok_push(frt_detok *d, int32_t id, const char **text, size_t *len)
{
    const frt_tokenizer *t = d->tok;
    d->out_len = 0;
    d->out[0] = 0;
    if (text) *text = d->out;
    if (len) *len = 0;
    if (id < 0 || id >= t->n)
        return frt_error(FRT_ERR_INVALID_ARG, "detok_push: id %d is outside [0, %d)", id, t->n);
    if (t->type[id] == FRT_PIECE_BYTE) {
        d->pending[d->npending++] = (uint8_t)frt_tok_byte_value(t->chars + t->off[id], t->len[id]);
        detok_drain(d, false);
    } else {
        detok_drain(d, true);
        if (d->bos_ws_seen || d->any_text) d->is_bos_ws = false;
        size_t o = piece_surface(t, id, d->is_bos_ws, &d->bos_ws_seen, d->out + d->out_len);
        d->out_len += o;
        d->any_text |= o > 0;
    }
    d->out[d->out_len] = 0;
    if (len) *len = d->out_len;
    return FRT_OK;
}

void frt_detok_flush(frt_detok *d, const char **text, size_t *len)
{
    d->out_len = 0;
    detok_drain(d, true);
    d->out[d->out_len] = 0;
    if (text) *text = d->out;
    if (len) *len = d->out_len;
}
