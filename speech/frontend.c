/* Speech text frontend: UTF-8 check, sentence splitting, the pass-through
 * G2P and the mapping of IPA onto the model's phoneme inventory. */
#include "frontend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "log.h"

/* ---- strbuf -------------------------------------------------------------- */

frt_status frt_strbuf_append(frt_strbuf *b, const char *s, size_t n)
{
    size_t need;
    if (!frt_add_size(b->len, n + 1, &need)) return frt_error(FRT_ERR_LIMIT, "string too long");
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return frt_error(FRT_ERR_NOMEM, "out of memory (%zu bytes of text)", cap);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return FRT_OK;
}

void frt_strbuf_clear(frt_strbuf *b)
{
    b->len = 0;
    if (b->s) b->s[0] = '\0';
}

void frt_strbuf_free(frt_strbuf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the well-formed sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool frt_utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq(p + i, n - i);
        if (!l) {
            if (bad) *bad = i;
            return false;
        }
        i += l;
    }
    return true;
}

/* Decode the (valid) character at s[i]; *len gets its byte length. */
static unsigned utf8_at(const char *s, size_t n, size_t i, size_t *len)
{
    const unsigned char *p = (const unsigned char *)s + i;
    size_t l = utf8_seq(p, n - i);
    if (!l) {
        *len = 1;
        return 0xFFFD;
    }
    *len = l;
    if (l == 1) return p[0];
    unsigned cp = p[0] & (0x7F >> l);
    for (size_t k = 1; k < l; k++) cp = (cp << 6) | (p[k] & 0x3F);
    return cp;
}

/* ---- sentences ----------------------------------------------------------- */

static bool is_blank(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == 0xA0 ||
           c == 0x3000;
}

static bool is_terminator(unsigned c)
{
    return c == '.' || c == '!' || c == '?' || c == 0x2026 || c == 0x3002 || c == 0xFF01 ||
           c == 0xFF1F || c == 0xFF0E;
}

/* Full-width stops end a sentence even without a following blank (CJK text
 * has no spaces). */
static bool is_cjk_terminator(unsigned c)
{
    return c == 0x3002 || c == 0xFF01 || c == 0xFF1F || c == 0xFF0E;
}

static bool is_closer(unsigned c)
{
    return c == '"' || c == '\'' || c == ')' || c == ']' || c == '}' || c == 0x201D ||
           c == 0x2019 || c == 0xBB || c == 0x300D || c == 0x300F;
}

/* Is the word ending just before the '.' at text[dot] an abbreviation that
 * rarely ends a sentence? */
static bool is_abbreviation(const char *text, size_t from, size_t dot)
{
    static const char *const abbr[] = {"mr", "mrs", "ms",  "dr", "prof", "st",  "jr", "sr",
                                       "vs", "e.g", "i.e", "cf", "no",   "fig", "mt", "approx"};
    size_t b = dot;
    while (b > from && !is_blank((unsigned char)text[b - 1]) && text[b - 1] != '(' &&
           text[b - 1] != '"')
        b--;
    size_t len = dot - b;
    if (len == 0) return false;
    /* A single capital letter: an initial ("J. R. R. Tolkien"). */
    if (len == 1 && text[b] >= 'A' && text[b] <= 'Z') return true;
    for (size_t i = 0; i < sizeof abbr / sizeof abbr[0]; i++) {
        if (strlen(abbr[i]) != len) continue;
        size_t k = 0;
        while (k < len) {
            char c = text[b + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != abbr[i][k]) break;
            k++;
        }
        if (k == len) return true;
    }
    return false;
}

bool frt_sentence_next(const char *text, size_t n, size_t *pos, size_t *start, size_t *end)
{
    size_t i = *pos, l;
    while (i < n && is_blank(utf8_at(text, n, i, &l))) i += l;
    if (i >= n) {
        *pos = n;
        return false;
    }
    size_t s = i, last_blank = 0, e = n;
    bool found = false;
    while (i < n) {
        unsigned c = utf8_at(text, n, i, &l);
        if (i - s >= FRT_SENTENCE_MAX) {
            /* Too long without a stop: cut at the last blank, else here. */
            e = last_blank > s ? last_blank : i;
            found = true;
            break;
        }
        if (c == '\n') {
            size_t j = i + 1, lj;
            unsigned cj = 0;
            while (j < n && (cj = utf8_at(text, n, j, &lj)) != '\n' && is_blank(cj)) j += lj;
            if (j < n && cj == '\n') {
                e = i;
                found = true;
                break;
            }
        }
        if (is_blank(c)) last_blank = i;
        if (is_terminator(c)) {
            size_t dot = i;
            bool single_dot = c == '.';
            bool cjk = is_cjk_terminator(c);
            i += l;
            /* A run of stops or closers counts toward FRT_SENTENCE_MAX too, else
             * "!!!!..." would be one sentence however long. */
            while (i < n && i - s < FRT_SENTENCE_MAX && is_terminator(utf8_at(text, n, i, &l))) {
                single_dot = false;
                i += l;
            }
            while (i < n && i - s < FRT_SENTENCE_MAX && is_closer(utf8_at(text, n, i, &l))) i += l;
            bool at_break = i >= n || is_blank(utf8_at(text, n, i, &l)) || cjk;
            if (at_break && !(single_dot && is_abbreviation(text, s, dot))) {
                e = i;
                found = true;
                break;
            }
            continue;
        }
        i += l;
    }
    if (!found) e = n;
    size_t next = e;
    while (e > s) {
        /* Trim trailing blanks (all ASCII or the two multi-byte ones). */
        size_t b = e - 1;
        while (b > s && ((unsigned char)text[b] & 0xC0) == 0x80) b--;
        if (!is_blank(utf8_at(text, n, b, &l))) break;
        e = b;
    }
    *start = s;
    *end = e;
    *pos = next;
    return true;
}

