/* Grapheme-to-phoneme through libespeak-ng (GPL-3, so optional: built only
 * with FRT_ESPEAK=ON, which defines FRT_HAVE_ESPEAK).
 *
 * espeak_TextToPhonemes translates one clause per call and drops the
 * punctuation that ended it, so the sentence is cut into clauses here first
 * and each clause's punctuation is written back after its phonemes: the
 * model's inventory (or the engine) turns it into a pause. */
#include "frontend.h"

#include "error.h"

#ifdef FRT_HAVE_ESPEAK

#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* espeak-ng keeps its dictionary, voice and translator in globals: one lock
 * for every call into it, one initialisation per process. */
static pthread_mutex_t g_espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_espeak_rate; /* > 0 once initialised, < 0 when that failed */
/* The voice espeak-ng has now. Selecting a voice costs time and, in
 * espeak-ng 1.51, leaks about 1 KiB, so it is only done on a change. */
static char g_espeak_voice[64];

static frt_status select_voice(const char *voice)
{
    if (strcmp(g_espeak_voice, voice) == 0) return FRT_OK;
    if (espeak_SetVoiceByName(voice) != EE_OK) {
        g_espeak_voice[0] = '\0';
        return frt_error(FRT_ERR_NOT_FOUND, "espeak-ng has no voice '%s'", voice);
    }
    snprintf(g_espeak_voice, sizeof g_espeak_voice, "%s", voice);
    return FRT_OK;
}

typedef struct espeak_g2p {
    frt_g2p base;
    char voice[64];
    frt_strbuf clause; /* NUL-terminated copy of the clause being translated */
} espeak_g2p;

/* Punctuation that ends a clause for espeak-ng; kept in the output. */
static size_t clause_punct_len(const char *s, size_t n)
{
    static const char *const punct[] = {",",
                                        ";",
                                        ":",
                                        ".",
                                        "!",
                                        "?",
                                        "\xE2\x80\xA6",  /* … */
                                        "\xE2\x80\x94",  /* — */
                                        "\xE3\x80\x82",  /* 。 */
                                        "\xE3\x80\x81",  /* 、 */
                                        "\xEF\xBC\x8C",  /* ， */
                                        "\xEF\xBC\x81",  /* ！ */
                                        "\xEF\xBC\x9F"}; /* ？ */
    for (size_t k = 0; k < sizeof punct / sizeof punct[0]; k++) {
        size_t l = strlen(punct[k]);
        if (l <= n && memcmp(s, punct[k], l) == 0) return l;
    }
    return 0;
}

static bool ends_clause(const char *s, size_t n, size_t i, size_t plen)
{
    size_t j = i + plen;
    /* "3.5" and "a,b" stay one token for espeak-ng (numbers, lists). */
    return j >= n || s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' || s[j] == '"' ||
           s[j] == '\'' || s[j] == ')' || (unsigned char)s[j] >= 0x80;
}

/* Longest run of non-blank bytes handed to espeak-ng (the longest English
 * words have about 45 letters). */
#define G2P_MAX_WORD 64

/* 1 for an Armenian character (U+0530..U+058F, U+FB13..U+FB17), 0 for
 * another, -1 for a blank or a combining mark (U+0300..U+036F, which
 * belongs to the letter before it). *l gets its length in bytes. */
static int armenian(const char *s, size_t n, size_t *l)
{
    unsigned char c = (unsigned char)s[0];
    *l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (*l > n) *l = n;
    unsigned cp = c;
    for (size_t k = 1; k < *l; k++) cp = cp << 6 | ((unsigned char)s[k] & 0x3F);
    if (*l == 2) cp &= 0x7FF;
    if (*l == 3) cp &= 0xFFFF;
    if (*l == 4) cp &= 0x1FFFFF;
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x300 && cp < 0x370))
        return -1;
    return (cp >= 0x530 && cp < 0x590) || (cp >= 0xFB13 && cp <= 0xFB17);
}

