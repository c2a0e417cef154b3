/* Base64 without allocation: a validation pass, then a table-driven decode; encode by 3-byte groups. */
#include "base64.h"

static const char ENC[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const int8_t DEC[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

int cvg_b64_check(const char *s, size_t n, size_t *decoded_len)
{
    size_t pad = 0;
    if (n % 4 == 0 && n >= 1 && s[n - 1] == '=') pad = (n >= 2 && s[n - 2] == '=') ? 2 : 1;
    size_t body = n - pad;
    if (body % 4 == 1) return -1;                 /* a lone 6-bit digit encodes nothing */
    if (pad && body % 4 == 0) return -1;          /* "====" style padding after a full group */
    unsigned bad = 0;
    for (size_t i = 0; i < body; i++) bad |= (unsigned)(DEC[(unsigned char)s[i]] < 0);
    if (bad) return -1;
    *decoded_len = body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0);
    return 0;
}

size_t cvg_b64_decode(const char *s, size_t n, uint8_t *out)
{
    while (n && s[n - 1] == '=') n--;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)DEC[(unsigned char)s[i]] << 18 | (uint32_t)DEC[(unsigned char)s[i + 1]] << 12
                   | (uint32_t)DEC[(unsigned char)s[i + 2]] << 6 | (uint32_t)DEC[(unsigned char)s[i + 3]];
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    size_t rest = n - i;                          /* 0, 2 or 3 (checked) */
    if (rest >= 2) {
        uint32_t v = (uint32_t)DEC[(unsigned char)s[i]] << 18 | (uint32_t)DEC[(unsigned char)s[i + 1]] << 12;
        if (rest == 3) v |= (uint32_t)DEC[(unsigned char)s[i + 2]] << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (rest == 3) out[o++] = (uint8_t)(v >> 8);
    }
    return o;
}

size_t cvg_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = ENC[v >> 18];
        out[o++] = ENC[(v >> 12) & 63];
        out[o++] = ENC[(v >> 6) & 63];
        out[o++] = ENC[v & 63];
    }
    if (n - i) {
        uint32_t v = (uint32_t)in[i] << 16 | (n - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = ENC[v >> 18];
        out[o++] = ENC[(v >> 12) & 63];
        out[o++] = n - i == 2 ? ENC[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    return o;
}
