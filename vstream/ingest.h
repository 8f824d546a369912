/* Internal: video ingest through FFmpeg on its own thread.
 *
 * Sources: a file path (any container FFmpeg reads, HLS playlists
 * included), rtsp:// (TCP or UDP transport), http(s):// (files, HLS, live
 * streams), a V4L2 camera (/dev/videoN, through libavdevice), "-" for
 * standard input, or anything FFmpeg opens with an explicit input format
 * (opts.format, e.g. "lavfi" with "testsrc=size=64x48:rate=25").
 *
 * The ingest thread demuxes and decodes, samples frames at opts.fps by
 * presentation time, converts them to RGB24 and hands them to the consumer
 * through a bounded queue of opts.queue_len frames. Decoding never waits for
 * the consumer on a live source: when the queue is full the oldest queued
 * frame is dropped (and counted). A file (not realtime) is never dropped
 * from: the ingest thread waits for room instead. Memory is bounded by the
 * queue: nothing grows with the stream.
 *
 * Stream time is the session's clock: 0 at the first frame, monotonic. Each
 * connection is a segment; within a segment time follows the frames'
 * presentation timestamps (best effort; a frame without one gets the
 * previous time plus the nominal frame interval of a file, or, for a live
 * source or without a frame rate, the wall-clock time since the previous
 * frame). A new segment (after a
 * reconnect, or a timestamp going backwards) starts at the previous frame's
 * time plus the wall-clock gap, so a gap shows as a jump, never a reset.
 *
 * Sampling: with fps > 0 the sample grid is k / fps in stream time; a frame
 * is taken when its time reaches the next grid point not yet taken (within
 * 1 us), and the next grid point becomes the first one after the frame's
 * time. So a 25 fps file sampled at 1 fps gives the frames at 0, 1, 2, ...
 * s, and a variable-frame-rate file gives the first frame at or after each
 * grid point. fps <= 0 takes every frame.
 *
 * Live sources (rtsp, rtmp, udp, rtp, srt, tcp, a V4L2 device, http(s) with
 * no known duration; or opts.live = 1) reconnect on a read error, a read
 * timeout or end of stream: tries start 250 ms apart and the wait doubles
 * up to opts.reconnect_max_ms; after opts.max_reconnects failed tries in a
 * row (-1: no limit) the stream ends with the last failure.
 * Files, HLS playlists with a duration and stdin end at end of stream (files
 * do not loop); their read errors end the stream with that status (stdin
 * never reconnects, though opts.live = 1 gives it drop-oldest queueing). The
 * first open is never retried: its failure is frt_ingest_open's result.
 *
 * Timeouts: every blocking FFmpeg call runs under an interrupt callback with
 * a deadline (open_timeout_ms for opening, read_timeout_ms for each read; 0
 * disables a deadline) that also fires at once when the ingest is stopped,
 * so frt_ingest_close returns promptly even in the middle of a read.
 * Standard input is read through poll() for the same reason.
 *
 * Threads: a frt_ingest belongs to one consumer thread, which calls
 * frt_ingest_next and frt_ingest_close. frt_ingest_stats and frt_ingest_stop
 * may be called from any thread at any time before close. */
#ifndef FRT_VSTREAM_INGEST_H
#define FRT_VSTREAM_INGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "flashrt/core.h"

typedef struct frt_ingest_opts {
    double fps;                 /* sampling rate (1); <= 0: every frame */
    int open_timeout_ms;        /* 10000; 0: none */
    int read_timeout_ms;        /* 10000; 0: none */
    bool realtime;              /* pace a file by its timestamps and drop like a live source */
    int live;                   /* -1 from the source (default), 0 file-like, 1 live */
    const char *rtsp_transport; /* "tcp", "udp" or NULL (FFmpeg's default: UDP, then TCP) */
    int reconnect_max_ms;       /* backoff cap (8000) */
    int max_reconnects;         /* failed tries in a row before giving up (-1: no limit) */
    int queue_len;              /* sampled frames between the threads (4), >= 1 */
    int out_width, out_height;  /* 0, 0: native size; one of them 0: keep the aspect */
    const char *format;         /* input format ("v4l2", "lavfi", ...) or NULL: probe */
    int decode_threads;         /* decoder threads (1); 0: FFmpeg decides */
} frt_ingest_opts;

