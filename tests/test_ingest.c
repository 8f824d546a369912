/* Ingest: the stream clock and sampler on synthetic timestamps; files made
 * by the ffmpeg program (constant and variable frame rate, HLS), standard
 * input, a live HTTP source that drops and reconnects, lavfi as a fast live
 * source; failures (missing, garbage, no video, refused, open timeout, read
 * timeout) and prompt close during blocking reads. Tests needing the ffmpeg
 * program skip without it. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "testutil.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void need_ffmpeg(void)
{
    if (system("command -v ffmpeg > /dev/null 2>&1") != 0) cr_skip_test("no ffmpeg program");
}

/* Run an ffmpeg command line (arguments after "ffmpeg") in dir. */
static void ffmpeg(const char *dir, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && ffmpeg -nostdin -loglevel error -y %s", dir, args);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static frt_ingest_opts opts(double fps)
{
    frt_ingest_opts o;
    frt_ingest_opts_default(&o);
    o.fps = fps;
    return o;
}

/* Pull every frame to the end; times[] gets their stream times. The
 * caller has taken `first` frames already. */
static int drain_from(frt_ingest *g, int first, double *times, int cap, frt_status *end)
{
    int n = 0;
    for (;;) {
        frt_ingest_frame f;
        frt_status s = frt_ingest_next(g, &f, 20000);
        if (s != FRT_OK || !f.rgb) {
            *end = s;
            return n;
        }
        cr_assert_eq(f.index, first + n, "no frame may be dropped from a file");
        if (n < cap) times[n] = f.time_s;
        n++;
    }
}

static int drain(frt_ingest *g, double *times, int cap, frt_status *end)
{
    return drain_from(g, 0, times, cap, end);
}

/* ---- clock and sampler -------------------------------------------------- */

/* The sampler's rule, written out for the tests: the first frame at or
 * after each grid point k / fps. */
static int expected_samples(const double *t, int n, double fps, double *out)
{
    int k = 0, m = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] + 1e-6 < k / fps) continue;
        out[m++] = t[i];
        while (k / fps <= t[i] + 1e-6) k++;
    }
    return m;
}

Test(ingest_clock, constant_rate)
{
    frt_ingest_clock c;
    frt_ingest_clock_init(&c, 1.0, 0.04);
    int taken = 0;
    for (int i = 0; i < 125; i++) {
        double gap, t = frt_ingest_clock_time(&c, 10.0 + i * 0.04, i * 0.04, &gap);
        cr_assert_float_eq(t, i * 0.04, 1e-9);
        cr_assert_eq(gap, 0);
        if (frt_ingest_clock_take(&c, t)) {
            cr_assert_float_eq(t, taken, 1e-9, "sample %d at %g", taken, t);
            taken++;
        }
    }
    cr_assert_eq(taken, 5);
}

Test(ingest_clock, variable_rate_matches_rule)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    double pts[400], want[400];
    double p = 3.0;
    for (int i = 0; i < 400; i++) {
        pts[i] = p;
        p += (i / 50) % 2 ? 1.0 / 30 : tu_uniform(&r, 0.01f, 0.4f);
    }
    double rel[400];
    for (int i = 0; i < 400; i++) rel[i] = pts[i] - pts[0];
    for (double fps = 0.5; fps < 12; fps *= 2.3) {
        frt_ingest_clock c;
        frt_ingest_clock_init(&c, fps, 0);
        int n = expected_samples(rel, 400, fps, want), m = 0;
        for (int i = 0; i < 400; i++) {
            double gap, t = frt_ingest_clock_time(&c, pts[i], i, &gap);
            if (frt_ingest_clock_take(&c, t)) {
                cr_assert_lt(m, n);
                cr_assert_float_eq(t, want[m], 1e-9);
                m++;
            }
        }
        cr_assert_eq(m, n, "fps %g: %d samples, want %d", fps, m, n);
    }
}

