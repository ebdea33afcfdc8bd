/* The vector tanh/exp that vecmath.h's loops call, chosen at run time (see vecmath.h).
 *
 * gcc compiles those loops to calls of the x86-64 vector function ABI names (_ZGVbN2v_tanh
 * for two doubles in SSE2, _ZGVdN4v_tanh for four in AVX2, _ZGVeN8v_tanh for eight in
 * AVX-512, and the same for tanhf, exp, expf).  They are defined here, hidden, so that the
 * extension module has no link-time tie to libmvec and no symbol version newer than the
 * glibc it is built for in the wheel: each looks up its libmvec twin once (dlopen + dlsym)
 * and calls it, or, where the running glibc lacks it, applies the scalar libm function
 * lane by lane.
 *
 * This file must not see `omp declare simd` on tanh/exp: gcc would vectorise the scalar
 * fallback loops below into calls of these very functions (an endless loop).
 *
 * RNNCORE_VECMATH, read at the first call:
 *   unset, "" or "libmvec"  every function the running glibc's libmvec has
 *   "no-tanh"               exp only, as glibc 2.22 to 2.34 give (vector tanh came in 2.35)
 *   "scalar"                none: scalar libm throughout
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RNNCORE_VECMATH_C  /* see vecmath.h: no `omp declare simd` here */
#include "vecmath.h"

/* Every extension module links its own copy of this file: keep its symbols to itself. */
#define HIDDEN __attribute__((visibility("hidden")))

static char setting_error[160];

/* Reads RNNCORE_VECMATH into which functions may come from libmvec; an unknown value
 * leaves a complaint in setting_error (reported by rnncore_vecmath_setting_error). */
static void read_setting(int *want_tanh, int *want_exp) {
    const char *setting = getenv("RNNCORE_VECMATH");
    *want_tanh = *want_exp = 1;
    if (setting == NULL || !strcmp(setting, "") || !strcmp(setting, "libmvec")) {
    } else if (!strcmp(setting, "no-tanh")) {
        *want_tanh = 0;
    } else if (!strcmp(setting, "scalar")) {
        *want_tanh = *want_exp = 0;
    } else {
        *want_tanh = *want_exp = 0;
        snprintf(setting_error, sizeof setting_error,
                 "RNNCORE_VECMATH=%.60s is not understood: use libmvec, no-tanh or scalar",
                 setting);
    }
}

#ifdef RNNCORE_VECTOR_ABI

#include <dlfcn.h>
#include <immintrin.h>

#if __GLIBC_PREREQ(2, 34)
/* glibc 2.34 moved dlopen/dlsym from libdl into libc under a new version, GLIBC_2.34; the
 * old GLIBC_2.2.5 ones are still exported, so bind those: the module loads on any glibc. */
__asm__(".symver dlopen,dlopen@GLIBC_2.2.5");
__asm__(".symver dlsym,dlsym@GLIBC_2.2.5");
#endif

/* One slot per vector-ABI function: its name, and once resolved, libmvec's or NULL. */
enum {
    TANH_B, TANH_D, TANH_E, TANHF_B, TANHF_D, TANHF_E,
    EXP_B, EXP_D, EXP_E, EXPF_B, EXPF_D, EXPF_E, N_SLOTS
};
static const char *const slot_names[N_SLOTS] = {
    "_ZGVbN2v_tanh", "_ZGVdN4v_tanh", "_ZGVeN8v_tanh",
    "_ZGVbN4v_tanhf", "_ZGVdN8v_tanhf", "_ZGVeN16v_tanhf",
    "_ZGVbN2v_exp", "_ZGVdN4v_exp", "_ZGVeN8v_exp",
    "_ZGVbN4v_expf", "_ZGVdN8v_expf", "_ZGVeN16v_expf",
};
static void *slots[N_SLOTS];
static int resolved;                  /* read and set with __atomic: threads may race here */
static char description[160];

static int all_found(int first, int last) {
    for (int i = first; i <= last; i++)
        if (!slots[i]) return 0;
    return 1;
}

