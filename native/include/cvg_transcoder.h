/* Fused per-frame paths for the phone hot path: decode -> resample -> encode in one call.
 *
 * A transcoder converts (in_codec, in_rate) to (out_codec, out_rate), codecs CVG_CODEC_*, rates any of
 * 8000/16000/24000/48000 (e.g. mu-law 8 kHz -> PCM16 16 kHz inbound, PCM16 24 kHz -> mu-law 8 kHz
 * outbound). PCM16 is little-endian bytes (no alignment needed), G.711 one byte per sample. The
 * resampler inside streams exactly as cvg_resampler does (same delay, chunking-invariant output).
 *
 * Every call is all-or-nothing: it checks its arguments and the room at out first (see the *_max_out
 * functions) and returns an error without touching the state, or consumes the whole input.
 * Lengths are in bytes (characters for base64); *out_len is the room in, the bytes written out.
 * Allocation only at cvg_transcoder_new; one state must not be used by two threads at once. */
#ifndef CVG_TRANSCODER_H
#define CVG_TRANSCODER_H
#include "cvg.h"
#include "cvg_jitter.h"

enum { CVG_CODEC_PCM16 = 0, CVG_CODEC_ULAW = 1, CVG_CODEC_ALAW = 2 };

typedef struct cvg_transcoder cvg_transcoder;

/* flags: 0, or CVG_RESAMPLER_MIN_PHASE for the low-delay filter (see cvg_resampler.h).
 * NULL on failure with *err = CVG_ERR_CODEC, CVG_ERR_RATE, CVG_ERR_ARG or CVG_ERR_ALLOC. */
CVG_API cvg_transcoder *cvg_transcoder_new(int in_codec, int in_rate, int out_codec, int out_rate, int flags, int *err);
CVG_API void cvg_transcoder_free(cvg_transcoder *st);
CVG_API int cvg_transcoder_reset(cvg_transcoder *st);

/* Raw bytes in, raw bytes out. CVG_ERR_LENGTH for an odd PCM16 byte count or too little room. */
CVG_API int cvg_transcoder_process(cvg_transcoder *st, const uint8_t *in, size_t in_len,
                                   uint8_t *out, size_t *out_len);
/* One complete base64 payload in (as a provider's media message carries it), raw bytes out.
 * CVG_ERR_ARG for invalid base64. */
CVG_API int cvg_transcoder_process_b64(cvg_transcoder *st, const char *in, size_t in_len,
                                       uint8_t *out, size_t *out_len);
/* The whole inbound phone step in one call: the base64 payload decoded and converted into scratch
 * (as cvg_transcoder_process_b64), then, when the PCM is a non-empty whole number of jb's frames,
 * through cvg_jitter_fill (jb in zero-delay mode) into out, frame k numbered seq + k, or with
 * per_chunk (seq is a chunk counter, every chunk this long) seq * frames + k. Any other PCM (or
 * jb NULL) is copied to out as it is, with tally all zero. Room first, all-or-nothing:
 * scratch_len >= cvg_transcoder_max_out(raw) and *out_len >= that plus
 * cvg_jitter_fill_room(jb, 0), where raw is the payload's decoded length. */
CVG_API int cvg_transcoder_process_b64_fill(cvg_transcoder *st, const char *in, size_t in_len,
                                            cvg_jitter *jb, uint32_t seq, int per_chunk,
                                            uint8_t *scratch, size_t scratch_len, uint8_t *out,
                                            size_t *out_len, uint32_t tally[CVG_FILL_TALLIES]);
/* Raw bytes in, one complete base64 payload out (padded; not NUL-terminated). */
CVG_API int cvg_transcoder_process_to_b64(cvg_transcoder *st, const uint8_t *in, size_t in_len,
                                          char *out, size_t *out_len);
/* The tail still owed (raw bytes); then the state is reset for a new stream. */
CVG_API int cvg_transcoder_flush(cvg_transcoder *st, uint8_t *out, size_t *out_len);

/* Room needed (bytes) for in_len more raw input bytes / for the flush; base64 output needs
 * 4 * ceil(n / 3) characters for n raw bytes. */
CVG_API size_t cvg_transcoder_max_out(const cvg_transcoder *st, size_t in_len);
CVG_API size_t cvg_transcoder_flush_len(const cvg_transcoder *st);
/* Group delay of the resampling stage, in output samples. */
CVG_API double cvg_transcoder_delay(const cvg_transcoder *st);

#endif
