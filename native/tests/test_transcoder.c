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
    outbound();
    printf("test_transcoder: inbound ulaw raw+base64 and outbound alaw->base64 equal the separate steps, "
           "errors leave the stream untouched, guards: %s\n", fails ? "FAIL" : "ok");
    return fails != 0;
}