/* cr_assert_float_eq evaluates its arguments twice: time each frame once. */
static void expect_time(frt_ingest_clock *c, double pts, double wall, double want, double want_gap)
{
    double gap, t = frt_ingest_clock_time(c, pts, wall, &gap);
    cr_assert_float_eq(t, want, 1e-9, "pts %g wall %g: %.9g, want %.9g", pts, wall, t, want);
    cr_assert_float_eq(gap, want_gap, 1e-9, "pts %g wall %g: gap %g", pts, wall, gap);
}

Test(ingest_clock, missing_and_backward_timestamps)
{
    frt_ingest_clock c;
    frt_ingest_clock_init(&c, 0, 0.5);
    expect_time(&c, NAN, 100.0, 0, 0);
    /* no pts: the nominal interval */
    expect_time(&c, NAN, 100.1, 0.5, 0);
    /* the first pts anchors the segment where the clock is */
    expect_time(&c, 7.0, 100.2, 1.0, 0);
    expect_time(&c, 7.25, 100.3, 1.25, 0);
    expect_time(&c, NAN, 100.4, 1.75, 0);
    expect_time(&c, 8.0, 100.5, 2.0, 0);
    /* pts going backwards: a new segment, never a step back */
    expect_time(&c, 1.0, 100.6, 2.5, 0);
    expect_time(&c, 1.5, 100.7, 3.0, 0);

    /* without a nominal rate: the arrival times */
    frt_ingest_clock_init(&c, 0, 0);
    expect_time(&c, NAN, 50.0, 0, 0);
    expect_time(&c, NAN, 50.3, 0.3, 0);
    expect_time(&c, NAN, 50.3, 0.3 + 1e-6, 0);
}

Test(ingest_clock, reconnect_gap_is_a_jump)
{
    frt_ingest_clock c;
    frt_ingest_clock_init(&c, 2.0, 0.1);
    for (int i = 0; i < 10; i++) expect_time(&c, 5 + i * 0.1, i * 0.1, i * 0.1, 0);
    frt_ingest_clock_break(&c);
    /* the source restarts its timestamps at 0, 3 s of wall clock later */
    expect_time(&c, 0.0, 0.9 + 3.0, 0.9 + 3.0, 3.0);
    expect_time(&c, 0.1, 4.0, 4.0, 0);
    /* an instant reconnect still moves forward by a frame */
    frt_ingest_clock_break(&c);
    expect_time(&c, 0.0, 4.0, 4.1, 0.1);
}

/* ---- files -------------------------------------------------------------- */

Test(ingest, file_constant_rate)
{
    need_ffmpeg();
    char *dir = tu_tmpdir();
    ffmpeg(dir, "-f lavfi -i testsrc=size=160x120:rate=25 -t 5 -pix_fmt yuv420p x.mp4");
    char path[512];
    snprintf(path, sizeof path, "%s/x.mp4", dir);
    frt_ingest_opts o = opts(1.0);
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK, "%s", frt_last_error());
    frt_ingest_frame f;
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(frt_ingest_next(g, &f, 20000), FRT_OK, "%s", frt_last_error());
        cr_assert_not_null(f.rgb);
        cr_assert_eq(f.width, 160);
        cr_assert_eq(f.height, 120);
        cr_assert_float_eq(f.time_s, i, 1e-6, "frame %d at %g", i, f.time_s);
        cr_assert_eq(f.index, i);
        cr_assert_eq(f.gap_s, 0);
        /* testsrc is colourful: the picture is not flat */
        long sum = 0, sq = 0;
        for (int p = 0; p < 160 * 120 * 3; p++) {
            sum += f.rgb[p];
            sq += f.rgb[p] * f.rgb[p];
        }
        double mean = (double)sum / (160 * 120 * 3);
        cr_assert_gt((double)sq / (160 * 120 * 3) - mean * mean, 500.0);
    }
    cr_assert_eq(frt_ingest_next(g, &f, 20000), FRT_OK);
    cr_assert_null(f.rgb, "files do not loop");
    cr_assert_eq(frt_ingest_next(g, &f, 100), FRT_OK);
    cr_assert_null(f.rgb, "the end stays the end");
    frt_ingest_stats st;
    frt_ingest_get_stats(g, &st);
    cr_assert_eq(st.decoded, 125);
    cr_assert_eq(st.sampled, 5);
    cr_assert_eq(st.delivered, 5);
    cr_assert_eq(st.dropped, 0);
    cr_assert(st.finished && !st.live);
    frt_ingest_close(g);

    /* scaled output keeps the aspect when one side is given */
    o.out_width = 80;
    o.fps = 0.5;
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK);
    cr_assert_eq(frt_ingest_next(g, &f, 20000), FRT_OK);
    cr_assert_eq(f.width, 80);
    cr_assert_eq(f.height, 60);
    double times[8];
    frt_status end;
    cr_assert_eq(drain_from(g, 1, times, 8, &end), 2);
    cr_assert_eq(end, FRT_OK);
    frt_ingest_close(g);
    tu_rmtree(dir);
    free(dir);
}

