/* G.711 codecs over the generated tables (g711_tables.c). The guards run once per call, the loops
 * are plain table lookups (the 16 KiB mu-law encode table stays in L1). */
#include <string.h>

#include "cvg_g711.h"
#include "g711_tables.h"

/* Byte ranges [a, a+na) and [b, b+nb) intersect. */
static int overlaps(const void *a, size_t na, const void *b, size_t nb)
{
    const char *pa = a, *pb = b;
    return pa < pb + nb && pb < pa + na;
}

static int check_encode(const int16_t *in, size_t n, const uint8_t *out)
{
    if (n == 0) return CVG_OK;
    if (!in || !out) return CVG_ERR_NULL;
    /* In place is safe: out[i] only overwrites input bytes already read. */
    if ((const void *)out != (const void *)in && overlaps(in, 2 * n, out, n)) return CVG_ERR_OVERLAP;
    return CVG_OK;
}

static int check_decode(const uint8_t *in, size_t n, const int16_t *out)
{
    if (n == 0) return CVG_OK;
    if (!in || !out) return CVG_ERR_NULL;
    if (overlaps(in, n, out, 2 * n)) return CVG_ERR_OVERLAP;
    return CVG_OK;
}

int cvg_ulaw_encode(const int16_t *in, size_t n, uint8_t *out)
{
    int err = check_encode(in, n, out);
    if (err || n == 0) return err;
    for (size_t i = 0; i < n; i++) out[i] = cvg_ulaw_enc_tab[(in[i] >> 2) + 8192];
    return CVG_OK;
}

int cvg_alaw_encode(const int16_t *in, size_t n, uint8_t *out)
{
    int err = check_encode(in, n, out);
    if (err || n == 0) return err;
    for (size_t i = 0; i < n; i++) out[i] = cvg_alaw_enc_tab[(in[i] >> 3) + 4096];
    return CVG_OK;
}

int cvg_ulaw_decode(const uint8_t *in, size_t n, int16_t *out)
{
    int err = check_decode(in, n, out);
    if (err || n == 0) return err;
    for (size_t i = 0; i < n; i++) out[i] = cvg_ulaw_dec_tab[in[i]];
    return CVG_OK;
}

int cvg_alaw_decode(const uint8_t *in, size_t n, int16_t *out)
{
    int err = check_decode(in, n, out);
    if (err || n == 0) return err;
    for (size_t i = 0; i < n; i++) out[i] = cvg_alaw_dec_tab[in[i]];
    return CVG_OK;
}

static inline int le16(const uint8_t *b)
{
    return (int16_t)(uint16_t)(b[0] | b[1] << 8);
}

static int check_encode_le(const uint8_t *in, size_t n_bytes, const uint8_t *out)
{
    if (n_bytes % 2) return CVG_ERR_LENGTH;
    if (n_bytes == 0) return CVG_OK;
    if (!in || !out) return CVG_ERR_NULL;
    if (out != in && overlaps(in, n_bytes, out, n_bytes / 2)) return CVG_ERR_OVERLAP;
    return CVG_OK;
}

int cvg_ulaw_encode_le(const uint8_t *in, size_t n_bytes, uint8_t *out)
{
    int err = check_encode_le(in, n_bytes, out);
    if (err || n_bytes == 0) return err;
    for (size_t i = 0; i < n_bytes / 2; i++) out[i] = cvg_ulaw_enc_tab[(le16(in + 2 * i) >> 2) + 8192];
    return CVG_OK;
}

int cvg_alaw_encode_le(const uint8_t *in, size_t n_bytes, uint8_t *out)
{
    int err = check_encode_le(in, n_bytes, out);
    if (err || n_bytes == 0) return err;
    for (size_t i = 0; i < n_bytes / 2; i++) out[i] = cvg_alaw_enc_tab[(le16(in + 2 * i) >> 3) + 4096];
    return CVG_OK;
}
