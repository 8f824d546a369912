/* FlashSpeech: the signal-processing codec ("codec_type": "vocoder").
 * Encoder: per frame log F0 (YIN, interpolated through unvoiced frames),
 * voicing and log mel-band powers, normalised with config constants.
 * Decoder: pulses at F0 mixed with noise by the voicing, shaped per frame
 * so its mel-band powers match the latent's, Hann overlap-add, then the
 * fixed equaliser's FIR filter when the config has "vocoder_eq".
 * tools/reference/flashspeech/vocoder.py is the twin (float64 there,
 * double here); its docstring has the definitions. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "fs_internal.h"

/* vocoder.py's constants: YIN's F0 search range and thresholds, the frame
 * level below which a frame is unvoiced, and the F0 of an utterance with no
 * voiced frame. */
#define F0_MIN                  50.0
#define F0_MAX                  600.0
#define YIN_THRESHOLD           0.15
#define VOICED_MAX_APERIODICITY 0.35
#define VOICED_MIN_RMS          1e-3
#define DEFAULT_F0              120.0
/* vocoder_eq's bound: 80 dB of log amplitude, ln(1e4) */
#define EQ_MAX_LOG 9.210340371976184

static const double two_pi = 6.283185307179586476925286766559;

/* ---- open ------------------------------------------------------------------- */

static frt_status get_float_array(cJSON *root, const char *path, const char *key, int n,
                                  bool positive, float *out)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n)
        return frt_error_at(FRT_ERR_FORMAT, path, key, -1,
                            "%s must be an array of latent_dim (%d) numbers", key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        double v = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!isfinite(v) || (positive && !(v > 0)))
            return frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s[%d] must be a %s number", key, i,
                                positive ? "positive finite" : "finite");
        out[i] = (float)v;
    }
    return FRT_OK;
}

static frt_status get_int(const frt_config *c, const char *key, int64_t def, int64_t lo, int64_t hi,
                          int *out)
{
    int64_t v;
    FRT_TRY(frt_config_int(c, key, def, lo, hi, &v));
    *out = (int)v;
    return FRT_OK;
}

/* HTK-mel triangles over 0..sr/2 on the n_fft / 2 + 1 bins (vocoder.py:
 * mel_filters), and their per-bin sums. */
static void mel_filters(fs_vocoder *v, int sr)
{
    int bins = v->n_fft / 2 + 1;
    double top = 2595.0 * log10(1.0 + (sr / 2.0) / 700.0);
    for (int k = 0; k < bins; k++) v->mel_norm[k] = 0;
    for (int b = 0; b < v->bands; b++) {
        double e[3];
        for (int j = 0; j < 3; j++) {
            double m = top * (b + j) / (v->bands + 1);
            e[j] = 700.0 * (pow(10.0, m / 2595.0) - 1.0);
        }
        for (int k = 0; k < bins; k++) {
            double f = (double)k * sr / v->n_fft;
            double up = (f - e[0]) / (e[1] - e[0]), down = (e[2] - f) / (e[2] - e[1]);
            double w = up < down ? up : down;
            v->mel[b * bins + k] = w > 0 ? w : 0;
            v->mel_norm[k] += v->mel[b * bins + k];
        }
        v->band_lo[b] = bins, v->band_hi[b] = 0;
        for (int k = 0; k < bins; k++)
            if (v->mel[b * bins + k] > 0) {
                if (k < v->band_lo[b]) v->band_lo[b] = k;
                v->band_hi[b] = k + 1;
            }
        if (v->band_lo[b] > v->band_hi[b]) v->band_lo[b] = v->band_hi[b];
    }
    for (int k = 0, b = 0; k < bins; k++) {
        while (b < v->bands && v->band_hi[b] <= k) b++;
        v->bin_band[k] = b;
    }
}

/* "vocoder_eq" (optional): n_fft / 2 + 1 log amplitudes over 0..sr/2 ->
 * the zero-phase FIR taps of that response (vocoder.py: eq_taps): the
 * inverse real DFT of exp(eq), Blackman-windowed, taps 0..FS_EQ_HALF kept
 * (the filter is symmetric). */
