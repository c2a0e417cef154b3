/* Jitter/playout buffer: see cvg_jitter.h for the contract.
 *
 * Layout of the timeline, in sequence numbers (all comparisons wraparound-aware):
 *
 *     next            base                     base + cap
 *      |  hole region  |  ring: cap slots        |
 *
 * `next` is the playout point (the seq the next tick outputs). The ring holds the frames for
 * [base, base + cap); positions in [next, base) are known to be missing (a gap longer than the ring
 * that nothing can fill any more), so they need no memory: a gap of any length up to max_gap costs
 * nothing to conceal. Normally base == next.
 *
 * Invariant: when newest >= next, the frame `newest` is stored (nothing ever drops the newest frame),
 * so "newest < next" is exactly "nothing at or after the playout point".
 */
#include <string.h>

#include "cvg_jitter.h"

struct cvg_jitter {
    /* configuration */
    size_t frame_bytes;
    uint32_t cap, min_delay, max_delay, max_gap;

    /* stream position */
    int started;        /* a frame has anchored the stream */
    int playing;        /* the target delay was reached; ticks consume frames */
    int advanced;       /* the playout point moved since the anchor */
    int have_last;      /* `last` holds a real frame to conceal from */
    uint32_t next, base, head, newest, nstored;
    int64_t newest_ext; /* newest, unwrapped, for the jitter estimate */
    uint32_t credit;    /* underrun ticks not yet matched by lost positions */
    uint32_t conceal_run;
    uint64_t recv_mask; /* bit i: the frame for next-1-i was received */

    /* arrival jitter estimate */
    int64_t win[CVG_JITTER_WINDOW];
    uint32_t win_len, win_pos;
    uint32_t jitter;    /* spread over the window, in frames */
    uint32_t peak;      /* jitter held at its highest, decaying slowly (1 frame per DECAY arrivals) */
    uint32_t decay_count;
    uint32_t target;
    uint32_t since_discard; /* ticks since the last discard */

    cvg_jitter_counters st;
    int16_t *slots;     /* cap * frame_bytes */
    int16_t *last;      /* frame_bytes */
    uint8_t *present;   /* cap flags */
    int16_t mem[];      /* one allocation: slots, last, present */
};