/* ---- the pass-through G2P -------------------------------------------------- */

static frt_status ipa_phonemize(frt_g2p *g, const char *text, size_t n, frt_strbuf *out)
{
    (void)g;
    bool space = out->len > 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        unsigned c = utf8_at(text, n, i, &l);
        if (is_blank(c)) {
            space = true;
        } else {
            if (space && out->len) FRT_TRY(frt_strbuf_append(out, " ", 1));
            space = false;
            FRT_TRY(frt_strbuf_append(out, text + i, l));
        }
        i += l;
    }
    return FRT_OK;
}

static void ipa_free(frt_g2p *g)
{
    free(g);
}

frt_status frt_g2p_ipa_open(frt_g2p **out)
{
    frt_g2p *g = calloc(1, sizeof *g);
    if (!g) return frt_error(FRT_ERR_NOMEM, "out of memory");
    g->name = "ipa";
    g->phonemize = ipa_phonemize;
    g->free = ipa_free;
    *out = g;
    return FRT_OK;
}

/* ---- phoneme inventory ----------------------------------------------------- */

#define MAX_WARNED 64

struct frt_phoneme_map {
    char **sym; /* by id; NULL for unused ids */
    int n;
    int *by_len; /* ids with a symbol, longest symbol first */
    int n_by_len;
    int space_id; /* -1 when none */
    int pause_id; /* -1 when none */
    /* Unknown symbols already warned about: a long text must not repeat
     * the same warning for every sentence. */
    pthread_mutex_t lock;
    char *warned[MAX_WARNED];
    int n_warned;
};

static int find_symbol(const frt_phoneme_map *m, const char *s, size_t len)
{
    for (int k = 0; k < m->n_by_len; k++) {
        const char *t = m->sym[m->by_len[k]];
        if (strlen(t) == len && memcmp(t, s, len) == 0) return m->by_len[k];
    }
    return -1;
}

