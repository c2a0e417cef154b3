/* Fused phone paths: decode (G.711 or PCM16 bytes) -> resample -> encode, optionally with base64 on
 * the way in or out, through fixed scratch buffers sized at _new (CHUNK input samples per step). */
#include <string.h>

#include "base64.h"
#include "cvg_g711.h"
#include "cvg_resampler.h"
#include "cvg_transcoder.h"

#define CHUNK 480                       /* input samples per step: 60 ms at 8 kHz, 10 ms at 48 kHz */
#define MAX_RATIO 6                     /* 8 kHz -> 48 kHz */
#define OUT_SAMPLES (CHUNK * MAX_RATIO + 16)
#define B64_PIECE (4 * (CHUNK * 2 / 3)) /* base64 chars decoded per step: 960 bytes, whole samples */

struct cvg_transcoder {
    int in_codec, out_codec;
    size_t in_bps, out_bps;             /* bytes per sample */
    cvg_resampler *rs;
    int16_t pcm_in[CHUNK];
    int16_t pcm_out[OUT_SAMPLES];
    uint8_t raw_in[CHUNK * 2];          /* base64-decoded input */
    uint8_t raw_out[3 + OUT_SAMPLES * 2]; /* encoded output waiting for base64 (carry first) */
};

/* Where converted bytes go: straight to the caller's buffer, or through base64 with a carry of the
 * last 0..2 bytes so that the pieces encode exactly like the whole. */
typedef struct {
    uint8_t *raw;
    char *b64;
    size_t n;                           /* bytes (or chars) written */
    size_t carry;
} sink;

static int codec_ok(int c) { return c == CVG_CODEC_PCM16 || c == CVG_CODEC_ULAW || c == CVG_CODEC_ALAW; }

static void le16_to_host(const uint8_t *in, size_t n, int16_t *out)
{
    memcpy(out, in, 2 * n);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) out[i] = (int16_t)((uint16_t)out[i] << 8 | (uint16_t)out[i] >> 8);
#endif
}

static void host_to_le16(const int16_t *in, size_t n, uint8_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < n; i++) { out[2 * i] = (uint8_t)in[i]; out[2 * i + 1] = (uint8_t)((uint16_t)in[i] >> 8); }
#else
    memcpy(out, in, 2 * n);
#endif
}

static void decode(int codec, const uint8_t *in, size_t n, int16_t *out)
{
    if (codec == CVG_CODEC_ULAW) cvg_ulaw_decode(in, n, out);
    else if (codec == CVG_CODEC_ALAW) cvg_alaw_decode(in, n, out);
    else le16_to_host(in, n, out);
}

static void encode(int codec, const int16_t *in, size_t n, uint8_t *out)
{
    if (codec == CVG_CODEC_ULAW) cvg_ulaw_encode(in, n, out);
    else if (codec == CVG_CODEC_ALAW) cvg_alaw_encode(in, n, out);
    else host_to_le16(in, n, out);
}

static void emit(cvg_transcoder *st, sink *k, size_t n)
{
    if (k->raw) {
        encode(st->out_codec, st->pcm_out, n, k->raw + k->n);
        k->n += n * st->out_bps;
        return;
    }
    size_t bytes = k->carry + n * st->out_bps;
    encode(st->out_codec, st->pcm_out, n, st->raw_out + k->carry);
    size_t whole = bytes / 3 * 3;
    k->n += cvg_b64_encode(st->raw_out, whole, k->b64 + k->n);
    k->carry = bytes - whole;
    memmove(st->raw_out, st->raw_out + whole, k->carry);
}

static void finish(cvg_transcoder *st, sink *k)
{
    if (k->b64 && k->carry) k->n += cvg_b64_encode(st->raw_out, k->carry, k->b64 + k->n);
    k->carry = 0;
}

/* Convert whole samples; the room was checked by the caller, so every step consumes its chunk. */
static void convert(cvg_transcoder *st, const uint8_t *in, size_t n_bytes, sink *k)
{
    size_t ns = n_bytes / st->in_bps;
    while (ns) {
        size_t c = ns < CHUNK ? ns : CHUNK, used = c, made = OUT_SAMPLES;
        decode(st->in_codec, in, c, st->pcm_in);
        cvg_resampler_process(st->rs, st->pcm_in, &used, st->pcm_out, &made);
        emit(st, k, made);
        in += c * st->in_bps;
        ns -= c;
    }
}

cvg_transcoder *cvg_transcoder_new(int in_codec, int in_rate, int out_codec, int out_rate, int flags, int *err)
{
    int e = CVG_OK;
    cvg_transcoder *st = NULL;
    if (!codec_ok(in_codec) || !codec_ok(out_codec)) { e = CVG_ERR_CODEC; goto fail; }
    st = cvg_calloc(1, sizeof *st);
    if (!st) { e = CVG_ERR_ALLOC; goto fail; }
    st->rs = cvg_resampler_new_ex(in_rate, out_rate, flags, &e);
    if (!st->rs) goto fail;
    st->in_codec = in_codec;
    st->out_codec = out_codec;
    st->in_bps = in_codec == CVG_CODEC_PCM16 ? 2 : 1;
    st->out_bps = out_codec == CVG_CODEC_PCM16 ? 2 : 1;
    if (err) *err = CVG_OK;
    return st;
fail:
    cvg_transcoder_free(st);
    if (err) *err = e;
    return NULL;
}

void cvg_transcoder_free(cvg_transcoder *st)
{
    if (!st) return;
    cvg_resampler_free(st->rs);
    cvg_free(st);
}

int cvg_transcoder_reset(cvg_transcoder *st)
{
    return st ? cvg_resampler_reset(st->rs) : CVG_ERR_NULL;
}

