/* Internal: the speech text frontend.
 *
 * text -> UTF-8 check -> sentences -> G2P (IPA) -> phoneme ids of the model.
 *
 * The G2P is an interface (frt_g2p) so espeak-ng, which is GPL-3, stays an
 * optional backend: a build without it still speaks phoneme input. A G2P
 * writes "IPA text": phoneme symbols separated by '_' inside a word, words
 * separated by ' ', clause punctuation (, . ? ! ; : and the like) kept as
 * its own character so it can become a pause. */
#ifndef FRT_SPEECH_FRONTEND_H
#define FRT_SPEECH_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

/* ---- growable byte string ------------------------------------------------ */

typedef struct frt_strbuf {
    char *s; /* NUL-terminated; NULL until the first append */
    size_t len, cap;
} frt_strbuf;

frt_status frt_strbuf_append(frt_strbuf *b, const char *s, size_t n);
void frt_strbuf_clear(frt_strbuf *b); /* keeps the memory */
void frt_strbuf_free(frt_strbuf *b);

/* ---- UTF-8 ----------------------------------------------------------------- */

/* True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates,
 * code points above U+10FFFF, or NUL bytes). Otherwise *bad (may be NULL)
 * gets the byte offset of the first bad sequence. */
bool frt_utf8_valid(const char *s, size_t n, size_t *bad);

/* ---- sentences ----------------------------------------------------------- */

/* Longest sentence handed to the G2P: longer runs without punctuation are
 * cut at a space (or at a character boundary) so memory and latency stay
 * bounded on any input. */
#define FRT_SENTENCE_MAX 600

/* Next sentence of valid UTF-8 text[0..n) at or after *pos: on true, the
 * sentence is text[*start..*end) with surrounding blanks trimmed and *pos
 * moves past it; false when only blanks are left. Splits after . ! ? ...
 * (and the CJK full stops) followed by a blank, a closing quote or bracket
 * then a blank, or the end; not after common abbreviations (Mr. Dr. e.g.)
 * or single-letter initials; also at blank lines. */
bool frt_sentence_next(const char *text, size_t n, size_t *pos, size_t *start, size_t *end);

/* ---- grapheme to phoneme ------------------------------------------------- */

typedef struct frt_g2p frt_g2p;
struct frt_g2p {
    const char *name;
    /* Append the IPA text of one sentence (n bytes of valid UTF-8, not
     * necessarily NUL-terminated) to out. */
    frt_status (*phonemize)(frt_g2p *g, const char *text, size_t n, frt_strbuf *out);
    void (*free)(frt_g2p *g);
};

/* espeak-ng with the given voice ("en-us" when NULL). FRT_ERR_UNSUPPORTED
 * in a build without espeak-ng (FRT_ESPEAK=OFF); FRT_ERR_NOT_FOUND for an
 * unknown voice. espeak-ng has process-wide state: it is initialised once
 * and every call into it holds one global lock. */
frt_status frt_g2p_espeak_open(const char *voice, frt_g2p **out);

/* Pass-through G2P for text that is already IPA: copies it, turning
 * runs of blanks into one space. Always available. */
frt_status frt_g2p_ipa_open(frt_g2p **out);

static inline void frt_g2p_free(frt_g2p *g)
{
    if (g) g->free(g);
}

/* ---- phoneme inventory ----------------------------------------------------- */

typedef struct frt_phoneme_map frt_phoneme_map;

/* Build a map from the model's inventory: symbols[i] is the symbol of id i
 * (UTF-8; NULL or "" entries are unused ids). The strings are copied.
 * Special entries recognised by name: " " (or "<space>", "|") for word
 * boundaries; punctuation symbols as they are; a pause symbol ("<sil>",
 * "sil", "sp", "<pause>") used for punctuation the inventory lacks. */
frt_status frt_phoneme_map_create(const char *const *symbols, int n, frt_phoneme_map **out);
void frt_phoneme_map_free(frt_phoneme_map *m);

/* Result of mapping one sentence. */
typedef struct frt_phoneme_seq {
    int32_t *ids;
    size_t n, cap;
    size_t unknown;     /* symbols skipped because the inventory lacks them */
    size_t sounds;      /* ids that are phonemes (not boundaries or pauses) */
    int trailing_pause; /* ms of silence the caller should add after the audio,
                           for final punctuation the inventory has no symbol for */
} frt_phoneme_seq;

/* Map IPA text (as a G2P writes it) to ids, appending to seq (ids is
 * reallocated as needed). Each '_'-separated symbol is looked up whole;
 * failing that, it is matched greedily by the longest inventory symbol at
 * each position (so "ˈoʊ" maps to "ˈ" + "oʊ" when only those exist, and
 * IPA without separators works). Unknown characters are skipped, counted
 * in seq->unknown and logged once per distinct symbol at warn level. */
frt_status frt_phoneme_map_apply(const frt_phoneme_map *m, const char *ipa, size_t n,
                                 frt_phoneme_seq *seq);
void frt_phoneme_seq_free(frt_phoneme_seq *seq);

#endif