static frt_status eq_open(fs_vocoder *v, cJSON *root, const char *path)
{
    const cJSON *eq = cJSON_GetObjectItemCaseSensitive(root, "vocoder_eq");
    if (!eq || cJSON_IsNull(eq)) return FRT_OK;
    int n = v->n_fft, bins = n / 2 + 1;
    if (!cJSON_IsArray(eq) || cJSON_GetArraySize(eq) != bins)
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_eq", -1,
                            "vocoder_eq must be an array of vocoder_n_fft / 2 + 1 (%d) numbers",
                            bins);
    if (n <= 2 * FS_EQ_HALF)
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_eq", -1,
                            "vocoder_eq needs vocoder_n_fft > %d", 2 * FS_EQ_HALF);
    double *h = frt_alloc((size_t)bins * sizeof(double));
    v->eq_taps = frt_alloc((FS_EQ_HALF + 1) * sizeof(double));
    if (!h || !v->eq_taps) {
        frt_free(h);
        return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory (vocoder_eq)");
    }
    for (int k = 0; k < bins; k++) {
        const cJSON *e = cJSON_GetArrayItem(eq, k);
        double lv = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(fabs(lv) <= EQ_MAX_LOG)) {
            frt_free(h);
            return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_eq", -1,
                                "vocoder_eq[%d] must be a number in [-%.4g, %.4g]", k, EQ_MAX_LOG,
                                EQ_MAX_LOG);
        }
        h[k] = exp(lv);
    }
    for (int j = 0; j <= FS_EQ_HALF; j++) {
        double s = h[0] + (j % 2 ? -h[bins - 1] : h[bins - 1]);
        for (int k = 1; k < bins - 1; k++) s += 2.0 * h[k] * cos(two_pi * (double)((k * j) % n) / n);
        double a = 3.14159265358979323846 * j / (FS_EQ_HALF + 1);
        v->eq_taps[j] = s / n * (0.42 + 0.5 * cos(a) + 0.08 * cos(2.0 * a));
    }
    frt_free(h);
    return FRT_OK;
}

frt_status fs_vocoder_open(fs_vocoder *v, fs_config *cfg, const frt_config *c, cJSON *root,
                           const char *path)
{
    memset(v, 0, sizeof(*v));
    int64_t seed;
    double floor_;
    FRT_TRY(get_int(c, "vocoder_hop", 200, 1, 1 << 16, &v->hop));
    FRT_TRY(get_int(c, "vocoder_win", 400, 2, 1 << 16, &v->win));
    FRT_TRY(get_int(c, "vocoder_n_fft", 512, 2, 1 << 16, &v->n_fft));
    FRT_TRY(get_int(c, "vocoder_bands", 30, 1, 1024, &v->bands));
    FRT_TRY(get_int(c, "vocoder_yin_win", 512, 1, 1 << 16, &v->yin_win));
    FRT_TRY(get_int(c, "vocoder_iters", 4, 0, 64, &v->iters));
    FRT_TRY(frt_config_int(c, "vocoder_noise_seed", 0, 0, INT64_MAX, &seed));
    FRT_TRY(frt_config_float(c, "vocoder_floor", 1e-6, &floor_));
    FRT_TRY(frt_config_float(c, "vocoder_noise_gain", 1.0, &v->noise_gain));
    if (!(v->noise_gain > 0 && v->noise_gain <= 1))
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_noise_gain", -1,
                            "vocoder_noise_gain must be in (0, 1]");
    if (!(floor_ > 0) || !isfinite(floor_))
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_floor", -1,
                            "vocoder_floor must be positive and finite");
    if ((v->n_fft & (v->n_fft - 1)) != 0 || v->n_fft < v->win)
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_n_fft", -1,
                            "vocoder_n_fft must be a power of two >= vocoder_win");
    if (v->win % 2 != 0 || v->hop % 2 != 0 || v->win < v->hop)
        return frt_error_at(FRT_ERR_FORMAT, path, "vocoder_win", -1,
                            "vocoder_win and vocoder_hop must be even, win >= hop");
    if (cfg->latent_dim != 2 + v->bands)
        return frt_error_at(FRT_ERR_FORMAT, path, "latent_dim", -1,
                            "latent_dim %d must be 2 + vocoder_bands (%d)", cfg->latent_dim,
                            2 + v->bands);
    if (cfg->sample_rate < 2 * (int)ceil(F0_MAX))
        return frt_error_at(FRT_ERR_FORMAT, path, "sample_rate", -1,
                            "sample_rate %d is too low for the vocoder's F0 range",
                            cfg->sample_rate);
    v->noise_seed = (uint64_t)seed;
    v->floor = floor_;
    v->tau_min = (int)floor(cfg->sample_rate / F0_MAX);
    v->tau_max = (int)ceil(cfg->sample_rate / F0_MIN);
    int bins = v->n_fft / 2 + 1, d = cfg->latent_dim;
    v->window = frt_alloc((size_t)v->win * sizeof(double));
    v->mel = frt_alloc((size_t)v->bands * bins * sizeof(double));
    v->mel_norm = frt_alloc((size_t)bins * sizeof(double));
    v->twiddle = frt_alloc((size_t)v->n_fft * sizeof(double));
    v->mean = frt_alloc((size_t)d * sizeof(float));
    v->scale = frt_alloc((size_t)d * sizeof(float));
    v->band_lo = frt_alloc(((size_t)v->bands * 2 + (size_t)bins) * sizeof(int));
    if (!v->window || !v->mel || !v->mel_norm || !v->twiddle || !v->mean || !v->scale ||
        !v->band_lo)
        return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory (vocoder tables)");
    FRT_TRY(get_float_array(root, path, "vocoder_mean", d, false, v->mean));
    FRT_TRY(get_float_array(root, path, "vocoder_scale", d, true, v->scale));
    FRT_TRY(eq_open(v, root, path));
    v->band_hi = v->band_lo + v->bands;
    v->bin_band = v->band_hi + v->bands;
    for (int j = 0; j < v->win; j++) v->window[j] = 0.5 - 0.5 * cos(two_pi * j / v->win);
    for (int j = 0; j < v->n_fft / 2; j++) {
        v->twiddle[2 * j] = cos(two_pi * j / v->n_fft);
        v->twiddle[2 * j + 1] = -sin(two_pi * j / v->n_fft);
    }
    mel_filters(v, cfg->sample_rate);
    cfg->hop = v->hop;
    return FRT_OK;
}