Test(ingest, file_variable_rate)
{
    need_ffmpeg();
    char *dir = tu_tmpdir();
    /* 2 s at 10 fps, then 2 s at 30 fps, timestamps kept as they are */
    ffmpeg(dir, "-f lavfi -i testsrc=size=64x48:rate=10:duration=2 -f lavfi -i "
                "testsrc=size=64x48:rate=30:duration=2 -filter_complex "
                "\"[0:v][1:v]concat=n=2:v=1[v]\" -map \"[v]\" -vsync vfr -c:v libx264 -preset "
                "ultrafast -pix_fmt yuv420p vfr.mkv");
    double src[80];
    for (int i = 0; i < 20; i++) src[i] = i * 0.1;
    for (int i = 0; i < 60; i++) src[20 + i] = round((2.0 + i / 30.0) * 1000) / 1000; /* ms */
    char path[512];
    snprintf(path, sizeof path, "%s/vfr.mkv", dir);
    for (double fps = 1; fps <= 16; fps *= 4) {
        double want[80], got[80];
        int n = expected_samples(src, 80, fps, want);
        frt_ingest_opts o = opts(fps);
        frt_ingest *g;
        cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK, "%s", frt_last_error());
        frt_status end;
        int m = drain(g, got, 80, &end);
        cr_assert_eq(end, FRT_OK);
        cr_assert_eq(m, n, "fps %g: %d frames, want %d", fps, m, n);
        for (int i = 0; i < n; i++)
            cr_assert_float_eq(got[i], want[i], 1e-6, "fps %g frame %d", fps, i);
        frt_ingest_stats st;
        frt_ingest_get_stats(g, &st);
        cr_assert_eq(st.decoded, 80);
        frt_ingest_close(g);
    }
    tu_rmtree(dir);
    free(dir);
}

Test(ingest, hls_playlist)
{
    need_ffmpeg();
    char *dir = tu_tmpdir();
    ffmpeg(dir, "-f lavfi -i testsrc=size=64x48:rate=25 -t 4 -c:v libx264 -preset ultrafast "
                "-pix_fmt yuv420p -g 25 -f hls -hls_time 1 -hls_list_size 0 x.m3u8");
    char path[512];
    snprintf(path, sizeof path, "%s/x.m3u8", dir);
    frt_ingest_opts o = opts(1);
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK, "%s", frt_last_error());
    double t[8];
    frt_status end;
    cr_assert_eq(drain(g, t, 8, &end), 4);
    cr_assert_eq(end, FRT_OK);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(t[i], i, 1e-3);
    frt_ingest_close(g);
    tu_rmtree(dir);
    free(dir);
}

