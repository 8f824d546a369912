/* Audio in (libsndfile + resampler) and out (file, fd stream, PortAudio). */
#include "audio_io.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef FRT_HAVE_PORTAUDIO
#include <portaudio.h>
#endif

#include "alloc.h"
#include "error.h"
#include "log.h"

/* ---- resampler -------------------------------------------------------------
 * Band-limited interpolation: each output sample is the input convolved
 * with a Kaiser-windowed sinc centred on its (fractional) input time. The
 * kernel is tabulated once at RS_OVERSAMPLE points per zero crossing and
 * read with linear interpolation, so no trigonometry runs per tap and any
 * pair of rates works (no rational-ratio polyphase table to build). */

#define RS_ZEROS      16   /* zero crossings each side */
#define RS_OVERSAMPLE 512  /* table points per zero crossing */
#define RS_BETA       8.0  /* Kaiser beta: ~80 dB stop band */
#define RS_ROLLOFF    0.94 /* cutoff as a fraction of the lower Nyquist rate */

static float g_rs_table[RS_ZEROS * RS_OVERSAMPLE + 2];
static pthread_once_t g_rs_once = PTHREAD_ONCE_INIT;

static double bessel_i0(double x)
{
    double sum = 1, term = 1, q = x * x / 4;
    for (int k = 1; k < 50 && term > 1e-12 * sum; k++) {
        term *= q / ((double)k * k);
        sum += term;
    }
    return sum;
}

static void rs_table_init(void)
{
    const int n = RS_ZEROS * RS_OVERSAMPLE;
    const double i0b = bessel_i0(RS_BETA);
    for (int i = 0; i <= n; i++) {
        double x = (double)i / RS_OVERSAMPLE; /* in zero crossings */
        double sinc = i == 0 ? 1.0 : sin(M_PI * x) / (M_PI * x);
        double r = (double)i / n;
        g_rs_table[i] = (float)(sinc * bessel_i0(RS_BETA * sqrt(1 - r * r)) / i0b);
    }
    g_rs_table[n + 1] = 0;
}

frt_status frt_resample(const float *in, size_t n_in, int rate_in, int rate_out, float **out,
                        size_t *n_out)
{
    if (rate_in <= 0 || rate_out <= 0)
        return frt_error(FRT_ERR_INVALID_ARG, "resample: bad rates %d -> %d", rate_in, rate_out);
    if (n_in > (SIZE_MAX / 2) / (size_t)rate_out)
        return frt_error(FRT_ERR_LIMIT, "resample: %zu samples is too many", n_in);
    size_t n = (n_in * (size_t)rate_out + (size_t)rate_in - 1) / (size_t)rate_in;
    float *y = malloc((n ? n : 1) * sizeof *y);
    if (!y) return frt_error(FRT_ERR_NOMEM, "resample: out of memory (%zu samples)", n);
    if (rate_in == rate_out) {
        if (n_in) memcpy(y, in, n_in * sizeof *y);
        *out = y;
        *n_out = n_in;
        return FRT_OK;
    }
    pthread_once(&g_rs_once, rs_table_init);
    /* Cutoff in cycles per input sample; the kernel is scaled by 2*fc so a
     * constant signal keeps its level when downsampling. */
    const double ratio = (double)rate_out / rate_in;
    const double fc = 0.5 * RS_ROLLOFF * (ratio < 1 ? ratio : 1);
    const double half = RS_ZEROS / (2 * fc); /* kernel half-width in input samples */
    const double step = (double)rate_in / rate_out;
    const double scale = 2 * fc * RS_OVERSAMPLE; /* input samples -> table index */
    for (size_t j = 0; j < n; j++) {
        double t = (double)j * step;
        long k0 = (long)ceil(t - half), k1 = (long)floor(t + half);
        if (k0 < 0) k0 = 0;
        if (k1 > (long)n_in - 1) k1 = (long)n_in - 1;
        double acc = 0;
        for (long k = k0; k <= k1; k++) {
            double pos = fabs(t - (double)k) * scale;
            size_t i = (size_t)pos;
            if (i >= RS_ZEROS * RS_OVERSAMPLE) continue;
            double f = pos - (double)i;
            double h = g_rs_table[i] + f * (g_rs_table[i + 1] - g_rs_table[i]);
            acc += h * in[k];
        }
        y[j] = (float)(acc * 2 * fc);
    }
    *out = y;
    *n_out = n;
    return FRT_OK;
}

