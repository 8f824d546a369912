/* Speech text frontend: UTF-8 validation, sentence splitting, G2P backends,
 * mapping onto a phoneme inventory. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "testutil.h"

/* ---- UTF-8 ------------------------------------------------------------------ */

/* Naive twin: decode code point by code point with the textbook table. */
static bool naive_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], cp, len;
        if (c == 0) return false;
        if (c < 0x80)
            len = 1, cp = c;
        else if ((c & 0xE0) == 0xC0)
            len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, cp = c & 0x07;
        else
            return false;
        if (i + len > n) return false;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        unsigned min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

Test(utf8, known_cases)
{
    static const struct {
        const char *s;
        size_t n;
        bool ok;
        size_t bad;
    } cases[] = {
        {"hello", 5, true, 0},
        {"h\xC3\xA9llo", 6, true, 0},
        {"\xE2\x80\xA6\xF0\x9F\x98\x80", 7, true, 0},
        {"ab\xC0\x80", 4, false, 2},       /* overlong NUL */
        {"\xE0\x80\xAF", 3, false, 0},     /* overlong '/' */
        {"x\xED\xA0\x80", 4, false, 1},    /* surrogate */
        {"\xF4\x90\x80\x80", 4, false, 0}, /* above U+10FFFF */
        {"abc\xE2\x80", 5, false, 3},      /* truncated */
        {"a\x80", 2, false, 1},            /* lone continuation */
        {"a\0b", 3, false, 1},             /* embedded NUL */
        {"\xFF", 1, false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bad = 12345;
        bool ok = frt_utf8_valid(cases[i].s, cases[i].n, &bad);
        cr_assert_eq(ok, cases[i].ok, "case %zu", i);
        if (!ok) cr_assert_eq(bad, cases[i].bad, "case %zu: bad at %zu", i, bad);
    }
}

Test(utf8, random_bytes_match_naive)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    unsigned char buf[16];
    for (int it = 0; it < 200000; it++) {
        size_t n = 1 + tu_next(&r) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            /* Bias towards lead and continuation bytes so valid strings occur. */
            uint64_t x = tu_next(&r);
            buf[i] =
                (x & 3) == 0 ? (unsigned char)(0x80 | ((x >> 8) & 0x3F)) : (unsigned char)(x >> 16);
        }
        size_t bad = n + 1;
        bool ok = frt_utf8_valid((const char *)buf, n, &bad);
        cr_assert_eq(ok, naive_utf8_valid(buf, n), "iteration %d", it);
        if (!ok) {
            cr_assert_lt(bad, n);
            cr_assert(naive_utf8_valid(buf, bad), "prefix before the bad byte must be valid");
        }
    }
}

/* ---- sentences --------------------------------------------------------------- */

static int split(const char *text, char out[][128], int cap)
{
    size_t pos = 0, a, b, n = strlen(text);
    int k = 0;
    while (frt_sentence_next(text, n, &pos, &a, &b)) {
        cr_assert_lt(k, cap);
        cr_assert_leq(a, b);
        cr_assert_leq(b, pos);
        snprintf(out[k++], 128, "%.*s", (int)(b - a), text + a);
    }
    cr_assert_eq(pos, n);
    return k;
}

Test(sentences, basic_splits)
{
    char s[16][128];
    int n = split("  Hello there.  How are you?I'm fine!  ", s, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s[0], "Hello there.");
    cr_assert_str_eq(s[1], "How are you?I'm fine!");

    n = split("Dr. Smith paid $3.50 to J. R. Tolkien. Then he left...  \"Really?\" she asked.", s,
              16);
    cr_assert_eq(n, 4, "got %d", n);
    cr_assert_str_eq(s[0], "Dr. Smith paid $3.50 to J. R. Tolkien.");
    cr_assert_str_eq(s[1], "Then he left...");
    cr_assert_str_eq(s[2], "\"Really?\"");
    cr_assert_str_eq(s[3], "she asked.");

    n = split("A title\n\nA paragraph without a stop\nthat goes on", s, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s[0], "A title");
    cr_assert_str_eq(s[1], "A paragraph without a stop\nthat goes on");

    n = split("你好。世界！", s, 16);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s[0], "你好。");

    cr_assert_eq(split(" \n\t ", s, 16), 0);
    cr_assert_eq(split("", s, 16), 0);
}