/* A consumer slower than decoding loses nothing from a file: ingest waits. */
Test(ingest, file_slow_consumer_waits)
{
    need_ffmpeg();
    char *dir = tu_tmpdir();
    ffmpeg(dir, "-f lavfi -i testsrc=size=32x32:rate=25 -t 1 -pix_fmt yuv420p x.mp4");
    char path[512];
    snprintf(path, sizeof path, "%s/x.mp4", dir);
    frt_ingest_opts o = opts(0);
    o.queue_len = 1;
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK);
    usleep(200000);
    frt_ingest_stats st;
    frt_ingest_get_stats(g, &st);
    cr_assert_leq(st.sampled, 3, "ingest ran ahead of a full queue: %lld", (long long)st.sampled);
    double t[32];
    frt_status end;
    cr_assert_eq(drain(g, t, 32, &end), 25);
    for (int i = 1; i < 25; i++) cr_assert_float_eq(t[i] - t[i - 1], 0.04, 1e-6);
    frt_ingest_get_stats(g, &st);
    cr_assert_eq(st.dropped, 0);
    frt_ingest_close(g);

    /* close while the ingest thread waits for room returns promptly */
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK);
    usleep(100000);
    double t0 = now();
    frt_ingest_close(g);
    cr_assert_lt(now() - t0, 0.5);

    /* realtime: paced by the timestamps */
    o.realtime = true;
    o.queue_len = 4;
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_OK);
    t0 = now();
    cr_assert_eq(drain(g, t, 32, &end), 25);
    cr_assert_geq(now() - t0, 0.9);
    frt_ingest_close(g);
    tu_rmtree(dir);
    free(dir);
}

/* A live source faster than the consumer: the oldest frames go. */
Test(ingest, live_drops_oldest)
{
    frt_ingest_opts o = opts(0);
    o.format = "lavfi";
    o.live = 1;
    o.queue_len = 2;
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open("testsrc=size=32x24:rate=1000", &o, &g), FRT_OK, "%s",
                 frt_last_error());
    usleep(300000);
    frt_ingest_frame f;
    int64_t last = -1;
    double last_t = -1;
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(frt_ingest_next(g, &f, 5000), FRT_OK, "%s", frt_last_error());
        cr_assert_gt(f.index, last);
        cr_assert_gt(f.time_s, last_t);
        last = f.index;
        last_t = f.time_s;
    }
    frt_ingest_stats st;
    frt_ingest_get_stats(g, &st);
    cr_assert(st.live);
    cr_assert_gt(st.dropped, 0);
    /* pending: the queue plus the frame being converted */
    cr_assert_leq(st.sampled - st.delivered - st.dropped, 3);
    double t0 = now();
    frt_ingest_close(g);
    cr_assert_lt(now() - t0, 0.5);
}

/* ---- failures --------------------------------------------------------- */

Test(ingest, open_failures)
{
    frt_ingest *g = (frt_ingest *)1;
    frt_ingest_opts o = opts(1);
    cr_assert_eq(frt_ingest_open("/nonexistent/clip.mp4", &o, &g), FRT_ERR_NOT_FOUND);
    cr_assert_null(g);
    cr_assert(strstr(frt_last_error(), "/nonexistent/clip.mp4"), "%s", frt_last_error());

    char *dir = tu_tmpdir();
    char junk[4096];
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)tu_next(&r);
    char *path = tu_write_file(dir, "junk.mp4", junk, sizeof junk);
    cr_assert_eq(frt_ingest_open(path, &o, &g), FRT_ERR_FORMAT, "%s", frt_last_error());
    cr_assert(strstr(frt_last_error(), "junk.mp4"));
    free(path);
    path = tu_write_file(dir, "empty.mkv", "", 0);
    frt_status s = frt_ingest_open(path, &o, &g);
    cr_assert(s == FRT_ERR_FORMAT || s == FRT_ERR_IO, "%s", frt_last_error());
    free(path);

    cr_assert_eq(frt_ingest_open(NULL, &o, &g), FRT_ERR_INVALID_ARG);
    o.queue_len = 0;
    cr_assert_eq(frt_ingest_open("x.mp4", &o, &g), FRT_ERR_INVALID_ARG);
    o = opts(1);
    o.rtsp_transport = "http";
    cr_assert_eq(frt_ingest_open("rtsp://127.0.0.1:1/x", &o, &g), FRT_ERR_INVALID_ARG);
    o = opts(1);
    o.format = "no-such-format";
    cr_assert_eq(frt_ingest_open("x", &o, &g), FRT_ERR_UNSUPPORTED);
    o = opts(1);
    cr_assert_neq(frt_ingest_open("/dev/video99", &o, &g), FRT_OK);
    cr_assert(strstr(frt_last_error(), "/dev/video99"));

    if (system("command -v ffmpeg > /dev/null 2>&1") == 0) {
        ffmpeg(dir, "-f lavfi -i sine=frequency=440:duration=1 a.wav");
        char wav[512];
        snprintf(wav, sizeof wav, "%s/a.wav", dir);
        cr_assert_eq(frt_ingest_open(wav, &o, &g), FRT_ERR_FORMAT);
        cr_assert(strstr(frt_last_error(), "no video stream"), "%s", frt_last_error());
    }
    tu_rmtree(dir);
    free(dir);
}

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 4), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