/* ---- reading ---------------------------------------------------------------- */

frt_status frt_audio_read(const char *path, int rate, float **pcm, size_t *n)
{
    if (!path || !pcm || !n || rate <= 0)
        return frt_error(FRT_ERR_INVALID_ARG, "audio read: bad arguments");
    struct stat st;
    if (stat(path, &st) != 0)
        return frt_error_at(errno == ENOENT ? FRT_ERR_NOT_FOUND : FRT_ERR_IO, path, NULL, -1,
                            "cannot open audio file: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return frt_error_at(FRT_ERR_INVALID_ARG, path, NULL, -1, "is a directory, not audio");
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf)
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, -1, "not a readable audio file: %s",
                            sf_strerror(NULL));
    frt_status s = FRT_OK;
    float *mono = NULL, *block = NULL;
    size_t len = 0, cap = 0;
    if (info.channels <= 0 || info.channels > 256 || info.samplerate <= 0 ||
        info.samplerate > 1536000) {
        s = frt_error_at(FRT_ERR_FORMAT, path, NULL, -1, "implausible audio: %d channels at %d Hz",
                         info.channels, info.samplerate);
        goto done;
    }
    /* Counted at 48 kHz at most: a small compressed file at a very high rate
     * (Vorbis silence) would otherwise decode to gigabytes. */
    const size_t max_frames = (size_t)FRT_AUDIO_READ_MAX_SECONDS *
                              (size_t)(info.samplerate < 48000 ? info.samplerate : 48000);
    const size_t bf = 4096; /* frames per read */
    block = malloc(bf * (size_t)info.channels * sizeof *block);
    if (!block) {
        s = frt_error(FRT_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        sf_count_t got = sf_readf_float(sf, block, (sf_count_t)bf);
        if (got <= 0) break;
        if (len + (size_t)got > cap) {
            size_t nc = cap ? cap * 2 : 65536;
            while (nc < len + (size_t)got) nc *= 2;
            float *p = realloc(mono, nc * sizeof *p);
            if (!p) {
                s = frt_error(FRT_ERR_NOMEM, "out of memory reading %s", path);
                goto done;
            }
            mono = p;
            cap = nc;
        }
        const int ch = info.channels;
        for (sf_count_t f = 0; f < got; f++) {
            double acc = 0;
            for (int c = 0; c < ch; c++) acc += block[(size_t)f * (size_t)ch + (size_t)c];
            float v = (float)(acc / ch);
            /* Float files may hold anything up to FLT_MAX: clip to full scale, or the
             * resampler's sums overflow to Inf (found by fuzz_audio). */
            mono[len++] = isfinite(v) ? fminf(fmaxf(v, -1.0f), 1.0f) : 0.0f;
        }
        if (len >= max_frames) {
            FRT_LOGW("%s: longer than %d s; only the start is used", path,
                     FRT_AUDIO_READ_MAX_SECONDS);
            len = max_frames;
            break;
        }
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        s = frt_error_at(FRT_ERR_FORMAT, path, NULL, -1, "corrupt audio: %s", sf_strerror(sf));
        goto done;
    }
    if (len == 0) {
        s = frt_error_at(FRT_ERR_FORMAT, path, NULL, -1, "the audio file has no samples");
        goto done;
    }
    s = frt_resample(mono, len, info.samplerate, rate, pcm, n);
done:
    free(block);
    free(mono);
    sf_close(sf);
    return s;
}

/* ---- writing ---------------------------------------------------------------- */

void frt_pcm16_from_float(const float *in, short *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = in[i] * 32767.0f;
        if (!(v == v)) v = 0; /* NaN */
        if (v > 32767.0f) v = 32767.0f;
        if (v < -32768.0f) v = -32768.0f;
        out[i] = (short)lrintf(v);
    }
}

enum { SINK_FILE, SINK_FD, SINK_PLAY };
#define WAV_STREAM_DATA_SIZE 0x7FFFF000u
#define SINK_BUF             4096