Test(sentences, long_runs_are_cut_at_blanks)
{
    /* 5000 bytes of words and no stop at all. */
    size_t n = 5000;
    char *t = malloc(n + 1);
    for (size_t i = 0; i < n; i++) t[i] = i % 7 == 6 ? ' ' : 'a' + (char)(i % 7);
    t[n] = 0;
    size_t pos = 0, a, b, pieces = 0, covered = 0;
    while (frt_sentence_next(t, n, &pos, &a, &b)) {
        cr_assert_leq(b - a, FRT_SENTENCE_MAX);
        if (pos < n) {
            cr_assert_gt(b - a, FRT_SENTENCE_MAX / 2);
            cr_assert(t[b] == ' ', "cut inside a word at %zu", b);
        }
        covered += b - a;
        pieces++;
    }
    cr_assert_geq(pieces, n / FRT_SENTENCE_MAX);
    cr_assert_gt(covered, n * 8 / 10);
    /* No blanks at all: cut anyway, on a character boundary. */
    char *u = malloc(3 * 1000 + 1);
    for (int i = 0; i < 1000; i++) memcpy(u + 3 * i, "\xE2\x80\x94", 3);
    u[3000] = 0;
    pos = 0;
    while (frt_sentence_next(u, 3000, &pos, &a, &b)) {
        cr_assert_eq(a % 3, 0);
        cr_assert_eq(b % 3, 0);
        cr_assert_leq(b - a, FRT_SENTENCE_MAX + 3);
    }
    free(t);
    free(u);
}

/* ---- G2P ------------------------------------------------------------------------ */

static char *phonemize(frt_g2p *g, const char *text)
{
    frt_strbuf b = {0};
    cr_assert_eq(g->phonemize(g, text, strlen(text), &b), FRT_OK, "%s", frt_last_error());
    char *s = strdup(b.s ? b.s : "");
    frt_strbuf_free(&b);
    return s;
}

Test(g2p, ipa_passthrough)
{
    frt_g2p *g;
    cr_assert_eq(frt_g2p_ipa_open(&g), FRT_OK);
    char *s = phonemize(g, "  h_ə_l_ˈoʊ \n\t ð_ˈɛɹ. ");
    cr_assert_str_eq(s, "h_ə_l_ˈoʊ ð_ˈɛɹ.");
    free(s);
    frt_g2p_free(g);
}

#ifdef FRT_HAVE_ESPEAK
Test(g2p, espeak_english)
{
    frt_g2p *g;
    cr_assert_eq(frt_g2p_espeak_open("en-us", &g), FRT_OK, "%s", frt_last_error());
    char *s = phonemize(g, "Hello there, world.");
    /* IPA, '_' inside words, the comma and the stop kept as pauses. */
    cr_assert(strstr(s, "h_ə_l_ˈoʊ"), "%s", s);
    cr_assert(strstr(s, "ð_ˈɛ"), "%s", s);
    cr_assert(strstr(s, ","), "%s", s);
    cr_assert_eq(s[strlen(s) - 1], '.', "%s", s);
    free(s);
    /* Words in another script: espeak-ng's language switch markers
     * ("(hi)", "(en-us)") are not phonemes. */
    s = phonemize(g, "Say नमस्ते now.");
    cr_assert(!strchr(s, '(') && !strchr(s, ')'), "%s", s);
    cr_assert(strstr(s, "n_ə_m"), "%s", s);
    free(s);
    /* Numbers keep their decimal point inside the clause. */
    s = phonemize(g, "It costs 3.5 dollars");
    cr_assert(strstr(s, "p_ɔɪ_n_t"), "%s", s);
    free(s);
    frt_g2p_free(g);
    cr_assert_eq(frt_g2p_espeak_open("no-such-voice-xx", &g), FRT_ERR_NOT_FOUND);
}

