/* Jitter/playout buffer for fixed-size PCM16 frames (20 ms by default).
 *
 * Frames carry 32-bit unsigned sequence numbers, one per frame, compared with wraparound
 * (a is after b when (int32_t)(a - b) > 0), so any 32-bit counter works; providers' unbounded
 * decimal counters are reduced modulo 2^32 by the caller. Memory (capacity frames + one frame for
 * concealment) is allocated only by cvg_jitter_new; put/get/clear never allocate.
 *
 * put(seq, frame) stores a frame ahead of the playout point. get() is one playout tick: it writes
 * exactly one frame and reports its kind:
 *   CVG_FRAME_REAL       the frame that was put with the next sequence number, bit for bit;
 *   CVG_FRAME_CONCEALED  the last real frame repeated with a fade-out (-6 dB per repeat, as a linear
 *                        ramp inside the frame so there is no step), for up to CVG_JITTER_FADE_FRAMES
 *                        ticks in a row, the last one ramping to zero;
 *   CVG_FRAME_SILENCE    zeros: after the fade, before the first frame, after clear().
 *
 * Arrival handling (put):
 *   - a frame whose seq was already buffered or recently received is a duplicate (dropped);
 *   - a frame behind the playout point is late (dropped), except before the first tick has consumed
 *     anything, when it moves the playout point back if it fits;
 *   - a frame that does not fit in the ring (capacity frames from its oldest slot) drops the
 *     oldest buffered frames (overflow) and the playout point moves past them; if only missing
 *     positions are passed over, nothing is dropped and the gap keeps its full length (it needs no
 *     memory); a frame older than everything buffered with no room left is dropped (DROPPED);
 *   - a frame more than max_gap away from the playout point (either way) is a stream restart
 *     (resync): what is buffered is flushed and playout restarts at that frame.
 *
 * Playout (get):
 *   - the frame at the playout point is there: REAL;
 *   - it is missing but later frames are buffered: the position is lost and concealed (the timeline
 *     keeps its length), unless the current delay is under the target, in which case the buffer
 *     waits a tick for it (concealment without advancing: the delay grows);
 *   - nothing at or after the playout point is buffered: underrun. A tick is concealed without
 *     advancing; each such tick is remembered, so when later frames show that the missing positions
 *     were lost, those positions are skipped silently (they were already covered in real time).
 *
 * Adaptive delay: the buffer's clock is its own tick count (one per get). For every arriving frame it
 * records ticks - seq; over the last CVG_JITTER_WINDOW arrivals the spread (max - min) of that value
 * is the observed arrival jitter in frames. Its peak is held and released by one frame per
 * CVG_JITTER_DECAY arrivals once the window no longer shows it; the target delay is that peak clamped
 * to [min_delay, max_delay]. Playout starts (and restarts after an underrun) once the target delay is
 * buffered; while the delay exceeds target + CVG_JITTER_HEADROOM, one real frame every
 * CVG_JITTER_DISCARD_SPACING ticks is discarded (only when max_delay > 0).
 *
 * Zero-delay "gap filler" mode (min_delay = max_delay = 0; the inbound phone leg): no clock at all.
 * After every put, drain:   while (cvg_jitter_pending(jb) > 0) cvg_jitter_get(jb, out, n, &kind);
 * An in-order frame comes straight back out; a frame after a gap of k missing frames comes out after
 * k concealment frames (fade, then silence) so the output timeline has exactly the sender's length
 * (gaps up to max_gap; beyond that the buffer resyncs without filling). Never call get() when
 * pending is 0 in this mode: that is an underrun tick, and the next gap would be shortened by it.
 *
 * Counters (cvg_jitter_stats fills a cvg_jitter_counters): every frame put is counted once in
 * received and then exactly once in played, late, duplicate, overflow, discarded or flushed, or is
 * still buffered:
 *   received == played + late + duplicate + overflow + discarded + flushed + buffered
 * and every get is exactly one of played, concealed or silence:
 *   ticks == played + concealed + silence
 * One state must not be used by two threads at once.
 */
#ifndef CVG_JITTER_H
#define CVG_JITTER_H
#include "cvg.h"

typedef struct cvg_jitter cvg_jitter;

enum {
    CVG_FRAME_REAL = 0,
    CVG_FRAME_CONCEALED = 1,
    CVG_FRAME_SILENCE = 2,
};

/* What put() did with a frame. */
enum {
    CVG_PUT_STORED = 0,
    CVG_PUT_LATE = 1,
    CVG_PUT_DUPLICATE = 2,
    CVG_PUT_OVERFLOW = 3,   /* stored, but older buffered frames were dropped to make room */
    CVG_PUT_RESYNC = 4,     /* stored as the first frame of a restarted stream */
    CVG_PUT_DROPPED = 5,    /* not stored: older than all it holds, and no room (counted as overflow) */
};

#define CVG_JITTER_FADE_FRAMES 4
#define CVG_JITTER_WINDOW 128
#define CVG_JITTER_HEADROOM 2
#define CVG_JITTER_DECAY 64
#define CVG_JITTER_DISCARD_SPACING 4
#define CVG_JITTER_MAX_CAPACITY 65536
#define CVG_JITTER_MAX_FRAME_BYTES 65536
#define CVG_JITTER_MAX_GAP (1 << 30)
#define CVG_JITTER_MAX_BYTES (1 << 26)   /* capacity * frame_bytes: 64 MiB */

