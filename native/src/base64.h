/* Internal: standard-alphabet base64 (RFC 4648 section 4) for the transcoder's payload paths. */
#ifndef CVG_BASE64_H
#define CVG_BASE64_H
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CVG_B64_HIDDEN __attribute__((visibility("hidden")))
#else
#define CVG_B64_HIDDEN
#endif

/* Validate s[0..n): alphabet A-Z a-z 0-9 + /, '=' padding only at the end (at most two, only when n is
 * a multiple of 4); unpadded input is accepted. Returns 0 and the decoded length, or -1. */
CVG_B64_HIDDEN int cvg_b64_check(const char *s, size_t n, size_t *decoded_len);
/* Decode validated input (padding stripped by the caller or not); returns bytes written. */
CVG_B64_HIDDEN size_t cvg_b64_decode(const char *s, size_t n, uint8_t *out);
/* Encode in[0..n) with padding; returns CVG_B64_ENCODED_LEN(n). Concatenating the encodings of
 * pieces whose lengths are multiples of 3 gives the encoding of the whole. */
CVG_B64_HIDDEN size_t cvg_b64_encode(const uint8_t *in, size_t n, char *out);
#define CVG_B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)

#endif