/* The defaults above. */
void frt_ingest_opts_default(frt_ingest_opts *o);

typedef struct frt_ingest frt_ingest;

typedef struct frt_ingest_frame {
    const uint8_t *rgb; /* RGB24, rows of width * 3 bytes; owned by the ingest, valid
                           until the next frt_ingest_next or frt_ingest_close */
    int width, height;
    double time_s; /* stream time of this frame */
    int64_t index; /* 0, 1, 2, ... among sampled frames (dropped ones included) */
    double gap_s;  /* stream time lost to a reconnect just before this frame, else 0 */
} frt_ingest_frame;

typedef struct frt_ingest_stats {
    int64_t decoded;    /* frames out of the decoder */
    int64_t sampled;    /* frames taken by the sampler */
    int64_t delivered;  /* frames handed to the consumer */
    int64_t dropped;    /* sampled frames dropped because the consumer lagged */
    int64_t reconnects; /* successful reconnections */
    double gap_s;       /* stream time spent reconnecting, in all */
    bool live;          /* treated as a live source */
    bool finished;      /* the ingest thread has stopped */
    frt_status status;  /* why it stopped: FRT_OK at end of stream */
} frt_ingest_stats;

/* Open url (copied) and start the ingest thread. opts may be NULL
 * (defaults). The source is opened on the calling thread, so a missing file
 * (FRT_ERR_NOT_FOUND), a file FFmpeg cannot read or one without a video
 * stream (FRT_ERR_FORMAT), no decoder (FRT_ERR_UNSUPPORTED), a refused
 * connection (FRT_ERR_IO) or a deadline (FRT_ERR_TIMEOUT) are reported here,
 * with the url and FFmpeg's reason in the message. */
frt_status frt_ingest_open(const char *url, const frt_ingest_opts *opts, frt_ingest **out);

/* Wait up to timeout_ms (< 0: no limit) for the next sampled frame.
 * FRT_OK with frame->rgb set: a frame. FRT_OK with frame->rgb NULL: the
 * stream ended cleanly (and stays ended). FRT_ERR_TIMEOUT: nothing yet.
 * FRT_ERR_CANCELLED: frt_ingest_stop was called. Any other status: the
 * source failed for good (message recorded on this thread). */
frt_status frt_ingest_next(frt_ingest *ing, frt_ingest_frame *frame, int timeout_ms);

/* A consistent copy of the counters. Thread-safe. */
void frt_ingest_get_stats(frt_ingest *ing, frt_ingest_stats *out);

/* Ask the ingest thread to stop (interrupts any blocking I/O) and wake a
 * waiting frt_ingest_next. Thread-safe; does not free anything. */
void frt_ingest_stop(frt_ingest *ing);

/* Stop, join the thread and free everything (frames handed out included).
 * NULL is a no-op. */
void frt_ingest_close(frt_ingest *ing);

/* The stream clock and sampler, exposed for tests. Feed every decoded
 * frame in order. */
typedef struct frt_ingest_clock {
    double fps;        /* sampling rate; <= 0 takes every frame */
    double nominal_s;  /* frame interval for frames without a timestamp (0: unknown) */
    bool have_last;    /* a frame has been timed */
    bool new_segment;  /* the next frame starts a segment */
    double seg_offset; /* stream time of the segment's first frame */
    double seg_pts;    /* its presentation time */
    double last_t;     /* stream time of the previous frame */
    double last_pts;   /* its presentation time (NAN when it had none) */
    double last_wall;  /* its arrival (wall clock, s) */
    double next_sample;
    bool sampled_any;
} frt_ingest_clock;

void frt_ingest_clock_init(frt_ingest_clock *c, double fps, double nominal_s);
/* A reconnect: the next frame starts a segment, after the wall-clock time
 * since the previous frame. */
void frt_ingest_clock_break(frt_ingest_clock *c);
/* Stream time of a frame with presentation time pts_s (NAN: none) that
 * arrived at wall_s; *gap_s gets the jump when it starts a segment after a
 * break (else 0). */
double frt_ingest_clock_time(frt_ingest_clock *c, double pts_s, double wall_s, double *gap_s);
/* Whether the sampler takes a frame at stream time t (advances the grid). */
bool frt_ingest_clock_take(frt_ingest_clock *c, double t);

#endif
