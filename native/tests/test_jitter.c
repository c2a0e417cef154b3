/* Jitter/playout buffer tests: scenarios, counter invariants, a seeded random walk, and (built with
 * -DCVG_COUNT_ALLOCS=1, as `make ctest` does) zero allocations between _new and _free.
 * Prints one line per check; exits non-zero on the first failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvg_jitter.h"

#define FB 320 /* 10 ms at 16 kHz keeps the tests small; 640 is used by the fade and alloc checks */

static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
            failures++;                                                                       \
            return;                                                                           \
        }                                                                                     \
    } while (0)

/* A frame whose every sample identifies its seq (never all zeros). */
static void make_frame(uint8_t *buf, size_t fb, uint32_t seq)
{
    for (size_t i = 0; i < fb / 2; i++) {
        int16_t v = (int16_t)(((seq * 2654435761u) >> 20) % 20000 + 1000 + (uint32_t)(i % 7));
        memcpy(buf + 2 * i, &v, 2);
    }
}

static int frame_is(const uint8_t *buf, size_t fb, uint32_t seq)
{
    uint8_t want[65536];
    make_frame(want, fb, seq);
    return memcmp(buf, want, fb) == 0;
}

/* The seq in [lo, lo + span) whose frame buf is, or -1. */
static long which_seq(const uint8_t *buf, size_t fb, uint32_t lo, uint32_t span)
{
    for (uint32_t s = lo; s != lo + span; s++)
        if (frame_is(buf, fb, s)) return (long)s;
    return -1;
}

static int is_zero(const uint8_t *buf, size_t fb)
{
    for (size_t i = 0; i < fb; i++)
        if (buf[i]) return 0;
    return 1;
}

static cvg_jitter_counters stats(cvg_jitter *jb)
{
    cvg_jitter_counters c;
    cvg_jitter_stats(jb, &c);
    return c;
}

/* The two bookkeeping identities from cvg_jitter.h, plus bounds. */
static int consistent(cvg_jitter *jb, uint32_t cap, uint32_t min_d, uint32_t max_d)
{
    cvg_jitter_counters c = stats(jb);
    uint64_t out = c.played + c.late + c.duplicate + c.overflow + c.discarded + c.flushed + c.buffered;
    if (c.received != out) {
        fprintf(stderr, "received %llu != accounted %llu\n", (unsigned long long)c.received,
                (unsigned long long)out);
        return 0;
    }
    if (c.ticks != c.played + c.concealed + c.silence) return 0;
    if (c.buffered > cap) return 0;
    if (c.target_delay < min_d || c.target_delay > max_d) return 0;
    return 1;
}

static int put(cvg_jitter *jb, uint32_t seq)
{
    uint8_t f[65536];
    size_t fb = cvg_jitter_frame_bytes(jb);
    make_frame(f, fb, seq);
    int r = -1;
    if (cvg_jitter_put(jb, seq, f, fb, &r) != CVG_OK) return -1;
    return r;
}

static int get(cvg_jitter *jb, uint8_t *out)
{
    int kind = -1;
    if (cvg_jitter_get(jb, out, cvg_jitter_frame_bytes(jb), &kind) != CVG_OK) return -1;
    return kind;
}