void fs_vocoder_free(fs_vocoder *v)
{
    frt_free(v->window);
    frt_free(v->mel);
    frt_free(v->mel_norm);
    frt_free(v->twiddle);
    frt_free(v->mean);
    frt_free(v->scale);
    frt_free(v->band_lo);
    frt_free(v->eq_taps);
    memset(v, 0, sizeof(*v));
}

/* ---- FFT -------------------------------------------------------------------- */

/* In-place radix-2 FFT of n_fft complex values (re, im); inverse without the
 * 1/n scale. */
static void fft(const fs_vocoder *v, double *re, double *im, bool inverse)
{
    int n = v->n_fft;
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j], re[j] = t;
            t = im[i];
            im[i] = im[j], im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        int step = n / len;
        for (int i = 0; i < n; i += len)
            for (int k = 0; k < len / 2; k++) {
                double wr = v->twiddle[2 * k * step];
                double wi = inverse ? -v->twiddle[2 * k * step + 1] : v->twiddle[2 * k * step + 1];
                int a = i + k, b = i + k + len / 2;
                double xr = re[b] * wr - im[b] * wi, xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr, im[b] = im[a] - xi;
                re[a] += xr, im[a] += xi;
            }
    }
}

/* The windowed segment of x [n] centred on frame t's centre (zeros outside
 * x), zero-padded to n_fft, transformed: re, im [n_fft]; returns the
 * windowed segment's energy. */
static double frame_spectrum(const fs_vocoder *v, const double *x, int64_t n, int64_t t, double *re,
                             double *im)
{
    int64_t start = t * v->hop + v->hop / 2 - v->win / 2;
    double energy = 0;
    for (int j = 0; j < v->n_fft; j++) {
        int64_t s = start + j;
        double y = j < v->win && s >= 0 && s < n ? x[s] * v->window[j] : 0.0;
        re[j] = y, im[j] = 0;
        energy += y * y;
    }
    fft(v, re, im, false);
    return energy;
}

/* Band energies e [bands] of the power spectrum pw [bins] (times gain when
 * given). */
static void band_energies(const fs_vocoder *v, const double *pw, const double *gain, double *e)
{
    int bins = v->n_fft / 2 + 1;
    for (int b = 0; b < v->bands; b++) {
        const double *w = v->mel + (size_t)b * bins;
        double s = 0;
        /* the triangle's zero weights add nothing: its bins only */
        for (int k = v->band_lo[b]; k < v->band_hi[b]; k++)
            s += w[k] * pw[k] * (gain ? gain[k] : 1.0);
        e[b] = s;
    }
}

