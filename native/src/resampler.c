/* Streaming polyphase resampler (see cvg_resampler.h for the contract).
 *
 * Output j sits at index j*M of the input upsampled by L (rate F = L * in_rate). With the prototype
 * h of N = L*T taps, y[j] = sum_t h[p + L*t] * x[base - t], where p = j*M mod L and
 * base = floor(j*M / L): a dot product of phase p (stored reversed) with the T input samples ending
 * at base. Input is converted to float once into `buf`, which keeps T-1 samples of history; every
 * output whose window is complete is computed at once, so nothing is held back. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cvg_resampler.h"
#include "resampler_filters.h"

#define BLOCK 1024          /* input samples converted per refill of buf */
#define ALIGN 32
#define VEC 8               /* floats per vector */
#define TAP_PAD 32          /* every phase is padded to a multiple (four accumulators of VEC) */
#define MAX_L 8

struct cvg_resampler {
    int in_rate, out_rate;
    int L, M;               /* out/in = L/M in lowest terms */
    int T;                  /* taps per phase, padded to VEC (zeros on the oldest side) */
    int N;                  /* prototype length (unpadded) */
    double delay_f;         /* group delay in samples at F: (N-1)/2, or the minimum-phase figure */
    float *phases;          /* L x T, ALIGN-aligned, inside phases_mem */
    void *phases_mem;
    float *buf;             /* T-1 history + BLOCK */
    int buf_cap, nbuf;
    int w;                  /* buf index where the next output's window starts */
    int p;                  /* next output's phase */
    int step[MAX_L], next[MAX_L];
    uint64_t n_in, n_out;   /* since the last reset; the flush tail is computed from these */
    size_t (*kernel)(cvg_resampler *st, int16_t *out, size_t room);
};

static int supported(int rate)
{
    return rate == 8000 || rate == 16000 || rate == 24000 || rate == 48000;
}

static int gcd(int a, int b)
{
    while (b) { int t = a % b; a = b; b = t; }
    return a;
}

/* ------------------------------------------------------------------ inner loop */

/* Four independent 8-lane accumulators hide the add latency; T is a multiple of 32. The lane sums are
 * combined in a fixed order, so a stream's output never depends on how it was chunked. */
#if defined(__GNUC__) || defined(__clang__)
typedef float v8f __attribute__((vector_size(32)));

/* Unaligned-safe load (compiles to vector loads); a macro, since passing 32-byte vectors by value
 * between functions draws ABI warnings on baseline x86-64. */
#define LOAD8(dst, p) memcpy(&(dst), (p), sizeof(v8f))