static inline int32_t sdiff(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

static inline uint64_t shl64(uint64_t m, uint64_t k) { return k >= 64 ? 0 : m << k; }

static inline uint8_t *slot_ptr(cvg_jitter *jb, uint32_t idx)
{
    return (uint8_t *)jb->slots + (size_t)idx * jb->frame_bytes;
}

cvg_jitter *cvg_jitter_new(size_t frame_bytes, uint32_t capacity, uint32_t min_delay,
                           uint32_t max_delay, uint32_t max_gap, int *err)
{
    int e = CVG_OK;
    if (frame_bytes < 2 || frame_bytes > CVG_JITTER_MAX_FRAME_BYTES || frame_bytes % 2)
        e = CVG_ERR_LENGTH;
    else if (capacity < 1 || capacity > CVG_JITTER_MAX_CAPACITY || min_delay > max_delay ||
             (size_t)capacity * frame_bytes > CVG_JITTER_MAX_BYTES || max_delay >= capacity ||
             max_gap < capacity || max_gap > CVG_JITTER_MAX_GAP)
        e = CVG_ERR_ARG;
    cvg_jitter *jb = NULL;
    if (e == CVG_OK) {
        size_t n = sizeof(cvg_jitter) + (size_t)capacity * frame_bytes + frame_bytes + capacity;
        jb = cvg_calloc(1, n);
        if (!jb) e = CVG_ERR_ALLOC;
    }
    if (err) *err = e;
    if (e != CVG_OK) return NULL;
    jb->frame_bytes = frame_bytes;
    jb->cap = capacity;
    jb->min_delay = min_delay;
    jb->max_delay = max_delay;
    jb->max_gap = max_gap;
    jb->slots = jb->mem;
    jb->last = jb->mem + (size_t)capacity * frame_bytes / 2;
    jb->present = (uint8_t *)(jb->last + frame_bytes / 2);
    cvg_jitter_reset(jb);
    return jb;
}

void cvg_jitter_free(cvg_jitter *jb) { cvg_free(jb); }

size_t cvg_jitter_frame_bytes(const cvg_jitter *jb) { return jb ? jb->frame_bytes : 0; }

/* Forget the stream (buffered frames are counted by the caller); keep counters and the estimate. */
static void drop_stream(cvg_jitter *jb)
{
    memset(jb->present, 0, jb->cap);
    jb->nstored = 0;
    jb->started = jb->playing = jb->advanced = 0;
    jb->credit = 0;
    jb->recv_mask = 0;
}

int cvg_jitter_reset(cvg_jitter *jb)
{
    if (!jb) return CVG_ERR_NULL;
    drop_stream(jb);
    jb->have_last = 0;
    jb->conceal_run = 0;
    jb->win_len = jb->win_pos = 0;
    jb->target = jb->min_delay;
    jb->jitter = jb->peak = jb->decay_count = 0;
    jb->since_discard = CVG_JITTER_DISCARD_SPACING;
    memset(&jb->st, 0, sizeof jb->st);
    return CVG_OK;
}

int cvg_jitter_clear(cvg_jitter *jb)
{
    if (!jb) return CVG_ERR_NULL;
    jb->st.flushed += jb->nstored;
    drop_stream(jb);
    /* Barge-in means the caller must hear nothing more of it: no fade tail of cleared audio. */
    jb->have_last = 0;
    return CVG_OK;
}

uint32_t cvg_jitter_pending(const cvg_jitter *jb)
{
    if (!jb || !jb->started || sdiff(jb->newest, jb->next) < 0) return 0;
    return (uint32_t)sdiff(jb->newest, jb->next) + 1;
}

int cvg_jitter_stats(const cvg_jitter *jb, cvg_jitter_counters *out)
{
    if (!jb || !out) return CVG_ERR_NULL;
    *out = jb->st;
    out->buffered = jb->nstored;
    out->delay = cvg_jitter_pending(jb);
    out->target_delay = jb->target;
    out->jitter = jb->jitter;
    return CVG_OK;
}

/* ---- arrivals ---------------------------------------------------------------------------- */

/* A new stream starts at seq: the playout point, the ring and the jitter window restart there. */
static void anchor(cvg_jitter *jb, uint32_t seq)
{
    jb->started = 1;
    jb->playing = jb->advanced = 0;
    jb->next = jb->base = jb->newest = seq;
    jb->head = 0;
    jb->newest_ext = 0;
    jb->credit = 0;
    jb->recv_mask = 0;
    jb->win_len = jb->win_pos = 0;
}

/* Record an arrival for the delay estimate: ticks - seq is constant for a perfectly regular sender,
 * so its spread over the window is the delay (in ticks) that would have absorbed every arrival. */
static void note_arrival(cvg_jitter *jb, uint32_t seq)
{
    int64_t ext = jb->newest_ext + sdiff(seq, jb->newest);
    jb->win[jb->win_pos] = (int64_t)jb->st.ticks - ext;
    jb->win_pos = (jb->win_pos + 1) % CVG_JITTER_WINDOW;
    if (jb->win_len < CVG_JITTER_WINDOW) jb->win_len++;
    /* Hold the previous estimate until the window says something (right after an anchor). */
    if (jb->win_len < CVG_JITTER_WINDOW / 8) return;
    int64_t lo = jb->win[0], hi = jb->win[0];
    for (uint32_t i = 1; i < jb->win_len; i++) {
        if (jb->win[i] < lo) lo = jb->win[i];
        if (jb->win[i] > hi) hi = jb->win[i];
    }
    int64_t spread = hi - lo;
    jb->jitter = spread > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)spread;
    /* Attack at once, release slowly: a delay spike that recurs every few seconds (a congested
     * uplink, a TCP retransmit) is still covered the next time instead of causing an underrun
     * and then a run of discards each time. */
    if (jb->jitter >= jb->peak) {
        jb->peak = jb->jitter;
        jb->decay_count = 0;
    } else if (++jb->decay_count >= CVG_JITTER_DECAY) {
        jb->peak--;
        jb->decay_count = 0;
    }
    uint32_t t = jb->peak;
    if (t < jb->min_delay) t = jb->min_delay;
    if (t > jb->max_delay) t = jb->max_delay;
    jb->target = t;
}

