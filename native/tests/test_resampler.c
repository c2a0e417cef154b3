/* Resampler: guards, chunking invariance (both kernels), 20 ms in -> 20 ms out, room limits, reset,
 * flush, a tone's gain and a stopband tone's rejection, saturation. */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvg_resampler.h"

#define PI 3.14159265358979323846

static const int RATES[4] = {8000, 16000, 24000, 48000};
#define N_IN 12000
#define N_OUT (N_IN * 6 + 2000)
static int16_t in[N_IN], whole[N_OUT], parts[N_OUT];
static int fails;
static int flags;                      /* 0 or CVG_RESAMPLER_MIN_PHASE for the whole chunking pass */

#define CHECK(cond, ...) do { if (!(cond)) { fails++; printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static uint32_t rng = 12345;
static uint32_t next_rand(void) { rng = rng * 1664525u + 1013904223u; return rng >> 8; }

/* Run the whole input through, with chunk sizes from `pick` (0 = all at once), then flush. */
static size_t run(cvg_resampler *r, int16_t *out, int chunked)
{
    size_t pos = 0, made = 0;
    while (pos < N_IN) {
        size_t n = chunked ? 1 + next_rand() % (next_rand() % 4 == 0 ? 3 : 700) : N_IN;
        if (n > N_IN - pos) n = N_IN - pos;
        size_t used = n, room = N_OUT - made;
        if (cvg_resampler_process(r, in + pos, &used, out + made, &room)) return 0;
        pos += used;
        made += room;
    }
    size_t room = N_OUT - made;
    cvg_resampler_flush(r, out + made, &room);
    return made + room;
}

static void chunking(int a, int b)
{
    cvg_resampler *r = cvg_resampler_new_ex(a, b, flags, NULL);
    size_t n1 = run(r, whole, 0), n2 = run(r, parts, 1);   /* flush reset the state in between */
    CHECK(n1 > 0 && n1 == n2 && !memcmp(whole, parts, n1 * 2), "%d->%d chunked output differs", a, b);
    /* 20 ms in, 20 ms out, from the first frame */
    cvg_resampler_reset(r);
    for (int f = 0; f < 5; f++) {
        size_t used = (size_t)a / 50, room = N_OUT;
        cvg_resampler_process(r, in + f * a / 50, &used, parts, &room);
        CHECK(used == (size_t)a / 50 && room == (size_t)b / 50, "%d->%d frame %d gave %zu", a, b, f, room);
    }
    /* reset: the same as a fresh state */
    cvg_resampler_reset(r);
    size_t n3 = run(r, parts, 0);
    CHECK(n3 == n1 && !memcmp(whole, parts, n1 * 2), "%d->%d reset differs", a, b);
    /* a tiny output buffer: input is consumed only as far as room allows, nothing is lost */
    size_t pos = 0, made = 0;
    while (pos < N_IN) {
        size_t used = N_IN - pos, room = 1 + next_rand() % 5;
        if (made + room > N_OUT) room = N_OUT - made;
        cvg_resampler_process(r, in + pos, &used, parts + made, &room);
        pos += used;
        made += room;
    }
    size_t room = N_OUT - made;
    cvg_resampler_flush(r, parts + made, &room);
    CHECK(made + room == n1 && !memcmp(whole, parts, n1 * 2), "%d->%d small-room output differs", a, b);
    /* the bytes API (odd input address) gives the same samples, all or nothing */
    static uint8_t le[2 * N_IN + 1];
    static int16_t viabytes[N_OUT];
    for (int i = 0; i < N_IN; i++) { le[1 + 2 * i] = (uint8_t)(in[i] & 0xFF); le[2 + 2 * i] = (uint8_t)((uint16_t)in[i] >> 8); }
    cvg_resampler_reset(r);
    CHECK(cvg_resampler_process_bytes(r, le + 1, 3, (uint8_t *)viabytes, sizeof viabytes) == -CVG_ERR_LENGTH, "odd bytes");
    CHECK(cvg_resampler_process_bytes(r, le + 1, 2 * N_IN, (uint8_t *)viabytes, 4) == -CVG_ERR_LENGTH, "short room");
    long got = cvg_resampler_process_bytes(r, le + 1, 2 * N_IN, (uint8_t *)viabytes, sizeof viabytes);
    room = N_OUT - (size_t)got / 2;
    cvg_resampler_flush(r, viabytes + got / 2, &room);
    CHECK(got >= 0 && (size_t)got / 2 + room == n1 && !memcmp(whole, viabytes, n1 * 2), "%d->%d bytes API differs", a, b);
    cvg_resampler_free(r);
}

