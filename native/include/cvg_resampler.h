/* Streaming polyphase resampler, PCM16 mono, between any two of 8000, 16000, 24000 and 48000 Hz.
 *
 * A linear-phase Kaiser-windowed sinc, designed at cvg_resampler_new for the rational ratio L/M and
 * split into L phases. The filter spans 64 samples of the lower rate, so the group delay is
 * 32 / lower_rate: 4 ms when the lower rate is 8 kHz, 2 ms at 16 kHz. Nothing else is held back:
 * every output whose last input sample has arrived is returned by the same call, and the output is
 * identical however the input is split into calls. The output is causal: output sample j holds the
 * input at time j / out_rate - delay (the first samples are the filter's ramp-in); flush() feeds the
 * tail so the whole input comes out.
 *
 * Lengths go in and come back through pointers, in samples:
 *   *in_len  in: samples available at in,  out: samples consumed
 *   *out_len in: room at out (samples),     out: samples written
 * Input is only consumed while there is room for the output it makes; ceil(n * out_rate / in_rate) + 1
 * samples of room always suffice for n input samples (cvg_resampler_max_out).
 * Memory is allocated only by cvg_resampler_new; one state must not be used by two threads at once.
 */
#ifndef CVG_RESAMPLER_H
#define CVG_RESAMPLER_H
#include "cvg.h"

typedef struct cvg_resampler cvg_resampler;

/* NULL on failure, with *err (if err is not NULL) set to CVG_ERR_RATE or CVG_ERR_ALLOC. */
CVG_API cvg_resampler *cvg_resampler_new(int in_rate, int out_rate, int *err);
/* Low-delay mode: CVG_RESAMPLER_MIN_PHASE uses the minimum-phase twin of the filter: the same magnitude
 * response (ripple, -3 dB point, rejection), a group delay of ~0.3 ms through most of the band instead
 * of 2-4 ms, rising towards the band edge (non-linear phase). cvg_resampler_delay() then reports the
 * group delay at a quarter of the lower Nyquist (1 kHz when the lower rate is 8 kHz). */
#define CVG_RESAMPLER_MIN_PHASE 1
CVG_API cvg_resampler *cvg_resampler_new_ex(int in_rate, int out_rate, int flags, int *err);
CVG_API int cvg_resampler_process(cvg_resampler *st, const int16_t *in, size_t *in_len,
                                  int16_t *out, size_t *out_len);
/* Bytes in, bytes out, for bindings: PCM16 little-endian, in needs no alignment, out must be 2-byte
 * aligned. All or nothing: returns the bytes written (>= 0) after consuming all of in, or -cvg_error
 * with the state untouched (-CVG_ERR_LENGTH: odd in_bytes, or out_bytes < 2 * cvg_resampler_max_out). */
CVG_API long cvg_resampler_process_bytes(cvg_resampler *st, const uint8_t *in, size_t in_bytes,
                                         uint8_t *out, size_t out_bytes);
/* Emit the tail (the output still owed for input already consumed) into out, up to *out_len
 * samples. When the whole tail has been written (*out_len came back smaller than the room given,
 * or cvg_resampler_flush_len() is 0) the state is reset for a new stream. */
CVG_API int cvg_resampler_flush(cvg_resampler *st, int16_t *out, size_t *out_len);
CVG_API size_t cvg_resampler_flush_len(const cvg_resampler *st);
CVG_API int cvg_resampler_reset(cvg_resampler *st);
CVG_API void cvg_resampler_free(cvg_resampler *st);
/* Group delay in output samples (may be fractional). */
CVG_API double cvg_resampler_delay(const cvg_resampler *st);
/* Upper bound of the output that n more input samples produce. */
CVG_API size_t cvg_resampler_max_out(const cvg_resampler *st, size_t n);
/* Taps per polyphase branch (the inner-loop length): for tests and benchmarks. */
CVG_API int cvg_resampler_taps(const cvg_resampler *st);

#endif