static inline float dot(const float *restrict c, const float *restrict x, int T)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, c0, c1, c2, c3, x0, x1, x2, x3;
    for (int u = 0; u < T; u += 4 * VEC) {
        LOAD8(c0, c + u); LOAD8(c1, c + u + 8); LOAD8(c2, c + u + 16); LOAD8(c3, c + u + 24);
        LOAD8(x0, x + u); LOAD8(x1, x + u + 8); LOAD8(x2, x + u + 16); LOAD8(x3, x + u + 24);
        a0 += c0 * x0;
        a1 += c1 * x1;
        a2 += c2 * x2;
        a3 += c3 * x3;
    }
    a0 = (a0 + a1) + (a2 + a3);
    return ((a0[0] + a0[4]) + (a0[1] + a0[5])) + ((a0[2] + a0[6]) + (a0[3] + a0[7]));
}
#else
static inline float dot(const float *restrict c, const float *restrict x, int T)
{
    float acc[4 * VEC] = {0};
    for (int u = 0; u < T; u += 4 * VEC)
        for (int l = 0; l < 4 * VEC; l++) acc[l] += c[u + l] * x[u + l];
    for (int l = 0; l < VEC; l++) acc[l] = (acc[l] + acc[l + 8]) + (acc[l + 16] + acc[l + 24]);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
#endif

static inline int16_t sat16(float v)
{
    if (v >= 32767.0f) return 32767;
    if (v <= -32768.0f) return -32768;
    return (int16_t)lrintf(v);
}

/* Compute every output whose window is complete, up to `room`. */
static size_t produce_generic(cvg_resampler *st, int16_t *out, size_t room)
{
    const int T = st->T, nbuf = st->nbuf;
    const float *buf = st->buf, *ph = st->phases;
    int w = st->w, p = st->p;
    size_t n = 0;
    while (n < room && w + T <= nbuf) {
        out[n++] = sat16(dot(ph + (size_t)p * T, buf + w, T));
        w += st->step[p];
        p = st->next[p];
    }
    st->w = w;
    st->p = p;
    return n;
}

/* x86-64: an AVX2+FMA kernel picked at run time (cvg_resampler_new), same summation order. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(CVG_NO_AVX2)
#define CVG_HAVE_AVX2 1
#include <immintrin.h>

/* Eight outputs at a time: eight independent FMA chains (one accumulator each), reduced together by
 * a transposing hadd tree, clamped and packed to int16 with one store. The single-output path below
 * does the same additions in the same grouping, ((a01 + a23) + (a45 + a67)), and the same rounding,
 * so the result of each output is bit-identical whichever path computes it. */
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 clamp16(__m256 v)
{
    return _mm256_max_ps(_mm256_min_ps(v, _mm256_set1_ps(32767.0f)), _mm256_set1_ps(-32768.0f));
}

/* The eight accumulators' horizontal sums, saturated and rounded to eight int16 in order. */
AVX2 static inline __m128i sum8_to_i16(const __m256 a[8])
{
    __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
    __m256i i32 = _mm256_cvtps_epi32(clamp16(s));
    return _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
}

AVX2 static inline void dot8_avx2(const float *const c[8], const float *const x[8], int T, int16_t *out)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC)
        for (int k = 0; k < 8; k++)
            a[k] = _mm256_fmadd_ps(_mm256_load_ps(c[k] + u), _mm256_loadu_ps(x[k] + u), a[k]);
    __m128i i16 = sum8_to_i16(a);
    _mm_storeu_si128((__m128i *)(void *)out, i16);
}

/* The same for an integer decimator (L = 1): one phase, so each coefficient vector is loaded once
 * for the eight outputs (1.1 loads per FMA instead of 2). Same arithmetic, same results. */
AVX2 static inline void dot8_one_phase_avx2(const float *c, const float *const x[8], int T, int16_t *out)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC) {
        __m256 cv = _mm256_load_ps(c + u);
        for (int k = 0; k < 8; k++) a[k] = _mm256_fmadd_ps(cv, _mm256_loadu_ps(x[k] + u), a[k]);
    }
    __m128i i16 = sum8_to_i16(a);
    _mm_storeu_si128((__m128i *)(void *)out, i16);
}

/* Upsampling by 2 (M = 1, L = 2) from phase 0: eight outputs are four windows x two phases, so
 * each window and each phase is loaded once (0.75 loads per FMA). Same arithmetic, same results. */
AVX2 static inline void dot8_up2_avx2(const float *ph, const float *x, int T, int16_t *out)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC) {
        __m256 c0 = _mm256_load_ps(ph + u), c1 = _mm256_load_ps(ph + T + u);
        for (int k = 0; k < 4; k++) {
            __m256 xv = _mm256_loadu_ps(x + k + u);
            a[2 * k] = _mm256_fmadd_ps(c0, xv, a[2 * k]);
            a[2 * k + 1] = _mm256_fmadd_ps(c1, xv, a[2 * k + 1]);
        }
    }
    __m128i i16 = sum8_to_i16(a);
    _mm_storeu_si128((__m128i *)(void *)out, i16);
}

/* 16 -> 24 kHz (L = 3, M = 2) from phase 0: six outputs use phases 0,2,1,0,2,1 over windows
 * b,b,b+1,b+2,b+2,b+3, so per step three phase loads and four window loads feed six FMAs. */