static void resolve(void) {
    /* Several threads may get here at once; each writes the same values. */
    int want_tanh, want_exp;
    const char *why_not = NULL;
    read_setting(&want_tanh, &want_exp);
    if (setting_error[0]) {
        why_not = "RNNCORE_VECMATH not understood";
    } else if (want_tanh || want_exp) {
        void *libmvec = dlopen("libmvec.so.1", RTLD_NOW | RTLD_LOCAL);  /* never closed */
        if (libmvec == NULL) {
            why_not = "this glibc has no libmvec";
        } else {
            for (int i = 0; i < N_SLOTS; i++) {
                int wanted = i < EXP_B ? want_tanh : want_exp;
                __atomic_store_n(&slots[i], wanted ? dlsym(libmvec, slot_names[i]) : NULL,
                                 __ATOMIC_RELAXED);
            }
        }
    } else {
        why_not = "RNNCORE_VECMATH=scalar";
    }

    __builtin_cpu_init();
    const char *isa = __builtin_cpu_supports("avx512f") ? "AVX-512"
                      : __builtin_cpu_supports("avx2") ? "AVX2" : "SSE2";
    int vector_tanh = all_found(TANH_B, TANHF_E), vector_exp = all_found(EXP_B, EXPF_E);
    if (vector_tanh && vector_exp) {
        snprintf(description, sizeof description, "libmvec (tanh, exp), %s loops", isa);
    } else if (vector_exp) {
        snprintf(description, sizeof description,
                 "libmvec (exp) and scalar libm (tanh: %s), %s loops",
                 want_tanh ? "this glibc's libmvec has none" : "RNNCORE_VECMATH=no-tanh",
                 isa);
    } else if (vector_tanh) {
        snprintf(description, sizeof description,
                 "libmvec (tanh) and scalar libm (exp), %s loops", isa);
    } else {
        snprintf(description, sizeof description, "scalar libm (%s), %s loops",
                 why_not ? why_not : "this glibc's libmvec lacks tanh and exp", isa);
    }
    __atomic_store_n(&resolved, 1, __ATOMIC_RELEASE);
}

static inline void *slot(int i) {
    if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) resolve();
    return __atomic_load_n(&slots[i], __ATOMIC_RELAXED);
}

/* One vector-ABI function: libmvec's twin if resolved, else the scalar function per lane. */
#define VECTOR_FUNCTION(target_isa, vector, element, lanes, name, index, scalar)       \
    __attribute__((target(target_isa))) HIDDEN vector name(vector x);                \
    __attribute__((target(target_isa))) HIDDEN vector name(vector x) {               \
        vector (*twin)(vector) = (vector (*)(vector))slot(index);                    \
        if (twin) return twin(x);                                                    \
        element lane[lanes];                                                         \
        memcpy(lane, &x, sizeof x);                                                  \
        for (int i = 0; i < lanes; i++) lane[i] = scalar(lane[i]);                  \
        memcpy(&x, lane, sizeof x);                                                  \
        return x;                                                                    \
    }

VECTOR_FUNCTION("sse2", __m128d, double, 2, _ZGVbN2v_tanh, TANH_B, tanh)
VECTOR_FUNCTION("avx2", __m256d, double, 4, _ZGVdN4v_tanh, TANH_D, tanh)
VECTOR_FUNCTION("avx512f", __m512d, double, 8, _ZGVeN8v_tanh, TANH_E, tanh)
VECTOR_FUNCTION("sse2", __m128, float, 4, _ZGVbN4v_tanhf, TANHF_B, tanhf)
VECTOR_FUNCTION("avx2", __m256, float, 8, _ZGVdN8v_tanhf, TANHF_D, tanhf)
VECTOR_FUNCTION("avx512f", __m512, float, 16, _ZGVeN16v_tanhf, TANHF_E, tanhf)
VECTOR_FUNCTION("sse2", __m128d, double, 2, _ZGVbN2v_exp, EXP_B, exp)
VECTOR_FUNCTION("avx2", __m256d, double, 4, _ZGVdN4v_exp, EXP_D, exp)
VECTOR_FUNCTION("avx512f", __m512d, double, 8, _ZGVeN8v_exp, EXP_E, exp)
VECTOR_FUNCTION("sse2", __m128, float, 4, _ZGVbN4v_expf, EXPF_B, expf)
VECTOR_FUNCTION("avx2", __m256, float, 8, _ZGVdN8v_expf, EXPF_D, expf)
VECTOR_FUNCTION("avx512f", __m512, float, 16, _ZGVeN16v_expf, EXPF_E, expf)

HIDDEN const char *rnncore_vecmath_describe(void) {
    if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) resolve();
    return description;
}

HIDDEN int rnncore_vecmath_uses_libmvec(void) {
    if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) resolve();
    for (int i = 0; i < N_SLOTS; i++)
        if (__atomic_load_n(&slots[i], __ATOMIC_RELAXED)) return 1;
    return 0;
}

HIDDEN const char *rnncore_vecmath_setting_error(void) {
    if (!__atomic_load_n(&resolved, __ATOMIC_ACQUIRE)) resolve();
    return setting_error[0] ? setting_error : NULL;
}

#else  /* no vector ABI: the loops call scalar libm directly */

HIDDEN const char *rnncore_vecmath_describe(void) {
    return "scalar libm (built without libmvec: not x86-64 glibc with gcc, "
           "or RNNCORE_LIBMVEC=0)";
}

HIDDEN int rnncore_vecmath_uses_libmvec(void) { return 0; }

HIDDEN const char *rnncore_vecmath_setting_error(void) {
    int want_tanh, want_exp;  /* nothing to choose, but a bad setting is still an error */
    read_setting(&want_tanh, &want_exp);
    return setting_error[0] ? setting_error : NULL;
}

#endif
