/* Top-K dot products over half-size embedding rows, streamed once: float16 rows, or int8 rows with
 * one float32 scale per row. Built by `make setup` into libhalf_topk.so and loaded with ctypes by
 * app/engine/native_half_topk.py; desktops only (the phones keep the numpy kernel).
 *
 * Each call scans rows [start, end) of one shard against nq queries and keeps, per query, the k best
 * (score, row) in a min-heap whose root is the worst kept hit: a row is compared with the root's score
 * first, so the heap is touched only by rows that enter it. Ties keep the lower row (rows arrive in
 * increasing order and only a strictly better score evicts). Non-finite scores and rows set in the
 * `dead` bitmap (bit r of byte r / 8, global row numbers) never enter.
 *
 * x86-64: AVX2 + FMA + F16C (`_mm256_cvtph_ps`), chosen at run time; elsewhere (aarch64, or an x86
 * without them) a portable loop the compiler vectorises where it can.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HALF_TOPK_X86 1
#endif

#define BLOCK_ROWS 256 /* rows scored against every query before the next block: 64 KiB of 128-d float16 */

typedef struct {
    float *score;
    int64_t *row;
    int64_t n, k;
    float threshold; /* the root's score once the heap is full, -inf before */
} heap_t;

/* a is worse than b: lower score, or the same score at a later row */
static inline int worse(const heap_t *h, int64_t a, int64_t b) {
    return h->score[a] < h->score[b] || (h->score[a] == h->score[b] && h->row[a] > h->row[b]);
}

static inline void swap_hits(heap_t *h, int64_t a, int64_t b) {
    float s = h->score[a];
    int64_t r = h->row[a];
    h->score[a] = h->score[b];
    h->row[a] = h->row[b];
    h->score[b] = s;
    h->row[b] = r;
}

static void sift_down(heap_t *h, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, w = i;
        if (l < h->n && worse(h, l, w)) w = l;
        if (l + 1 < h->n && worse(h, l + 1, w)) w = l + 1;
        if (w == i) return;
        swap_hits(h, i, w);
        i = w;
    }
}