static void test_errors(void)
{
    int err = 0;
    CHECK(!cvg_jitter_new(321, 8, 0, 0, 8, &err) && err == CVG_ERR_LENGTH, "odd frame size");
    CHECK(!cvg_jitter_new(0, 8, 0, 0, 8, &err) && err == CVG_ERR_LENGTH, "zero frame size");
    CHECK(!cvg_jitter_new(FB, 0, 0, 0, 8, &err) && err == CVG_ERR_ARG, "zero capacity");
    CHECK(!cvg_jitter_new(FB, 8, 3, 2, 8, &err) && err == CVG_ERR_ARG, "min > max");
    CHECK(!cvg_jitter_new(FB, 8, 0, 8, 8, &err) && err == CVG_ERR_ARG, "max_delay >= capacity");
    CHECK(!cvg_jitter_new(FB, 8, 0, 0, 7, &err) && err == CVG_ERR_ARG, "max_gap < capacity");
    CHECK(!cvg_jitter_new(65536, 65536, 0, 0, 65536, &err) && err == CVG_ERR_ARG, "4 GiB refused");
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 0, 0, 8, &err);
    CHECK(jb && err == CVG_OK, "valid arguments");
    uint8_t f[FB] = {0};
    int r, k;
    CHECK(cvg_jitter_put(NULL, 1, f, FB, &r) == CVG_ERR_NULL, "put NULL state");
    CHECK(cvg_jitter_put(jb, 1, NULL, FB, &r) == CVG_ERR_NULL, "put NULL frame");
    CHECK(cvg_jitter_put(jb, 1, f, FB - 2, &r) == CVG_ERR_LENGTH, "put short frame");
    CHECK(cvg_jitter_get(jb, f, FB - 1, &k) == CVG_ERR_LENGTH, "get short buffer");
    CHECK(cvg_jitter_get(NULL, f, FB, &k) == CVG_ERR_NULL, "get NULL state");
    CHECK(cvg_jitter_get(jb, NULL, FB, &k) == CVG_ERR_NULL, "get NULL out");
    CHECK(cvg_jitter_clear(NULL) == CVG_ERR_NULL && cvg_jitter_reset(NULL) == CVG_ERR_NULL, "NULL");
    CHECK(cvg_jitter_stats(jb, NULL) == CVG_ERR_NULL, "stats NULL out");
    CHECK(stats(jb).received == 0, "rejected calls are not counted");
    cvg_jitter_free(jb);
    cvg_jitter_free(NULL);
    printf("ok errors: bad sizes/arguments/NULLs rejected with the right code\n");
}

/* Zero-delay mode, put then get: every frame comes straight out, bit-exact. */
static void test_in_order(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 4, 0, 0, 500, NULL);
    uint8_t out[FB];
    CHECK(get(jb, out) == CVG_FRAME_SILENCE && is_zero(out, FB), "silence before the first frame");
    for (uint32_t s = 100; s < 1100; s++) {
        CHECK(put(jb, s) == CVG_PUT_STORED, "seq %u stored", s);
        CHECK(cvg_jitter_pending(jb) == 1, "one pending");
        CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, s), "seq %u comes straight out", s);
        CHECK(cvg_jitter_pending(jb) == 0, "drained");
    }
    cvg_jitter_counters c = stats(jb);
    CHECK(c.played == 1000 && c.lost == 0 && c.concealed == 0 && c.silence == 1, "counters");
    CHECK(consistent(jb, 4, 0, 0), "invariants");
    cvg_jitter_free(jb);
    printf("ok in-order: 1000 frames, zero delay, bit-exact\n");
}

/* Adaptive mode with a fixed 2-frame target: pairs swapped on the wire come out in order. */
static void test_reordered(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 16, 2, 2, 500, NULL);
    uint8_t out[FB];
    uint32_t expect = 0;
    int started = 0;
    for (uint32_t i = 0; i < 400; i += 2) {
        put(jb, i + 1); /* each pair arrives swapped */
        int k1 = get(jb, out);
        if (k1 == CVG_FRAME_REAL) {
            CHECK(frame_is(out, FB, expect), "expected seq %u", expect);
            expect++;
            started = 1;
        } else {
            CHECK(!started, "no concealment once playing (tick after seq %u)", i);
        }
        put(jb, i);
        int k2 = get(jb, out);
        if (k2 == CVG_FRAME_REAL) {
            CHECK(frame_is(out, FB, expect), "expected seq %u", expect);
            expect++;
            started = 1;
        } else {
            CHECK(!started, "no concealment once playing");
        }
    }
    cvg_jitter_counters c = stats(jb);
    CHECK(c.lost == 0 && c.late == 0 && c.played >= 395, "played %llu", (unsigned long long)c.played);
    CHECK(consistent(jb, 16, 2, 2), "invariants");
    cvg_jitter_free(jb);
    printf("ok reordered: swapped pairs played in order, none lost or late\n");
}

