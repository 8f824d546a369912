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

#define READ_BLOCK 65536 /* bytes read from a file or pipe at a time */
#define PIECE_MAX  65536 /* text held back waiting for a sentence end */

static const char *prog = "flashspeech";
static volatile sig_atomic_t g_interrupted;

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

/* ---- input ----------------------------------------------------------------
 * Text from a file or a pipe is spoken as it arrives: whenever the input
 * holds complete sentences (a line ending in sentence punctuation, or a
 * blank line) they go to the engine while the rest is still being read, so
 * `producer | flashspeech` speaks the first sentence at once and a long
 * text never sits in memory whole. */

typedef struct input {
    int fd; /* -1 when the whole text is already in buf (arguments) */
    const char *name;
    char *buf; /* buf[len] stays writable for a terminating NUL */
    size_t len, cap;
    size_t consumed; /* bytes of the input already spoken */
    size_t total;    /* the input's size when known (a regular file), else 0 */
    int eof;
} input;

/* Whether the line ending just before b[nl] ends a sentence or is blank. */
static int line_ends_sentence(const char *b, size_t nl)
{
    static const char *const ends[] = {".",
                                       "!",
                                       "?",
                                       ":",
                                       ";",
                                       "\"",
                                       "'",
                                       ")",
                                       "]",
                                       "\xE2\x80\xA6", /* … */
                                       "\xE3\x80\x82",
                                       /* 。 */ "\xEF\xBC\x81", /* ！ */
                                       "\xEF\xBC\x9F",
                                       /* ？ */ "\xE2\x80\x9D", /* ” */
                                       "\xE2\x80\x99" /* ’ */};
    size_t e = nl;
    while (e > 0 && (b[e - 1] == ' ' || b[e - 1] == '\t' || b[e - 1] == '\r')) e--;
    if (e == 0 || b[e - 1] == '\n') return 1;
    for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
        size_t l = strlen(ends[k]);
        if (e >= l && memcmp(b + e - l, ends[k], l) == 0) return 1;
    }
    return 0;
}

/* How many leading bytes of b[0..n) to speak now (0: wait for more). */
static size_t ready_prefix(const char *b, size_t n, int eof)
{
    if (eof) return n;
    for (size_t i = n; i-- > 0;)
        if (b[i] == '\n' && line_ends_sentence(b, i)) return i + 1;
    if (n < PIECE_MAX) return 0;
    /* A long run without a sentence end: cut at a blank, else between
     * UTF-8 characters. */
    for (size_t i = n; i-- > n / 2;)
        if (b[i] == ' ' || b[i] == '\n' || b[i] == '\t') return i + 1;
    size_t i = n;
    while (i > 0 && ((unsigned char)b[i - 1] & 0xC0) == 0x80) i--;
    return i > 0 && (unsigned char)b[i - 1] >= 0xC0 ? i - 1 : i;
}

/* Read what is available (blocks only while nothing is). 0 on success. */
static int input_fill(input *in)
{
    if (in->len + READ_BLOCK + 1 > in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 2 * READ_BLOCK;
        char *p = realloc(in->buf, cap);
        if (!p) {
            fprintf(stderr, "%s: %s: out of memory\n", prog, in->name);
            return -1;
        }
        in->buf = p;
        in->cap = cap;
    }
    ssize_t got;
    do got = read(in->fd, in->buf + in->len, READ_BLOCK);
    while (got < 0 && errno == EINTR && !g_interrupted);
    if (got < 0) {
        if (g_interrupted) return 0;
        fprintf(stderr, "%s: %s: %s\n", prog, in->name, strerror(errno));
        return -1;
    }
    if (got == 0) in->eof = 1;
    const char *nul = memchr(in->buf + in->len, 0, (size_t)got);
    if (nul) {
        fprintf(stderr, "%s: %s: the text contains a NUL byte (byte %zu)\n", prog, in->name,
                in->consumed + (size_t)(nul - in->buf));
        return -1;
    }
    in->len += (size_t)got;
    return 0;
}

static int all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n\v\f", s[i])) return 0;
    return 1;
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
    size_t text_base;     /* input bytes spoken before the current piece */
    size_t text_total;    /* input size when known, else 0 */
    size_t sentence_base; /* sentences spoken before the current piece */
    size_t sentences;     /* sentences so far, this piece included */
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
    o->sentences = o->sentence_base + c->sentence + 1;
    if (o->progress) {
        size_t done = o->text_base + c->text_done;
        if (o->text_total)
            fprintf(stderr, "\r%s: [%3d%%] sentence %zu, %.1f s of audio", prog,
                    (int)(100.0 * (double)done / (double)o->text_total), o->sentences,
                    (double)o->samples / c->sample_rate);
        else
            fprintf(stderr, "\r%s: sentence %zu, %.1f s of audio", prog, o->sentences,
                    (double)o->samples / c->sample_rate);
    }
    return 0;
}

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

static int64_t last_error_offset(void)
{
    int64_t off = -1;
    frt_last_error_detail(NULL, NULL, &off);
    return off;
}

/* Speak the input piece by piece as complete sentences arrive. A piece
 * with nothing to say (punctuation only) is skipped; the text as a whole
 * must say something. *rc gets 1 when reading the input failed. */