/* Called only for a score above the threshold. */
static void offer(heap_t *h, float s, int64_t row, const uint8_t *dead) {
    if (!(s <= FLT_MAX)) return; /* +inf; NaN and -inf never pass the threshold test */
    if (dead && (dead[row >> 3] >> (row & 7) & 1)) return;
    if (h->n < h->k) {
        int64_t i = h->n++;
        h->score[i] = s;
        h->row[i] = row;
        while (i > 0 && worse(h, i, (i - 1) / 2)) {
            swap_hits(h, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
        if (h->n == h->k) h->threshold = h->score[0];
        return;
    }
    h->score[0] = s;
    h->row[0] = row;
    sift_down(h, 0);
    h->threshold = h->score[0];
}

/* Heap -> best first (score descending, row ascending), unused slots row -1 and score -inf. */
static void drain(heap_t *h) {
    int64_t n = h->n;
    while (h->n > 1) { /* heap sort: the worst moves to the end each round */
        swap_hits(h, 0, h->n - 1);
        h->n--;
        sift_down(h, 0);
    }
    for (int64_t i = n; i < h->k; i++) {
        h->score[i] = -INFINITY;
        h->row[i] = -1;
    }
    h->n = n;
}

static inline float half_to_float(uint16_t h) {
#if defined(__aarch64__)
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
#else
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf, NaN */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: renormalise */
        exp = 113;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

#define GROUP 8 /* rows scored together: eight independent FMA chains, one query load for all */

/* The scan, for one code type and one pair of row kernels: DOTG(p, stride, q, dim, out[GROUP]) scores
 * GROUP consecutive rows, DOT1(p, q, dim) one. ATTR carries the target features the kernels need. */
#define DEFINE_SCAN(NAME, CODE_T, DOTG, DOT1, ATTR)                                                        \
    ATTR static void NAME(const void *rows, const float *scales, int64_t stride, int64_t start,            \
                          int64_t end, int64_t dim, const float *queries, int64_t nq, heap_t *heaps,       \
                          const uint8_t *dead) {                                                           \
        const CODE_T *codes = rows;                                                                        \
        for (int64_t b = start; b < end; b += BLOCK_ROWS) {                                                \
            int64_t be = end - b < BLOCK_ROWS ? end : b + BLOCK_ROWS, r;                                   \
            for (int64_t j = 0; j < nq; j++) {                                                             \
                const float *q = queries + j * dim;                                                        \
                heap_t *h = heaps + j;                                                                     \
                for (r = b; r + GROUP <= be; r += GROUP) {                                                 \
                    float s[GROUP];                                                                        \
                    DOTG(codes + r * stride, stride, q, dim, s);                                           \
                    for (int x = 0; x < GROUP; x++) {                                                      \
                        float v = scales ? s[x] * scales[r + x] : s[x];                                    \
                        if (v > h->threshold) offer(h, v, r + x, dead);                                    \
                    }                                                                                      \
                }                                                                                          \
                for (; r < be; r++) {                                                                      \
                    float v = DOT1(codes + r * stride, q, dim);                                            \
                    if (scales) v *= scales[r];                                                            \
                    if (v > h->threshold) offer(h, v, r, dead);                                            \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }

static inline float dot1_f16(const uint16_t *p, const float *q, int64_t dim) {
    float s = 0.f;
    for (int64_t d = 0; d < dim; d++) s += half_to_float(p[d]) * q[d];
    return s;
}

static inline float dot1_i8(const int8_t *p, const float *q, int64_t dim) {
    float s = 0.f;
    for (int64_t d = 0; d < dim; d++) s += (float)p[d] * q[d];
    return s;
}

static inline void dotg_f16(const uint16_t *p, int64_t stride, const float *q, int64_t dim, float *out) {
    for (int x = 0; x < GROUP; x++) out[x] = dot1_f16(p + x * stride, q, dim);
}

static inline void dotg_i8(const int8_t *p, int64_t stride, const float *q, int64_t dim, float *out) {
    for (int x = 0; x < GROUP; x++) out[x] = dot1_i8(p + x * stride, q, dim);
}

DEFINE_SCAN(scan_f16_portable, uint16_t, dotg_f16, dot1_f16, )
DEFINE_SCAN(scan_i8_portable, int8_t, dotg_i8, dot1_i8, )

#ifdef HALF_TOPK_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))

/* 8 codes -> 8 floats */
#define LOAD8_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LOAD8_I8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))

/* The sums of four accumulators' lanes, [sum a0, sum a1, sum a2, sum a3] */
AVX2 static inline __m128 sum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* GROUP (8) rows, one accumulator each: eight independent FMA chains sharing each query load. */
#define DEFINE_DOTG_AVX2(NAME, CODE_T, LOAD8, TO_FLOAT)                                                    \
    AVX2 static inline void NAME(const CODE_T *p, int64_t stride, const float *q, int64_t dim, float *out) { \
        __m256 a[GROUP];                                                                                   \
        for (int x = 0; x < GROUP; x++) a[x] = _mm256_setzero_ps();                                        \
        int64_t d8 = dim & ~(int64_t)7, d;                                                                 \
        for (d = 0; d < d8; d += 8) {                                                                      \
            __m256 qv = _mm256_loadu_ps(q + d);                                                            \
            for (int x = 0; x < GROUP; x++) a[x] = _mm256_fmadd_ps(LOAD8(p + x * stride + d), qv, a[x]);   \
        }                                                                                                  \
        _mm_storeu_ps(out, sum4(a[0], a[1], a[2], a[3]));                                                  \
        _mm_storeu_ps(out + 4, sum4(a[4], a[5], a[6], a[7]));                                              \
        for (; d < dim; d++)                                                                               \
            for (int x = 0; x < GROUP; x++) out[x] += TO_FLOAT(p[x * stride + d]) * q[d];                  \
    }

#define DEFINE_DOT1_AVX2(NAME, CODE_T, LOAD8, TO_FLOAT)                                                    \
    AVX2 static inline float NAME(const CODE_T *p, const float *q, int64_t dim) {                          \
        __m256 a = _mm256_setzero_ps();                                                                    \
        int64_t d8 = dim & ~(int64_t)7, d;                                                                 \
        for (d = 0; d < d8; d += 8) a = _mm256_fmadd_ps(LOAD8(p + d), _mm256_loadu_ps(q + d), a);          \
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));                    \
        s4 = _mm_hadd_ps(s4, s4);                                                                          \
        float s = _mm_cvtss_f32(_mm_hadd_ps(s4, s4));                                                      \
        for (; d < dim; d++) s += TO_FLOAT(p[d]) * q[d];                                                   \
        return s;                                                                                          \
    }

#define I8_TO_FLOAT(v) ((float)(v))
DEFINE_DOTG_AVX2(dotg_f16_avx2, uint16_t, LOAD8_F16, half_to_float)
DEFINE_DOT1_AVX2(dot1_f16_avx2, uint16_t, LOAD8_F16, half_to_float)
DEFINE_DOTG_AVX2(dotg_i8_avx2, int8_t, LOAD8_I8, I8_TO_FLOAT)
DEFINE_DOT1_AVX2(dot1_i8_avx2, int8_t, LOAD8_I8, I8_TO_FLOAT)
DEFINE_SCAN(scan_f16_avx2, uint16_t, dotg_f16_avx2, dot1_f16_avx2, AVX2)
DEFINE_SCAN(scan_i8_avx2, int8_t, dotg_i8_avx2, dot1_i8_avx2, AVX2)
#endif

static int portable_only; /* set by half_topk_use_portable: the tests run the phones'/aarch64's loop on x86 */

void half_topk_use_portable(int on) { portable_only = on; }

/* 1 where the AVX2 + FMA + F16C kernels run on this CPU, 0 where the portable ones do. */
int half_topk_simd(void) {
#ifdef HALF_TOPK_X86
    __builtin_cpu_init();
    return !portable_only && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

typedef void scan_fn(const void *rows, const float *scales, int64_t stride, int64_t start, int64_t end,
                     int64_t dim, const float *queries, int64_t nq, heap_t *heaps, const uint8_t *dead);

/* Shared by both entry points: heaps over the caller's (nq, k) outputs, the scan, the sort. */
static int run_scan(scan_fn *scan, const void *codes, const float *scales, int64_t stride, int64_t start,
                    int64_t end, int64_t dim, const float *queries, int64_t nq, int64_t k, const uint8_t *dead,
                    float *out_scores, int64_t *out_rows) {
    if (start < 0 || end < start || dim <= 0 || stride < dim || nq < 0 || k <= 0) return -1;
    heap_t heaps[64];
    for (int64_t q0 = 0; q0 < nq; q0 += 64) { /* up to 64 queries share one pass over the rows */
        int64_t n = nq - q0 < 64 ? nq - q0 : 64;
        for (int64_t j = 0; j < n; j++)
            heaps[j] = (heap_t){out_scores + (q0 + j) * k, out_rows + (q0 + j) * k, 0, k, -INFINITY};
        scan(codes, scales, stride, start, end, dim, queries + q0 * dim, n, heaps, dead);
        for (int64_t j = 0; j < n; j++) drain(heaps + j);
    }
    return 0;
}

/* float16 rows: codes[r * stride + d] for r in [start, end); queries (nq, dim) float32; out (nq, k),
 * best first. Returns 0, or -1 for arguments out of range. */
int half_topk_f16(const uint16_t *codes, int64_t stride, int64_t start, int64_t end, int64_t dim,
                  const float *queries, int64_t nq, int64_t k, const uint8_t *dead, float *out_scores,
                  int64_t *out_rows) {
    scan_fn *scan = scan_f16_portable;
#ifdef HALF_TOPK_X86
    if (half_topk_simd()) scan = scan_f16_avx2;
#endif
    return run_scan(scan, codes, NULL, stride, start, end, dim, queries, nq, k, dead, out_scores, out_rows);
}

/* int8 rows, each scored as scales[r] * (codes[r] . query); otherwise as half_topk_f16. */
int half_topk_i8(const int8_t *codes, const float *scales, int64_t stride, int64_t start, int64_t end,
                 int64_t dim, const float *queries, int64_t nq, int64_t k, const uint8_t *dead,
                 float *out_scores, int64_t *out_rows) {
    scan_fn *scan = scan_i8_portable;
#ifdef HALF_TOPK_X86
    if (half_topk_simd()) scan = scan_i8_avx2;
#endif
    return run_scan(scan, codes, scales, stride, start, end, dim, queries, nq, k, dead, out_scores, out_rows);
}
