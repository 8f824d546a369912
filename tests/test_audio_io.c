/* Speech audio I/O: resampler against a direct windowed-sinc twin, reading
 * (downmix, formats, bad files), sinks (file formats, WAV stream, raw,
 * closed pipe, full disk, sound card). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio_io.h"
#include "testutil.h"

/* ---- resampler --------------------------------------------------------------- */

static double naive_i0(double x)
{
    double s = 0, t = 1;
    for (int k = 0; k < 60; k++) {
        if (k) t *= (x / 2) * (x / 2) / ((double)k * k);
        s += t;
    }
    return s;
}

/* Direct evaluation of the same kernel (16 zeros, Kaiser beta 8, cutoff
 * 0.94 of the lower Nyquist), with sin and I0 per tap. */
static double naive_resample_at(const float *x, size_t n, double rin, double rout, size_t j)
{
    double ratio = rout / rin, fc = 0.5 * 0.94 * (ratio < 1 ? ratio : 1);
    double t = (double)j * rin / rout, half = 16 / (2 * fc), acc = 0;
    for (long k = (long)ceil(t - half); k <= (long)floor(t + half); k++) {
        if (k < 0 || k >= (long)n) continue;
        double d = (t - (double)k) * 2 * fc; /* zero crossings */
        if (fabs(d) >= 16) continue;
        double sinc = d == 0 ? 1 : sin(M_PI * d) / (M_PI * d);
        double r = d / 16;
        double w = naive_i0(8 * sqrt(1 - r * r)) / naive_i0(8);
        acc += x[k] * sinc * w * 2 * fc;
    }
    return acc;
}

Test(resample, matches_direct_kernel)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    static const int rates[][2] = {{48000, 16000}, {44100, 16000}, {8000, 16000},
                                   {22050, 16000}, {16000, 11025}, {16001, 16000}};
    for (size_t c = 0; c < sizeof rates / sizeof rates[0]; c++) {
        size_t n = 1000 + tu_next(&r) % 777;
        float *x = malloc(n * sizeof *x);
        tu_fill_uniform(&r, x, n, -1, 1);
        float *y;
        size_t ny;
        cr_assert_eq(frt_resample(x, n, rates[c][0], rates[c][1], &y, &ny), FRT_OK);
        size_t want = (size_t)ceil((double)n * rates[c][1] / rates[c][0]);
        cr_assert_eq(ny, want, "%d->%d: %zu samples, want %zu", rates[c][0], rates[c][1], ny, want);
        double maxerr = 0;
        for (size_t j = 0; j < ny; j += 1 + j % 3) {
            double ref = naive_resample_at(x, n, rates[c][0], rates[c][1], j);
            double e = fabs(y[j] - ref);
            if (e > maxerr) maxerr = e;
        }
        /* The table is read with linear interpolation at 512 points per zero. */
        cr_assert_lt(maxerr, 2e-4, "%d->%d: max error %g", rates[c][0], rates[c][1], maxerr);
        free(x);
        free(y);
    }
}

static double sine_gain(int rin, int rout, double freq)
{
    size_t n = (size_t)rin; /* one second */
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(2 * M_PI * freq * (double)i / rin);
    float *y;
    size_t ny;
    cr_assert_eq(frt_resample(x, n, rin, rout, &y, &ny), FRT_OK);
    /* RMS away from the edges, relative to a unit sine's. */
    double s = 0;
    size_t a = ny / 4, b = 3 * ny / 4;
    for (size_t i = a; i < b; i++) s += (double)y[i] * y[i];
    free(x);
    free(y);
    return sqrt(s / (double)(b - a)) * sqrt(2.0);
}

Test(resample, passband_and_stopband)
{
    cr_assert_lt(fabs(sine_gain(48000, 16000, 1000) - 1), 1e-3);
    cr_assert_lt(fabs(sine_gain(8000, 16000, 1000) - 1), 1e-3);
    cr_assert_lt(fabs(sine_gain(44100, 16000, 6000) - 1), 1e-2);
    /* 12 kHz would alias to 4 kHz at 16 kHz: it must be gone (< -60 dB). */
    cr_assert_lt(sine_gain(48000, 16000, 12000), 1e-3);
    cr_assert_lt(sine_gain(44100, 16000, 9000), 1e-3);
}

Test(resample, edges)
{
    float x[3] = {1, 2, 3}, *y;
    size_t n;
    cr_assert_eq(frt_resample(x, 3, 16000, 16000, &y, &n), FRT_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(x, y, sizeof x), 0);
    free(y);
    cr_assert_eq(frt_resample(x, 0, 48000, 16000, &y, &n), FRT_OK);
    cr_assert_eq(n, 0);
    free(y);
    cr_assert_eq(frt_resample(x, 3, 0, 16000, &y, &n), FRT_ERR_INVALID_ARG);
}

