/* Internal: audio in and out for speech.
 *
 * In: any file libsndfile reads (WAV, FLAC, OGG/Vorbis, ...), downmixed to
 * mono and resampled (windowed sinc) to the model's rate.
 * Out: sinks that take mono float chunks as they are produced: a file
 * through libsndfile (format from the extension), a streaming WAV or raw
 * s16le on a file descriptor (stdout into a pipe), the sound card through
 * PortAudio (FRT_PORTAUDIO builds). */
#ifndef FRT_SPEECH_AUDIO_IO_H
#define FRT_SPEECH_AUDIO_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "flashrt/core.h"

/* Longest audio file frt_audio_read accepts (frames at the file's rate,
 * at most this many seconds of 48 kHz: 28.8M frames, 115 MB): a reference
 * clip longer than this is truncated with a warning. */
#define FRT_AUDIO_READ_MAX_SECONDS 600

/* Read path, downmix (mean of the channels), clip to [-1, 1] (NaN and Inf
 * give 0) and resample to rate Hz. *pcm is malloc'ed (free()), *n its
 * samples. Missing file FRT_ERR_NOT_FOUND; unreadable or not audio
 * FRT_ERR_FORMAT (libsndfile's reason included); no samples FRT_ERR_FORMAT.
 * Thread-safe. */
frt_status frt_audio_read(const char *path, int rate, float **pcm, size_t *n);

/* Windowed-sinc resampling of in[n_in] from rate_in to rate_out Hz (Kaiser
 * window, 16 zero crossings each side, cutoff just under the lower Nyquist
 * frequency). *out is malloc'ed, *n_out = ceil(n_in * rate_out / rate_in).
 * Equal rates copy. Thread-safe. */
frt_status frt_resample(const float *in, size_t n_in, int rate_in, int rate_out, float **out,
                        size_t *n_out);

/* Float [-1, 1] to PCM16 with rounding and clipping (NaN gives 0). */
void frt_pcm16_from_float(const float *in, short *out, size_t n);

typedef struct frt_audio_sink frt_audio_sink;

/* A file, format from the extension: .wav (PCM16), .flac (PCM16), .ogg /
 * .oga (Vorbis). Unknown extension FRT_ERR_UNSUPPORTED; cannot create
 * FRT_ERR_IO. */
frt_status frt_audio_sink_file(const char *path, int rate, frt_audio_sink **out);
/* A WAV stream on fd (not closed by the sink): a header written at once
 * whose sizes are a placeholder (data 0x7FFFF000 bytes, as sox writes to a
 * pipe: sox, ffmpeg and aplay read on to the end of the stream), then PCM16
 * as chunks arrive. With raw, no header: bare s16le. Failures: broken pipe,
 * ENOSPC ("disk full") as FRT_ERR_IO. */
frt_status frt_audio_sink_fd(int fd, int rate, bool raw, frt_audio_sink **out);
/* The default sound output through PortAudio. No device, or a build
 * without PortAudio: FRT_ERR_DEVICE / FRT_ERR_UNSUPPORTED. */
frt_status frt_audio_sink_play(int rate, frt_audio_sink **out);

/* Write n mono samples. Failure FRT_ERR_IO (disk full, closed pipe: see
 * frt_audio_sink_broken_pipe) or FRT_ERR_DEVICE. */
frt_status frt_audio_sink_write(frt_audio_sink *s, const float *pcm, size_t n);
/* True after a write failed because the reader went away (EPIPE): the
 * caller should stop quietly rather than report a failure. */
bool frt_audio_sink_broken_pipe(const frt_audio_sink *s);
/* Samples written so far. */
size_t frt_audio_sink_samples(const frt_audio_sink *s);
/* Flush, finish the file (its header) or drain the sound card, free. The
 * status says whether that last step worked. NULL is fine. */
frt_status frt_audio_sink_close(frt_audio_sink *s);

#endif