static void store(cvg_jitter *jb, uint32_t seq, const uint8_t *frame)
{
    uint32_t idx = (uint32_t)((jb->head + (uint64_t)(seq - jb->base)) % jb->cap);
    memcpy(slot_ptr(jb, idx), frame, jb->frame_bytes);
    jb->present[idx] = 1;
    jb->nstored++;
    if (sdiff(seq, jb->newest) > 0) {
        jb->newest_ext += sdiff(seq, jb->newest);
        jb->newest = seq;
    }
}

/* Make room for seq >= base + cap: move the ring forward, dropping the oldest buffered frames
 * (overflow). If any were dropped, the playout point moves past them; otherwise it stays, and the
 * skipped positions become the hole region (a pure gap keeps its full length). */
static int slide(cvg_jitter *jb, uint32_t seq)
{
    uint32_t s = (seq - jb->base) - jb->cap + 1;
    uint32_t n = s < jb->cap ? s : jb->cap;
    uint32_t dropped = 0, last_i = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (jb->present[(jb->head + i) % jb->cap]) {
            dropped++;
            last_i = i;
        }
    }
    if (dropped) {
        uint32_t new_next = jb->base + last_i + 1;
        jb->st.overflow += dropped;
        jb->st.lost += (new_next - jb->next) - dropped;
        jb->recv_mask = shl64(jb->recv_mask, jb->base - jb->next);   /* hole region: none came */
        for (uint32_t i = 0; i <= last_i; i++) {
            uint32_t idx = (jb->head + i) % jb->cap;
            jb->recv_mask = (jb->recv_mask << 1) | jb->present[idx];
            jb->present[idx] = 0;
        }
        jb->nstored -= dropped;
        jb->next = new_next;
        jb->advanced = 1;
    }
    jb->base += s;
    jb->head = (uint32_t)((jb->head + (uint64_t)s) % jb->cap);
    return dropped ? CVG_PUT_OVERFLOW : CVG_PUT_STORED;
}

int cvg_jitter_put(cvg_jitter *jb, uint32_t seq, const uint8_t *frame, size_t len, int *result)
{
    if (!jb || !frame) return CVG_ERR_NULL;
    if (len != jb->frame_bytes) return CVG_ERR_LENGTH;
    int r = CVG_PUT_STORED;
    jb->st.received++;
    if (!jb->started) {
        anchor(jb, seq);
        goto stored;
    }
    int32_t d = sdiff(seq, jb->next);
    if (d > (int64_t)jb->max_gap || d < -(int64_t)jb->max_gap) {
        jb->st.flushed += jb->nstored;
        jb->st.resyncs++;
        drop_stream(jb);
        anchor(jb, seq);
        r = CVG_PUT_RESYNC;
        goto stored;
    }
    if (d < 0) {
        /* Nothing played yet: a reordered first frame moves the start back if the ring has room. */
        if (!jb->advanced && jb->next == jb->base && (uint32_t)sdiff(jb->newest, seq) < jb->cap) {
            uint32_t k = (uint32_t)-d;
            jb->head = (jb->head + jb->cap - k) % jb->cap;
            jb->next = jb->base = seq;
            goto stored;
        }
        if (d >= -64 && ((jb->recv_mask >> (-d - 1)) & 1)) {
            jb->st.duplicate++;
            r = CVG_PUT_DUPLICATE;
        } else {
            jb->st.late++;
            note_arrival(jb, seq);
            r = CVG_PUT_LATE;
        }
        goto out;
    }
    if (sdiff(seq, jb->base) < 0) {
        /* In the hole region. It only exists after a slide, which leaves the newest frame in the
         * ring's last slot (newest == base + cap - 1 from then on), so there is no room for this
         * frame without dropping a newer one: it is the oldest, and it goes. */
        jb->st.overflow++;
        r = CVG_PUT_DROPPED;
        goto out;
    } else if (seq - jb->base >= jb->cap) {
        r = slide(jb, seq);
    } else {
        uint32_t idx = (jb->head + (seq - jb->base)) % jb->cap;
        if (jb->present[idx]) {
            jb->st.duplicate++;
            r = CVG_PUT_DUPLICATE;
            goto out;
        }
    }
stored:
    note_arrival(jb, seq);
    store(jb, seq, frame);
out:
    if (result) *result = r;
    return CVG_OK;
}

