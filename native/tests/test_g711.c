/* G.711: every PCM16 input and every code against the reference algorithms (Sun's g711.c, which
 * CPython's audioop uses), plus the API guards. */
#include <stdio.h>
#include <string.h>

#include "cvg_g711.h"

static const int seg_uend[8] = {0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF};
static const int seg_aend[8] = {0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF};

static int search(int val, const int *table)
{
    for (int i = 0; i < 8; i++)
        if (val <= table[i]) return i;
    return 8;
}

static uint8_t ref_ulaw(int16_t pcm16)
{
    int v = pcm16 >> 2, mask;
    if (v < 0) { v = -v; mask = 0x7F; } else { mask = 0xFF; }
    if (v > 8159) v = 8159;
    v += 0x84 >> 2;
    int seg = search(v, seg_uend);
    if (seg >= 8) return (uint8_t)(0x7F ^ mask);
    return (uint8_t)(((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask);
}

static uint8_t ref_alaw(int16_t pcm16)
{
    int v = pcm16 >> 3, mask;
    if (v >= 0) { mask = 0xD5; } else { mask = 0x55; v = -v - 1; }
    int seg = search(v, seg_aend);
    if (seg >= 8) return (uint8_t)(0x7F ^ mask);
    int a = seg << 4;
    a |= seg < 2 ? (v >> 1) & 0xF : (v >> seg) & 0xF;
    return (uint8_t)(a ^ mask);
}

static int16_t ref_ulaw_dec(uint8_t u)
{
    u = (uint8_t)~u;
    int t = (((u & 0xF) << 3) + 0x84) << ((u & 0x70) >> 4);
    return (int16_t)((u & 0x80) ? 0x84 - t : t - 0x84);
}

static int16_t ref_alaw_dec(uint8_t a)
{
    a ^= 0x55;
    int t = (a & 0xF) << 4, seg = (a & 0x70) >> 4;
    if (seg == 0) t += 8;
    else if (seg == 1) t += 0x108;
    else t = (t + 0x108) << (seg - 1);
    return (int16_t)((a & 0x80) ? t : -t);
}

static int16_t pcm[65536];
static uint8_t codes[65536];
static int16_t dec[256];

int main(void)
{
    int fails = 0;
    for (int i = 0; i < 65536; i++) pcm[i] = (int16_t)(i - 32768);

    if (cvg_ulaw_encode(pcm, 65536, codes)) return 1;
    for (int i = 0; i < 65536; i++) fails += codes[i] != ref_ulaw(pcm[i]);
    if (cvg_alaw_encode(pcm, 65536, codes)) return 1;
    for (int i = 0; i < 65536; i++) fails += codes[i] != ref_alaw(pcm[i]);

    /* the little-endian byte encoders, from an odd address */
    static uint8_t le[2 * 65536 + 1], codes_le[65536];
    for (int i = 0; i < 65536; i++) { le[1 + 2 * i] = (uint8_t)(pcm[i] & 0xFF); le[2 + 2 * i] = (uint8_t)((uint16_t)pcm[i] >> 8); }
    if (cvg_ulaw_encode_le(le + 1, 2 * 65536, codes_le) || cvg_ulaw_encode(pcm, 65536, codes)) return 1;
    fails += memcmp(codes, codes_le, 65536) != 0;
    if (cvg_alaw_encode_le(le + 1, 2 * 65536, codes_le) || cvg_alaw_encode(pcm, 65536, codes)) return 1;
    fails += memcmp(codes, codes_le, 65536) != 0;
    fails += cvg_ulaw_encode_le(le, 3, codes_le) != CVG_ERR_LENGTH;

    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    if (cvg_ulaw_decode(all, 256, dec)) return 1;
    for (int i = 0; i < 256; i++) fails += dec[i] != ref_ulaw_dec((uint8_t)i);
    if (cvg_alaw_decode(all, 256, dec)) return 1;
    for (int i = 0; i < 256; i++) fails += dec[i] != ref_alaw_dec((uint8_t)i);

    /* guards: NULL, zero length, overlap; in-place encode is allowed */
    fails += cvg_ulaw_encode(NULL, 4, codes) != CVG_ERR_NULL;
    fails += cvg_alaw_decode(all, 4, NULL) != CVG_ERR_NULL;
    fails += cvg_ulaw_encode(NULL, 0, NULL) != CVG_OK;
    fails += cvg_ulaw_decode((const uint8_t *)pcm + 1, 8, pcm) != CVG_ERR_OVERLAP;
    fails += cvg_alaw_encode(pcm + 1, 8, (uint8_t *)pcm + 4) != CVG_ERR_OVERLAP;
    int16_t inplace[8] = {0, 1000, -1000, 32767, -32768, 5, -5, 12345};
    uint8_t expect[8];
    cvg_ulaw_encode(inplace, 8, expect);
    fails += cvg_ulaw_encode(inplace, 8, (uint8_t *)inplace) != CVG_OK;
    fails += memcmp(inplace, expect, 8) != 0;

    printf("test_g711: 65536 PCM16 inputs x 2 codecs (int16 and LE-byte APIs) and 256 codes x 2 against the reference, guards: %s\n",
           fails ? "FAIL" : "ok");
    return fails != 0;
}