struct frt_audio_sink {
    int kind;
    int rate;
    SNDFILE *sf;
    char *path;
    int fd;
    bool broken_pipe;
    size_t written;
#ifdef FRT_HAVE_PORTAUDIO
    PaStream *pa;
#endif
    unsigned char buf[SINK_BUF * 2];
};

static frt_audio_sink *sink_new(int kind, int rate)
{
    frt_audio_sink *s = calloc(1, sizeof *s);
    if (!s) {
        frt_error(FRT_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->kind = kind;
    s->rate = rate;
    s->fd = -1;
    return s;
}

static bool ext_is(const char *path, const char *ext)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return false;
    return strcasecmp(dot + 1, ext) == 0;
}

frt_status frt_audio_sink_file(const char *path, int rate, frt_audio_sink **out)
{
    if (!path || rate <= 0 || !out)
        return frt_error(FRT_ERR_INVALID_ARG, "audio file: bad arguments");
    SF_INFO info;
    memset(&info, 0, sizeof info);
    info.samplerate = rate;
    info.channels = 1;
    if (ext_is(path, "wav"))
        info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    else if (ext_is(path, "flac"))
        info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
    else if (ext_is(path, "ogg") || ext_is(path, "oga"))
        info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    else
        return frt_error_at(FRT_ERR_UNSUPPORTED, path, NULL, -1,
                            "unknown audio format (use .wav, .flac or .ogg)");
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        return frt_error_at(FRT_ERR_IO, path, NULL, -1, "cannot create audio file: %s",
                            sf_strerror(NULL));
    /* Out-of-range floats must clip, not wrap around. */
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE);
    frt_audio_sink *s = sink_new(SINK_FILE, rate);
    char *p = s ? strdup(path) : NULL;
    if (!p) {
        free(s);
        sf_close(sf);
        return frt_error(FRT_ERR_NOMEM, "out of memory");
    }
    s->sf = sf;
    s->path = p;
    *out = s;
    return FRT_OK;
}