/* ---- playout ----------------------------------------------------------------------------- */

/* Move the playout point one position; `received` says whether that position's frame arrived. */
static void advance_one(cvg_jitter *jb, int received)
{
    if (jb->next == jb->base) {
        if (jb->present[jb->head]) {
            jb->present[jb->head] = 0;
            jb->nstored--;
        }
        jb->head = (jb->head + 1) % jb->cap;
        jb->base++;
    }
    jb->next++;
    jb->recv_mask = (jb->recv_mask << 1) | (uint64_t)(received != 0);
    jb->advanced = 1;
}

static void put_sample(uint8_t *out, size_t i, int16_t v) { memcpy(out + 2 * i, &v, 2); }

/* Write one concealment frame: the last real frame faded by 6 dB per repeat, the gain ramping
 * linearly across the frame (no steps); the last repeat ramps to zero; silence after that. */
static int conceal(cvg_jitter *jb, uint8_t *out)
{
    uint32_t r = ++jb->conceal_run;
    if (!jb->have_last || r > CVG_JITTER_FADE_FRAMES) {
        jb->conceal_run = CVG_JITTER_FADE_FRAMES + 1;   /* saturate */
        memset(out, 0, jb->frame_bytes);
        jb->st.silence++;
        return CVG_FRAME_SILENCE;
    }
    size_t n = jb->frame_bytes / 2;
    int32_t g0 = 32768 >> (r - 1);
    int32_t g1 = r == CVG_JITTER_FADE_FRAMES ? 0 : 32768 >> r;
    for (size_t i = 0; i < n; i++) {
        int32_t g = g0 + (int32_t)((int64_t)(g1 - g0) * (int64_t)(i + 1) / (int64_t)n);
        put_sample(out, i, (int16_t)((int32_t)jb->last[i] * g / 32768));
    }
    jb->st.concealed++;
    return CVG_FRAME_CONCEALED;
}

static int play(cvg_jitter *jb, uint8_t *out)
{
    const uint8_t *src = slot_ptr(jb, jb->head);
    memcpy(out, src, jb->frame_bytes);
    memcpy(jb->last, src, jb->frame_bytes);
    jb->have_last = 1;
    jb->conceal_run = 0;
    jb->credit = 0;
    jb->st.played++;
    advance_one(jb, 1);
    return CVG_FRAME_REAL;
}

