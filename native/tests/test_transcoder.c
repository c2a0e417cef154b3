/* Transcoder: equals the separate decode -> resample -> encode steps (raw and base64 paths), rejects
 * bad base64 / odd PCM16 / short room without touching the stream, guards. */
#include <stdio.h>
#include <string.h>

#include "cvg_g711.h"
#include "cvg_resampler.h"
#include "cvg_transcoder.h"

static int fails;
#define CHECK(cond, ...) do { if (!(cond)) { fails++; printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf("\n"); } } while (0)

static int16_t pcm[24000], tmp16[24000 * 6];
static uint8_t codes[24000], out[24000 * 12], ref[24000 * 12];
static char b64[24000 * 16];

static size_t b64enc(const uint8_t *in, size_t n, char *o)
{
    static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        o[k++] = A[v >> 18];
        o[k++] = A[(v >> 12) & 63];
        o[k++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        o[k++] = i + 2 < n ? A[v & 63] : '=';
    }
    return k;
}

/* mu-law 8 kHz -> PCM16 16 kHz, frame by frame, raw and base64, against ulaw_decode + resampler. */
static void inbound(void)
{
    cvg_transcoder *t = cvg_transcoder_new(CVG_CODEC_ULAW, 8000, CVG_CODEC_PCM16, 16000, 0, NULL);
    cvg_transcoder *tb = cvg_transcoder_new(CVG_CODEC_ULAW, 8000, CVG_CODEC_PCM16, 16000, 0, NULL);
    cvg_resampler *r = cvg_resampler_new(8000, 16000, NULL);
    cvg_ulaw_encode(pcm, 8000, codes);
    for (int f = 0; f < 50; f++) {
        const uint8_t *frame = codes + 160 * f;
        size_t n = sizeof out, nb = sizeof ref, used = 160, made = sizeof tmp16 / 2;
        int16_t dec[160];
        cvg_ulaw_decode(frame, 160, dec);
        cvg_resampler_process(r, dec, &used, tmp16, &made);
        CHECK(cvg_transcoder_process(t, frame, 160, out, &n) == CVG_OK && n == 2 * made
              && !memcmp(out, tmp16, n), "inbound frame %d", f);
        size_t chars = b64enc(frame, 160, b64);
        CHECK(cvg_transcoder_process_b64(tb, b64, chars, ref, &nb) == CVG_OK && nb == n
              && !memcmp(ref, out, n), "inbound b64 frame %d", f);
    }
    /* bad base64 and short room: errors, stream untouched */
    size_t n = sizeof out;
    CHECK(cvg_transcoder_process_b64(tb, "AB@D", 4, out, &n) == CVG_ERR_ARG, "bad char");
    CHECK(cvg_transcoder_process_b64(tb, "ABCDE", 5, out, &n) == CVG_ERR_ARG, "bad length");
    n = 10;
    CHECK(cvg_transcoder_process(tb, codes, 160, out, &n) == CVG_ERR_LENGTH, "short room");
    size_t na = sizeof out, nb = sizeof ref;
    cvg_transcoder_flush(t, out, &na);
    cvg_transcoder_flush(tb, ref, &nb);
    CHECK(na == nb && na > 0 && !memcmp(out, ref, na), "flush after errors differs");
    cvg_transcoder_free(t);
    cvg_transcoder_free(tb);
    cvg_resampler_free(r);
}

/* PCM16 24 kHz -> A-law 8 kHz, base64 out, odd frame sizes, against resampler + alaw_encode + base64. */
static void outbound(void)
{
    cvg_transcoder *t = cvg_transcoder_new(CVG_CODEC_PCM16, 24000, CVG_CODEC_ALAW, 8000, 0, NULL);
    cvg_resampler *r = cvg_resampler_new(24000, 8000, NULL);
    size_t pos = 0;
    for (int f = 0; pos + 1000 < 24000; f++) {
        size_t len = 1 + (size_t)(f * 37) % 700, used = len, made = sizeof tmp16 / 2, n = sizeof b64;
        cvg_resampler_process(r, pcm + pos, &used, tmp16, &made);
        cvg_alaw_encode(tmp16, made, ref);
        size_t chars = b64enc(ref, made, (char *)out);
        CHECK(cvg_transcoder_process_to_b64(t, (const uint8_t *)(pcm + pos), 2 * len, b64, &n) == CVG_OK
              && n == chars && !memcmp(b64, out, n), "outbound frame %d", f);
        pos += len;
    }
    size_t n = sizeof out;
    CHECK(cvg_transcoder_process(t, (const uint8_t *)pcm, 3, out, &n) == CVG_ERR_LENGTH, "odd PCM16");
    cvg_transcoder_free(t);
    cvg_resampler_free(r);
}

/* The fused inbound step equals process_b64 followed by cvg_jitter_fill (timestamps and chunk
 * counters, a gap, a late frame), copies PCM that is not whole frames as it is, and checks room
 * before touching anything. */
