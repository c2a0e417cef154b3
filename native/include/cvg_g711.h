/* G.711 mu-law and A-law, bit-exact with Python's audioop (lin2ulaw/ulaw2lin/lin2alaw/alaw2lin).
 * Table-driven: encode looks up the top 14 (mu-law) or 13 (A-law) bits, decode a 256-entry table.
 * n counts samples (= codes). Returns CVG_OK, CVG_ERR_NULL (NULL pointer with n > 0) or
 * CVG_ERR_OVERLAP (buffers overlap; encode may run in place, i.e. out == (uint8_t *)in). */
#ifndef CVG_G711_H
#define CVG_G711_H
#include "cvg.h"

CVG_API int cvg_ulaw_encode(const int16_t *in, size_t n, uint8_t *out);
CVG_API int cvg_ulaw_decode(const uint8_t *in, size_t n, int16_t *out);
CVG_API int cvg_alaw_encode(const int16_t *in, size_t n, uint8_t *out);
CVG_API int cvg_alaw_decode(const uint8_t *in, size_t n, int16_t *out);
/* Encoders reading PCM16 little-endian bytes (no alignment needed), for bindings: n_bytes must be
 * even (else CVG_ERR_LENGTH); writes n_bytes / 2 codes. */
CVG_API int cvg_ulaw_encode_le(const uint8_t *in, size_t n_bytes, uint8_t *out);
CVG_API int cvg_alaw_encode_le(const uint8_t *in, size_t n_bytes, uint8_t *out);

#endif