static void test_duplicate(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 0, 0, 500, NULL);
    uint8_t out[FB];
    CHECK(put(jb, 5) == CVG_PUT_STORED, "first");
    CHECK(put(jb, 5) == CVG_PUT_DUPLICATE, "buffered duplicate");
    CHECK(put(jb, 6) == CVG_PUT_STORED, "next");
    CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, 5), "5");
    CHECK(put(jb, 5) == CVG_PUT_DUPLICATE, "duplicate of a played frame");
    CHECK(put(jb, 6) == CVG_PUT_DUPLICATE, "buffered duplicate again");
    CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, 6), "6");
    CHECK(put(jb, 4) == CVG_PUT_LATE, "never seen and behind the playout point: late");
    CHECK(cvg_jitter_pending(jb) == 0, "nothing extra buffered");
    cvg_jitter_counters c = stats(jb);
    CHECK(c.duplicate == 3 && c.late == 1 && c.played == 2, "dup %llu late %llu",
          (unsigned long long)c.duplicate, (unsigned long long)c.late);
    CHECK(consistent(jb, 8, 0, 0), "invariants");
    cvg_jitter_free(jb);
    printf("ok duplicate: dropped whether still buffered or already played; older unseen = late\n");
}

/* A sender that delivers 5 frames every 5 ticks: the target rises to absorb it, and once the
 * delay is built every tick plays a real frame. */
static void test_burst(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 32, 0, 10, 500, NULL);
    uint8_t out[FB];
    uint32_t seq = 0, expect = 0;
    int conceal_late = 0;
    for (int t = 0; t < 2000; t++) {
        if (t % 5 == 0)
            for (int j = 0; j < 5; j++) put(jb, seq++);
        int k = get(jb, out);
        if (k == CVG_FRAME_REAL) {
            long got = which_seq(out, FB, expect, 32); /* the start may discard to cut delay */
            CHECK(got >= 0, "real frames in order after seq %u", expect);
            expect = (uint32_t)got + 1;
        } else if (t > 500) {
            conceal_late++;
        }
    }
    cvg_jitter_counters c = stats(jb);
    CHECK(c.target_delay >= 4, "target %u absorbs a 5-frame burst", c.target_delay);
    CHECK(conceal_late == 0, "%d concealed ticks after the warm-up", conceal_late);
    CHECK(c.late == 0, "late %llu", (unsigned long long)c.late);
    CHECK(consistent(jb, 32, 0, 10), "invariants");
    cvg_jitter_free(jb);
    printf("ok burst: target rose to %u frames, no concealment after warm-up\n", c.target_delay);
}

/* Zero-delay mode: one lost frame becomes exactly one concealed frame, faded. */
static void test_loss(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 0, 0, 500, NULL);
    uint8_t out[FB];
    for (uint32_t s = 0; s < 10; s++) {
        put(jb, s);
        get(jb, out);
    }
    put(jb, 11); /* 10 lost */
    CHECK(cvg_jitter_pending(jb) == 2, "pending counts the hole");
    CHECK(get(jb, out) == CVG_FRAME_CONCEALED, "hole concealed");
    CHECK(!is_zero(out, FB), "concealment repeats the last frame");
    CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, 11), "then the frame");
    CHECK(cvg_jitter_pending(jb) == 0, "drained");
    cvg_jitter_counters c = stats(jb);
    CHECK(c.lost == 1 && c.concealed == 1 && c.played == 11, "counters");
    CHECK(put(jb, 10) == CVG_PUT_LATE, "the lost frame arriving now is late");
    CHECK(consistent(jb, 8, 0, 0), "invariants");
    cvg_jitter_free(jb);
    printf("ok loss: one missing frame, one concealed frame, timeline kept\n");
}