Test(ingest, refused_and_open_timeout)
{
    int port;
    int fd = listen_local(&port);
    close(fd); /* nothing listens there now */
    char url[128];
    snprintf(url, sizeof url, "rtsp://127.0.0.1:%d/live", port);
    frt_ingest_opts o = opts(1);
    o.open_timeout_ms = 3000;
    frt_ingest *g;
    double t0 = now();
    cr_assert_eq(frt_ingest_open(url, &o, &g), FRT_ERR_IO, "%s", frt_last_error());
    cr_assert_lt(now() - t0, 2.0);
    cr_assert(strstr(frt_last_error(), url));

    /* a server that accepts the connection and never answers */
    fd = listen_local(&port);
    const char *schemes[] = {"http", "rtsp"};
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d/live", schemes[i], port);
        o.open_timeout_ms = 600;
        t0 = now();
        cr_assert_eq(frt_ingest_open(url, &o, &g), FRT_ERR_TIMEOUT, "%s: %s", url,
                     frt_last_error());
        double dt = now() - t0;
        cr_assert(dt >= 0.55 && dt < 2.0, "%s: timed out after %.2f s", url, dt);
        cr_assert(strstr(frt_last_error(), "timed out"));
    }
    close(fd);
}

/* ---- a y4m stream written by the test ---------------------------------- */

#define Y4M_W     16
#define Y4M_H     16
#define Y4M_FRAME (Y4M_W * Y4M_H * 3 / 2)

static void write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0) return;
        c += w;
        n -= (size_t)w;
    }
}

static void write_y4m(int fd, int frames, int first)
{
    if (first == 0) {
        const char *hdr = "YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420jpeg\n";
        write_all(fd, hdr, strlen(hdr));
    }
    unsigned char buf[Y4M_FRAME];
    for (int i = first; i < first + frames; i++) {
        memset(buf, (i * 7) & 0xff, sizeof buf);
        write_all(fd, "FRAME\n", 6);
        write_all(fd, buf, sizeof buf);
    }
}

typedef struct {
    int fd;
    volatile int release;
} stdin_feed;

#define FED_FRAMES 150 /* 6 s: more than FFmpeg analyses before it starts */

static void *feed_and_hold(void *arg)
{
    stdin_feed *f = arg;
    write_y4m(f->fd, FED_FRAMES, 0);
    while (!f->release) usleep(10000);
    close(f->fd);
    return NULL;
}

/* Standard input: frames arrive, then the writer stalls; a read timeout
 * ends the stream, and close in the middle of a blocking read is prompt. */