static frt_status speak_input(frt_speech *sp, input *in, const frt_speech_options *so, out_state *o,
                              int *rc)
{
    frt_status s = FRT_OK, quiet_fail = FRT_OK;
    char why[512] = "";
    for (;;) {
        if (!in->eof && input_fill(in) != 0) {
            *rc = 1;
            return FRT_ERR_IO;
        }
        if (g_interrupted) return FRT_ERR_CANCELLED;
        size_t cut = ready_prefix(in->buf, in->len, in->eof);
        if (cut) {
            char keep = in->buf[cut];
            in->buf[cut] = '\0';
            if (!all_blank(in->buf, cut)) {
                o->text_base = in->consumed;
                o->sentence_base = o->sentences;
                s = frt_speech_synthesize(sp, in->buf, so, on_chunk, o);
                /* "Nothing to say" in one piece is fine if another speaks. */
                if (s == FRT_ERR_INVALID_ARG) {
                    quiet_fail = s;
                    snprintf(why, sizeof why, "%s", frt_last_error());
                    s = FRT_OK;
                }
            }
            in->buf[cut] = keep;
            if (s != FRT_OK) return s;
            memmove(in->buf, in->buf + cut, in->len - cut);
            in->len -= cut;
            in->consumed += cut;
        }
        if (in->eof && in->len == 0) break;
    }
    if (o->sentences == 0) {
        if (quiet_fail != FRT_OK) {
            fprintf(stderr, "%s: %s\n", prog, why);
            *rc = 1;
            return quiet_fail;
        }
        fprintf(stderr, "%s: the text is empty: nothing to say\n", prog);
        *rc = 1;
        return FRT_ERR_INVALID_ARG;
    }
    return FRT_OK;
}

int main(int argc, char **argv)
{
    /* Under a file size limit (ulimit -f) a write then fails with EFBIG, reported like a full
     * disk, instead of the signal killing us without a word (PulseAudio's client sizes a
     * 64 MiB memfd at startup). */
    signal(SIGXFSZ, SIG_IGN);
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

    /* The text: the arguments, or a file or stdin read as it comes. */
    input in = {.fd = -1};
    if (optind < argc) {
        size_t len = 1;
        for (int i = optind; i < argc; i++) len += strlen(argv[i]) + 1;
        in.buf = malloc(len);
        if (!in.buf) return fail_usage("out of memory");
        in.buf[0] = '\0';
        for (int i = optind; i < argc; i++) {
            if (i > optind) strcat(in.buf, " ");
            strcat(in.buf, argv[i]);
        }
        in.len = in.total = strlen(in.buf);
        in.cap = len;
        in.eof = 1;
        in.name = "arguments";
    } else if (file && strcmp(file, "-") != 0) {
        in.fd = open(file, O_RDONLY);
        struct stat st;
        if (in.fd < 0 || fstat(in.fd, &st) != 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, file, strerror(errno));
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: %s: is a directory\n", prog, file);
            return 1;
        }
        if (S_ISREG(st.st_mode)) in.total = (size_t)st.st_size;
        in.name = file;
    } else {
        if (isatty(0)) return fail_usage("no text: give it as arguments, with -f FILE or on stdin");
        in.fd = 0;
        in.name = "stdin";
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
        free(in.buf);
        return 1;
    }
    struct timespec t_open;
    clock_gettime(CLOCK_MONOTONIC, &t_open);
    frt_speech *sp;
    if (frt_speech_open(model, &sp) != FRT_OK) {
        free(in.buf);
        return fail("cannot open the model");
    }
    int rate = frt_speech_sample_rate(sp);
    if (!quiet && verbose)
        fprintf(stderr, "%s: model %s (%d Hz) loaded in %.2f s\n", prog, model, rate,
                since(&t_open));

    /* The outputs: opened before synthesis so a bad path fails at once. */
    signal(SIGPIPE, SIG_IGN);
    out_state o = {.rate = rate, .text_total = in.total};
    o.progress = !quiet && isatty(2) && (in.total > 200 || in.fd >= 0);
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
        frt_status s = speak_input(sp, &in, &so, &o, &rc);
        if (o.progress) fputc('\n', stderr);
        double secs = since(&o.t0), audio = (double)o.samples / rate;
        if (rc != 0) {
            /* the input failed; speak_input said why */
        } else if (o.broken_pipe) {
            if (verbose) fprintf(stderr, "%s: the reader closed the pipe; stopped\n", prog);
        } else if (g_interrupted) {
            fprintf(stderr, "%s: interrupted after %.1f s of audio\n", prog, audio);
            rc = 130;
        } else if (o.failed != FRT_OK) {
            fprintf(stderr, "%s: %s\n", prog, o.msg);
            rc = 1;
        } else if (s == FRT_ERR_FORMAT && last_error_offset() >= 0) {
            fprintf(stderr, "%s: %s: the text is not valid UTF-8 (byte %zu)\n", prog, in.name,
                    in.consumed + (size_t)last_error_offset());
            rc = 1;
        } else if (s != FRT_OK) {
            rc = fail("synthesis failed");
        } else if (!quiet) {
            fprintf(stderr,
                    "%s: %.2f s of audio at %d Hz in %.3f s (RTF %.3f, first audio after "
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
    if (in.fd > 0) close(in.fd);
    free(in.buf);
    return rc;
}
