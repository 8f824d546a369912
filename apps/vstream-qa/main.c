/* vstream-qa: ask questions about a live video stream (or a file) while it
 * plays, answered by a Flash-VStream model from its STAR memory.
 * Only the public API (flashrt/vstream.h). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flashrt/vstream.h"

enum { EXIT_USAGE = 2, EXIT_MODEL = 3, EXIT_SOURCE = 4 };

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: vstream-qa --model DIR [options] INPUT\n"
        "\n"
        "Watch INPUT (a video file, rtsp:// or http(s):// URL, HLS playlist, /dev/videoN,\n"
        "or - for stdin) and answer questions about what has been seen so far.\n"
        "Without --ask, each line typed on stdin is a question; the program ends at the\n"
        "end of stdin (once the questions asked are answered).\n"
        "\n"
        "options:\n"
        "  --model DIR            Flash-VStream model directory (config.json, *.safetensors)\n"
        "  --tokenizer PATH       tokenizer.model / tokenizer.json (default: in DIR)\n"
        "  --ask T:QUESTION       ask QUESTION about the stream at T seconds (repeatable;\n"
        "                         exits 0 after the last one is answered). On a file\n"
        "                         (not --realtime) the answer sees exactly the frames up to\n"
        "                         T, however far decoding has run ahead; on a live source\n"
        "                         it is asked once the stream reaches T. Questions still due\n"
        "                         when the input ends are asked about its end\n"
        "  --memory MODE          memory parts the language model sees (ablations): full\n"
        "                         (default), spatial, no-temporal-retrieved (abstract +\n"
        "                         spatial), no-abstract (temporal + retrieved + spatial)\n"
        "  --json                 one JSON object per answer on stdout, flushed as it completes\n"
        "  --fps F                frames sampled per second of stream (default 1)\n"
        "  --realtime             play a file at its own pace (drops frames like a live source)\n"
        "  --rtsp-transport tcp|udp\n"
        "  --format FMT           FFmpeg input format (lavfi, v4l2, ...); default: probe\n"
        "  --timeout S            open and read timeout in seconds (default 10)\n"
        "  --max-reconnects N     live source: failed reconnects in a row before giving up\n"
        "                         (default: never give up)\n"
        "  --max-tokens N         answer length limit in tokens (default 128)\n"
        "  --temperature T        0 = greedy (default)\n"
        "  --answer-threads N     questions answered at once, each with its own KV cache (1)\n"
        "  --status               status line on stderr even when it is not a terminal\n"
        "  --no-status            no status line\n"
        "  --status-interval S    seconds between status lines (default 1)\n"
        "  -h, --help             this text\n"
        "\n"
        "exit status: 0 done, 1 the source failed while running or a question failed,\n"
        "2 usage, 3 the model could not be loaded, 4 the input could not be opened,\n"
        "130 interrupted.\n");
}

typedef struct scripted {
    double t;
    char *question;
} scripted;

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static bool opt_json;
static bool status_tty;
static int failed_answers, final_answers;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void clear_status_line(void)
{
    if (status_tty) fputs("\r\033[K", stderr);
}

static void on_answer(const frt_vstream_answer *a, void *user)
{
    (void)user;
    if (!a->final) return;
    pthread_mutex_lock(&out_mu);
    final_answers++;
    if (a->status != FRT_OK && a->status != FRT_ERR_CANCELLED) failed_answers++;
    if (a->status == FRT_ERR_CANCELLED && !a->answer[0]) { /* never started: nothing to show */
        pthread_mutex_unlock(&out_mu);
        return;
    }
    if (opt_json) {
        FILE *f = stdout;
        fprintf(f, "{\"id\":%llu,\"question\":", (unsigned long long)a->id);
        json_string(f, a->question);
        fputs(",\"answer\":", f);
        json_string(f, a->answer);
        fprintf(f,
                ",\"status\":\"%s\",\"finish\":\"%s\",\"stream_time\":%.3f,\"frames\":%lld,"
                "\"memory_tokens\":%d,\"visual_tokens\":{\"abstract\":%d,\"temporal\":%d,"
                "\"retrieved\":%d,\"spatial\":%d},\"prompt_tokens\":%d,\"answer_tokens\":%d,"
                "\"latency_ms\":{\"queue\":%.3f,\"snapshot\":%.3f,\"prefill\":%.3f,"
                "\"first_token\":%.3f,\"total\":%.3f}}\n",
                a->status == FRT_OK ? "ok" : frt_status_name(a->status), a->finish, a->stream_time,
                (long long)a->frames, a->memory_tokens, a->abstract_tokens, a->temporal_tokens,
                a->retrieved_tokens, a->spatial_tokens, a->prompt_tokens, a->answer_tokens,
                a->queue_ms, a->snapshot_ms, a->prefill_ms, a->first_token_ms, a->total_ms);
    } else {
        clear_status_line();
        printf("[%.1fs, %lld frames] Q: %s\nA: %s\n", a->stream_time, (long long)a->frames,
               a->question, a->answer);
        if (a->status != FRT_OK) printf("   (%s)\n", frt_status_name(a->status));
        printf("   (memory %d tokens; first token %.0f ms, total %.0f ms)\n", a->memory_tokens,
               a->first_token_ms, a->total_ms);
    }
    fflush(stdout);
    pthread_mutex_unlock(&out_mu);
}