AVX2 static inline void dot6_up3by2_avx2(const float *ph, const float *x, int T, int16_t *out)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC) {
        __m256 c0 = _mm256_load_ps(ph + u), c1 = _mm256_load_ps(ph + T + u), c2 = _mm256_load_ps(ph + 2 * T + u);
        __m256 x0 = _mm256_loadu_ps(x + u), x1 = _mm256_loadu_ps(x + 1 + u);
        __m256 x2 = _mm256_loadu_ps(x + 2 + u), x3 = _mm256_loadu_ps(x + 3 + u);
        a[0] = _mm256_fmadd_ps(c0, x0, a[0]);
        a[1] = _mm256_fmadd_ps(c2, x0, a[1]);
        a[2] = _mm256_fmadd_ps(c1, x1, a[2]);
        a[3] = _mm256_fmadd_ps(c0, x2, a[3]);
        a[4] = _mm256_fmadd_ps(c2, x2, a[4]);
        a[5] = _mm256_fmadd_ps(c1, x3, a[5]);
    }
    __m128i i16 = sum8_to_i16(a);
    int16_t tmp[8];
    _mm_storeu_si128((__m128i *)(void *)tmp, i16);
    memcpy(out, tmp, 6 * sizeof *out);
}

/* L = 2 with odd M (24 -> 16 kHz) from phase 0: outputs alternate phases 0,1, so the two phase
 * vectors are loaded once per step for the eight outputs. */
AVX2 static inline void dot8_two_phase_avx2(const float *ph, const float *const x[8], int T, int16_t *out)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC) {
        __m256 c0 = _mm256_load_ps(ph + u), c1 = _mm256_load_ps(ph + T + u);
        for (int k = 0; k < 8; k += 2) {
            a[k] = _mm256_fmadd_ps(c0, _mm256_loadu_ps(x[k] + u), a[k]);
            a[k + 1] = _mm256_fmadd_ps(c1, _mm256_loadu_ps(x[k + 1] + u), a[k + 1]);
        }
    }
    __m128i i16 = sum8_to_i16(a);
    _mm_storeu_si128((__m128i *)(void *)out, i16);
}

