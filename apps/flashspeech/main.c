/* flashspeech: text to speech on the command line.
 *
 *   flashspeech "Hello there." -o hello.wav
 *   flashspeech -f book.txt -o - | aplay
 *   echo "Hi." | flashspeech --play
 *
 * Audio is written sentence by sentence as it is synthesised, so a player
 * reading stdout starts before the text is done. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio_io.h"
#include "flashrt/speech.h"

#define MAX_TEXT (64u << 20) /* bytes of text read from a file or stdin */

static const char *prog = "flashspeech";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] [TEXT...]\n"
            "\n"
            "Speak TEXT (or the text of -f FILE, or stdin) with a FlashSpeech model.\n"
            "\n"
            "output (one or both; default: -o - when stdout is not a terminal):\n"
            "  -o, --output PATH     .wav, .flac or .ogg file; '-' streams WAV to stdout\n"
            "                        (e.g. '| aplay', '| ffplay -nodisp -', '| sox -t wav - -d')\n"
            "      --raw             bare 16-bit little-endian PCM instead of WAV\n"
            "      --play            play on the sound card (PortAudio)\n"
            "input:\n"
            "  -f, --file FILE       read the text from FILE ('-' for stdin)\n"
            "      --phonemes        the text is IPA phonemes, not words (no espeak-ng needed)\n"
            "      --voice NAME      espeak-ng voice for grapheme-to-phoneme (default en-us)\n"
            "model and sampling:\n"
            "  -m, --model DIR       model directory (default: $FRT_SPEECH_MODEL, else\n"
            "                        models/flashspeech-tiny next to the install or source)\n"
            "  -r, --ref FILE        reference audio for the voice (WAV/FLAC/OGG; --prompt too)\n"
            "      --steps 1|2       consistency sampling steps (default 1)\n"
            "      --sigma-inter X   noise level of the second step (default: the model's, 2.0)\n"
            "      --speed X         speaking rate, 0.25..4 (default 1)\n"
            "      --seed N          noise seed (default 0): same seed, same audio\n"
            "other:\n"
            "  -q, --quiet           no progress or summary on stderr\n"
            "  -v, --verbose         more detail on stderr (phonemes, device messages)\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n"
            "\n"
            "Exit status: 0 on success (also when the reader of stdout goes away),\n"
            "1 on a failure, 2 on bad usage, 130 when interrupted.\n",
            prog);
}

static int fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(try '%s --help')\n", prog);
    va_end(ap);
    return 2;
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, frt_last_error());
    return 1;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* Whole file or stream into a NUL-terminated buffer. */
static char *read_text(FILE *f, const char *name)
{
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            if (cap >= MAX_TEXT) {
                fprintf(stderr, "%s: %s: text longer than %u MiB\n", prog, name, MAX_TEXT >> 20);
                free(buf);
                return NULL;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "%s: %s: %s\n", prog, name, strerror(errno));
                free(buf);
                return NULL;
            }
            buf[len] = '\0';
            if (strlen(buf) != len) {
                fprintf(stderr, "%s: %s: the text contains a NUL byte\n", prog, name);
                free(buf);
                return NULL;
            }
            return buf;
        }
    }
    free(buf);
    fprintf(stderr, "%s: %s: out of memory\n", prog, name);
    return NULL;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* $FRT_SPEECH_MODEL, then models/flashspeech-tiny beside the installed
 * program (PREFIX/share/flashrt/models) or in the source tree. */
static const char *default_model(char *buf, size_t cap, char *tried, size_t tcap)
{
    const char *env = getenv("FRT_SPEECH_MODEL");
    if (env && *env) return env;
    tried[0] = '\0';
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(buf, cap, "%s/../share/flashrt/models/flashspeech-tiny", exe);
        if (is_dir(buf)) return buf;
        snprintf(tried, tcap, "%s", buf);
    }
#ifdef FRT_SOURCE_DIR
    snprintf(buf, cap, "%s/models/flashspeech-tiny", FRT_SOURCE_DIR);
    if (is_dir(buf)) return buf;
    size_t l = strlen(tried);
    snprintf(tried + l, tcap - l, "%s%s", l ? ", " : "", buf);
#endif
    return NULL;
}

/* ---- output --------------------------------------------------------------- */

