/* libFuzzer: the speech text frontend. The first byte picks the G2P (the IPA
 * pass-through, or espeak-ng where the build has it) and the inventory (the
 * test model's, or one read from the input: symbols separated by '\n' up to
 * a NUL). The rest is text: checked as UTF-8, then split into sentences, each
 * phonemized and mapped to ids. Sentences must stay inside the text, move
 * forward and be at most FRT_SENTENCE_MAX bytes (plus the character that
 * crosses it): any other outcome aborts. */
#include "frontend.h"
#include "fuzz_util.h"

static const char *const inventory[] = {
    "<pad>", "<unk>", "<sil>", " ",  ",",  ".",  "?",  "!",  ";",  ":",  "ˈ",  "ˌ",  "ː",
    "a",     "b",     "d",     "e",  "f",  "h",  "i",  "j",  "k",  "l",  "m",  "n",  "o",
    "p",     "r",     "s",     "t",  "u",  "v",  "w",  "x",  "z",  "æ",  "ç",  "ð",  "ŋ",
    "ɐ",     "ɑ",     "ɒ",     "ɔ",  "ə",  "ɚ",  "ɛ",  "ɜ",  "ɡ",  "ɪ",  "ɹ",  "ɾ",  "ʃ",
    "ʊ",     "ʌ",     "ʒ",     "ʔ",  "θ",  "ᵻ",  "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ",
    "iː",    "uː",    "ɑː",    "ɔː", "ɜː", "ɪə", "eə", "ʊə", "n̩",  "l̩",  "ɐ̃"};

static frt_phoneme_map *fixed_map;
static frt_g2p *ipa, *espeak;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (frt_phoneme_map_create(inventory, sizeof inventory / sizeof *inventory, &fixed_map) !=
            FRT_OK ||
        frt_g2p_ipa_open(&ipa) != FRT_OK)
        abort();
#ifdef FRT_HAVE_ESPEAK
    if (frt_g2p_espeak_open(NULL, &espeak) != FRT_OK) abort();
#endif
    return 0;
}

/* An inventory from "sym\nsym\n...": at most 256 symbols, "" entries unused. */
static frt_phoneme_map *map_from(const char *s, size_t n)
{
    const char *syms[256];
    char *copy = malloc(n + 1);
    if (!copy) abort();
    memcpy(copy, s, n);
    copy[n] = 0;
    int k = 0;
    for (char *p = copy; k < 256;) {
        syms[k++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    frt_phoneme_map *m = NULL;
    if (frt_phoneme_map_create(syms, k, &m) != FRT_OK) m = NULL;
    free(copy);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    frt_phoneme_map *own = NULL;
    if (mode & 1) {
        const char *nul = memchr(text, 0, n);
        if (!nul) return 0;
        own = map_from(text, (size_t)(nul - text));
        if (!own) return 0;
        n -= (size_t)(nul - text) + 1;
        text = nul + 1;
    }
    const frt_phoneme_map *m = own ? own : fixed_map;
    frt_g2p *g = (mode & 2) && espeak ? espeak : ipa;

    size_t bad;
    if (frt_utf8_valid(text, n, &bad)) {
        frt_strbuf ipa_text = {0};
        frt_phoneme_seq seq = {0};
        size_t pos = 0, prev = 0, start, end;
        while (frt_sentence_next(text, n, &pos, &start, &end)) {
            if (start < prev || start > end || end > n || pos > n || pos < end || pos <= prev ||
                end - start > FRT_SENTENCE_MAX + 4)
                abort();
            prev = pos;
            frt_strbuf_clear(&ipa_text);
            if (g->phonemize(g, text + start, end - start, &ipa_text) != FRT_OK) continue;
            if (ipa_text.len &&
                frt_phoneme_map_apply(m, ipa_text.s, ipa_text.len, &seq) == FRT_OK) {
                for (size_t i = 0; i < seq.n; i++)
                    if (seq.ids[i] < 0 || seq.ids[i] >= 256) abort();
            }
        }
        frt_phoneme_seq_free(&seq);
        frt_strbuf_free(&ipa_text);
    } else if (bad >= n) {
        abort();
    }
    frt_phoneme_map_free(own);
    return 0;
}
