/* Speak text with flashrt: stream the audio through a callback, then write
 * a whole file. Build: cc speech_example.c $(pkg-config --cflags --libs flashrt)
 * Run: ./speech_example MODEL_DIR "Hello there." out.wav */
#include <flashrt/speech.h>
#include <stdio.h>

/* Called once a sentence is ready; pcm is only valid during the call. */
static int on_chunk(const frt_speech_chunk *c, void *user)
{
    *(size_t *)user += c->n;
    fprintf(stderr, "sentence %zu: %zu samples at %d Hz\n", c->sentence, c->n, c->sample_rate);
    return 0; /* nonzero would stop synthesis */
}

int main(int argc, char **argv)
{
    if (argc != 4) return fprintf(stderr, "usage: %s MODEL_DIR TEXT OUT.wav\n", argv[0]), 2;
    frt_speech *sp;
    if (frt_speech_open(argv[1], &sp) != FRT_OK)
        return fprintf(stderr, "cannot open %s: %s\n", argv[1], frt_last_error()), 1;
    frt_speech_options opt;
    frt_speech_options_init(&opt); /* defaults; here a fixed seed, two steps */
    opt.seed = 42;
    opt.steps = 2;
    size_t total = 0;
    frt_status s = frt_speech_synthesize(sp, argv[2], &opt, on_chunk, &total);
    if (s == FRT_OK) s = frt_speech_synthesize_to_file(sp, argv[2], &opt, argv[3]);
    if (s == FRT_OK)
        printf("%zu samples streamed; %s written\n", total, argv[3]);
    else
        fprintf(stderr, "error: %s\n", frt_last_error());
    frt_speech_close(sp);
    return s == FRT_OK ? 0 : 1;
}