/* ---- encoder ------------------------------------------------------------------ */

/* YIN on seg [yin_win + tau_max + 2] (vocoder.py: yin); d [tau_max + 2]
 * scratch. */
static void yin(const fs_vocoder *v, int sr, const double *seg, double *d, double *f0,
                double *aperiodicity)
{
    int w = v->yin_win, tmax = v->tau_max;
    /* Blocks of YIN_BLOCK lags summed in registers over all j (vectorised
     * across the block): d[] is not reloaded and stored for every j. Each
     * d[tau] still sums in j order from 0, so results are bit-identical to
     * the plain double loop. */
    enum { YIN_BLOCK = 16 };
    int lag = 1;
    for (; lag + YIN_BLOCK - 1 <= tmax + 1; lag += YIN_BLOCK) {
        double acc[YIN_BLOCK] = {0};
        for (int j = 0; j < w; j++) {
            double xj = seg[j];
            const double *xs = seg + j + lag;
            for (int k = 0; k < YIN_BLOCK; k++) {
                double diff = xj - xs[k];
                acc[k] += diff * diff;
            }
        }
        memcpy(d + lag, acc, sizeof acc);
    }
    for (; lag <= tmax + 1; lag++) {
        double s = 0;
        for (int j = 0; j < w; j++) {
            double diff = seg[j] - seg[j + lag];
            s += diff * diff;
        }
        d[lag] = s;
    }
    /* d becomes cmnd in place */
    double cum = 0;
    d[0] = 1;
    for (int tau = 1; tau <= tmax + 1; tau++) {
        cum += d[tau];
        d[tau] = d[tau] * tau / (cum > 1e-300 ? cum : 1e-300);
    }
    int best = -1;
    for (int tau = v->tau_min; tau <= tmax && best < 0; tau++)
        if (d[tau] < YIN_THRESHOLD) {
            while (tau + 1 <= tmax && d[tau + 1] < d[tau]) tau++;
            best = tau;
        }
    if (best < 0) {
        best = v->tau_min;
        for (int tau = v->tau_min + 1; tau <= tmax; tau++)
            if (d[tau] < d[best]) best = tau;
    }
    double a = d[best - 1], b = d[best], c = d[best + 1], den = a - 2.0 * b + c;
    double shift = den > 0 ? 0.5 * (a - c) / den : 0.0;
    shift = shift < -0.5 ? -0.5 : shift > 0.5 ? 0.5 : shift;
    *f0 = sr / (best + shift);
    *aperiodicity = b < 0 ? 0 : b > 1 ? 1 : b;
}

size_t fs_vocoder_scratch(const fs_config *cfg, const fs_vocoder *v, int64_t enc_samples,
                          int64_t dec_frames)
{
    /* doubles, counted as 2 floats: per frame re, im, power, gain (4 n_fft),
     * bands (3), the YIN segment and d; encoder: the audio and 2 per frame;
     * decoder: excitation and overlap-add (2 n) and the noise (floats) */
    size_t frame = 4 * (size_t)v->n_fft + 3 * (size_t)v->bands +
                   (size_t)(v->yin_win + 2 * v->tau_max + 4) + 16;
    size_t fe = (size_t)(enc_samples / cfg->hop);
    size_t enc = 2 * (frame + (size_t)enc_samples + 2 * fe);
    size_t n = (size_t)dec_frames * (size_t)cfg->hop;
    size_t dec = 2 * (frame + 2 * n) + n;
    return (enc > dec ? enc : dec) + 64;
}

static double *take_d(fs_arena *a, size_t n)
{
    return (double *)fs_take(a, 2 * n);
}

