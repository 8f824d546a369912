/* Video ingest: FFmpeg demux + decode on its own thread, PTS sampling, RGB
 * conversion, a bounded queue to the consumer. See ingest.h. */
#include "ingest.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "alloc.h"
#include "error.h"
#include "log.h"

#define BACKOFF_START_MS 250
#define STDIN_POLL_MS    100

typedef struct {
    uint8_t *buf;
    size_t cap;
    int w, h;
    double t, gap;
    int64_t index;
} ing_slot;

struct frt_ingest {
    char *url;
    frt_ingest_opts o;
    char *format, *transport; /* owned copies of the option strings */
    bool is_stdin;

    /* owned by the ingest thread after open */
    AVFormatContext *ic;
    AVIOContext *stdin_io;
    AVCodecContext *dec;
    int vstream;
    AVRational tb;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frm;
    frt_ingest_clock clock;
    double pending_gap;
    double wall_start; /* realtime pacing: wall clock at stream time 0 */
    char err[512];     /* the thread's failure message */

    atomic_int stop;
    atomic_llong deadline_ns; /* 0: none */
    atomic_int expired;       /* the deadline fired since it was set */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;
    pthread_cond_t have_frame, have_room;
    ing_slot *q;
    int head, count;
    ing_slot held; /* the frame the consumer has */
    frt_ingest_stats st;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- clock and sampler ---------------------------------------------------- */

void frt_ingest_clock_init(frt_ingest_clock *c, double fps, double nominal_s)
{
    *c = (frt_ingest_clock){.fps = fps,
                            .nominal_s = nominal_s > 0 ? nominal_s : 0,
                            .new_segment = true,
                            .last_pts = NAN,
                            .seg_pts = NAN};
}

void frt_ingest_clock_break(frt_ingest_clock *c)
{
    c->new_segment = true;
}

/* The step to a frame that cannot be placed by its timestamp. */
static double fallback_step(const frt_ingest_clock *c, double wall_s)
{
    if (c->nominal_s > 0) return c->nominal_s;
    double d = wall_s - c->last_wall;
    return d > 1e-6 ? d : 1e-6;
}

double frt_ingest_clock_time(frt_ingest_clock *c, double pts_s, double wall_s, double *gap_s)
{
    double t;
    *gap_s = 0;
    bool has_pts = isfinite(pts_s);
    if (!c->have_last) {
        t = 0;
        c->seg_offset = 0;
        c->seg_pts = pts_s;
    } else if (c->new_segment) {
        double gap = wall_s - c->last_wall;
        double min = c->nominal_s > 0 ? c->nominal_s : 1e-3;
        t = c->last_t + (gap > min ? gap : min);
        *gap_s = t - c->last_t;
        c->seg_offset = t;
        c->seg_pts = pts_s;
    } else if (!has_pts) {
        t = c->last_t + fallback_step(c, wall_s);
    } else if (!isfinite(c->seg_pts)) {
        /* first timestamp of a segment that started without one */
        t = c->last_t + fallback_step(c, wall_s);
        c->seg_offset = t;
        c->seg_pts = pts_s;
    } else {
        t = c->seg_offset + (pts_s - c->seg_pts);
        if (t < c->last_t) {
            /* timestamps went backwards: a new segment right after the last frame */
            t = c->last_t + fallback_step(c, wall_s);
            c->seg_offset = t;
            c->seg_pts = pts_s;
        }
    }
    c->have_last = true;
    c->new_segment = false;
    c->last_t = t;
    c->last_pts = pts_s;
    c->last_wall = wall_s;
    return t;
}

bool frt_ingest_clock_take(frt_ingest_clock *c, double t)
{
    if (c->fps <= 0) return true;
    if (c->sampled_any && t < c->next_sample - 1e-6) return false;
    c->sampled_any = true;
    c->next_sample = (floor(t * c->fps + 1e-6) + 1) / c->fps;
    return true;
}

/* ---- FFmpeg plumbing ------------------------------------------------------ */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_ffmpeg(void)
{
    avdevice_register_all();
    avformat_network_init();
}

static int interrupt_cb(void *p)
{
    frt_ingest *g = p;
    if (atomic_load(&g->stop)) return 1;
    long long d = atomic_load(&g->deadline_ns);
    if (d && now_ns() > d) {
        atomic_store(&g->expired, 1);
        return 1;
    }
    return 0;
}

static void set_deadline(frt_ingest *g, int ms)
{
    atomic_store(&g->expired, 0);
    atomic_store(&g->deadline_ns, ms > 0 ? now_ns() + (long long)ms * 1000000LL : 0);
}

/* Standard input through poll(), so a stop or a deadline interrupts it. */
static int stdin_read(void *opaque, uint8_t *buf, int size)
{
    frt_ingest *g = opaque;
    for (;;) {
        if (interrupt_cb(g)) return AVERROR_EXIT;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&p, 1, STDIN_POLL_MS);
        if (r < 0 && errno != EINTR) return AVERROR(errno);
        if (r <= 0) continue;
        ssize_t n = read(STDIN_FILENO, buf, (size_t)size);
        if (n > 0) return (int)n;
        if (n == 0) return AVERROR_EOF;
        if (errno != EINTR && errno != EAGAIN) return AVERROR(errno);
    }
}