Test(g2p, espeak_survives_odd_text)
{
    frt_g2p *g;
    cr_assert_eq(frt_g2p_espeak_open(NULL, &g), FRT_OK);
    static const char *const pieces[] = {
        "a",     "Zz", "9",  "3.14", ",",  ".", "?",  " ", "\n", "\t",  "\x01",        "<",
        "&amp;", "[[", "]]", "é",    "中", "😀", "\"", "'", "-",  "...", "\xE2\x80\x94"};
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (int it = 0; it < 300; it++) {
        char buf[512];
        size_t len = 0;
        int k = 1 + (int)(tu_next(&r) % 40);
        for (int i = 0; i < k; i++) {
            const char *p = pieces[tu_next(&r) % (sizeof pieces / sizeof *pieces)];
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        frt_strbuf b = {0};
        cr_assert_eq(g->phonemize(g, buf, len, &b), FRT_OK, "%.*s", (int)len, buf);
        if (b.s) cr_assert(frt_utf8_valid(b.s, b.len, NULL));
        frt_strbuf_free(&b);
    }
    frt_g2p_free(g);
}

typedef struct {
    frt_g2p *g;
    const char *text;
    const char *expect;
    int bad;
} g2p_job;

static void *g2p_worker(void *arg)
{
    g2p_job *j = arg;
    for (int i = 0; i < 30; i++) {
        frt_strbuf b = {0};
        if (j->g->phonemize(j->g, j->text, strlen(j->text), &b) != FRT_OK ||
            strcmp(b.s, j->expect) != 0)
            j->bad++;
        frt_strbuf_free(&b);
    }
    return NULL;
}

Test(g2p, espeak_is_serialised_across_threads)
{
    /* Two G2P objects with different voices racing: espeak-ng's global voice
     * must be switched under the lock, and each thread must get exactly the
     * serial answer. */
    frt_g2p *en, *de;
    cr_assert_eq(frt_g2p_espeak_open("en-us", &en), FRT_OK);
    cr_assert_eq(frt_g2p_espeak_open("de", &de), FRT_OK);
    g2p_job j[2] = {{en, "The weather is nice today.", NULL, 0},
                    {de, "Das Wetter ist heute schön.", NULL, 0}};
    for (int i = 0; i < 2; i++) j[i].expect = phonemize(j[i].g, j[i].text);
    cr_assert_str_neq(j[0].expect, j[1].expect);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, g2p_worker, &j[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(j[i].bad, 0, "thread %d", i);
        free((char *)j[i].expect);
    }
    frt_g2p_free(en);
    frt_g2p_free(de);
}
#else
Test(g2p, espeak_missing_is_unsupported)
{
    frt_g2p *g = NULL;
    cr_assert_eq(frt_g2p_espeak_open(NULL, &g), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "espeak-ng"));
}
#endif

/* ---- inventory ------------------------------------------------------------------ */

static const char *const inventory[] = {"<pad>", "<sil>", " ",  ",", ".", "ˈ", "ə", "h", "l",
                                        "o",     "ʊ",     "oʊ", "ð", "ɛ", "ɹ", "t", "s"};
enum { PAD, SIL, SP, COMMA, DOT, STRESS, SCHWA, H, L, O, UPS, OU, ETH, EPS, R, T, S };

static frt_phoneme_seq map(const frt_phoneme_map *m, const char *ipa)
{
    frt_phoneme_seq q = {0};
    cr_assert_eq(frt_phoneme_map_apply(m, ipa, strlen(ipa), &q), FRT_OK, "%s", frt_last_error());
    return q;
}