AVX2 static inline int16_t dot1_avx2(const float *c, const float *x, int T)
{
    __m256 a = _mm256_setzero_ps();
    for (int u = 0; u < T; u += VEC) a = _mm256_fmadd_ps(_mm256_load_ps(c + u), _mm256_loadu_ps(x + u), a);
    __m256 h = _mm256_hadd_ps(a, a);
    h = _mm256_hadd_ps(h, h);
    __m128 s = _mm_add_ss(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    return (int16_t)_mm_cvtss_si32(_mm256_castps256_ps128(clamp16(_mm256_castps128_ps256(s))));
}

AVX2 static size_t produce_avx2(cvg_resampler *st, int16_t *out, size_t room)
{
    const int T = st->T, nbuf = st->nbuf;
    const float *buf = st->buf, *ph = st->phases;
    int w = st->w, p = st->p;
    size_t n = 0;
    const int up3by2 = st->L == 3 && st->M == 2;
    while (n < room && w + T <= nbuf) {
        if (up3by2 && p == 0 && room - n >= 6 && w + 3 + T <= nbuf) {
            dot6_up3by2_avx2(ph, buf + w, T, out + n);
            n += 6;
            w += 4;
            continue;
        }
        if (room - n >= 8) {
            const float *c[8], *x[8];
            int ww = w, pp = p;
            for (int k = 0; k < 8; k++) {
                c[k] = ph + (size_t)pp * T;
                x[k] = buf + ww;
                ww += st->step[pp];
                pp = st->next[pp];
            }
            if (x[7] + T <= buf + nbuf) {
                if (st->L == 1)
                    dot8_one_phase_avx2(ph, x, T, out + n);
                else if (st->L == 2 && st->M == 1 && p == 0)
                    dot8_up2_avx2(ph, x[0], T, out + n);
                else if (st->L == 2 && p == 0)
                    dot8_two_phase_avx2(ph, x, T, out + n);
                else
                    dot8_avx2(c, x, T, out + n);
                n += 8;
                w = ww;
                p = pp;
                continue;
            }
        }
        out[n++] = dot1_avx2(ph + (size_t)p * T, buf + w, T);
        w += st->step[p];
        p = st->next[p];
    }
    st->w = w;
    st->p = p;
    return n;
}
#endif

static size_t produce(cvg_resampler *st, int16_t *out, size_t room)
{
    size_t n = st->kernel(st, out, room);
    st->n_out += n;
    return n;
}

/* Input samples, either host-order int16 or little-endian bytes (no alignment needed). */
typedef struct {
    const void *p;
    int le_bytes;
} source;

static inline int16_t load_le16(const uint8_t *b)
{
    int16_t v;
    memcpy(&v, b, 2);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = (int16_t)((uint16_t)v << 8 | (uint16_t)v >> 8);
#endif
    return v;
}

/* Drop what no future window needs, then append up to `n` samples from in[at..] (zeros when in.p
 * is NULL). */
static size_t refill(cvg_resampler *st, source in, size_t at, size_t n)
{
    int keep = st->nbuf - st->w;       /* >= 0: a step never exceeds T (checked at _new) */
    if (st->w > 0) {
        memmove(st->buf, st->buf + st->w, (size_t)keep * sizeof(float));
        st->nbuf = keep;
        st->w = 0;
    }
    size_t room = (size_t)(st->buf_cap - st->nbuf);
    size_t k = n < room ? n : room;
    float *dst = st->buf + st->nbuf;
    if (in.p && in.le_bytes) {
        const uint8_t *b = (const uint8_t *)in.p + 2 * at;
        for (size_t i = 0; i < k; i++) dst[i] = (float)load_le16(b + 2 * i);
    } else if (in.p) {
        const int16_t *x = (const int16_t *)in.p + at;
        for (size_t i = 0; i < k; i++) dst[i] = (float)x[i];
    } else {
        memset(dst, 0, k * sizeof(float));
    }
    st->nbuf += (int)k;
    return k;
}

/* ------------------------------------------------------------------ lifecycle */

static const double *prototype(int k, int min_phase, double *delay)
{
    switch (k) {
    case 2: *delay = min_phase ? cvg_proto_min_k2_delay : 63.5; return min_phase ? cvg_proto_min_k2 : cvg_proto_k2;
    case 3: *delay = min_phase ? cvg_proto_min_k3_delay : 95.5; return min_phase ? cvg_proto_min_k3 : cvg_proto_k3;
    case 6: *delay = min_phase ? cvg_proto_min_k6_delay : 191.5; return min_phase ? cvg_proto_min_k6 : cvg_proto_k6;
    default: return NULL;
    }
}

/* Split the prototype (scaled by L) into L reversed, zero-padded phases. */
static void build_phases(cvg_resampler *st, const double *h, int taps)
{
    const int L = st->L, T = st->T, pad = T - taps;
    for (int p = 0; p < L; p++) {
        float *dst = st->phases + (size_t)p * T;
        for (int u = 0; u < pad; u++) dst[u] = 0.0f;
        for (int u = 0; u < taps; u++) dst[pad + u] = (float)(L * h[p + L * (taps - 1 - u)]);
    }
}

cvg_resampler *cvg_resampler_new(int in_rate, int out_rate, int *err)
{
    return cvg_resampler_new_ex(in_rate, out_rate, 0, err);
}

cvg_resampler *cvg_resampler_new_ex(int in_rate, int out_rate, int flags, int *err)
{
    int e = CVG_OK;
    cvg_resampler *st = NULL;
    if (!supported(in_rate) || !supported(out_rate)) { e = CVG_ERR_RATE; goto fail; }
    if (flags & ~CVG_RESAMPLER_MIN_PHASE) { e = CVG_ERR_ARG; goto fail; }

    st = cvg_calloc(1, sizeof *st);
    if (!st) { e = CVG_ERR_ALLOC; goto fail; }
    int g = gcd(in_rate, out_rate);
    st->in_rate = in_rate;
    st->out_rate = out_rate;
    st->L = out_rate / g;
    st->M = in_rate / g;

    int taps = 1;                      /* same rate: the identity filter */
    const double *h = NULL;
    double delay = 0.0;
    if (st->L != st->M) {
        int low = in_rate < out_rate ? in_rate : out_rate;
        int k = st->L * in_rate / low;
        h = prototype(k, flags & CVG_RESAMPLER_MIN_PHASE, &delay);
        if (!h || (CVG_TAPS_PER_LOW * k) % st->L) { e = CVG_ERR_RATE; goto fail; }
        taps = CVG_TAPS_PER_LOW * k / st->L;
    }
    st->N = st->L * taps;
    st->delay_f = delay;
    st->T = (taps + TAP_PAD - 1) / TAP_PAD * TAP_PAD;
    if (st->L > MAX_L || (st->M + st->L - 1) / st->L > st->T) { e = CVG_ERR_RATE; goto fail; }
    for (int p = 0; p < st->L; p++) {
        st->step[p] = (p + st->M) / st->L;
        st->next[p] = (p + st->M) % st->L;
    }

    st->phases_mem = cvg_malloc((size_t)st->L * st->T * sizeof(float) + ALIGN);
    st->buf_cap = st->T - 1 + BLOCK;
    st->buf = cvg_malloc((size_t)st->buf_cap * sizeof(float));
    if (!st->phases_mem || !st->buf) { e = CVG_ERR_ALLOC; goto fail; }
    st->phases = (float *)(((uintptr_t)st->phases_mem + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
    if (h) {
        build_phases(st, h, taps);
    } else {
        memset(st->phases, 0, (size_t)st->T * sizeof(float));
        st->phases[st->T - 1] = 1.0f;
    }
    st->kernel = produce_generic;
#ifdef CVG_HAVE_AVX2
    /* CVG_RESAMPLER_GENERIC=1 forces the portable kernel (tests compare the two). */
    const char *force = getenv("CVG_RESAMPLER_GENERIC");
    __builtin_cpu_init();
    if (!(force && *force == '1') && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        st->kernel = produce_avx2;
#endif
    cvg_resampler_reset(st);
    if (err) *err = CVG_OK;
    return st;

fail:
    cvg_resampler_free(st);
    if (err) *err = e;
    return NULL;
}

void cvg_resampler_free(cvg_resampler *st)
{
    if (!st) return;
    cvg_free(st->phases_mem);
    cvg_free(st->buf);
    cvg_free(st);
}

int cvg_resampler_reset(cvg_resampler *st)
{
    if (!st) return CVG_ERR_NULL;
    st->nbuf = st->T - 1;
    memset(st->buf, 0, (size_t)st->nbuf * sizeof(float));
    st->w = 0;
    st->p = 0;
    st->n_in = st->n_out = 0;
    return CVG_OK;
}

/* ------------------------------------------------------------------ streaming */

static int ranges_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    const char *pa = a, *pb = b;
    return na && nb && pa < pb + nb && pb < pa + na;
}

/* Consume input while there is room for what it makes; returns the samples written. */
static size_t run(cvg_resampler *st, source in, size_t n_in, int16_t *out, size_t room, size_t *consumed)
{
    size_t used = 0, made = 0;
    if (st->L == st->M) {              /* same rate: a copy, no delay */
        used = made = n_in < room ? n_in : room;
        if (in.le_bytes) {
            for (size_t i = 0; i < used; i++) out[i] = load_le16((const uint8_t *)in.p + 2 * i);
        } else if (used) {
            memcpy(out, in.p, used * sizeof *out);
        }
        st->n_out += made;
    }
    for (;;) {
        made += produce(st, out + made, room - made);
        if (made == room || used == n_in) break;
        used += refill(st, in, used, n_in - used);
    }
    st->n_in += used;
    *consumed = used;
    return made;
}

int cvg_resampler_process(cvg_resampler *st, const int16_t *in, size_t *in_len,
                          int16_t *out, size_t *out_len)
{
    if (!st || !in_len || !out_len) return CVG_ERR_NULL;
    size_t n_in = *in_len, room = *out_len;
    if ((n_in && !in) || (room && !out)) return CVG_ERR_NULL;
    if (ranges_overlap(in, n_in * 2, out, room * 2)) return CVG_ERR_OVERLAP;

    size_t used;
    size_t made = run(st, (source){in, 0}, n_in, out, room, &used);
    *in_len = used;
    *out_len = made;
    return CVG_OK;
}

long cvg_resampler_process_bytes(cvg_resampler *st, const uint8_t *in, size_t in_bytes,
                                 uint8_t *out, size_t out_bytes)
{
    if (!st || (in_bytes && !in) || (out_bytes && !out)) return -CVG_ERR_NULL;
    if (in_bytes % 2) return -CVG_ERR_LENGTH;
    if ((uintptr_t)out % 2) return -CVG_ERR_ARG;
    if (out_bytes / 2 < cvg_resampler_max_out(st, in_bytes / 2)) return -CVG_ERR_LENGTH;
    if (ranges_overlap(in, in_bytes, out, out_bytes)) return -CVG_ERR_OVERLAP;
    size_t used;
    int16_t *o = (int16_t *)(void *)out;
    size_t made = run(st, (source){in, 1}, in_bytes / 2, o, out_bytes / 2, &used);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < made; i++) o[i] = (int16_t)((uint16_t)o[i] << 8 | (uint16_t)o[i] >> 8);
#endif
    return (long)(2 * made);
}

size_t cvg_resampler_flush_len(const cvg_resampler *st)
{
    if (!st || st->n_in == 0) return 0;
    /* Outputs j whose time j*M (at rate F) minus the delay falls before the end of the input n_in*L:
     * j*M < n_in*L + delay, i.e. ceil((n_in*L + delay) / M) outputs in all. The delay is a multiple
     * of 0.5 for linear phase, so doubling keeps the linear-phase count exact in integers. */
    uint64_t twice = 2 * st->n_in * (uint64_t)st->L + (uint64_t)ceil(2.0 * st->delay_f);
    uint64_t total = (twice + 2 * (uint64_t)st->M - 1) / (2 * (uint64_t)st->M);
    return total > st->n_out ? (size_t)(total - st->n_out) : 0;
}

int cvg_resampler_flush(cvg_resampler *st, int16_t *out, size_t *out_len)
{
    if (!st || !out_len) return CVG_ERR_NULL;
    size_t room = *out_len;
    if (room && !out) return CVG_ERR_NULL;
    size_t owed = cvg_resampler_flush_len(st), made = 0;
    while (made < owed && made < room) {
        size_t want = (owed < room ? owed : room) - made;
        size_t got = produce(st, out + made, want);
        made += got;
        if (!got) refill(st, (source){NULL, 0}, 0, (size_t)st->T);
    }
    *out_len = made;
    if (made == owed) cvg_resampler_reset(st);
    return CVG_OK;
}

double cvg_resampler_delay(const cvg_resampler *st)
{
    if (!st) return 0.0;
    return st->delay_f / st->M;
}

size_t cvg_resampler_max_out(const cvg_resampler *st, size_t n)
{
    if (!st) return 0;
    uint64_t t = st->n_in + n;
    uint64_t total = (t * st->L + st->M - 1) / st->M;
    return total > st->n_out ? (size_t)(total - st->n_out) : 0;
}

int cvg_resampler_taps(const cvg_resampler *st)
{
    return st ? st->T : 0;
}