frt_status frt_phoneme_map_create(const char *const *symbols, int n, frt_phoneme_map **out)
{
    if (!symbols || n <= 0) return frt_error(FRT_ERR_INVALID_ARG, "empty phoneme inventory");
    frt_phoneme_map *m = calloc(1, sizeof *m);
    if (!m) return frt_error(FRT_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&m->lock, NULL);
    m->n = n;
    m->sym = calloc((size_t)n, sizeof *m->sym);
    m->by_len = calloc((size_t)n, sizeof *m->by_len);
    if (!m->sym || !m->by_len) {
        frt_phoneme_map_free(m);
        return frt_error(FRT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (!symbols[i] || !symbols[i][0]) continue;
        size_t len = strlen(symbols[i]);
        if (!frt_utf8_valid(symbols[i], len, NULL)) {
            frt_phoneme_map_free(m);
            return frt_error(FRT_ERR_FORMAT, "phoneme %d of the inventory is not valid UTF-8", i);
        }
        m->sym[i] = strdup(symbols[i]);
        if (!m->sym[i]) {
            frt_phoneme_map_free(m);
            return frt_error(FRT_ERR_NOMEM, "out of memory");
        }
        m->by_len[m->n_by_len++] = i;
    }
    /* Longest first, stable (insertion sort: inventories are small and
     * qsort has no context argument). */
    for (int k = 1; k < m->n_by_len; k++) {
        int id = m->by_len[k], j = k;
        size_t len = strlen(m->sym[id]);
        while (j > 0 && strlen(m->sym[m->by_len[j - 1]]) < len) {
            m->by_len[j] = m->by_len[j - 1];
            j--;
        }
        m->by_len[j] = id;
    }
    m->space_id = find_symbol(m, " ", 1);
    if (m->space_id < 0) m->space_id = find_symbol(m, "<space>", 7);
    if (m->space_id < 0) m->space_id = find_symbol(m, "|", 1);
    static const char *const pauses[] = {"<sil>", "sil", "sp", "<pause>", "SIL"};
    m->pause_id = -1;
    for (size_t k = 0; k < sizeof pauses / sizeof pauses[0] && m->pause_id < 0; k++)
        m->pause_id = find_symbol(m, pauses[k], strlen(pauses[k]));
    *out = m;
    return FRT_OK;
}

void frt_phoneme_map_free(frt_phoneme_map *m)
{
    if (!m) return;
    if (m->sym)
        for (int i = 0; i < m->n; i++) free(m->sym[i]);
    free(m->sym);
    free(m->by_len);
    for (int i = 0; i < m->n_warned; i++) free(m->warned[i]);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void frt_phoneme_seq_free(frt_phoneme_seq *seq)
{
    free(seq->ids);
    memset(seq, 0, sizeof *seq);
}

static frt_status seq_push(frt_phoneme_seq *seq, int id)
{
    if (seq->n == seq->cap) {
        size_t cap = seq->cap ? seq->cap * 2 : 64;
        int32_t *p = realloc(seq->ids, cap * sizeof *p);
        if (!p) return frt_error(FRT_ERR_NOMEM, "out of memory (phoneme ids)");
        seq->ids = p;
        seq->cap = cap;
    }
    seq->ids[seq->n++] = id;
    return FRT_OK;
}

static void warn_unknown(const frt_phoneme_map *cm, const char *s, size_t len)
{
    frt_phoneme_map *m = (frt_phoneme_map *)cm;
    pthread_mutex_lock(&m->lock);
    bool seen = false;
    for (int i = 0; i < m->n_warned && !seen; i++)
        seen = strlen(m->warned[i]) == len && memcmp(m->warned[i], s, len) == 0;
    if (!seen && m->n_warned < MAX_WARNED) {
        char *w = strndup(s, len);
        if (w) m->warned[m->n_warned++] = w;
        FRT_LOGW("speech: phoneme '%.*s' is not in the model's inventory; skipped", (int)len, s);
    }
    pthread_mutex_unlock(&m->lock);
}

/* Punctuation the frontend keeps as a pause, with the silence (ms) to add
 * after a sentence ending in it when the inventory has no symbol for it. */
static int punct_pause_ms(unsigned c)
{
    switch (c) {
    case '.':
    case '!':
    case '?':
    case 0x2026:
    case 0x3002:
    case 0xFF01:
    case 0xFF1F:
    case 0xFF0E: return 300;
    case ',':
    case ';':
    case ':':
    case 0x2014:
    case 0x2013:
    case 0x3001:
    case 0xFF0C:
    case 0xFF1B:
    case 0xFF1A: return 150;
    default: return 0;
    }
}

static frt_status map_token(const frt_phoneme_map *m, const char *t, size_t len,
                            frt_phoneme_seq *seq)
{
    int id = find_symbol(m, t, len);
    if (id >= 0) {
        seq->sounds++;
        return seq_push(seq, id);
    }
    for (size_t i = 0; i < len;) {
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < m->n_by_len && best < 0; k++) {
            const char *s = m->sym[m->by_len[k]];
            size_t sl = strlen(s);
            if (sl <= len - i && memcmp(s, t + i, sl) == 0) best = m->by_len[k], best_len = sl;
        }
        if (best >= 0) {
            seq->sounds++;
            FRT_TRY(seq_push(seq, best));
            i += best_len;
        } else {
            size_t l;
            utf8_at(t, len, i, &l);
            warn_unknown(m, t + i, l);
            seq->unknown++;
            i += l;
        }
    }
    return FRT_OK;
}

frt_status frt_phoneme_map_apply(const frt_phoneme_map *m, const char *ipa, size_t n,
                                 frt_phoneme_seq *seq)
{
    if (!frt_utf8_valid(ipa, n, NULL))
        return frt_error(FRT_ERR_FORMAT, "phoneme text is not valid UTF-8");
    seq->trailing_pause = 0;
    /* No word boundary at the start, twice in a row, or after a pause. */
    bool boundary_ok = seq->n > 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        unsigned c = utf8_at(ipa, n, i, &l);
        if (is_blank(c)) {
            if (m->space_id >= 0 && boundary_ok) FRT_TRY(seq_push(seq, m->space_id));
            boundary_ok = false;
            i += l;
            continue;
        }
        if (c == '_') {
            i += l;
            continue;
        }
        int pause = punct_pause_ms(c);
        if (pause) {
            int id = find_symbol(m, ipa + i, l);
            if (id < 0) id = m->pause_id;
            /* A pause replaces the word boundary before it. */
            if (id >= 0 && seq->n && seq->ids[seq->n - 1] == m->space_id) seq->n--;
            if (id >= 0) FRT_TRY(seq_push(seq, id));
            /* Only final punctuation can become silence after the audio;
             * a comma inside the sentence cannot without a symbol. */
            seq->trailing_pause = id >= 0 ? 0 : pause;
            boundary_ok = false;
            i += l;
            continue;
        }
        size_t j = i;
        while (j < n) {
            size_t lj;
            unsigned cj = utf8_at(ipa, n, j, &lj);
            if (is_blank(cj) || cj == '_' || punct_pause_ms(cj)) break;
            j += lj;
        }
        size_t before = seq->n;
        FRT_TRY(map_token(m, ipa + i, j - i, seq));
        if (seq->n > before) {
            seq->trailing_pause = 0;
            boundary_ok = true;
        }
        i = j;
    }
    if (m->space_id >= 0 && seq->n && seq->ids[seq->n - 1] == m->space_id) seq->n--;
    return FRT_OK;
}
