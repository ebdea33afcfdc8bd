/* Elementwise maths over contiguous arrays (tanh, exp, sigmoid, max, clip), vectorised.
 *
 * The loops below are plain C with `omp simd`; target_clones compiles each for SSE2, AVX2
 * and AVX-512 and picks the one the CPU has at load time.  No -ffast-math: the rest of the
 * kernels keep IEEE semantics.
 *
 * tanh and exp in those loops go through the x86-64 vector function ABI (`omp declare simd`
 * below): gcc calls _ZGVdN4v_tanh and friends on whole vectors.  Those names are defined
 * in vecmath.c, linked into every extension module (setup.py), and not taken from
 * libmvec at link time: vecmath.c looks libmvec up with dlopen at the first call and
 * forwards to it where the running glibc has the function (vector exp since 2.22, tanh
 * since 2.35), else computes the lanes one by one with the scalar libm function.  So one
 * wheel runs on any glibc and uses the vector maths wherever it exists.
 *
 * Every module that includes this header gets its own copy of that choice (the symbols of
 * vecmath.c are hidden), made lazily, so there is nothing to initialise.
 * RNNCORE_VECMATH=scalar (or no-tanh) in the environment forces the scalar path (or the
 * path of a glibc 2.22-2.34) at run time; vecmath.c says what it understands.
 *
 * Elsewhere (not x86-64 glibc with gcc: clang maps `omp declare simd` onto nothing) the
 * same loops call the scalar libm functions.
 */
#ifndef RNNCORE_VECMATH_H
#define RNNCORE_VECMATH_H

#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) \
    && !defined(RNNCORE_NO_LIBMVEC)
#define RNNCORE_VECTOR_ABI 1
#endif

/* Not in vecmath.c (which defines RNNCORE_VECMATH_C): its scalar fallbacks would be
 * vectorised into calls of themselves. */
#if defined(RNNCORE_VECTOR_ABI) && !defined(RNNCORE_VECMATH_C)
#pragma omp declare simd notinbranch
extern double tanh(double);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#endif

#ifdef RNNCORE_VECTOR_ABI
/* `unused`: a module need not call every function of this header */
#define RNNCORE_CLONES \
    __attribute__((unused, target_clones("default", "avx2", "avx512f")))
#else
#define RNNCORE_CLONES __attribute__((unused))
#endif
#define RNNCORE_PRAGMA(x) _Pragma(#x)
#define RNNCORE_SIMD RNNCORE_PRAGMA(omp simd)
#define RNNCORE_SIMD_SUM(s) RNNCORE_PRAGMA(omp simd reduction(+:s))
#define RNNCORE_SIMD_MAX(s) RNNCORE_PRAGMA(omp simd reduction(max:s))

/* Defined in vecmath.c.  Which maths this module's loops run, e.g. "libmvec (tanh, exp),
 * AVX-512" or "scalar libm (RNNCORE_VECMATH=scalar)"; makes the run-time choice if no call
 * has made it yet. */
const char *rnncore_vecmath_describe(void);
/* 1 when tanh or exp runs on libmvec in this module. */
int rnncore_vecmath_uses_libmvec(void);
/* NULL when RNNCORE_VECMATH is unset or understood, else a one-line complaint naming it. */
const char *rnncore_vecmath_setting_error(void);

/* x = tanh(x) */
RNNCORE_CLONES static void rnncore_tanh_d(double *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = tanh(x[i]);
}

RNNCORE_CLONES static void rnncore_tanh_f(float *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

/* x = 1 / (1 + exp(-x)), the logistic sigmoid of the gated cells; exp(-x) overflows to
 * inf for x < -709 (-88 in float), giving 0 */
RNNCORE_CLONES static void rnncore_sigmoid_d(double *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0 / (1.0 + exp(-x[i]));
}

RNNCORE_CLONES static void rnncore_sigmoid_f(float *x, ptrdiff_t n) {
    RNNCORE_SIMD
    for (ptrdiff_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
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

#endif