/* An FFmpeg error as a status with a message naming the url. */
static frt_status av_fail(frt_ingest *g, int r, const char *what, int timeout_ms)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(r, msg, sizeof msg);
    /* demuxers do not all pass AVERROR_EXIT through: trust our own flags */
    if (atomic_load(&g->stop))
        return frt_error(FRT_ERR_CANCELLED, "%s '%s': stopped", what, g->url);
    if (atomic_load(&g->expired) || r == AVERROR_EXIT)
        return frt_error(FRT_ERR_TIMEOUT, "%s '%s': timed out after %d ms", what, g->url,
                         timeout_ms);
    frt_status s = FRT_ERR_IO;
    if (r == AVERROR(ENOENT))
        s = FRT_ERR_NOT_FOUND;
    else if (r == AVERROR_INVALIDDATA || r == AVERROR_STREAM_NOT_FOUND)
        s = FRT_ERR_FORMAT;
    else if (r == AVERROR_DECODER_NOT_FOUND || r == AVERROR_DEMUXER_NOT_FOUND ||
             r == AVERROR_PROTOCOL_NOT_FOUND)
        s = FRT_ERR_UNSUPPORTED;
    else if (r == AVERROR(ETIMEDOUT))
        s = FRT_ERR_TIMEOUT;
    return frt_error(s, "%s '%s': %s", what, g->url, msg);
}

static void close_input(frt_ingest *g)
{
    avcodec_free_context(&g->dec);
    avformat_close_input(&g->ic);
    if (g->stdin_io) {
        av_freep(&g->stdin_io->buffer);
        avio_context_free(&g->stdin_io);
    }
}

static bool is_live_url(const char *url)
{
    static const char *live[] = {"rtsp://", "rtsps://", "rtmp://", "rtmps://",  "udp://",
                                 "rtp://",  "srt://",   "tcp://",  "/dev/video"};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (strncmp(url, live[i], strlen(live[i])) == 0) return true;
    return false;
}

