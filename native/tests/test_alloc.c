/* No allocation between _new and _free: 10,000 process calls (plus flush/reset) on resamplers and
 * transcoders leave the allocation counter (CVG_COUNT_ALLOCS build) where _new left it. */
#include <stdio.h>

#include "cvg_g711.h"
#include "cvg_resampler.h"
#include "cvg_transcoder.h"

static int16_t in[960], out[6000];
static uint8_t bytes[12000];
static char b64[16000];

int main(void)
{
    if (cvg_alloc_count() < 0) {
        printf("test_alloc: built without CVG_COUNT_ALLOCS\n");
        return 1;
    }
    for (int i = 0; i < 960; i++) in[i] = (int16_t)(i * 37 - 16000);
    cvg_resampler *r[3] = {cvg_resampler_new(16000, 24000, NULL), cvg_resampler_new(24000, 8000, NULL),
                           cvg_resampler_new(48000, 16000, NULL)};
    cvg_transcoder *tin = cvg_transcoder_new(CVG_CODEC_ULAW, 8000, CVG_CODEC_PCM16, 16000, 0, NULL);
    cvg_transcoder *tout = cvg_transcoder_new(CVG_CODEC_PCM16, 24000, CVG_CODEC_ULAW, 8000, 0, NULL);
    long before = cvg_alloc_count();
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        for (int k = 0; k < 3; k++) {
            size_t used = 320 + (size_t)(i % 7), room = 6000;
            bad |= cvg_resampler_process(r[k], in, &used, out, &room);
        }
        size_t n = sizeof bytes;
        cvg_ulaw_encode(in, 160, bytes);
        bad |= cvg_transcoder_process(tin, bytes, 160, (uint8_t *)out, &n);
        n = sizeof b64;
        bad |= cvg_transcoder_process_b64(tin, "f39/f39/", 8, bytes, &n);
        n = sizeof b64;
        bad |= cvg_transcoder_process_to_b64(tout, (const uint8_t *)in, 960, b64, &n);
        if (i % 1000 == 999) {
            size_t room = 6000;
            bad |= cvg_resampler_flush(r[0], out, &room);
            bad |= cvg_resampler_reset(r[1]);
            n = sizeof bytes;
            bad |= cvg_transcoder_flush(tout, bytes, &n);
        }
    }
    long during = cvg_alloc_count() - before;
    for (int k = 0; k < 3; k++) cvg_resampler_free(r[k]);
    cvg_transcoder_free(tin);
    cvg_transcoder_free(tout);
    printf("test_alloc: %ld allocations in 10,000 x (3 resampler + 3 transcoder) calls with flush/reset "
           "(before: %ld at _new): %s\n", during, before, !during && !bad ? "ok" : "FAIL");
    return during != 0 || bad;
}