/* Translate one clause (locked by the caller). */
static frt_status speak_clause(espeak_g2p *g, const char *text, size_t n, frt_strbuf *out)
{
    frt_strbuf_clear(&g->clause);
    /* espeak-ng 1.51 has memory bugs that text reaches (found by
     * fuzz_frontend; ASan reports inside espeak_TextToPhonemes), avoided by
     * what it is handed: a space goes between an Armenian character and any
     * other next to it (heap-use-after-free on "\u0587\u0289c",
     * "\u0531\u02C8J"), and into any run of more than G2P_MAX_WORD bytes
     * without a blank (a stack overflow on "a." and 180 letters); control
     * characters become spaces (after "B\x01B" it reads on past the end of
     * the text). None of these has a reading anyway. */
    int prev = -1;
    size_t run = 0;
    for (size_t i = 0, l; i < n; i += l) {
        int arm = armenian(text + i, n - i, &l);
        bool blank = arm < 0 && (unsigned char)text[i] < 0x80;
        if ((arm >= 0 && prev >= 0 && arm != prev) || (!blank && run + l > G2P_MAX_WORD)) {
            FRT_TRY(frt_strbuf_append(&g->clause, " ", 1));
            run = 0;
        }
        if (blank || arm >= 0) prev = arm;
        run = blank ? 0 : run + l;
        unsigned char c = (unsigned char)text[i];
        bool control =
            c < 0x20 || c == 0x7F || (c == 0xC2 && l == 2 && (unsigned char)text[i + 1] < 0xA0);
        FRT_TRY(frt_strbuf_append(&g->clause, control ? " " : text + i, control ? 1 : l));
    }
    if (!g->clause.s) FRT_TRY(frt_strbuf_append(&g->clause, "", 0));
    const void *p = g->clause.s;
    /* IPA, '_' between the phonemes of a word (espeak-ng puts ' ' between words). */
    const int mode = espeakPHONEMES_IPA | ('_' << 8);
    while (p) {
        const char *ph = espeak_TextToPhonemes(&p, espeakCHARS_UTF8, mode);
        if (!ph || !ph[0]) continue;
        if (out->len && out->s[out->len - 1] != ' ') FRT_TRY(frt_strbuf_append(out, " ", 1));
        /* A clause can start with the separator ("_ˌoʊ_k_ˈeɪ"), and words
         * read in another language come between switch markers
         * ("(hi)_n_ə_m_ˈʌ_s_t_eː_(en-us)") that are not phonemes. */
        while (*ph == '_') ph++;
        for (const char *q = ph; *q;) {
            const char *open = strchr(q, '(');
            size_t keep = open ? (size_t)(open - q) : strlen(q);
            FRT_TRY(frt_strbuf_append(out, q, keep));
            if (!open) break;
            const char *close = strchr(open, ')');
            q = close ? close + 1 : open + strlen(open);
        }
    }
    return FRT_OK;
}

static frt_status espeak_phonemize(frt_g2p *base, const char *text, size_t n, frt_strbuf *out)
{
    espeak_g2p *g = (espeak_g2p *)base;
    frt_status s = FRT_OK;
    pthread_mutex_lock(&g_espeak_lock);
    /* Another G2P object may have switched the global voice since. */
    s = select_voice(g->voice);
    size_t start = 0;
    for (size_t i = 0; i < n && s == FRT_OK;) {
        size_t pl = clause_punct_len(text + i, n - i);
        if (!pl || !ends_clause(text, n, i, pl)) {
            i++;
            continue;
        }
        if (i > start) s = speak_clause(g, text + start, i - start, out);
        if (s == FRT_OK) s = frt_strbuf_append(out, text + i, pl);
        i += pl;
        start = i;
    }
    if (s == FRT_OK && start < n) s = speak_clause(g, text + start, n - start, out);
    pthread_mutex_unlock(&g_espeak_lock);
    return s;
}

static void espeak_free(frt_g2p *base)
{
    espeak_g2p *g = (espeak_g2p *)base;
    frt_strbuf_free(&g->clause);
    free(g);
}

frt_status frt_g2p_espeak_open(const char *voice, frt_g2p **out)
{
    if (!voice || !voice[0]) voice = "en-us";
    if (strlen(voice) >= sizeof((espeak_g2p *)0)->voice)
        return frt_error(FRT_ERR_INVALID_ARG, "espeak-ng voice name too long");
    frt_status s = FRT_OK;
    pthread_mutex_lock(&g_espeak_lock);
    if (g_espeak_rate == 0) {
        /* RETRIEVAL: no audio device is opened; DONT_EXIT: a missing data
         * directory must be an error, not exit(). */
        g_espeak_rate =
            espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, NULL, espeakINITIALIZE_DONT_EXIT);
        if (g_espeak_rate <= 0) g_espeak_rate = -1;
    }
    if (g_espeak_rate < 0)
        s = frt_error(FRT_ERR_NOT_FOUND, "espeak-ng failed to initialise (is espeak-ng-data "
                                         "installed?)");
    else
        s = select_voice(voice);
    pthread_mutex_unlock(&g_espeak_lock);
    if (s != FRT_OK) return s;
    espeak_g2p *g = calloc(1, sizeof *g);
    if (!g) return frt_error(FRT_ERR_NOMEM, "out of memory");
    g->base.name = "espeak-ng";
    g->base.phonemize = espeak_phonemize;
    g->base.free = espeak_free;
    strcpy(g->voice, voice);
    *out = &g->base;
    return FRT_OK;
}

#else

frt_status frt_g2p_espeak_open(const char *voice, frt_g2p **out)
{
    (void)voice;
    (void)out;
    return frt_error(FRT_ERR_UNSUPPORTED,
                     "built without espeak-ng (FRT_ESPEAK=OFF): give phonemes instead of text");
}

#endif
