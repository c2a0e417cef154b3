/* Converse Gateway audio core: common definitions.
 * Every exported symbol starts with cvg_; everything else is static or hidden. */
#ifndef CVG_H
#define CVG_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define CVG_API __attribute__((visibility("default")))
#else
#define CVG_API
#endif

typedef enum {
    CVG_OK = 0,
    CVG_ERR_NULL = 1,        /* a required pointer was NULL */
    CVG_ERR_RATE = 2,        /* unsupported sample rate */
    CVG_ERR_LENGTH = 3,      /* bad length (odd byte count, too long for the buffer, ...) */
    CVG_ERR_ALLOC = 4,       /* allocation failed at creation */
    CVG_ERR_ARG = 5,         /* another invalid argument */
    CVG_ERR_OVERLAP = 6,     /* input and output buffers overlap */
    CVG_ERR_CODEC = 7,       /* unknown codec id */
} cvg_error;

CVG_API const char *cvg_strerror(int err);
CVG_API const char *cvg_version(void);

/* Allocation hooks: every allocation in the core goes through these so a debug build
 * (CVG_COUNT_ALLOCS) can prove the per-frame path allocates nothing. */
void *cvg_malloc(size_t n);
void *cvg_calloc(size_t n, size_t size);
void cvg_free(void *p);
CVG_API long cvg_alloc_count(void);   /* -1 when the counter is not compiled in */

#endif