/* The fade: -6 dB per repeat as a ramp, the 4th repeat ends at zero, then silence. */
static void test_fade(void)
{
    const size_t fb = 640;
    cvg_jitter *jb = cvg_jitter_new(fb, 8, 0, 0, 500, NULL);
    uint8_t in[640], out[640];
    for (size_t i = 0; i < fb / 2; i++) {
        int16_t v = 16000;
        memcpy(in + 2 * i, &v, 2);
    }
    int r;
    cvg_jitter_put(jb, 0, in, fb, &r);
    get(jb, out);
    cvg_jitter_put(jb, 7, in, fb, &r); /* 1..6 lost */
    int16_t prev = 16000;
    for (int rep = 1; rep <= 6; rep++) {
        int k = get(jb, out);
        int16_t first, lastv;
        memcpy(&first, out, 2);
        memcpy(&lastv, out + fb - 2, 2);
        if (rep <= CVG_JITTER_FADE_FRAMES) {
            CHECK(k == CVG_FRAME_CONCEALED, "repeat %d concealed", rep);
            CHECK(first <= prev && first >= prev - 200, "repeat %d starts where the last ended", rep);
            int want_end = rep == CVG_JITTER_FADE_FRAMES ? 0 : 16000 >> rep;
            CHECK(abs(lastv - want_end) <= 1, "repeat %d ends at %d, got %d", rep, want_end, lastv);
            for (size_t i = 1; i < fb / 2; i++) {
                int16_t a, b;
                memcpy(&a, out + 2 * (i - 1), 2);
                memcpy(&b, out + 2 * i, 2);
                CHECK(b <= a, "ramp is monotone");
            }
            prev = lastv;
        } else {
            CHECK(k == CVG_FRAME_SILENCE && is_zero(out, fb), "silence after the fade");
        }
    }
    CHECK(get(jb, out) == CVG_FRAME_REAL, "real frame after the gap");
    cvg_jitter_free(jb);
    printf("ok fade: -6 dB per repeat, ramped, zero after %d repeats, then silence\n",
           CVG_JITTER_FADE_FRAMES);
}

/* Zero-delay mode, a gap of 100 frames with a ring of 8: exactly 100 fill frames. */
static void test_long_gap(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 0, 0, 500, NULL);
    uint8_t out[FB];
    put(jb, 1000);
    get(jb, out);
    CHECK(put(jb, 1101) == CVG_PUT_STORED, "a gap longer than the ring is stored");
    CHECK(cvg_jitter_pending(jb) == 101, "pending %u", cvg_jitter_pending(jb));
    int fill = 0, real = 0;
    while (cvg_jitter_pending(jb) > 0) {
        int k = get(jb, out);
        if (k == CVG_FRAME_REAL) {
            CHECK(frame_is(out, FB, 1101), "the frame after the gap");
            real++;
        } else {
            fill++;
        }
    }
    CHECK(fill == 100 && real == 1, "fill %d real %d", fill, real);
    /* a frame inside the gap that turns up once we are past it is late */
    CHECK(put(jb, 1050) == CVG_PUT_LATE, "late");
    /* beyond max_gap: a resync, no fill */
    CHECK(put(jb, 1102 + 600) == CVG_PUT_RESYNC, "resync");
    CHECK(cvg_jitter_pending(jb) == 1, "straight out after a resync");
    CHECK(get(jb, out) == CVG_FRAME_REAL, "real");
    cvg_jitter_counters c = stats(jb);
    CHECK(c.lost == 100 && c.resyncs == 1, "lost %llu", (unsigned long long)c.lost);
    CHECK(consistent(jb, 8, 0, 0), "invariants");
    cvg_jitter_free(jb);
    printf("ok long gap: 100 missing frames filled with 100 frames through an 8-frame ring\n");
}

/* Clocked mode, the sender goes quiet for 150 frames (lost upstream) then continues: the ticks
 * concealed during the silence count for the lost positions, so the delay stays at the target. */
static void test_long_gap_clocked(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 16, 3, 3, 500, NULL);
    uint8_t out[FB];
    uint32_t seq = 0;
    for (int t = 0; t < 100; t++) {
        put(jb, seq++);
        get(jb, out);
    }
    seq += 150;
    for (int t = 0; t < 150; t++) get(jb, out);
    int real = 0;
    for (int t = 0; t < 100; t++) {
        put(jb, seq++);
        if (get(jb, out) == CVG_FRAME_REAL) real++;
    }
    cvg_jitter_counters c = stats(jb);
    CHECK(c.delay <= 4, "delay %u back at the target", c.delay);
    CHECK(real >= 95, "real %d", real);
    CHECK(consistent(jb, 16, 3, 3), "invariants");
    cvg_jitter_free(jb);
    printf("ok long gap (clocked): delay back to %u frames after a 150-frame outage\n", c.delay);
}