static double tone_rms_db(int a, int b, double freq)
{
    static int16_t x[48000], y[48000 * 6];
    for (int i = 0; i < a; i++) x[i] = (int16_t)lrint(16383.5 * sin(2 * PI * freq * i / a));
    cvg_resampler *r = cvg_resampler_new(a, b, NULL);
    size_t used = (size_t)a, room = sizeof y / 2;
    cvg_resampler_process(r, x, &used, y, &room);
    cvg_resampler_free(r);
    double acc = 0;
    size_t from = room / 4;
    for (size_t i = from; i < room; i++) acc += (double)y[i] * y[i];
    return 10 * log10(acc / (double)(room - from) / (16383.5 * 16383.5 / 2) + 1e-30);
}

int main(void)
{
    int err = 0;
    for (int i = 0; i < N_IN; i++) in[i] = (int16_t)((int)(next_rand() % 40001) - 20000);

    CHECK(!cvg_resampler_new(44100, 16000, &err) && err == CVG_ERR_RATE, "44100 accepted");
    CHECK(!cvg_resampler_new(8000, 0, &err) && err == CVG_ERR_RATE, "0 accepted");
    cvg_resampler *r = cvg_resampler_new(8000, 16000, &err);
    size_t one = 1, room = 4;
    CHECK(cvg_resampler_process(NULL, in, &one, parts, &room) == CVG_ERR_NULL, "NULL state");
    CHECK(cvg_resampler_process(r, NULL, &one, parts, &room) == CVG_ERR_NULL, "NULL in");
    CHECK(cvg_resampler_process(r, in, NULL, parts, &room) == CVG_ERR_NULL, "NULL in_len");
    CHECK(cvg_resampler_process(r, in, &one, NULL, &room) == CVG_ERR_NULL, "NULL out");
    CHECK(cvg_resampler_process(r, in, &one, in, &room) == CVG_ERR_OVERLAP, "overlap");
    CHECK(cvg_resampler_flush(r, NULL, NULL) == CVG_ERR_NULL, "flush NULL");
    CHECK(cvg_resampler_reset(NULL) == CVG_ERR_NULL, "reset NULL");
    CHECK(cvg_resampler_delay(r) > 0 && cvg_resampler_delay(r) * 1000 / 16000 <= 4.0, "delay");
    cvg_resampler_free(r);
    cvg_resampler_free(NULL);

    for (int pass = 0; pass < 4; pass++) {
        setenv("CVG_RESAMPLER_GENERIC", pass & 1 ? "1" : "0", 1);
        flags = pass & 2 ? CVG_RESAMPLER_MIN_PHASE : 0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) chunking(RATES[i], RATES[j]);
    }
    flags = 0;
    CHECK(!cvg_resampler_new_ex(8000, 16000, 4, &err) && err == CVG_ERR_ARG, "unknown flag accepted");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            if (i == j) continue;
            cvg_resampler *lin = cvg_resampler_new(RATES[i], RATES[j], NULL);
            cvg_resampler *mp = cvg_resampler_new_ex(RATES[i], RATES[j], CVG_RESAMPLER_MIN_PHASE, NULL);
            CHECK(cvg_resampler_delay(mp) > 0 && cvg_resampler_delay(mp) < cvg_resampler_delay(lin) / 5,
                  "%d->%d min-phase delay %.2f vs %.2f", RATES[i], RATES[j], cvg_resampler_delay(mp),
                  cvg_resampler_delay(lin));
            cvg_resampler_free(lin);
            cvg_resampler_free(mp);
        }
    unsetenv("CVG_RESAMPLER_GENERIC");

    /* passband gain and stopband rejection on the phone conversions */
    CHECK(fabs(tone_rms_db(8000, 16000, 1000)) < 0.02, "8k->16k 1 kHz gain");
    CHECK(fabs(tone_rms_db(24000, 8000, 3400)) < 0.05, "24k->8k 3.4 kHz gain");
    CHECK(tone_rms_db(24000, 8000, 6000) < -80, "24k->8k 6 kHz not rejected");
    CHECK(tone_rms_db(48000, 16000, 12000) < -80, "48k->16k 12 kHz not rejected");

    /* full-scale square wave: clipped at the rails, never wrapped */
    for (int i = 0; i < N_IN; i++) in[i] = (i / 20) % 2 ? -32768 : 32767;
    r = cvg_resampler_new(16000, 24000, NULL);
    size_t n = run(r, whole, 0);
    int wrapped = 0, clipped = 0;
    for (size_t i = 1; i < n; i++) {
        wrapped += (whole[i - 1] == 32767 && whole[i] < -16000) || (whole[i - 1] == -32768 && whole[i] > 16000);
        clipped += whole[i] == 32767;
    }
    CHECK(!wrapped && clipped, "square wave wrapped=%d clipped=%d", wrapped, clipped);
    cvg_resampler_free(r);

    printf("test_resampler: guards, 16 rate pairs x 2 kernels x {linear, min-phase} chunking/frames/reset/room/bytes, "
           "min-phase delay, gain, rejection, "
           "saturation: %s\n", fails ? "FAIL" : "ok");
    return fails != 0;
}