/* Open the source and its video decoder (first open and reconnects). */
static frt_status open_input(frt_ingest *g)
{
    const AVInputFormat *fmt = NULL;
    const char *fname = g->format;
    if (!fname && strncmp(g->url, "/dev/video", 10) == 0) fname = "v4l2";
    if (fname && !(fmt = av_find_input_format(fname)))
        return frt_error(FRT_ERR_UNSUPPORTED, "open '%s': FFmpeg has no input format '%s'", g->url,
                         fname);
    g->ic = avformat_alloc_context();
    if (!g->ic) return frt_error(FRT_ERR_NOMEM, "open '%s': out of memory", g->url);
    g->ic->interrupt_callback = (AVIOInterruptCB){interrupt_cb, g};
    if (g->is_stdin) {
        uint8_t *buf = av_malloc(32768);
        g->stdin_io = buf ? avio_alloc_context(buf, 32768, 0, g, stdin_read, NULL, NULL) : NULL;
        if (!g->stdin_io) {
            av_free(buf);
            avformat_free_context(g->ic);
            g->ic = NULL;
            return frt_error(FRT_ERR_NOMEM, "open '-': out of memory");
        }
        g->ic->pb = g->stdin_io;
        g->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    AVDictionary *d = NULL;
    if (g->transport) av_dict_set(&d, "rtsp_transport", g->transport, 0);
    set_deadline(g, g->o.open_timeout_ms);
    int r = avformat_open_input(&g->ic, g->is_stdin ? "" : g->url, fmt, &d);
    av_dict_free(&d);
    frt_status s = FRT_OK;
    if (r < 0) {
        s = av_fail(g, r, "open", g->o.open_timeout_ms);
        close_input(g);
        set_deadline(g, 0);
        return s;
    }
    r = avformat_find_stream_info(g->ic, NULL);
    /* it may return success when interrupted, with half the picture */
    if (r < 0 || atomic_load(&g->expired) || atomic_load(&g->stop))
        s = av_fail(g, r < 0 ? r : AVERROR_EXIT, "read stream info of", g->o.open_timeout_ms);
    const AVCodec *codec = NULL;
    if (s == FRT_OK) {
        r = av_find_best_stream(g->ic, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
        if (r == AVERROR_STREAM_NOT_FOUND)
            s = frt_error(FRT_ERR_FORMAT, "open '%s': no video stream", g->url);
        else if (r < 0 || !codec)
            s = frt_error(FRT_ERR_UNSUPPORTED, "open '%s': no decoder for its video stream",
                          g->url);
    }
    set_deadline(g, 0);
    if (s == FRT_OK) {
        g->vstream = r;
        for (unsigned i = 0; i < g->ic->nb_streams; i++)
            if ((int)i != g->vstream) g->ic->streams[i]->discard = AVDISCARD_ALL;
        AVStream *st = g->ic->streams[g->vstream];
        g->tb = st->time_base;
        g->dec = avcodec_alloc_context3(codec);
        if (!g->dec)
            s = frt_error(FRT_ERR_NOMEM, "open '%s': out of memory", g->url);
        else if ((r = avcodec_parameters_to_context(g->dec, st->codecpar)) < 0)
            s = av_fail(g, r, "decoder setup for", 0);
        else {
            g->dec->thread_count = g->o.decode_threads;
            g->dec->pkt_timebase = st->time_base;
            if ((r = avcodec_open2(g->dec, codec, NULL)) < 0) s = av_fail(g, r, "decoder for", 0);
        }
    }
    if (s != FRT_OK) close_input(g);
    return s;
}

/* ---- the ingest thread ----------------------------------------------------- */

static void output_size(const frt_ingest *g, int w, int h, int *ow, int *oh)
{
    *ow = g->o.out_width;
    *oh = g->o.out_height;
    if (*ow <= 0 && *oh <= 0) {
        *ow = w;
        *oh = h;
    } else if (*ow <= 0) {
        *ow = (int)lround((double)w * *oh / h);
    } else if (*oh <= 0) {
        *oh = (int)lround((double)h * *ow / w);
    }
    if (*ow < 1) *ow = 1;
    if (*oh < 1) *oh = 1;
}

/* Sleep until wall-clock time `until` or a stop; false when stopped. */
static bool sleep_until(frt_ingest *g, double until)
{
    pthread_mutex_lock(&g->mu);
    while (!atomic_load(&g->stop)) {
        double left = until - now_s();
        if (left <= 0) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double s = ts.tv_sec + ts.tv_nsec * 1e-9 + (left < 0.1 ? left : 0.1);
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&g->have_room, &g->mu, &ts);
    }
    bool ok = !atomic_load(&g->stop);
    pthread_mutex_unlock(&g->mu);
    return ok;
}

/* Make room at the tail of the queue: drop the oldest frame (live) or wait
 * (files). Returns the tail slot, or NULL when stopped. Called locked. */
static ing_slot *tail_slot(frt_ingest *g, bool drop)
{
    while (g->count == g->o.queue_len) {
        if (atomic_load(&g->stop)) return NULL;
        if (drop) {
            /* the gap a dropped frame carried belongs to the next one delivered */
            double gap = g->q[g->head].gap;
            g->head = (g->head + 1) % g->o.queue_len;
            g->count--;
            if (g->count > 0)
                g->q[g->head].gap += gap;
            else
                g->pending_gap += gap;
            g->st.dropped++;
            /* 1, 2, 4, 8, ...: a lagging consumer is reported without a flood */
            if ((g->st.dropped & (g->st.dropped - 1)) == 0)
                FRT_LOGW("ingest '%s': the consumer lags, %lld sampled frames dropped so far",
                         g->url, (long long)g->st.dropped);
            break;
        }
        pthread_cond_wait(&g->have_room, &g->mu);
    }
    if (atomic_load(&g->stop)) return NULL;
    return &g->q[(g->head + g->count) % g->o.queue_len];
}

static frt_status convert(frt_ingest *g, const AVFrame *f, ing_slot *s)
{
    int ow, oh;
    output_size(g, f->width, f->height, &ow, &oh);
    size_t need = (size_t)ow * oh * 3;
    if (need > s->cap) {
        uint8_t *b = frt_alloc(need);
        if (!b) return FRT_ERR_NOMEM;
        frt_free(s->buf);
        s->buf = b;
        s->cap = need;
    }
    g->sws = sws_getCachedContext(g->sws, f->width, f->height, f->format, ow, oh, AV_PIX_FMT_RGB24,
                                  SWS_BICUBIC, NULL, NULL, NULL);
    if (!g->sws)
        return frt_error(FRT_ERR_UNSUPPORTED, "'%s': cannot convert %s %dx%d to RGB", g->url,
                         av_get_pix_fmt_name(f->format), f->width, f->height);
    uint8_t *dst[4] = {s->buf, NULL, NULL, NULL};
    int stride[4] = {ow * 3, 0, 0, 0};
    sws_scale(g->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
    s->w = ow;
    s->h = oh;
    return FRT_OK;
}

static frt_status handle_frame(frt_ingest *g, const AVFrame *f)
{
    double wall = now_s(), gap;
    int64_t pts = f->best_effort_timestamp;
    double pts_s = pts == AV_NOPTS_VALUE ? NAN : (double)pts * av_q2d(g->tb);
    double t = frt_ingest_clock_time(&g->clock, pts_s, wall, &gap);
    g->pending_gap += gap;
    if (gap > 0) FRT_LOGW("ingest '%s': %.2f s of stream lost to the reconnect", g->url, gap);
    pthread_mutex_lock(&g->mu);
    g->st.decoded++;
    g->st.gap_s += gap;
    pthread_mutex_unlock(&g->mu);
    if (!frt_ingest_clock_take(&g->clock, t)) return FRT_OK;
    bool drop = g->st.live || g->o.realtime;
    if (g->o.realtime && !g->st.live) {
        if (g->st.sampled == 0) g->wall_start = wall - t;
        if (!sleep_until(g, g->wall_start + t)) return FRT_ERR_CANCELLED;
    }
    pthread_mutex_lock(&g->mu);
    int64_t index = g->st.sampled++;
    ing_slot *s = tail_slot(g, drop);
    pthread_mutex_unlock(&g->mu);
    if (!s) return FRT_ERR_CANCELLED;
    /* the tail slot is invisible to the consumer until count grows */
    frt_status st = convert(g, f, s);
    if (st != FRT_OK) return st;
    s->t = t;
    s->gap = g->pending_gap;
    s->index = index;
    g->pending_gap = 0;
    pthread_mutex_lock(&g->mu);
    g->count++;
    pthread_cond_broadcast(&g->have_frame);
    pthread_mutex_unlock(&g->mu);
    return FRT_OK;
}

/* Feed one packet (NULL: flush) and hand every decoded frame on. */
static frt_status decode(frt_ingest *g, const AVPacket *pkt)
{
    int r = avcodec_send_packet(g->dec, pkt);
    if (r < 0 && r != AVERROR(EAGAIN) && r != AVERROR_EOF) {
        /* a corrupt packet: skip it, as players do */
        FRT_LOGD("ingest '%s': packet rejected by the decoder (%d)", g->url, r);
        return FRT_OK;
    }
    for (;;) {
        r = avcodec_receive_frame(g->dec, g->frm);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return FRT_OK;
        if (r < 0) return FRT_OK;
        frt_status s = handle_frame(g, g->frm);
        av_frame_unref(g->frm);
        if (s != FRT_OK) return s;
    }
}

/* A live source dropped: reopen it with capped exponential backoff. */
static frt_status reconnect(frt_ingest *g, frt_status why)
{
    close_input(g);
    frt_ingest_clock_break(&g->clock);
    int wait_ms = BACKOFF_START_MS, failed = 0;
    frt_status s = why;
    for (;;) {
        if (g->o.max_reconnects >= 0 && failed >= g->o.max_reconnects) return s;
        FRT_LOGW("ingest: %s; reconnecting in %d ms", g->err, wait_ms);
        if (!sleep_until(g, now_s() + wait_ms * 1e-3)) return FRT_ERR_CANCELLED;
        s = open_input(g);
        if (s == FRT_OK) break;
        if (s == FRT_ERR_CANCELLED) return s;
        snprintf(g->err, sizeof g->err, "%s", frt_last_error());
        failed++;
        wait_ms = wait_ms * 2 < g->o.reconnect_max_ms ? wait_ms * 2 : g->o.reconnect_max_ms;
    }
    pthread_mutex_lock(&g->mu);
    g->st.reconnects++;
    pthread_mutex_unlock(&g->mu);
    return FRT_OK;
}

static void *ingest_main(void *arg)
{
    frt_ingest *g = arg;
    frt_status end = FRT_OK;
    for (;;) {
        set_deadline(g, g->o.read_timeout_ms);
        int r = av_read_frame(g->ic, g->pkt);
        set_deadline(g, 0);
        if (r >= 0) {
            frt_status s = FRT_OK;
            if (g->pkt->stream_index == g->vstream) s = decode(g, g->pkt);
            av_packet_unref(g->pkt);
            if (s != FRT_OK) {
                end = s;
                if (s != FRT_ERR_CANCELLED) snprintf(g->err, sizeof g->err, "%s", frt_last_error());
                break;
            }
            continue;
        }
        if (atomic_load(&g->stop)) {
            end = FRT_ERR_CANCELLED;
            break;
        }
        frt_status why = FRT_OK;
        if (r != AVERROR_EOF) {
            why = av_fail(g, r, "read", g->o.read_timeout_ms);
            snprintf(g->err, sizeof g->err, "%s", frt_last_error());
        }
        frt_status s = decode(g, NULL);
        if (s != FRT_OK) {
            end = s;
            break;
        }
        if (!g->st.live || g->is_stdin) { /* standard input cannot be reopened */
            end = why;
            break;
        }
        if (why == FRT_OK) snprintf(g->err, sizeof g->err, "'%s': the live stream ended", g->url);
        s = reconnect(g, why == FRT_OK ? FRT_ERR_IO : why);
        if (s != FRT_OK) {
            end = s;
            break;
        }
    }
    close_input(g);
    pthread_mutex_lock(&g->mu);
    g->st.finished = true;
    g->st.status = end;
    pthread_cond_broadcast(&g->have_frame);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* ---- public API ------------------------------------------------------------- */

void frt_ingest_opts_default(frt_ingest_opts *o)
{
    *o = (frt_ingest_opts){.fps = 1.0,
                           .open_timeout_ms = 10000,
                           .read_timeout_ms = 10000,
                           .live = -1,
                           .reconnect_max_ms = 8000,
                           .max_reconnects = -1,
                           .queue_len = 4,
                           .decode_threads = 1};
}

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void free_ingest(frt_ingest *g)
{
    close_input(g);
    sws_freeContext(g->sws);
    av_packet_free(&g->pkt);
    av_frame_free(&g->frm);
    if (g->q)
        for (int i = 0; i < g->o.queue_len; i++) frt_free(g->q[i].buf);
    frt_free(g->held.buf);
    free(g->q);
    free(g->url);
    free(g->format);
    free(g->transport);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->have_frame);
    pthread_cond_destroy(&g->have_room);
    free(g);
}

frt_status frt_ingest_open(const char *url, const frt_ingest_opts *opts, frt_ingest **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "ingest: out is NULL");
    *out = NULL;
    if (!url || !*url) return frt_error(FRT_ERR_INVALID_ARG, "ingest: empty url");
    frt_ingest_opts o;
    if (opts)
        o = *opts;
    else
        frt_ingest_opts_default(&o);
    if (o.queue_len < 1 || o.queue_len > 1024 || o.open_timeout_ms < 0 || o.read_timeout_ms < 0 ||
        o.reconnect_max_ms < 1 || o.out_width < 0 || o.out_height < 0 || !isfinite(o.fps) ||
        o.live < -1 || o.live > 1 || o.decode_threads < 0)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "ingest: bad options (queue_len 1..1024, timeouts >= 0, "
                         "reconnect_max_ms >= 1, sizes >= 0, finite fps, live -1/0/1)");
    if (o.rtsp_transport && strcmp(o.rtsp_transport, "tcp") && strcmp(o.rtsp_transport, "udp"))
        return frt_error(FRT_ERR_INVALID_ARG, "ingest: rtsp_transport must be \"tcp\" or \"udp\"");
    pthread_once(&g_once, init_ffmpeg);

    frt_ingest *g = calloc(1, sizeof *g);
    if (!g) return frt_error(FRT_ERR_NOMEM, "ingest: out of memory");
    pthread_mutex_init(&g->mu, NULL);
    /* deadlines are on the monotonic clock: wall-clock steps must not stall or fire them */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->have_frame, &ca);
    pthread_cond_init(&g->have_room, &ca);
    pthread_condattr_destroy(&ca);
    g->o = o;
    g->url = dup_str(url);
    g->format = dup_str(o.format);
    g->transport = dup_str(o.rtsp_transport);
    g->o.format = g->format;
    g->o.rtsp_transport = g->transport;
    g->is_stdin = strcmp(url, "-") == 0;
    g->q = calloc((size_t)o.queue_len, sizeof *g->q);
    g->pkt = av_packet_alloc();
    g->frm = av_frame_alloc();
    if (!g->url || (o.format && !g->format) || (o.rtsp_transport && !g->transport) || !g->q ||
        !g->pkt || !g->frm) {
        free_ingest(g);
        return frt_error(FRT_ERR_NOMEM, "ingest: out of memory");
    }
    frt_status s = open_input(g);
    if (s != FRT_OK) {
        free_ingest(g);
        return s;
    }
    if (o.live >= 0)
        g->st.live = o.live == 1;
    else
        g->st.live = is_live_url(url) ||
                     (!g->is_stdin && strstr(url, "://") && g->ic->duration == AV_NOPTS_VALUE);
    if (g->is_stdin) g->st.live = g->st.live && o.live == 1;
    AVRational fr = av_guess_frame_rate(g->ic, g->ic->streams[g->vstream], NULL);
    /* a live source's nominal rate is often a demuxer's guess: its arrival times are truer */
    double nominal = fr.num > 0 && fr.den > 0 && !g->st.live ? av_q2d(av_inv_q(fr)) : 0;
    frt_ingest_clock_init(&g->clock, o.fps, nominal);
    if (pthread_create(&g->thread, NULL, ingest_main, g) != 0) {
        free_ingest(g);
        return frt_error(FRT_ERR_INTERNAL, "ingest: cannot start a thread");
    }
    g->thread_started = true;
    *out = g;
    return FRT_OK;
}