static frt_status fd_write_all(frt_audio_sink *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            if (errno == EPIPE) {
                s->broken_pipe = true;
                return frt_error(FRT_ERR_IO, "output closed by the reader (broken pipe)");
            }
            if (errno == ENOSPC) return frt_error(FRT_ERR_IO, "cannot write audio: disk full");
            return frt_error(FRT_ERR_IO, "cannot write audio: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return FRT_OK;
}

static void put_le(unsigned char *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

frt_status frt_audio_sink_fd(int fd, int rate, bool raw, frt_audio_sink **out)
{
    if (fd < 0 || rate <= 0 || !out)
        return frt_error(FRT_ERR_INVALID_ARG, "audio stream: bad arguments");
    frt_audio_sink *s = sink_new(SINK_FD, rate);
    if (!s) return FRT_ERR_NOMEM;
    s->fd = fd;
    if (!raw) {
        /* Sizes unknown when streaming: the largest whole-block size below
         * 2^31, as sox writes to pipes. Readers stop at EOF; sox, ffmpeg
         * and aplay accept it, and unlike 0xFFFFFFFF sox does not warn. */
        unsigned char h[44];
        memcpy(h, "RIFF", 4);
        put_le(h + 4, WAV_STREAM_DATA_SIZE + 36, 4);
        memcpy(h + 8, "WAVEfmt ", 8);
        put_le(h + 16, 16, 4);
        put_le(h + 20, 1, 2); /* PCM */
        put_le(h + 22, 1, 2); /* mono */
        put_le(h + 24, (uint32_t)rate, 4);
        put_le(h + 28, (uint32_t)rate * 2, 4);
        put_le(h + 32, 2, 2);
        put_le(h + 34, 16, 2);
        memcpy(h + 36, "data", 4);
        put_le(h + 40, WAV_STREAM_DATA_SIZE, 4);
        frt_status st = fd_write_all(s, h, sizeof h);
        if (st != FRT_OK) {
            free(s);
            return st;
        }
    }
    *out = s;
    return FRT_OK;
}

#ifdef FRT_HAVE_PORTAUDIO
frt_status frt_audio_sink_play(int rate, frt_audio_sink **out)
{
    if (rate <= 0 || !out) return frt_error(FRT_ERR_INVALID_ARG, "play: bad arguments");
    PaError e = Pa_Initialize();
    if (e != paNoError)
        return frt_error(FRT_ERR_DEVICE, "no sound output: PortAudio: %s", Pa_GetErrorText(e));
    if (Pa_GetDefaultOutputDevice() == paNoDevice) {
        Pa_Terminate();
        return frt_error(FRT_ERR_DEVICE, "no sound output device found (write to a file with -o "
                                         "instead)");
    }
    PaStream *pa = NULL;
    e = Pa_OpenDefaultStream(&pa, 0, 1, paFloat32, rate, paFramesPerBufferUnspecified, NULL, NULL);
    if (e == paNoError) e = Pa_StartStream(pa);
    if (e != paNoError) {
        if (pa) Pa_CloseStream(pa);
        Pa_Terminate();
        return frt_error(FRT_ERR_DEVICE, "cannot open the sound output at %d Hz: %s", rate,
                         Pa_GetErrorText(e));
    }
    frt_audio_sink *s = sink_new(SINK_PLAY, rate);
    if (!s) {
        Pa_CloseStream(pa);
        Pa_Terminate();
        return FRT_ERR_NOMEM;
    }
    s->pa = pa;
    *out = s;
    return FRT_OK;
}
#else
frt_status frt_audio_sink_play(int rate, frt_audio_sink **out)
{
    (void)rate;
    (void)out;
    return frt_error(FRT_ERR_UNSUPPORTED, "built without PortAudio (FRT_PORTAUDIO=OFF): no --play");
}
#endif

frt_status frt_audio_sink_write(frt_audio_sink *s, const float *pcm, size_t n)
{
    if (!s || (!pcm && n)) return frt_error(FRT_ERR_INVALID_ARG, "audio write: bad arguments");
    if (s->broken_pipe) return frt_error(FRT_ERR_IO, "output closed by the reader (broken pipe)");
    size_t done = 0;
    while (done < n) {
        size_t m = n - done < SINK_BUF ? n - done : SINK_BUF;
        if (s->kind == SINK_FILE) {
            sf_count_t w = sf_write_float(s->sf, pcm + done, (sf_count_t)m);
            if (w != (sf_count_t)m) {
                int err = errno;
                return frt_error_at(FRT_ERR_IO, s->path, NULL, -1, "cannot write audio: %s",
                                    err == ENOSPC ? "disk full" : sf_strerror(s->sf));
            }
        } else if (s->kind == SINK_FD) {
            short tmp[SINK_BUF];
            frt_pcm16_from_float(pcm + done, tmp, m);
            /* WAV and s16le are little-endian whatever the host is. */
            for (size_t i = 0; i < m; i++) put_le(s->buf + 2 * i, (uint16_t)tmp[i], 2);
            FRT_TRY(fd_write_all(s, s->buf, 2 * m));
        } else {
#ifdef FRT_HAVE_PORTAUDIO
            PaError e = Pa_WriteStream(s->pa, pcm + done, (unsigned long)m);
            /* An underflow only means the card waited for us: keep going. */
            if (e != paNoError && e != paOutputUnderflowed)
                return frt_error(FRT_ERR_DEVICE, "sound output failed: %s", Pa_GetErrorText(e));
#endif
        }
        done += m;
        s->written += m;
    }
    return FRT_OK;
}

bool frt_audio_sink_broken_pipe(const frt_audio_sink *s)
{
    return s && s->broken_pipe;
}

size_t frt_audio_sink_samples(const frt_audio_sink *s)
{
    return s ? s->written : 0;
}

frt_status frt_audio_sink_close(frt_audio_sink *s)
{
    if (!s) return FRT_OK;
    frt_status st = FRT_OK;
    if (s->kind == SINK_FILE) {
        sf_write_sync(s->sf);
        if (sf_close(s->sf) != 0)
            st = frt_error_at(FRT_ERR_IO, s->path, NULL, -1, "cannot finish the audio file");
    } else if (s->kind == SINK_PLAY) {
#ifdef FRT_HAVE_PORTAUDIO
        Pa_StopStream(s->pa); /* blocks until the queued audio has played */
        Pa_CloseStream(s->pa);
        Pa_Terminate();
#endif
    }
    free(s->path);
    free(s);
    return st;
}