frt_status fs_vocoder_encode(frt_fs_model *m, const float *pcm, int64_t n, float *lat)
{
    const fs_config *cfg = &m->cfg;
    const fs_vocoder *v = &m->voc;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    int64_t t = n / v->hop, seg_len = v->yin_win + v->tau_max + 2;
    int bins = v->n_fft / 2 + 1, dd = cfg->latent_dim;
    double *x = take_d(ar, (size_t)n), *re = take_d(ar, (size_t)v->n_fft);
    double *im = take_d(ar, (size_t)v->n_fft), *pw = take_d(ar, (size_t)bins);
    double *e = take_d(ar, (size_t)v->bands), *seg = take_d(ar, (size_t)seg_len);
    double *d = take_d(ar, (size_t)v->tau_max + 2);
    double *lf0 = take_d(ar, (size_t)t), *voiced = take_d(ar, (size_t)t);
    if (!x || !re || !im || !pw || !e || !seg || !d || !lf0 || !voiced) return FRT_ERR_INTERNAL;
    for (int64_t j = 0; j < n; j++) x[j] = pcm[j];
    double wsq = 0;
    for (int j = 0; j < v->win; j++) wsq += v->window[j] * v->window[j];
    float inv = 1.0f / cfg->latent_norm;
    for (int64_t f = 0; f < t; f++) {
        if (f % 64 == 0) FRT_TRY(fs_poll_cancel(m));
        double energy = frame_spectrum(v, x, n, f, re, im);
        for (int k = 0; k < bins; k++) pw[k] = re[k] * re[k] + im[k] * im[k];
        band_energies(v, pw, NULL, e);
        float *row = lat + f * dd;
        for (int b = 0; b < v->bands; b++) row[2 + b] = (float)log(e[b] + v->floor);

        int64_t start = f * v->hop + v->hop / 2 - seg_len / 2;
        for (int64_t j = 0; j < seg_len; j++) {
            int64_t s = start + j;
            seg[j] = s >= 0 && s < n ? x[s] : 0.0;
        }
        double f0, ap;
        yin(v, cfg->sample_rate, seg, d, &f0, &ap);
        bool vo = ap < VOICED_MAX_APERIODICITY && sqrt(energy / wsq) > VOICED_MIN_RMS;
        voiced[f] = vo;
        lf0[f] = log(f0);
        row[1] = (float)(vo ? 1.0 - ap : 0.0);
    }
    /* unvoiced frames: linear in log F0 between the voiced neighbours, held
     * at the edges (np.interp) */
    int64_t prev = -1;
    for (int64_t f = 0; f <= t; f++) {
        if (f < t && !voiced[f]) continue;
        for (int64_t k = prev + 1; k < f; k++) {
            double val;
            if (prev < 0 && f == t)
                val = log(DEFAULT_F0);
            else if (prev < 0)
                val = lf0[f];
            else if (f == t)
                val = lf0[prev];
            else
                val = lf0[prev] + (lf0[f] - lf0[prev]) * (double)(k - prev) / (double)(f - prev);
            lat[k * dd] = (float)val;
        }
        if (f < t) lat[f * dd] = (float)lf0[f];
        prev = f;
    }
    for (int64_t f = 0; f < t; f++)
        for (int c = 0; c < dd; c++)
            lat[f * dd + c] = (lat[f * dd + c] - v->mean[c]) / v->scale[c] * inv;
    ar->used = mark;
    return FRT_OK;
}

/* ---- decoder ------------------------------------------------------------------ */

/* Frame values [t] (feature c of f [c, t] when stride is t, or a plain
 * array) at sample position s: linear between frame centres, held beyond
 * the first and last (np.interp). */
static double at_sample(const fs_vocoder *v, const double *fv, int64_t t, int64_t s)
{
    double pos = (double)s - v->hop / 2.0;
    if (pos <= 0) return fv[0];
    if (pos >= (double)(t - 1) * v->hop) return fv[t - 1];
    int64_t k = (int64_t)(pos / v->hop);
    double frac = (pos - (double)k * v->hop) / v->hop;
    return fv[k] + frac * (fv[k + 1] - fv[k]);
}