typedef struct out_state {
    frt_audio_sink *sinks[2];
    int n_sinks;
    int progress;      /* print progress lines */
    int broken_pipe;   /* the reader of stdout went away */
    frt_status failed; /* a sink failed: the message is in msg */
    char msg[512];
    size_t samples;
    int rate;
    struct timespec t0;
    double first_chunk_s;
} out_state;

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static int on_chunk(const frt_speech_chunk *c, void *user)
{
    out_state *o = user;
    if (o->samples == 0 && c->n) o->first_chunk_s = since(&o->t0);
    for (int i = 0; i < o->n_sinks; i++) {
        if (frt_audio_sink_write(o->sinks[i], c->pcm, c->n) != FRT_OK) {
            if (frt_audio_sink_broken_pipe(o->sinks[i]))
                o->broken_pipe = 1;
            else
                snprintf(o->msg, sizeof o->msg, "%s", frt_last_error());
            o->failed = frt_last_status();
            return 1;
        }
    }
    o->samples += c->n;
    if (o->progress)
        fprintf(stderr, "\r%s: [%3d%%] sentence %zu, %.1f s of audio", prog,
                c->text_len ? (int)(100.0 * (double)c->text_done / (double)c->text_len) : 100,
                c->sentence + 1, (double)o->samples / c->sample_rate);
    return 0;
}

static volatile sig_atomic_t g_interrupted;
static frt_speech *g_speech;

static void on_sigint(int sig)
{
    (void)sig;
    g_interrupted = 1;
    frt_speech_cancel(g_speech);
}

/* PortAudio probes ALSA, JACK and OSS and each complains on stderr when it
 * finds nothing; that noise would bury our one-line error. */
static frt_status open_play(int rate, int verbose, frt_audio_sink **s)
{
    int saved = -1, devnull = -1;
    if (!verbose) {
        fflush(stderr);
        saved = dup(2);
        devnull = open("/dev/null", O_WRONLY);
        if (saved >= 0 && devnull >= 0) dup2(devnull, 2);
    }
    frt_status st = frt_audio_sink_play(rate, s);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (devnull >= 0) close(devnull);
    return st;
}

static frt_status open_output(const char *path, int raw, int rate, frt_audio_sink **s, int *fd)
{
    *fd = -1;
    if (strcmp(path, "-") == 0) return frt_audio_sink_fd(1, rate, raw, s);
    struct stat st;
    int special = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    if (!special && !raw) return frt_audio_sink_file(path, rate, s);
    /* Devices and FIFOs cannot be rewound to patch a header: stream to them. */
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (*fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return FRT_ERR_IO;
    }
    frt_status r = frt_audio_sink_fd(*fd, rate, raw, s);
    if (r != FRT_OK) {
        close(*fd);
        *fd = -1;
    }
    return r;
}