static void test_wraparound(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 0, 0, 500, NULL);
    uint8_t out[FB];
    uint32_t s = 0xFFFFFFF0u;
    for (int i = 0; i < 40; i++, s++) {
        CHECK(put(jb, s) == CVG_PUT_STORED, "seq %u", s);
        CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, s), "seq %u", s);
    }
    CHECK(put(jb, 0xFFFFFFFEu) == CVG_PUT_DUPLICATE, "played before the wrap: known duplicate");
    /* a gap across the wrap */
    cvg_jitter_reset(jb);
    put(jb, 0xFFFFFFFDu);
    get(jb, out);
    put(jb, 2);
    CHECK(cvg_jitter_pending(jb) == 5, "gap across the wrap: pending %u", cvg_jitter_pending(jb));
    /* reordering across the wrap in adaptive mode */
    cvg_jitter *ab = cvg_jitter_new(FB, 8, 2, 2, 500, NULL);
    uint32_t order[] = {0xFFFFFFFEu, 0u, 0xFFFFFFFFu, 2u, 1u, 3u, 4u, 5u, 6u, 7u};
    uint32_t expect = 0xFFFFFFFEu;
    for (int i = 0; i < 10; i++) {
        put(ab, order[i]);
        if (get(ab, out) == CVG_FRAME_REAL) {
            CHECK(frame_is(out, FB, expect), "seq %u in order", expect);
            expect++;
        }
    }
    CHECK(stats(ab).lost == 0 && stats(ab).late == 0, "nothing lost across the wrap");
    CHECK(consistent(jb, 8, 0, 0) && consistent(ab, 8, 2, 2), "invariants");
    cvg_jitter_free(jb);
    cvg_jitter_free(ab);
    printf("ok wraparound: in order, gaps and reordering across 2^32\n");
}

static void test_clear(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 16, 3, 3, 500, NULL);
    uint8_t out[FB];
    for (uint32_t s = 0; s < 10; s++) put(jb, s);
    get(jb, out);
    CHECK(cvg_jitter_clear(jb) == CVG_OK, "clear");
    cvg_jitter_counters c = stats(jb);
    /* 10 arrived at once over a 3-frame target: one was discarded to cut the delay, one played */
    CHECK(c.buffered == 0 && c.flushed == 8 && c.discarded == 1 && c.played == 1,
          "flushed %llu", (unsigned long long)c.flushed);
    CHECK(get(jb, out) == CVG_FRAME_SILENCE && is_zero(out, FB), "silence right after a clear");
    CHECK(put(jb, 5000) == CVG_PUT_STORED, "a new stream starts anywhere");
    CHECK(consistent(jb, 16, 3, 3), "invariants");
    cvg_jitter_reset(jb);
    c = stats(jb);
    CHECK(c.received == 0 && c.ticks == 0 && c.target_delay == 3, "reset zeroes the counters");
    cvg_jitter_free(jb);
    printf("ok clear: buffered audio dropped and counted, silence after, new stream anchors\n");
}

static void test_overflow(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 4, 0, 0, 500, NULL);
    uint8_t out[FB];
    int r = 0;
    for (uint32_t s = 0; s < 10; s++) r = put(jb, s);
    CHECK(r == CVG_PUT_OVERFLOW, "overflow reported");
    cvg_jitter_counters c = stats(jb);
    CHECK(c.overflow == 6 && c.buffered == 4, "overflow %llu buffered %u",
          (unsigned long long)c.overflow, c.buffered);
    CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, 6), "oldest kept is 6");
    CHECK(put(jb, 3) == CVG_PUT_DUPLICATE, "a dropped frame sent again is a duplicate");
    /* a jump past the ring leaves a hole region; a frame that turns up inside it has no room */
    while (cvg_jitter_pending(jb) > 0) get(jb, out);
    CHECK(put(jb, 40) == CVG_PUT_STORED, "gap past the ring");
    CHECK(put(jb, 20) == CVG_PUT_DROPPED, "a frame inside the gap is dropped");
    CHECK(put(jb, 38) == CVG_PUT_STORED, "a frame inside the ring is kept");
    CHECK(cvg_jitter_pending(jb) == 31, "pending %u", cvg_jitter_pending(jb));
    CHECK(consistent(jb, 4, 0, 0), "invariants");
    cvg_jitter_free(jb);
    printf("ok overflow: oldest dropped and counted, playout continues at the oldest kept\n");
}