size_t cvg_transcoder_max_out(const cvg_transcoder *st, size_t in_len)
{
    return st ? cvg_resampler_max_out(st->rs, in_len / st->in_bps) * st->out_bps : 0;
}

size_t cvg_transcoder_flush_len(const cvg_transcoder *st)
{
    return st ? cvg_resampler_flush_len(st->rs) * st->out_bps : 0;
}

double cvg_transcoder_delay(const cvg_transcoder *st)
{
    return st ? cvg_resampler_delay(st->rs) : 0.0;
}

static int check_raw(const cvg_transcoder *st, const void *in, size_t in_len, const void *out,
                     const size_t *out_len)
{
    if (!st || !out_len || (in_len && !in) || (*out_len && !out)) return CVG_ERR_NULL;
    if (in_len % st->in_bps) return CVG_ERR_LENGTH;
    return CVG_OK;
}

int cvg_transcoder_process(cvg_transcoder *st, const uint8_t *in, size_t in_len,
                           uint8_t *out, size_t *out_len)
{
    int e = check_raw(st, in, in_len, out, out_len);
    if (e) return e;
    if (*out_len < cvg_transcoder_max_out(st, in_len)) return CVG_ERR_LENGTH;
    const uint8_t *o = out;
    if (in_len && o < in + in_len && in < o + *out_len) return CVG_ERR_OVERLAP;
    sink k = {.raw = out};
    convert(st, in, in_len, &k);
    *out_len = k.n;
    return CVG_OK;
}

int cvg_transcoder_process_to_b64(cvg_transcoder *st, const uint8_t *in, size_t in_len,
                                  char *out, size_t *out_len)
{
    int e = check_raw(st, in, in_len, out, out_len);
    if (e) return e;
    if (*out_len < CVG_B64_ENCODED_LEN(cvg_transcoder_max_out(st, in_len))) return CVG_ERR_LENGTH;
    const uint8_t *o = (const uint8_t *)out;
    if (in_len && o < in + in_len && in < o + *out_len) return CVG_ERR_OVERLAP;
    sink k = {.b64 = out};
    convert(st, in, in_len, &k);
    finish(st, &k);
    *out_len = k.n;
    return CVG_OK;
}

int cvg_transcoder_process_b64(cvg_transcoder *st, const char *in, size_t in_len,
                               uint8_t *out, size_t *out_len)
{
    if (!st || !out_len || (in_len && !in) || (*out_len && !out)) return CVG_ERR_NULL;
    size_t raw_len;
    if (cvg_b64_check(in, in_len, &raw_len)) return CVG_ERR_ARG;
    if (raw_len % st->in_bps) return CVG_ERR_LENGTH;
    if (*out_len < cvg_transcoder_max_out(st, raw_len)) return CVG_ERR_LENGTH;
    const char *o = (const char *)out;
    if (in_len && o < in + in_len && in < o + *out_len) return CVG_ERR_OVERLAP;
    sink k = {.raw = out};
    while (in_len) {
        size_t piece = in_len > B64_PIECE ? B64_PIECE : in_len;
        size_t got = cvg_b64_decode(in, piece, st->raw_in);
        convert(st, st->raw_in, got, &k);
        in += piece;
        in_len -= piece;
    }
    *out_len = k.n;
    return CVG_OK;
}

int cvg_transcoder_process_b64_fill(cvg_transcoder *st, const char *in, size_t in_len,
                                    cvg_jitter *jb, uint32_t seq, int per_chunk,
                                    uint8_t *scratch, size_t scratch_len, uint8_t *out,
                                    size_t *out_len, uint32_t tally[CVG_FILL_TALLIES])
{
    if (!st || !out_len || !tally || !scratch || (*out_len && !out)) return CVG_ERR_NULL;
    size_t raw_len;
    if (cvg_b64_check(in, in_len, &raw_len)) return CVG_ERR_ARG;
    size_t most = cvg_transcoder_max_out(st, raw_len);
    size_t gap_room = 0;
    if (jb) {
        gap_room = cvg_jitter_fill_room(jb, 0);
        if (!gap_room) return CVG_ERR_ARG;                 /* not in zero-delay mode */
    }
    if (scratch_len < most || *out_len < most + gap_room) return CVG_ERR_LENGTH;
    if (out && out < scratch + scratch_len && scratch < out + *out_len) return CVG_ERR_OVERLAP;
    size_t pcm_len = scratch_len;
    int rc = cvg_transcoder_process_b64(st, in, in_len, scratch, &pcm_len);
    if (rc != CVG_OK) return rc;
    size_t fb = jb ? cvg_jitter_frame_bytes(jb) : 0;
    if (!fb || !pcm_len || pcm_len % fb) {
        if (pcm_len) memcpy(out, scratch, pcm_len);
        *out_len = pcm_len;
        tally[CVG_FILL_LATE] = tally[CVG_FILL_GAPS] = tally[CVG_FILL_CONCEALED] = 0;
        return CVG_OK;
    }
    uint32_t first = per_chunk ? seq * (uint32_t)(pcm_len / fb) : seq;
    return cvg_jitter_fill(jb, first, scratch, pcm_len, out, out_len, tally);
}

int cvg_transcoder_flush(cvg_transcoder *st, uint8_t *out, size_t *out_len)
{
    if (!st || !out_len || (*out_len && !out)) return CVG_ERR_NULL;
    if (*out_len < cvg_transcoder_flush_len(st)) return CVG_ERR_LENGTH;
    sink k = {.raw = out};
    size_t owed;
    do {
        size_t made = OUT_SAMPLES;
        owed = cvg_resampler_flush_len(st->rs);
        cvg_resampler_flush(st->rs, st->pcm_out, &made);
        emit(st, &k, made);
    } while (owed > OUT_SAMPLES);
    *out_len = k.n;
    return CVG_OK;
}