Test(pcm16, rounding_clipping_nan)
{
    float in[] = {0, 1, -1, 2, -2, 0.5f / 32767, -0.49f / 32767, NAN, INFINITY, -INFINITY};
    short out[10];
    frt_pcm16_from_float(in, out, 10);
    short want[] = {0, 32767, -32767, 32767, -32768, 0, 0, 0, 32767, -32768};
    for (int i = 0; i < 10; i++) cr_assert_eq(out[i], want[i], "%d: %d", i, out[i]);
}

/* ---- reading ------------------------------------------------------------------ */

/* A stereo file: left sin(f), right 0.5 sin(f) -> mono 0.75 sin(f). */
static char *write_stereo(const char *dir, const char *name, int format, int rate, double secs)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
    SF_INFO info = {.samplerate = rate, .channels = 2, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(sf, "%s", sf_strerror(NULL));
    size_t n = (size_t)(rate * secs);
    float *x = malloc(2 * n * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(0.8 * sin(2 * M_PI * 440 * (double)i / rate));
        x[2 * i] = v;
        x[2 * i + 1] = 0.5f * v;
    }
    cr_assert_eq(sf_writef_float(sf, x, (sf_count_t)n), (sf_count_t)n);
    sf_close(sf);
    free(x);
    return path;
}

static void check_mono_sine(const float *y, size_t n, double amp, double tol)
{
    double s = 0;
    for (size_t i = n / 4; i < 3 * n / 4; i++) s += (double)y[i] * y[i];
    double a = sqrt(s / (double)(n / 2)) * sqrt(2.0);
    cr_assert_lt(fabs(a - amp), tol, "amplitude %g, want %g", a, amp);
}