frt_status fs_vocoder_decode(frt_fs_model *m, const float *z, const float *log_f0, int64_t t,
                             float *pcm)
{
    const fs_config *cfg = &m->cfg;
    const fs_vocoder *v = &m->voc;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    int64_t n = t * v->hop;
    int bins = v->n_fft / 2 + 1, sr = cfg->sample_rate;
    double *exc = take_d(ar, (size_t)n), *out = take_d(ar, (size_t)n);
    double *re = take_d(ar, (size_t)v->n_fft), *im = take_d(ar, (size_t)v->n_fft);
    double *pw = take_d(ar, (size_t)bins), *gain = take_d(ar, (size_t)bins);
    double *e = take_d(ar, (size_t)v->bands), *lt = take_d(ar, (size_t)v->bands);
    double *lg = take_d(ar, (size_t)v->bands);
    float *noise = fs_take(ar, (size_t)n);
    /* per-frame F0 and voicing, and (reusing seg-sized room) nothing else */
    double *fr = take_d(ar, 2 * (size_t)t);
    if (!exc || !out || !re || !im || !pw || !gain || !e || !lt || !lg || !noise || !fr)
        return FRT_ERR_INTERNAL;
    double *flf0 = fr, *fv = fr + t;
    for (int64_t f = 0; f < t; f++) {
        flf0[f] = log_f0 ? (double)log_f0[f] : (double)z[f] * v->scale[0] + v->mean[0];
        fv[f] = (double)z[t + f] * v->scale[1] + v->mean[1];
    }

    /* excitation: sqrt(v) pulses + sqrt(1 - v) noise */
    uint64_t state = v->noise_seed;
    frt_fs_noise_fill(&state, noise, (size_t)n);
    double phase = 0;
    for (int64_t s = 0; s < n; s++) {
        double f0 = exp(at_sample(v, flf0, t, s)), vs = at_sample(v, fv, t, s);
        vs = vs < 0 ? 0 : vs > 1 ? 1 : vs;
        double pulse = 0;
        phase += f0 / sr;
        if (phase >= 1.0) {
            phase -= floor(phase);
            pulse = sqrt(sr / f0);
        }
        exc[s] = sqrt(vs) * pulse + v->noise_gain * sqrt(1.0 - vs) * noise[s];
        out[s] = 0;
    }

    /* per frame: match the band powers, overlap-add */
    for (int64_t f = 0; f < t; f++) {
        if (f % 64 == 0) FRT_TRY(fs_poll_cancel(m));
        frame_spectrum(v, exc, n, f, re, im);
        for (int k = 0; k < bins; k++) pw[k] = re[k] * re[k] + im[k] * im[k];
        for (int b = 0; b < v->bands; b++) {
            double feat = (double)z[(size_t)(2 + b) * t + f] * v->scale[2 + b] + v->mean[2 + b];
            double target = exp(feat) - v->floor;
            lt[b] = log((target > 0 ? target : 0) + 1e-30);
        }
        band_energies(v, pw, NULL, e);
        for (int b = 0; b < v->bands; b++) lg[b] = 0.5 * (lt[b] - log(e[b] + 1e-30));
        for (int it = 0; it <= v->iters; it++) {
            for (int k = 0; k < bins; k++) {
                double s = 0, nk = v->mel_norm[k] > 0 ? v->mel_norm[k] : 1.0;
                for (int b = v->bin_band[k]; b < v->bands && v->band_lo[b] <= k; b++)
                    if (k < v->band_hi[b]) s += v->mel[(size_t)b * bins + k] * lg[b];
                s /= nk;
                gain[k] = it < v->iters ? exp(2.0 * s) : (v->mel_norm[k] > 0 ? exp(s) : 0.0);
            }
            if (it == v->iters) break;
            band_energies(v, pw, gain, e);
            for (int b = 0; b < v->bands; b++) lg[b] += 0.5 * (lt[b] - log(e[b] + 1e-30));
        }
        /* the real spectrum's Hermitian mirror, scaled, inverse transformed */
        for (int k = 0; k < bins; k++) re[k] *= gain[k], im[k] *= gain[k];
        im[0] = 0, im[bins - 1] = 0;
        for (int k = bins; k < v->n_fft; k++) re[k] = re[v->n_fft - k], im[k] = -im[v->n_fft - k];
        fft(v, re, im, true);
        int64_t start = f * v->hop + v->hop / 2 - v->win / 2;
        for (int j = 0; j < v->n_fft; j++) {
            int64_t s = start + j;
            if (s >= 0 && s < n) out[s] += re[j] / v->n_fft;
        }
    }
    if (v->eq_taps) {
        /* the equaliser: zero-phase FIR, zeros outside the output */
        const double *h = v->eq_taps;
        memcpy(exc, out, (size_t)n * sizeof(double));
        for (int64_t s = 0; s < n; s++) {
            if (s % 16384 == 0) FRT_TRY(fs_poll_cancel(m));
            double acc = h[0] * exc[s];
            if (s >= FS_EQ_HALF && s + FS_EQ_HALF < n)
                for (int j = 1; j <= FS_EQ_HALF; j++) acc += h[j] * (exc[s - j] + exc[s + j]);
            else
                for (int j = 1; j <= FS_EQ_HALF; j++)
                    acc += h[j] * ((s - j >= 0 ? exc[s - j] : 0.0) + (s + j < n ? exc[s + j] : 0.0));
            out[s] = acc;
        }
    }
    for (int64_t s = 0; s < n; s++) pcm[s] = (float)out[s];
    ar->used = mark;
    return FRT_OK;
}

