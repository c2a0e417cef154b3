#include <stdlib.h>

#include "cvg.h"

const char *cvg_version(void) { return "0.1.0"; }

const char *cvg_strerror(int err)
{
    switch (err) {
    case CVG_OK: return "ok";
    case CVG_ERR_NULL: return "null pointer";
    case CVG_ERR_RATE: return "unsupported sample rate";
    case CVG_ERR_LENGTH: return "bad length";
    case CVG_ERR_ALLOC: return "out of memory";
    case CVG_ERR_ARG: return "invalid argument";
    case CVG_ERR_OVERLAP: return "input and output buffers overlap";
    case CVG_ERR_CODEC: return "unknown codec";
    default: return "unknown error";
    }
}

#ifdef CVG_COUNT_ALLOCS
/* Not thread-safe on purpose: the counter only exists in single-threaded test builds. */
static long alloc_count;
long cvg_alloc_count(void) { return alloc_count; }
#define COUNT() (alloc_count++)
#else
long cvg_alloc_count(void) { return -1; }
#define COUNT() ((void)0)
#endif

void *cvg_malloc(size_t n) { COUNT(); return malloc(n); }
void *cvg_calloc(size_t n, size_t size) { COUNT(); return calloc(n, size); }
void cvg_free(void *p) { free(p); }