Test(read, downmix_resample_formats)
{
    char *dir = tu_tmpdir();
    static const struct {
        const char *name;
        int format;
        double tol;
    } files[] = {{"a.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 2e-3},
                 {"a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 2e-3},
                 {"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 3e-2}};
    for (size_t f = 0; f < 3; f++) {
        char *path = write_stereo(dir, files[f].name, files[f].format, 44100, 0.5);
        float *y;
        size_t n;
        cr_assert_eq(frt_audio_read(path, 16000, &y, &n), FRT_OK, "%s", frt_last_error());
        cr_assert_lt(labs((long)n - 8000), 2, "%s: %zu samples", files[f].name, n);
        check_mono_sine(y, n, 0.6, files[f].tol);
        free(y);
        free(path);
    }
    tu_rmtree(dir);
    free(dir);
}

Test(read, bad_files)
{
    char *dir = tu_tmpdir();
    float *y = NULL;
    size_t n = 0;
    char *missing = NULL;
    cr_assert(asprintf(&missing, "%s/none.wav", dir) > 0);
    cr_assert_eq(frt_audio_read(missing, 16000, &y, &n), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "none.wav"));
    cr_assert_eq(frt_audio_read(dir, 16000, &y, &n), FRT_ERR_INVALID_ARG);
    char junk[3000];
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)tu_next(&r);
    char *p = tu_write_file(dir, "junk.wav", junk, sizeof junk);
    cr_assert_eq(frt_audio_read(p, 16000, &y, &n), FRT_ERR_FORMAT);
    free(p);
    /* A valid header cut short, and a file with no samples. */
    char *good = write_stereo(dir, "cut.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 0.1);
    cr_assert_eq(truncate(good, 30), 0);
    cr_assert_eq(frt_audio_read(good, 16000, &y, &n), FRT_ERR_FORMAT);
    char *empty = write_stereo(dir, "empty.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 0);
    cr_assert_eq(frt_audio_read(empty, 16000, &y, &n), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "no samples"), "%s", frt_last_error());
    free(good);
    free(empty);
    free(missing);
    tu_rmtree(dir);
    free(dir);
}

/* ---- sinks ---------------------------------------------------------------------- */

static float *ramp(size_t n)
{
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)sin((double)i * 0.01) * 0.9f;
    return x;
}

Test(sink, files_by_extension)
{
    char *dir = tu_tmpdir();
    float *x = ramp(5000);
    const char *names[] = {"o.wav", "o.flac", "o.ogg", "O.WAV"};
    for (int f = 0; f < 4; f++) {
        char *path = NULL;
        cr_assert(asprintf(&path, "%s/%s", dir, names[f]) > 0);
        frt_audio_sink *s;
        cr_assert_eq(frt_audio_sink_file(path, 16000, &s), FRT_OK, "%s", frt_last_error());
        cr_assert_eq(frt_audio_sink_write(s, x, 3000), FRT_OK);
        cr_assert_eq(frt_audio_sink_write(s, x + 3000, 2000), FRT_OK);
        cr_assert_eq(frt_audio_sink_samples(s), 5000);
        cr_assert_eq(frt_audio_sink_close(s), FRT_OK);
        SF_INFO info = {0};
        SNDFILE *sf = sf_open(path, SFM_READ, &info);
        cr_assert(sf, "%s", names[f]);
        cr_assert_eq(info.samplerate, 16000);
        cr_assert_eq(info.channels, 1);
        cr_assert_eq(info.frames, 5000, "%s: %ld frames", names[f], (long)info.frames);
        float y[5000];
        cr_assert_eq(sf_readf_float(sf, y, 5000), 5000);
        if (f != 2)
            for (int i = 0; i < 5000; i++) cr_assert_lt(fabsf(y[i] - x[i]), 1.0f / 32000);
        sf_close(sf);
        free(path);
    }
    frt_audio_sink *s;
    cr_assert_eq(frt_audio_sink_file("/tmp/x.mp3", 16000, &s), FRT_ERR_UNSUPPORTED);
    cr_assert_eq(frt_audio_sink_file("/nonexistent-dir/x.wav", 16000, &s), FRT_ERR_IO);
    free(x);
    tu_rmtree(dir);
    free(dir);
}

static size_t read_all(int fd, unsigned char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0) n += (size_t)r;
    return n;
}

static unsigned le(const unsigned char *p, int bytes)
{
    unsigned v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

Test(sink, wav_stream_and_raw)
{
    float *x = ramp(3000);
    for (int raw = 0; raw < 2; raw++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        frt_audio_sink *s;
        cr_assert_eq(frt_audio_sink_fd(p[1], 16000, raw, &s), FRT_OK);
        cr_assert_eq(frt_audio_sink_write(s, x, 1000), FRT_OK);
        cr_assert_eq(frt_audio_sink_write(s, x + 1000, 2000), FRT_OK);
        cr_assert_eq(frt_audio_sink_close(s), FRT_OK);
        close(p[1]);
        static unsigned char buf[8000];
        size_t n = read_all(p[0], buf, sizeof buf);
        close(p[0]);
        size_t h = raw ? 0 : 44;
        cr_assert_eq(n, h + 6000);
        if (!raw) {
            cr_assert_eq(memcmp(buf, "RIFF", 4), 0);
            cr_assert_eq(memcmp(buf + 8, "WAVEfmt ", 8), 0);
            cr_assert_eq(le(buf + 20, 2), 1);
            cr_assert_eq(le(buf + 22, 2), 1);
            cr_assert_eq(le(buf + 24, 4), 16000);
            cr_assert_eq(le(buf + 34, 2), 16);
            cr_assert_eq(memcmp(buf + 36, "data", 4), 0);
            cr_assert_eq(le(buf + 40, 4), 0x7FFFF000u);
            cr_assert_eq(le(buf + 4, 4), 0x7FFFF000u + 36);
        }
        short want[3000];
        frt_pcm16_from_float(x, want, 3000);
        for (int i = 0; i < 3000; i++)
            cr_assert_eq((short)le(buf + h + 2 * i, 2), want[i], "sample %d", i);
    }
    free(x);
}

Test(sink, closed_pipe_and_full_disk)
{
    signal(SIGPIPE, SIG_IGN);
    float *x = ramp(20000);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    frt_audio_sink *s;
    cr_assert_eq(frt_audio_sink_fd(p[1], 16000, false, &s), FRT_OK);
    close(p[0]);
    cr_assert_eq(frt_audio_sink_write(s, x, 20000), FRT_ERR_IO);
    cr_assert(frt_audio_sink_broken_pipe(s));
    cr_assert(strstr(frt_last_error(), "broken pipe"));
    cr_assert_eq(frt_audio_sink_write(s, x, 10), FRT_ERR_IO, "stays failed");
    cr_assert_eq(frt_audio_sink_close(s), FRT_OK);
    close(p[1]);

    int fd = open("/dev/full", O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(frt_audio_sink_fd(fd, 16000, false, &s), FRT_ERR_IO);
    cr_assert(strstr(frt_last_error(), "disk full"), "%s", frt_last_error());
    cr_assert_eq(frt_audio_sink_fd(fd, 16000, true, &s), FRT_OK);
    cr_assert_eq(frt_audio_sink_write(s, x, 100), FRT_ERR_IO);
    cr_assert(!frt_audio_sink_broken_pipe(s));
    frt_audio_sink_close(s);
    close(fd);
    free(x);
}

Test(sink, sound_card_or_clear_error)
{
    /* No sound card is required: either it opens and plays (a null
     * device), or it reports a device error with a message. */
    frt_audio_sink *s = NULL;
    frt_status st = frt_audio_sink_play(16000, &s);
    if (st == FRT_OK) {
        float *x = ramp(1600);
        cr_assert_eq(frt_audio_sink_write(s, x, 1600), FRT_OK);
        cr_assert_eq(frt_audio_sink_close(s), FRT_OK);
        free(x);
    } else {
        cr_assert(st == FRT_ERR_DEVICE || st == FRT_ERR_UNSUPPORTED, "%s", frt_status_name(st));
        cr_assert(strlen(frt_last_error()) > 10);
    }
}