static void inbound_fill(void)
{
    cvg_transcoder *t = cvg_transcoder_new(CVG_CODEC_ULAW, 8000, CVG_CODEC_PCM16, 16000, 0, NULL);
    cvg_transcoder *tr = cvg_transcoder_new(CVG_CODEC_ULAW, 8000, CVG_CODEC_PCM16, 16000, 0, NULL);
    cvg_jitter *j = cvg_jitter_new(640, 64, 0, 0, 100, NULL);
    cvg_jitter *jr = cvg_jitter_new(640, 64, 0, 0, 100, NULL);
    static uint8_t scratch[8192], big[8192 + 101 * 640], mid[8192];
    static const uint32_t seqs[] = {0, 1, 2, 5, 6, 4, 7, 8};    /* a gap of two, then a late one */
    for (int f = 0; f < 8; f++) {
        size_t chars = b64enc(codes + 160 * f, 160, b64);
        uint32_t tally[CVG_FILL_TALLIES], tref[CVG_FILL_TALLIES];
        size_t n = sizeof big, pn = sizeof mid, rn = sizeof ref;
        CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, j, seqs[f], 0, scratch, sizeof scratch,
                                              big, &n, tally) == CVG_OK, "fill frame %d", f);
        cvg_transcoder_process_b64(tr, b64, chars, mid, &pn);
        CHECK(cvg_jitter_fill(jr, seqs[f], mid, pn, ref, &rn, tref) == CVG_OK, "ref %d", f);
        CHECK(n == rn && !memcmp(big, ref, n) && !memcmp(tally, tref, sizeof tally),
              "fused differs from the two steps at frame %d", f);
    }
    /* per_chunk: chunk 9 of 1-frame chunks is frame 9 */
    size_t chars = b64enc(codes, 160, b64), n = sizeof big;
    uint32_t tally[CVG_FILL_TALLIES];
    CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, j, 9, 1, scratch, sizeof scratch, big, &n,
                                          tally) == CVG_OK && n == 640 && tally[CVG_FILL_GAPS] == 0,
          "chunk 9 follows frame 8");
    /* half a frame is passed through untouched */
    chars = b64enc(codes, 80, b64);
    n = sizeof big;
    CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, j, 10, 0, scratch, sizeof scratch, big, &n,
                                          tally) == CVG_OK && n == 320 && !tally[0] && !tally[1]
          && !tally[2], "partial frame copied");
    /* room: scratch or out too small -> CVG_ERR_LENGTH, the stream untouched */
    chars = b64enc(codes, 160, b64);
    n = 640;
    CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, j, 11, 0, scratch, sizeof scratch, big, &n,
                                          tally) == CVG_ERR_LENGTH, "out without gap room");
    n = sizeof big;
    CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, j, 11, 0, scratch, 100, big, &n,
                                          tally) == CVG_ERR_LENGTH, "short scratch");
    CHECK(cvg_transcoder_process_b64_fill(t, "A@==", 4, j, 11, 0, scratch, sizeof scratch, big, &n,
                                          tally) == CVG_ERR_ARG, "bad base64");
    cvg_jitter_counters c;
    cvg_jitter_stats(j, &c);
    CHECK(c.received == 9, "refused calls put nothing (%llu)", (unsigned long long)c.received);
    cvg_jitter *clocked = cvg_jitter_new(640, 64, 0, 4, 100, NULL);
    CHECK(cvg_transcoder_process_b64_fill(t, b64, chars, clocked, 11, 0, scratch, sizeof scratch,
                                          big, &n, tally) == CVG_ERR_ARG, "clocked buffer refused");
    cvg_jitter_free(clocked);
    cvg_transcoder_free(t);
    cvg_transcoder_free(tr);
    cvg_jitter_free(j);
    cvg_jitter_free(jr);
}

int main(void)
{
    int err = 0;
    for (int i = 0; i < 24000; i++) pcm[i] = (int16_t)((i * 7919) % 30001 - 15000);
    CHECK(!cvg_transcoder_new(9, 8000, 0, 16000, 0, &err) && err == CVG_ERR_CODEC, "codec 9");
    CHECK(!cvg_transcoder_new(1, 11025, 0, 16000, 0, &err) && err == CVG_ERR_RATE, "rate 11025");
    size_t n = 0;
    CHECK(cvg_transcoder_process(NULL, codes, 1, out, &n) == CVG_ERR_NULL, "NULL state");
    cvg_transcoder_free(NULL);
    inbound();
    inbound_fill();
    outbound();
    printf("test_transcoder: inbound ulaw raw+base64 and outbound alaw->base64 equal the separate steps, "
           "errors leave the stream untouched, guards: %s\n", fails ? "FAIL" : "ok");
    return fails != 0;
}