static void print_status(const frt_vstream_status *s)
{
    pthread_mutex_lock(&out_mu);
    fprintf(stderr,
            "%sstream %.1fs | ingest %.1f fps | encode %.1f fps (%.0f ms) | dropped %lld | "
            "reconnects %lld | memory %d/%d | last answer %.0f ms%s",
            status_tty ? "\r\033[K" : "", s->stream_time, s->ingest_fps, s->encode_fps,
            s->encode_ms, (long long)s->dropped, (long long)s->reconnects, s->memory_tokens,
            s->memory_max_tokens, s->last_total_ms, status_tty ? "" : "\n");
    fflush(stderr);
    pthread_mutex_unlock(&out_mu);
}

static const struct {
    const char *name;
    unsigned parts;
} memory_modes[] = {
    {"full", FRT_VSTREAM_MEM_ALL},
    {"spatial", FRT_VSTREAM_MEM_SPATIAL},
    {"no-temporal-retrieved", FRT_VSTREAM_MEM_ABSTRACT | FRT_VSTREAM_MEM_SPATIAL},
    {"no-abstract", FRT_VSTREAM_MEM_TEMPORAL | FRT_VSTREAM_MEM_RETRIEVED | FRT_VSTREAM_MEM_SPATIAL},
};

static bool parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) return false;
    *out = v;
    return true;
}

static int answers_so_far(void)
{
    pthread_mutex_lock(&out_mu);
    int n = final_answers;
    pthread_mutex_unlock(&out_mu);
    return n;
}