/* ---- prompt_match -------------------------------------------------------------- */

/* model.py's LOUD_RANGE (40 dB in natural log of power) and VOICED. */
#define LOUD_RANGE 9.210340371976184
#define VOICED     0.5

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Feature c of frame f of x, normalised latents times mul, at x[f * sf +
 * c * sc]. */
typedef struct feat_view {
    const float *x;
    int64_t sf, sc;
    double mul;
} feat_view;

static double feat(const fs_vocoder *v, const feat_view *fv, int64_t f, int c)
{
    return (double)fv->x[f * fv->sf + c * fv->sc] * fv->mul * v->scale[c] + v->mean[c];
}

/* Median log F0 (of lf0, or feature 0 when NULL) over voiced frames and
 * mean band levels over speech frames; sorted [t] doubles of scratch. */
static void speech_stats(const fs_vocoder *v, const feat_view *fv, const float *lf0, int64_t t,
                         double *sorted, fs_speech_stats *st)
{
    double top = -INFINITY;
    for (int64_t f = 0; f < t; f++) {
        double level = 0;
        for (int b = 0; b < v->bands; b++) level += feat(v, fv, f, 2 + b);
        level /= v->bands;
        if (level > top) top = level;
    }
    int64_t loud = 0, voiced = 0;
    for (int b = 0; b < v->bands; b++) st->bands[b] = 0;
    for (int64_t f = 0; f < t; f++) {
        double level = 0;
        for (int b = 0; b < v->bands; b++) level += feat(v, fv, f, 2 + b);
        if (level / v->bands >= top - LOUD_RANGE) {
            for (int b = 0; b < v->bands; b++) st->bands[b] += feat(v, fv, f, 2 + b);
            loud++;
        }
        if (feat(v, fv, f, 1) > VOICED) sorted[voiced++] = lf0 ? (double)lf0[f] : feat(v, fv, f, 0);
    }
    for (int b = 0; b < v->bands; b++) st->bands[b] /= (double)loud;
    st->has_f0 = voiced > 0;
    if (voiced) {
        qsort(sorted, (size_t)voiced, sizeof(double), cmp_double);
        int64_t k = voiced / 2;
        st->f0 = voiced % 2 ? sorted[k] : (sorted[k - 1] + sorted[k]) / 2;
    }
}

frt_status fs_vocoder_prompt_stats(frt_fs_model *m, const float *lat, int64_t t,
                                   fs_speech_stats *st)
{
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    double *sorted = take_d(ar, (size_t)t);
    if (!sorted) return FRT_ERR_INTERNAL;
    feat_view fv = {lat, m->cfg.latent_dim, 1, m->cfg.latent_norm};
    speech_stats(&m->voc, &fv, NULL, t, sorted, st);
    ar->used = mark;
    return FRT_OK;
}

frt_status fs_vocoder_match(frt_fs_model *m, float *z, float *log_f0, int64_t t,
                            const fs_speech_stats *prompt)
{
    const fs_vocoder *v = &m->voc;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    double *sorted = take_d(ar, (size_t)t), *bands = take_d(ar, (size_t)v->bands);
    if (!sorted || !bands) return FRT_ERR_INTERNAL;
    fs_speech_stats out = {.bands = bands};
    feat_view fv = {z, 1, t, 1.0};
    speech_stats(v, &fv, log_f0, t, sorted, &out);
    for (int b = 0; b < v->bands; b++) {
        float dz = (float)((prompt->bands[b] - out.bands[b]) / v->scale[2 + b]);
        for (int64_t f = 0; f < t; f++) z[(size_t)(2 + b) * t + f] += dz;
    }
    if (out.has_f0 && prompt->has_f0)
        for (int64_t f = 0; f < t; f++) log_f0[f] = (float)(log_f0[f] + (prompt->f0 - out.f0));
    ar->used = mark;
    return FRT_OK;
}