static int tick(cvg_jitter *jb, uint8_t *out)
{
    if (!jb->started) return conceal(jb, out);
    int discarded = 0;
    for (;;) {
        if (sdiff(jb->newest, jb->next) < 0) {
            /* Underrun: remember the tick, so that positions later found lost are not
             * concealed a second time (they were covered in real time by this tick). */
            jb->st.underruns++;
            if (jb->credit < jb->max_gap) jb->credit++;
            jb->playing = 0;
            return conceal(jb, out);
        }
        uint32_t cur = (uint32_t)sdiff(jb->newest, jb->next);   /* frames after this one */
        if (!jb->playing) {
            if (cur < jb->target) return conceal(jb, out);        /* building up the delay */
            jb->playing = 1;
        }
        if (jb->next == jb->base && jb->present[jb->head]) {
            /* Too much delay: drop a frame, at most one every DISCARD_SPACING ticks, so the
             * catch-up is a gentle time compression rather than a cut. */
            if (jb->max_delay > 0 && !discarded && cur > jb->target + CVG_JITTER_HEADROOM &&
                jb->since_discard >= CVG_JITTER_DISCARD_SPACING) {
                jb->st.discarded++;
                jb->since_discard = 0;
                advance_one(jb, 1);
                discarded = 1;
                continue;
            }
            return play(jb, out);
        }
        /* A hole at the playout point, with later frames buffered. */
        if (jb->credit > 0) {
            uint32_t k = 1;
            if (jb->next != jb->base) {
                uint32_t region = jb->base - jb->next;
                k = jb->credit < region ? jb->credit : region;
                jb->next += k;
                jb->recv_mask = shl64(jb->recv_mask, k);
                jb->advanced = 1;
            } else {
                advance_one(jb, 0);
            }
            jb->credit -= k;
            jb->st.lost += k;
            continue;
        }
        if (cur < jb->target) return conceal(jb, out);            /* wait a tick for it */
        jb->st.lost++;
        advance_one(jb, 0);
        return conceal(jb, out);
    }
}

int cvg_jitter_get(cvg_jitter *jb, uint8_t *out, size_t out_len, int *kind)
{
    if (!jb || !out) return CVG_ERR_NULL;
    if (out_len < jb->frame_bytes) return CVG_ERR_LENGTH;
    jb->st.ticks++;
    if (jb->since_discard < CVG_JITTER_DISCARD_SPACING) jb->since_discard++;
    int k = tick(jb, out);
    if (kind) *kind = k;
    return CVG_OK;
}

/* ---- zero-delay gap filling in one call ---------------------------------------------------- */

size_t cvg_jitter_fill_room(const cvg_jitter *jb, size_t len)
{
    if (!jb || jb->max_delay != 0) return 0;
    return (len / jb->frame_bytes + jb->max_gap) * jb->frame_bytes;
}

int cvg_jitter_fill(cvg_jitter *jb, uint32_t seq, const uint8_t *pcm, size_t len, uint8_t *out,
                    size_t *out_len, uint32_t tally[CVG_FILL_TALLIES])
{
    if (!jb || !out_len || !tally || (len && !pcm) || (*out_len && !out)) return CVG_ERR_NULL;
    if (jb->max_delay != 0) return CVG_ERR_ARG;
    size_t fb = jb->frame_bytes;
    if (len % fb) return CVG_ERR_LENGTH;
    size_t frames = len / fb;
    if (*out_len < cvg_jitter_fill_room(jb, len)) return CVG_ERR_LENGTH;
    if (len && out < pcm + len && pcm < out + *out_len) return CVG_ERR_OVERLAP;
    size_t n = 0;
    tally[CVG_FILL_LATE] = tally[CVG_FILL_GAPS] = tally[CVG_FILL_CONCEALED] = 0;
    for (size_t i = 0; i < frames; i++) {
        int r;
        cvg_jitter_put(jb, seq + (uint32_t)i, pcm + i * fb, fb, &r);
        if (r == CVG_PUT_LATE || r == CVG_PUT_DUPLICATE) tally[CVG_FILL_LATE]++;
        if (r != CVG_PUT_STORED && r != CVG_PUT_RESYNC) continue;
        uint32_t pending = cvg_jitter_pending(jb);
        if (pending > 1) tally[CVG_FILL_GAPS]++;
        for (; pending; pending--, n += fb) {
            int kind;
            cvg_jitter_get(jb, out + n, fb, &kind);
            if (kind != CVG_FRAME_REAL) tally[CVG_FILL_CONCEALED]++;
        }
    }
    *out_len = n;
    return CVG_OK;
}