/* Ask, retrying while the queue is full. */
static int ask(frt_vstream *vs, const char *q)
{
    for (;;) {
        frt_status s = frt_vstream_ask(vs, q, on_answer, NULL, NULL);
        if (s == FRT_OK) return 0;
        if (s == FRT_ERR_LIMIT && strstr(frt_last_error(), "queue full") && !interrupted) {
            usleep(20000);
            continue;
        }
        pthread_mutex_lock(&out_mu);
        clear_status_line();
        fprintf(stderr, "vstream-qa: question not asked: %s\n", frt_last_error());
        pthread_mutex_unlock(&out_mu);
        return -1;
    }
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    frt_vstream_options vo;
    frt_vstream_options_init(&vo);
    frt_vstream_source_options so;
    frt_vstream_source_options_init(&so);
    scripted *asks = NULL;
    int n_asks = 0;
    int status_mode = -1; /* -1: when stderr is a terminal */
    double status_every = 1.0;

    enum {
        O_MODEL = 256,
        O_TOK,
        O_ASK,
        O_JSON,
        O_FPS,
        O_RT,
        O_TRANSPORT,
        O_FORMAT,
        O_TIMEOUT,
        O_RECONNECTS,
        O_RECMAX,
        O_MAXTOK,
        O_TEMP,
        O_STATUS,
        O_NOSTATUS,
        O_STATUSINT,
        O_ATHREADS,
        O_MEMORY
    };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"tokenizer", required_argument, NULL, O_TOK},
        {"ask", required_argument, NULL, O_ASK},
        {"json", no_argument, NULL, O_JSON},
        {"fps", required_argument, NULL, O_FPS},
        {"realtime", no_argument, NULL, O_RT},
        {"rtsp-transport", required_argument, NULL, O_TRANSPORT},
        {"format", required_argument, NULL, O_FORMAT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"max-reconnects", required_argument, NULL, O_RECONNECTS},
        {"reconnect-max", required_argument, NULL, O_RECMAX},
        {"max-tokens", required_argument, NULL, O_MAXTOK},
        {"temperature", required_argument, NULL, O_TEMP},
        {"status", no_argument, NULL, O_STATUS},
        {"no-status", no_argument, NULL, O_NOSTATUS},
        {"status-interval", required_argument, NULL, O_STATUSINT},
        {"answer-threads", required_argument, NULL, O_ATHREADS},
        {"memory", required_argument, NULL, O_MEMORY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_TOK: vo.tokenizer = optarg; break;
        case O_ASK: {
            const char *colon = strchr(optarg, ':');
            char tbuf[64];
            size_t tl = colon ? (size_t)(colon - optarg) : 0;
            if (!colon || tl == 0 || tl >= sizeof tbuf || !colon[1]) {
                fprintf(stderr, "vstream-qa: --ask wants T:QUESTION, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            memcpy(tbuf, optarg, tl);
            tbuf[tl] = '\0';
            if (!parse_double(tbuf, &v) || v < 0) {
                fprintf(stderr, "vstream-qa: --ask: bad time \"%s\" (seconds, >= 0)\n", tbuf);
                return EXIT_USAGE;
            }
            scripted *na = realloc(asks, (size_t)(n_asks + 1) * sizeof *asks);
            if (!na) return 1;
            asks = na;
            asks[n_asks].t = v;
            asks[n_asks].question = (char *)(colon + 1);
            n_asks++;
            break;
        }
        case O_JSON: opt_json = true; break;
        case O_FPS:
            if (!parse_double(optarg, &v) || v <= 0 || v > 1000) {
                fprintf(stderr, "vstream-qa: --fps: bad rate \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            so.fps = v;
            break;
        case O_RT: so.realtime = true; break;
        case O_TRANSPORT:
            if (strcmp(optarg, "tcp") != 0 && strcmp(optarg, "udp") != 0) {
                fprintf(stderr, "vstream-qa: --rtsp-transport must be tcp or udp\n");
                return EXIT_USAGE;
            }
            so.rtsp_transport = optarg;
            break;
        case O_FORMAT: so.format = optarg; break;
        case O_TIMEOUT:
            if (!parse_double(optarg, &v) || v < 0 || v > 86400) {
                fprintf(stderr, "vstream-qa: --timeout: bad value \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            so.open_timeout_ms = so.read_timeout_ms = (int)(v * 1000);
            break;
        case O_RECONNECTS:
            if (!parse_double(optarg, &v) || v < -1 || v > 1e9 || v != (int)v) {
                fprintf(stderr, "vstream-qa: --max-reconnects: bad count \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            so.max_reconnects = (int)v;
            break;
        case O_RECMAX:
            if (!parse_double(optarg, &v) || v < 0.001 || v > 3600) {
                fprintf(stderr, "vstream-qa: --reconnect-max: bad value \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            so.reconnect_max_ms = (int)(v * 1000);
            break;
        case O_MAXTOK:
            if (!parse_double(optarg, &v) || v < 1 || v > 1e6 || v != (int)v) {
                fprintf(stderr, "vstream-qa: --max-tokens: bad count \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            vo.max_new_tokens = (int)v;
            break;
        case O_TEMP:
            if (!parse_double(optarg, &v) || v < 0) {
                fprintf(stderr, "vstream-qa: --temperature: bad value \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            vo.temperature = (float)v;
            break;
        case O_STATUS: status_mode = 1; break;
        case O_NOSTATUS: status_mode = 0; break;
        case O_ATHREADS:
            if (!parse_double(optarg, &v) || v < 1 || v > 64 || v != (int)v) {
                fprintf(stderr, "vstream-qa: --answer-threads: bad count \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            vo.answer_threads = (int)v;
            break;
        case O_MEMORY: {
            size_t i = 0, n = sizeof memory_modes / sizeof memory_modes[0];
            while (i < n && strcmp(optarg, memory_modes[i].name) != 0) i++;
            if (i == n) {
                fprintf(stderr,
                        "vstream-qa: --memory: \"%s\" is not full, spatial, "
                        "no-temporal-retrieved or no-abstract\n",
                        optarg);
                return EXIT_USAGE;
            }
            vo.memory_parts = memory_modes[i].parts;
            break;
        }
        case O_STATUSINT:
            if (!parse_double(optarg, &v) || v < 0.01 || v > 3600) {
                fprintf(stderr, "vstream-qa: --status-interval: bad value \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            status_every = v;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!model || optind != argc - 1) {
        fprintf(stderr, "vstream-qa: %s\n",
                !model ? "--model DIR is required" : "exactly one INPUT is required");
        usage(stderr);
        free(asks);
        return EXIT_USAGE;
    }
    const char *input = argv[optind];
    bool show_status = status_mode == 1 || (status_mode == -1 && isatty(STDERR_FILENO));
    status_tty = show_status && isatty(STDERR_FILENO);
    /* every scripted question waits in the queue from the start */
    if (n_asks + 8 > vo.queue_len) vo.queue_len = n_asks + 8;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    frt_vstream *vs;
    if (frt_vstream_open(model, &vo, &vs) != FRT_OK) {
        fprintf(stderr, "vstream-qa: cannot load the model in %s: %s\n", model, frt_last_error());
        free(asks);
        return EXIT_MODEL;
    }
    /* asked before the stream starts, so that on a file each one sees
     * exactly the frames up to its time */
    for (int i = 0; i < n_asks; i++) {
        if (frt_vstream_ask_at(vs, asks[i].t, asks[i].question, on_answer, NULL, NULL) != FRT_OK) {
            fprintf(stderr, "vstream-qa: question not asked: %s\n", frt_last_error());
            frt_vstream_close(vs);
            free(asks);
            return EXIT_USAGE;
        }
    }
    if (frt_vstream_start(vs, input, &so) != FRT_OK) {
        fprintf(stderr, "vstream-qa: cannot open %s: %s\n", input, frt_last_error());
        frt_vstream_close(vs);
        free(asks);
        return EXIT_SOURCE;
    }

    int rc = 0;
    bool stdin_open = n_asks == 0, source_reported = false;
    double last_status = 0;
    char line[8192];
    size_t line_len = 0;
    while (!interrupted) {
        frt_vstream_status st;
        frt_vstream_get_status(vs, &st);
        if (show_status && now_s() - last_status >= status_every) {
            print_status(&st);
            last_status = now_s();
        }
        if (st.finished && !source_reported) {
            source_reported = true;
            if (st.source_status != FRT_OK) {
                pthread_mutex_lock(&out_mu);
                clear_status_line();
                fprintf(stderr, "vstream-qa: %s: %s\n", input, st.source_error);
                pthread_mutex_unlock(&out_mu);
                rc = 1;
            } else if (st.frames == 0) {
                pthread_mutex_lock(&out_mu);
                clear_status_line();
                fprintf(stderr, "vstream-qa: %s: no video frames\n", input);
                pthread_mutex_unlock(&out_mu);
                rc = 1;
            }
        }
        if (n_asks) {
            if (answers_so_far() == n_asks) break;
            usleep(20000);
            continue;
        }
        if (!stdin_open) break;
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        int pr = poll(&pfd, 1, 100);
        if (pr <= 0) continue;
        ssize_t n = read(STDIN_FILENO, line + line_len, sizeof line - 1 - line_len);
        if (n <= 0) {
            stdin_open = false;
            if (line_len) {
                line[line_len] = '\0';
                ask(vs, line);
            }
            while (!interrupted && frt_vstream_wait_idle(vs, 100) != FRT_OK) {
            }
            break;
        }
        line_len += (size_t)n;
        char *start = line, *nl;
        while ((nl = memchr(start, '\n', line_len - (size_t)(start - line)))) {
            *nl = '\0';
            char *q = start;
            while (isspace((unsigned char)*q)) q++;
            if (*q) ask(vs, q);
            start = nl + 1;
        }
        line_len -= (size_t)(start - line);
        memmove(line, start, line_len);
        if (line_len == sizeof line - 1) {
            fprintf(stderr, "vstream-qa: question line longer than %zu bytes ignored\n", line_len);
            line_len = 0;
        }
    }
    if (show_status) { /* the final counters */
        frt_vstream_status st;
        frt_vstream_get_status(vs, &st);
        print_status(&st);
        if (status_tty) fputc('\n', stderr);
    }
    frt_vstream_close(vs);
    free(asks);
    if (interrupted) return 130;
    if (failed_answers) rc = 1;
    return rc;
}