frt_status frt_ingest_next(frt_ingest *g, frt_ingest_frame *frame, int timeout_ms)
{
    if (!g || !frame) return frt_error(FRT_ERR_INVALID_ARG, "ingest next: NULL argument");
    memset(frame, 0, sizeof *frame);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ms >= 0) {
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&g->mu);
    frt_status s = FRT_OK;
    for (;;) {
        if (atomic_load(&g->stop)) {
            s = frt_error(FRT_ERR_CANCELLED, "ingest '%s': stopped", g->url);
            break;
        }
        if (g->count > 0) {
            ing_slot *q = &g->q[g->head], t = g->held;
            g->held = *q;
            q->buf = t.buf;
            q->cap = t.cap;
            g->head = (g->head + 1) % g->o.queue_len;
            g->count--;
            g->st.delivered++;
            pthread_cond_broadcast(&g->have_room);
            *frame = (frt_ingest_frame){.rgb = g->held.buf,
                                        .width = g->held.w,
                                        .height = g->held.h,
                                        .time_s = g->held.t,
                                        .index = g->held.index,
                                        .gap_s = g->held.gap};
            break;
        }
        if (g->st.finished) {
            s = g->st.status;
            if (s != FRT_OK) s = frt_error(s, "%s", g->err[0] ? g->err : frt_status_name(s));
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&g->have_frame, &g->mu);
        } else if (pthread_cond_timedwait(&g->have_frame, &g->mu, &until) == ETIMEDOUT) {
            if (g->count == 0 && !g->st.finished && !atomic_load(&g->stop)) {
                s = frt_error(FRT_ERR_TIMEOUT, "ingest '%s': no frame within %d ms", g->url,
                              timeout_ms);
                break;
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    return s;
}

void frt_ingest_get_stats(frt_ingest *g, frt_ingest_stats *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    pthread_mutex_unlock(&g->mu);
}

void frt_ingest_stop(frt_ingest *g)
{
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    atomic_store(&g->stop, 1);
    pthread_cond_broadcast(&g->have_frame);
    pthread_cond_broadcast(&g->have_room);
    pthread_mutex_unlock(&g->mu);
}

void frt_ingest_close(frt_ingest *g)
{
    if (!g) return;
    frt_ingest_stop(g);
    if (g->thread_started) pthread_join(g->thread, NULL);
    free_ingest(g);
}