Test(ingest, stdin_stall_timeout_and_close)
{
    for (int round = 0; round < 2; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        cr_assert_eq(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
        close(p[0]);
        stdin_feed feed = {p[1], 0};
        pthread_t th;
        pthread_create(&th, NULL, feed_and_hold, &feed);
        frt_ingest_opts o = opts(0);
        o.read_timeout_ms = round == 0 ? 400 : 0;
        frt_ingest *g;
        cr_assert_eq(frt_ingest_open("-", &o, &g), FRT_OK, "%s", frt_last_error());
        frt_ingest_frame f;
        for (int i = 0; i < FED_FRAMES; i++) {
            cr_assert_eq(frt_ingest_next(g, &f, 5000), FRT_OK, "%s", frt_last_error());
            cr_assert_eq(f.width, Y4M_W);
            cr_assert_float_eq(f.time_s, i * 0.04, 1e-9);
        }
        if (round == 0) {
            double t0 = now();
            frt_status s = frt_ingest_next(g, &f, 5000);
            cr_assert_eq(s, FRT_ERR_TIMEOUT, "%s", frt_last_error());
            cr_assert(strstr(frt_last_error(), "timed out"), "%s", frt_last_error());
            cr_assert_lt(now() - t0, 2.0);
            frt_ingest_close(g);
        } else {
            cr_assert_eq(frt_ingest_next(g, &f, 300), FRT_ERR_TIMEOUT);
            double t0 = now();
            frt_ingest_close(g);
            cr_assert_lt(now() - t0, 0.5, "close took %.2f s", now() - t0);
        }
        feed.release = 1;
        pthread_join(th, NULL);
    }
}

typedef struct {
    int fd;
    int connections;
    int frames;
    volatile int hold; /* keep the connection open and silent until cleared */
} http_server;

/* Serves a y4m stream over HTTP to `connections` clients, one after the
 * other, then stops listening (the next reconnect is refused). */
static void *serve(void *arg)
{
    http_server *s = arg;
    for (int c = 0; c < s->connections; c++) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) break;
        int cl = accept(s->fd, NULL, NULL);
        if (cl < 0) break;
        char req[2048];
        ssize_t got = 0;
        while (got < (ssize_t)sizeof req - 1) {
            ssize_t n = read(cl, req + got, sizeof req - 1 - (size_t)got);
            if (n <= 0) break;
            got += n;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        const char *hdr = "HTTP/1.0 200 OK\r\nContent-Type: video/x-yuv4mpeg\r\n\r\n";
        write_all(cl, hdr, strlen(hdr));
        write_y4m(cl, s->frames, 0);
        usleep(100000);
        while (s->hold) usleep(10000);
        close(cl);
    }
    close(s->fd);
    return NULL;
}

Test(ingest, live_reconnect_keeps_time_monotonic)
{
    int port;
    http_server srv = {.connections = 2, .frames = 30};
    srv.fd = listen_local(&port);
    pthread_t th;
    pthread_create(&th, NULL, serve, &srv);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/cam.y4m", port);
    frt_ingest_opts o = opts(5);
    o.live = 1;
    o.reconnect_max_ms = 300;
    o.max_reconnects = 2;
    o.open_timeout_ms = 3000;
    o.read_timeout_ms = 3000;
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(url, &o, &g), FRT_OK, "%s", frt_last_error());
    frt_ingest_frame f;
    double last = -1, gap = 0;
    int n = 0;
    frt_status s;
    while ((s = frt_ingest_next(g, &f, 10000)) == FRT_OK && f.rgb) {
        cr_assert_gt(f.time_s, last, "stream time went back: %g after %g", f.time_s, last);
        if (f.gap_s > 0) {
            cr_assert_gt(n, 0);
            cr_assert_geq(f.time_s - last, f.gap_s - 1e-9);
            gap += f.gap_s;
        }
        last = f.time_s;
        n++;
    }
    /* the second connection ended, and both retries were refused */
    cr_assert_eq(s, FRT_ERR_IO, "%s", frt_last_error());
    frt_ingest_stats st;
    frt_ingest_get_stats(g, &st);
    cr_assert_eq(st.reconnects, 1);
    cr_assert_gt(gap, 0.2, "the reconnect wait shows as a gap");
    cr_assert_float_eq(st.gap_s, gap, 1e-9);
    /* a live source drops the oldest frames when this reader lags (on a
     * loaded machine): delivered plus dropped is what was sampled */
    cr_assert_eq(n + st.dropped, st.sampled);
    cr_assert(st.sampled >= 11 && st.sampled <= 13,
              "%lld frames sampled at 5 fps from two 1.2 s segments", (long long)st.sampled);
    cr_assert_eq(st.decoded, 60);
    frt_ingest_close(g);
    pthread_join(th, NULL);
}