/* Before anything is played, an earlier frame moves the start back instead of being late. */
static void test_early_reorder(void)
{
    cvg_jitter *jb = cvg_jitter_new(FB, 8, 2, 2, 500, NULL);
    uint8_t out[FB];
    put(jb, 11);
    put(jb, 10);
    put(jb, 12);
    CHECK(get(jb, out) == CVG_FRAME_REAL && frame_is(out, FB, 10), "starts at 10");
    CHECK(stats(jb).late == 0, "not late");
    cvg_jitter_free(jb);
    printf("ok early reorder: the first frames may arrive out of order\n");
}

/* A seeded random walk over every operation with the invariants checked after each. */
static void test_random_walk(void)
{
    uint32_t caps[] = {1, 3, 8, 50};
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    uint8_t out[FB];
    for (int c = 0; c < 4; c++) {
        uint32_t cap = caps[c];
        uint32_t maxd = cap > 1 ? cap - 1 : 0;
        cvg_jitter *jb = cvg_jitter_new(FB, cap, 0, maxd, cap * 4 + 10, NULL);
        uint32_t seq = 0xFFFFFF00u;
        for (int i = 0; i < 50000; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t x = (uint32_t)(rng >> 33);
            switch (x % 8) {
            case 0: case 1: case 2: put(jb, seq++); break;
            case 3: put(jb, seq + (x >> 8) % 9 - 4); break;                  /* reorder/dup/late */
            case 4: seq += (x >> 8) % (cap * 5 + 20); put(jb, seq++); break;  /* gaps, resyncs */
            case 5: case 6: get(jb, out); break;
            default:
                if ((x >> 8) % 50 == 0) cvg_jitter_clear(jb);
                else if ((x >> 8) % 400 == 1) cvg_jitter_reset(jb);
                else get(jb, out);
            }
            CHECK(consistent(jb, cap, 0, maxd), "cap %u step %d", cap, i);
        }
        cvg_jitter_free(jb);
    }
    printf("ok random walk: 4 x 50000 operations, counters consistent after each\n");
}

static void test_allocs(void)
{
    long before = cvg_alloc_count();
    if (before < 0) {
        printf("skip allocs: built without CVG_COUNT_ALLOCS\n");
        return;
    }
    cvg_jitter *jb = cvg_jitter_new(640, 50, 0, 10, 500, NULL);
    long after_new = cvg_alloc_count();
    CHECK(after_new == before + 1, "one allocation at _new, got %ld", after_new - before);
    uint8_t out[640];
    uint32_t seq = 0xFFFFF000u;
    for (int i = 0; i < 10000; i++) {
        if (i % 97 != 0) put(jb, seq + (i % 13 == 0 ? 2 : 0));
        seq++;
        get(jb, out);
        if (i % 1000 == 999) cvg_jitter_clear(jb);
        if (i == 5000) cvg_jitter_reset(jb);
    }
    CHECK(cvg_alloc_count() == after_new, "allocations in the frame path: %ld",
          cvg_alloc_count() - after_new);
    cvg_jitter_free(jb);
    printf("ok allocs: 1 allocation at _new, 0 over 10000 put/get pairs with clear/reset\n");
}

/* cvg_jitter_fill equals put-then-drain (the loop the header documents) over a random walk with
 * gaps, duplicates, late frames and resyncs, in batches of 1..3 frames; tallies match; guards. */
