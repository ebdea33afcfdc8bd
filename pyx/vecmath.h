/* Elementwise maths over contiguous arrays (tanh, exp, max, clip), vectorised where the platform allows.
 *
 * With RNNCORE_USE_LIBMVEC (set by setup.py on x86-64 Linux with glibc >= 2.35 and gcc),
 * the loops call glibc's vector maths (libmvec, <= 4 ulp) through `omp declare simd`,
 * without -ffast-math: the rest of the kernels keep IEEE semantics.  target_clones
 * compiles each loop for SSE, AVX2 and AVX-512 and picks the one the CPU has at load
 * time, so a wheel built here runs on any x86-64.  Elsewhere the same loops call the
 * scalar libm functions.
 */
#ifndef RNNCORE_VECMATH_H
#define RNNCORE_VECMATH_H

#include <math.h>
#include <stddef.h>

#ifdef RNNCORE_USE_LIBMVEC
#pragma omp declare simd notinbranch
extern double tanh(double);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#define RNNCORE_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#define RNNCORE_PRAGMA(x) _Pragma(#x)
#define RNNCORE_SIMD RNNCORE_PRAGMA(omp simd)
#define RNNCORE_SIMD_SUM(s) RNNCORE_PRAGMA(omp simd reduction(+:s))
#define RNNCORE_SIMD_MAX(s) RNNCORE_PRAGMA(omp simd reduction(max:s))
static const int rnncore_uses_libmvec = 1;
#else
#define RNNCORE_CLONES
#define RNNCORE_SIMD
#define RNNCORE_SIMD_SUM(s)
#define RNNCORE_SIMD_MAX(s)
static const int rnncore_uses_libmvec = 0;
#endif

/* x = tanh(x) */
RNNCORE_CLONES static void rnncore_tanh_d(double *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = tanh(x[i]);
}

RNNCORE_CLONES static void rnncore_tanh_f(float *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

/* x = exp(x - shift); returns the sum of the new x, accumulated in double */
RNNCORE_CLONES static double rnncore_exp_shift_sum_d(double *x, ptrdiff_t n, double shift) {
    double total = 0.0;
    RNNCORE_SIMD_SUM(total)
    for (ptrdiff_t i = 0; i < n; i++) {
        x[i] = exp(x[i] - shift);
        total += x[i];
    }
    return total;
}

RNNCORE_CLONES static double rnncore_exp_shift_sum_f(float *x, ptrdiff_t n, float shift) {
    double total = 0.0;
    RNNCORE_SIMD_SUM(total)
    for (ptrdiff_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - shift);
        total += (double)x[i];
    }
    return total;
}

/* The largest of x[0..n), n >= 1 */
RNNCORE_CLONES static double rnncore_max_d(const double *x, ptrdiff_t n) {
    double m = x[0];
    RNNCORE_SIMD_MAX(m)
    for (ptrdiff_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

RNNCORE_CLONES static float rnncore_max_f(const float *x, ptrdiff_t n) {
    float m = x[0];
    RNNCORE_SIMD_MAX(m)
    for (ptrdiff_t i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* x = clamp(x, -limit, limit); a nan stays nan (so divergence is not hidden).  Written as
 * (limit < x ? limit : x), which is exactly minpd's rule, so it vectorises without
 * -ffast-math. */
RNNCORE_CLONES static void rnncore_clip_d(double *x, ptrdiff_t n, double limit) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        double v = limit < x[i] ? limit : x[i];
        x[i] = -limit > v ? -limit : v;
    }
}

RNNCORE_CLONES static void rnncore_clip_f(float *x, ptrdiff_t n, float limit) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) {
        float v = limit < x[i] ? limit : x[i];
        x[i] = -limit > v ? -limit : v;
    }
}

/* x = 1 / (1 + exp(-x)), the logistic sigmoid of the gated cells */
RNNCORE_CLONES static void rnncore_sigmoid_d(double *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0 / (1.0 + exp(-x[i]));
}

RNNCORE_CLONES static void rnncore_sigmoid_f(float *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}

#endif