int main(int argc, char **argv)
{
    enum { O_RAW = 256, O_PLAY, O_PHON, O_VOICE, O_STEPS, O_SIGMA, O_SPEED, O_SEED, O_VERSION };
    static const struct option longopts[] = {{"output", required_argument, 0, 'o'},
                                             {"raw", no_argument, 0, O_RAW},
                                             {"play", no_argument, 0, O_PLAY},
                                             {"file", required_argument, 0, 'f'},
                                             {"phonemes", no_argument, 0, O_PHON},
                                             {"voice", required_argument, 0, O_VOICE},
                                             {"model", required_argument, 0, 'm'},
                                             {"ref", required_argument, 0, 'r'},
                                             {"prompt", required_argument, 0, 'r'},
                                             {"steps", required_argument, 0, O_STEPS},
                                             {"sigma-inter", required_argument, 0, O_SIGMA},
                                             {"speed", required_argument, 0, O_SPEED},
                                             {"seed", required_argument, 0, O_SEED},
                                             {"quiet", no_argument, 0, 'q'},
                                             {"verbose", no_argument, 0, 'v'},
                                             {"help", no_argument, 0, 'h'},
                                             {"version", no_argument, 0, O_VERSION},
                                             {0, 0, 0, 0}};
    const char *output = NULL, *file = NULL, *model = NULL;
    int raw = 0, play = 0, quiet = 0, verbose = 0;
    frt_speech_options so;
    frt_speech_options_init(&so);
    double v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:f:m:r:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'f': file = optarg; break;
        case 'm': model = optarg; break;
        case 'r': so.ref_path = optarg; break;
        case 'q': quiet = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        case O_RAW: raw = 1; break;
        case O_PLAY: play = 1; break;
        case O_PHON: so.phoneme_input = 1; break;
        case O_VOICE: so.voice = optarg; break;
        case O_VERSION: printf("flashspeech (flashrt %s)\n", frt_version()); return 0;
        case O_STEPS:
            if (strcmp(optarg, "1") && strcmp(optarg, "2"))
                return fail_usage("--steps must be 1 or 2, not '%s'", optarg);
            so.steps = optarg[0] - '0';
            break;
        case O_SIGMA:
            if (parse_double(optarg, 0.002, 80, &v))
                return fail_usage("--sigma-inter must be a number in 0.002..80, not '%s'", optarg);
            so.sigma_inter = (float)v;
            break;
        case O_SPEED:
            if (parse_double(optarg, 0.25, 4, &v))
                return fail_usage("--speed must be a number in 0.25..4, not '%s'", optarg);
            so.speed = (float)v;
            break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 0);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return fail_usage("--seed must be a non-negative integer, not '%s'", optarg);
            so.seed = s;
            break;
        }
        case ':': return fail_usage("option '%s' needs a value", argv[optind - 1]);
        default: return fail_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (verbose) frt_log_set_level(FRT_LOG_DEBUG);
    if (file && optind < argc) return fail_usage("give the text as arguments or with -f, not both");
    if (!output && !play) {
        if (isatty(1))
            return fail_usage("no output: give -o FILE, -o - (stdout, for a pipe) or --play");
        output = "-";
    }
    if (output && strcmp(output, "-") == 0 && isatty(1))
        return fail_usage("refusing to write audio to a terminal: pipe it (e.g. '| aplay') or use "
                          "-o FILE");

    /* The text. */
    char *text = NULL;
    if (optind < argc) {
        size_t len = 1;
        for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
        text = malloc(len);
        if (!text) return fail_usage("out of memory");
        text[0] = '\0';
        for (int i = optind; i < argc; i++) {
            if (i > optind) strcat(text, " ");
            strcat(text, argv[i]);
        }
    } else if (file && strcmp(file, "-") != 0) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
            return 1;
        }
        text = read_text(f, file);
        fclose(f);
        if (!text) return 1;
    } else {
        if (isatty(0)) return fail_usage("no text: give it as arguments, with -f FILE or on stdin");
        text = read_text(stdin, "stdin");
        if (!text) return 1;
    }

    /* The model. */
    char mbuf[PATH_MAX + 64], tried[2 * PATH_MAX + 200];
    if (!model) model = default_model(mbuf, sizeof mbuf, tried, sizeof tried);
    if (!model) {
        fprintf(stderr,
                "%s: no speech model found (looked in %s).\n"
                "No trained model is bundled yet: pass --model DIR or set FRT_SPEECH_MODEL\n"
                "(tests/data/speech/flashspeech-tiny has random weights: right format, noise).\n",
                prog, tried);
        free(text);
        return 1;
    }
    struct timespec t_open;
    clock_gettime(CLOCK_MONOTONIC, &t_open);
    frt_speech *sp;
    if (frt_speech_open(model, &sp) != FRT_OK) {
        free(text);
        return fail("cannot open the model");
    }
    int rate = frt_speech_sample_rate(sp);
    if (!quiet && verbose)
        fprintf(stderr, "%s: model %s (%d Hz) loaded in %.2f s\n", prog, model, rate,
                since(&t_open));

    /* The outputs: opened before synthesis so a bad path fails at once. */
    signal(SIGPIPE, SIG_IGN);
    out_state o = {.rate = rate, .progress = !quiet && isatty(2) && strlen(text) > 200};
    int out_fd = -1, rc = 0;
    if (output && open_output(output, raw, rate, &o.sinks[o.n_sinks], &out_fd) == FRT_OK)
        o.n_sinks++;
    else if (output)
        rc = fail(strcmp(output, "-") ? output : "stdout");
    if (rc == 0 && play) {
        if (open_play(rate, verbose, &o.sinks[o.n_sinks]) == FRT_OK)
            o.n_sinks++;
        else
            rc = fail("--play");
    }

    if (rc == 0) {
        g_speech = sp;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        clock_gettime(CLOCK_MONOTONIC, &o.t0);
        frt_status s = frt_speech_synthesize(sp, text, &so, on_chunk, &o);
        if (o.progress) fputc('\n', stderr);
        double secs = since(&o.t0), audio = (double)o.samples / rate;
        if (o.broken_pipe) {
            if (verbose) fprintf(stderr, "%s: the reader closed the pipe; stopped\n", prog);
        } else if (g_interrupted) {
            fprintf(stderr, "%s: interrupted after %.1f s of audio\n", prog, audio);
            rc = 130;
        } else if (o.failed != FRT_OK) {
            fprintf(stderr, "%s: %s\n", prog, o.msg);
            rc = 1;
        } else if (s != FRT_OK) {
            rc = fail("synthesis failed");
        } else if (!quiet) {
            fprintf(stderr,
                    "%s: %.2f s of audio at %d Hz in %.2f s (RTF %.3f, first audio after "
                    "%.3f s)\n",
                    prog, audio, rate, secs, audio > 0 ? secs / audio : 0.0, o.first_chunk_s);
        }
    }
    /* Close even after a failure: what was synthesised stays playable. */
    for (int i = 0; i < o.n_sinks; i++)
        if (frt_audio_sink_close(o.sinks[i]) != FRT_OK && rc == 0)
            rc = fail("finishing the output");
    if (out_fd >= 0 && close(out_fd) != 0 && rc == 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, output, strerror(errno));
        rc = 1;
    }
    g_speech = NULL;
    frt_speech_close(sp);
    free(text);
    return rc;
}