/* A network source that goes silent mid-stream: close interrupts the read. */
Test(ingest, close_during_network_read)
{
    int port;
    http_server srv = {.connections = 1, .frames = 150, .hold = 1};
    srv.fd = listen_local(&port);
    pthread_t th;
    pthread_create(&th, NULL, serve, &srv);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/cam.y4m", port);
    frt_ingest_opts o = opts(0);
    o.live = 1;
    o.read_timeout_ms = 0;
    o.queue_len = 200;
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(url, &o, &g), FRT_OK, "%s", frt_last_error());
    frt_ingest_frame f;
    for (int i = 0; i < 150; i++)
        cr_assert_eq(frt_ingest_next(g, &f, 5000), FRT_OK, "frame %d: %s", i, frt_last_error());
    cr_assert_eq(frt_ingest_next(g, &f, 300), FRT_ERR_TIMEOUT);
    double t0 = now();
    frt_ingest_close(g);
    cr_assert_lt(now() - t0, 0.5, "close took %.2f s", now() - t0);
    srv.hold = 0;
    pthread_join(th, NULL);
}

/* ---- live RTSP, driven by tests/ingest_live.sh ------------------------- */

/* FRT_TEST_RTSP_URL names a stream the script publishes through
 * rtsp-server-perl; once a few frames are in, this test creates the file
 * FRT_TEST_RTSP_MARK, and the script then restarts the publisher. The
 * reader must reconnect and keep its clock going. */
Test(ingest_live, rtsp_udp_reconnect, .timeout = 90)
{
    const char *url = getenv("FRT_TEST_RTSP_URL"), *mark = getenv("FRT_TEST_RTSP_MARK");
    if (!url || !mark) cr_skip_test("run by tests/ingest_live.sh");
    frt_ingest_opts o = opts(2);
    o.rtsp_transport = "udp";
    o.open_timeout_ms = 5000;
    o.read_timeout_ms = 1500;
    o.reconnect_max_ms = 1000;
    frt_ingest *g;
    cr_assert_eq(frt_ingest_open(url, &o, &g), FRT_OK, "%s", frt_last_error());
    frt_ingest_stats st;
    frt_ingest_get_stats(g, &st);
    cr_assert(st.live);
    double last = -1, t0 = now();
    int n = 0, after = 0;
    bool marked = false, gap_seen = false;
    while (now() - t0 < 60 && after < 4) {
        frt_ingest_frame f;
        frt_status s = frt_ingest_next(g, &f, 20000);
        cr_assert_eq(s, FRT_OK, "%s", frt_last_error());
        cr_assert_not_null(f.rgb);
        cr_assert_eq(f.width, 320);
        cr_assert_eq(f.height, 240);
        cr_assert_gt(f.time_s, last, "stream time went back: %g after %g", f.time_s, last);
        if (f.gap_s > 0) {
            gap_seen = true;
            cr_assert_geq(f.time_s - last, f.gap_s - 1e-9);
        }
        last = f.time_s;
        if (++n == 4 && !marked) {
            FILE *m = fopen(mark, "w");
            cr_assert_not_null(m);
            fclose(m);
            marked = true;
        }
        frt_ingest_get_stats(g, &st);
        if (st.reconnects > 0) after++;
    }
    cr_assert_geq(st.reconnects, 1, "no reconnect within 60 s");
    cr_assert(gap_seen, "the outage shows as a gap");
    cr_assert_gt(st.gap_s, 0.5);
    double c0 = now();
    frt_ingest_close(g);
    cr_assert_lt(now() - c0, 1.0);

    /* rtsp-server-perl refuses TCP-interleaved readers: a clear failure
     * within the open timeout, not a hang */
    o.rtsp_transport = "tcp";
    o.open_timeout_ms = 3000;
    c0 = now();
    frt_status s = frt_ingest_open(url, &o, &g);
    if (s == FRT_OK) {
        frt_ingest_close(g);
    } else {
        cr_assert(strstr(frt_last_error(), url), "%s", frt_last_error());
    }
    cr_assert_lt(now() - c0, 4.5);
}