static void test_fill(void)
{
    cvg_jitter *a = cvg_jitter_new(FB, 16, 0, 0, 40, NULL);
    cvg_jitter *b = cvg_jitter_new(FB, 16, 0, 0, 40, NULL);
    static uint8_t in[3 * FB], out[(3 + 40) * FB], ref[(3 + 40) * FB];
    uint32_t seq = 100, rng = 12345;
    for (int step = 0; step < 3000; step++) {
        rng = rng * 1103515245u + 12345u;
        uint32_t r = (rng >> 16) % 100, frames = 1 + (rng >> 8) % 3;
        uint32_t at = r < 70 ? seq : r < 80 ? seq + 1 + r % 5 : r < 90 ? seq - 1 - r % 3
                    : r < 95 ? seq + 50 : seq;                           /* gap, late/dup, resync */
        for (uint32_t i = 0; i < frames; i++) make_frame(in + i * FB, FB, at + i);
        uint32_t tally[CVG_FILL_TALLIES];
        size_t n = sizeof out;
        CHECK(cvg_jitter_fill(a, at, in, frames * FB, out, &n, tally) == CVG_OK, "fill step %d", step);
        size_t m = 0;
        uint32_t late = 0, gaps = 0, concealed = 0;
        for (uint32_t i = 0; i < frames; i++) {
            int res, kind;
            cvg_jitter_put(b, at + i, in + i * FB, FB, &res);
            if (res == CVG_PUT_LATE || res == CVG_PUT_DUPLICATE) late++;
            if (res != CVG_PUT_STORED && res != CVG_PUT_RESYNC) continue;
            uint32_t pending = cvg_jitter_pending(b);
            gaps += pending > 1;
            for (; pending; pending--, m += FB) {
                cvg_jitter_get(b, ref + m, FB, &kind);
                concealed += kind != CVG_FRAME_REAL;
            }
        }
        CHECK(n == m && !memcmp(out, ref, n), "fill output differs at step %d", step);
        CHECK(tally[CVG_FILL_LATE] == late && tally[CVG_FILL_GAPS] == gaps
              && tally[CVG_FILL_CONCEALED] == concealed, "tallies differ at step %d", step);
        if (at + frames > seq && at + frames - seq < 1000) seq = at + frames;
    }
    CHECK(consistent(a, 16, 0, 0), "counters after fill");
    uint32_t tally[CVG_FILL_TALLIES];
    size_t n = (1 + 40) * FB - 2;
    CHECK(cvg_jitter_fill_room(a, FB) == (1 + 40) * FB, "room for one frame");
    CHECK(cvg_jitter_fill(a, seq, in, FB, out, &n, tally) == CVG_ERR_LENGTH, "short room");
    n = sizeof out;
    CHECK(cvg_jitter_fill(a, seq, in, FB + 2, out, &n, tally) == CVG_ERR_LENGTH, "partial frame");
    CHECK(cvg_jitter_fill(a, seq, out + FB, FB, out, &n, tally) == CVG_ERR_OVERLAP, "overlap");
    CHECK(cvg_jitter_fill(a, seq, in, FB, out, &n, NULL) == CVG_ERR_NULL, "NULL tally");
    cvg_jitter *clocked = cvg_jitter_new(FB, 16, 0, 4, 40, NULL);
    CHECK(cvg_jitter_fill(clocked, 1, in, FB, out, &n, tally) == CVG_ERR_ARG, "needs zero delay");
    CHECK(cvg_jitter_fill_room(clocked, FB) == 0, "no room figure outside zero-delay mode");
    cvg_jitter_free(clocked);
    cvg_jitter_free(a);
    cvg_jitter_free(b);
    printf("ok fill: 3000 batches equal put-then-drain with the same tallies; guards\n");
}

int main(void)
{
    test_errors();
    test_in_order();
    test_reordered();
    test_duplicate();
    test_burst();
    test_loss();
    test_fade();
    test_long_gap();
    test_long_gap_clocked();
    test_wraparound();
    test_clear();
    test_overflow();
    test_early_reorder();
    test_random_walk();
    test_fill();
    test_allocs();
    if (failures) {
        fprintf(stderr, "test_jitter: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_jitter: all passed\n");
    return 0;
}