typedef struct {
    uint64_t received;     /* frames given to put() */
    uint64_t played;       /* real frames returned by get() */
    uint64_t late;         /* arrived behind the playout point */
    uint64_t duplicate;    /* seq already buffered or recently received */
    uint64_t overflow;     /* buffered frames dropped (oldest first) to make room */
    uint64_t discarded;    /* real frames dropped to bring the delay back to the target */
    uint64_t flushed;      /* buffered frames dropped by clear() or a resync */
    uint64_t lost;         /* positions the playout point passed without their frame */
    uint64_t concealed;    /* get() results of kind CONCEALED */
    uint64_t silence;      /* get() results of kind SILENCE */
    uint64_t ticks;        /* get() calls */
    uint64_t underruns;    /* ticks that found nothing at or after the playout point */
    uint64_t resyncs;      /* stream restarts (a jump beyond max_gap) */
    uint32_t buffered;     /* frames held now */
    uint32_t delay;        /* frames from the playout point to the newest received, inclusive */
    uint32_t target_delay; /* frames the buffer aims to hold, in [min_delay, max_delay] */
    uint32_t jitter;       /* observed arrival spread in frames (before clamping) */
} cvg_jitter_counters;

/* frame_bytes: even, 2..CVG_JITTER_MAX_FRAME_BYTES. capacity: 1..CVG_JITTER_MAX_CAPACITY frames.
 * capacity * frame_bytes <= CVG_JITTER_MAX_BYTES. min_delay <= max_delay < capacity.
 * capacity <= max_gap <= CVG_JITTER_MAX_GAP.
 * NULL on failure, with *err (if not NULL) set to CVG_ERR_LENGTH, CVG_ERR_ARG or CVG_ERR_ALLOC. */
CVG_API cvg_jitter *cvg_jitter_new(size_t frame_bytes, uint32_t capacity, uint32_t min_delay,
                                   uint32_t max_delay, uint32_t max_gap, int *err);
CVG_API void cvg_jitter_free(cvg_jitter *jb);
/* len must equal frame_bytes (CVG_ERR_LENGTH). *result (if not NULL) gets a CVG_PUT_* value. */
CVG_API int cvg_jitter_put(cvg_jitter *jb, uint32_t seq, const uint8_t *frame, size_t len,
                           int *result);
/* One playout tick: writes frame_bytes bytes to out (out_len must be at least that), *kind gets a
 * CVG_FRAME_* value. */
CVG_API int cvg_jitter_get(cvg_jitter *jb, uint8_t *out, size_t out_len, int *kind);
/* Frames from the playout point to the newest received, inclusive (0 when none is ahead): in
 * zero-delay mode, the number of get() calls that drain the buffer exactly. */
CVG_API uint32_t cvg_jitter_pending(const cvg_jitter *jb);
/* Barge-in: drop every buffered frame (counted as flushed); the next put starts a new stream;
 * get() returns silence until then. Counters and the delay estimate are kept. */
CVG_API int cvg_jitter_clear(cvg_jitter *jb);
/* Back to the state cvg_jitter_new returned, counters included. */
CVG_API int cvg_jitter_reset(cvg_jitter *jb);
CVG_API int cvg_jitter_stats(const cvg_jitter *jb, cvg_jitter_counters *out);
CVG_API size_t cvg_jitter_frame_bytes(const cvg_jitter *jb);

/* Zero-delay mode only (max_delay == 0, else CVG_ERR_ARG): the put-then-drain loop above in one
 * call, for the inbound phone leg. pcm holds len / frame_bytes whole frames (CVG_ERR_LENGTH
 * otherwise), numbered seq, seq + 1, ...; each frame that is stored (or resyncs) is followed by
 * draining the buffer into out, so out gets, frame after frame, the concealment for a gap in front
 * of it and then the frame itself (late and duplicate frames give nothing). *out_len: capacity in,
 * bytes written out; the capacity must be at least (frames + max_gap) * frame_bytes, the most one
 * call can write. out must not overlap pcm. tally gets what the caller counts per stream:
 * [CVG_FILL_LATE] frames dropped as late or duplicate, [CVG_FILL_GAPS] frames that had a gap filled
 * in front of them, [CVG_FILL_CONCEALED] concealment frames written. */
enum { CVG_FILL_LATE = 0, CVG_FILL_GAPS = 1, CVG_FILL_CONCEALED = 2, CVG_FILL_TALLIES = 3 };
CVG_API int cvg_jitter_fill(cvg_jitter *jb, uint32_t seq, const uint8_t *pcm, size_t len,
                            uint8_t *out, size_t *out_len, uint32_t tally[CVG_FILL_TALLIES]);
/* The room cvg_jitter_fill needs for len bytes of frames: a first put at most max_gap ahead
 * drains max_gap + 1 frames, each later one a frame. 0 when the buffer is not in zero-delay mode. */
CVG_API size_t cvg_jitter_fill_room(const cvg_jitter *jb, size_t len);

#endif