static void expect_ids(const frt_phoneme_seq *q, const int *ids, size_t n)
{
    cr_assert_eq(q->n, n, "got %zu ids, want %zu", q->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(q->ids[i], ids[i], "id %zu: %d vs %d", i, q->ids[i], ids[i]);
}

Test(inventory, whole_greedy_space_and_punctuation)
{
    frt_phoneme_map *m;
    cr_assert_eq(frt_phoneme_map_create(inventory, sizeof inventory / sizeof *inventory, &m),
                 FRT_OK);
    /* "oʊ" exists whole; "ˈoʊ" does not, so it splits into "ˈ" + "oʊ". */
    frt_phoneme_seq q = map(m, "h_ə_l_ˈoʊ  ð_ˈɛɹ, ts.");
    int want[] = {H, SCHWA, L, STRESS, OU, SP, ETH, STRESS, EPS, R, COMMA, T, S, DOT};
    expect_ids(&q, want, sizeof want / sizeof *want);
    cr_assert_eq(q.unknown, 0);
    cr_assert_eq(q.sounds, 11);
    cr_assert_eq(q.trailing_pause, 0, "the inventory has '.'");
    frt_phoneme_seq_free(&q);

    /* Unknown symbols are skipped and counted; leading/trailing blanks vanish. */
    q = map(m, " hæl ʒ ");
    int want2[] = {H, L};
    expect_ids(&q, want2, 2);
    cr_assert_eq(q.unknown, 2);
    frt_phoneme_seq_free(&q);

    /* Punctuation the inventory lacks becomes <sil>. */
    q = map(m, "ts? ts");
    int want3[] = {T, S, SIL, T, S};
    expect_ids(&q, want3, 5);
    frt_phoneme_seq_free(&q);
    frt_phoneme_map_free(m);
}

Test(inventory, no_pause_symbol_gives_trailing_silence)
{
    const char *inv[] = {"t", "s", NULL, ""};
    frt_phoneme_map *m;
    cr_assert_eq(frt_phoneme_map_create(inv, 4, &m), FRT_OK);
    frt_phoneme_seq q = map(m, "ts ts!");
    int want[] = {0, 1, 0, 1};
    expect_ids(&q, want, 4);
    cr_assert_gt(q.trailing_pause, 0);
    frt_phoneme_seq_free(&q);
    q = map(m, "ts, ts");
    cr_assert_eq(q.trailing_pause, 0, "a comma mid-sentence is no trailing pause");
    frt_phoneme_seq_free(&q);
    frt_phoneme_map_free(m);

    cr_assert_eq(frt_phoneme_map_create(inv, 0, &m), FRT_ERR_INVALID_ARG);
    const char *badinv[] = {"a", "\xC0\x80"};
    cr_assert_eq(frt_phoneme_map_create(badinv, 2, &m), FRT_ERR_FORMAT);
}

Test(inventory, random_ipa_never_breaks)
{
    /* Any valid UTF-8 maps without failing; every id is in range. */
    frt_phoneme_map *m;
    int n_inv = sizeof inventory / sizeof *inventory;
    cr_assert_eq(frt_phoneme_map_create(inventory, n_inv, &m), FRT_OK);
    const char *pieces[] = {"h", "ə", "oʊ", " ", "_", ",", ".", "ˈ", "ʒ", "x", "\xE2\x80\xA6", "?"};
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (int it = 0; it < 2000; it++) {
        char buf[256] = "";
        size_t len = 0;
        int k = (int)(tu_next(&r) % 30);
        for (int i = 0; i < k; i++) {
            const char *p = pieces[tu_next(&r) % (sizeof pieces / sizeof *pieces)];
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        frt_phoneme_seq q = {0};
        cr_assert_eq(frt_phoneme_map_apply(m, buf, len, &q), FRT_OK);
        for (size_t i = 0; i < q.n; i++) cr_assert(q.ids[i] >= 0 && q.ids[i] < n_inv);
        if (q.n) cr_assert_neq(q.ids[q.n - 1], SP, "no trailing word boundary");
        frt_phoneme_seq_free(&q);
    }
    frt_phoneme_map_free(m);
}
