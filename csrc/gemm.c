/* The micro-kernel's versions, the choice among them, and packing (see gemm.h). */
#define _GNU_SOURCE
#include "gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*kernel_f)(long K, const float *A, long a_rs, long a_ks, const float *P,
                         long ldp, float *C, long ldc, long ldv);

/* How a version cuts C (m, nv vectors) into register blocks: blocks of mr rows, each in
 * passes of cw vectors (cw = nv: one pass); a last block of at most whole_rows rows takes
 * all nv vectors in one pass (more chains of FMAs for a few rows). */
struct rnncore_gemm_plan {
    int mr, cw, whole_rows, unused;
};
typedef void (*kernel_d)(long K, const double *A, long a_rs, long a_ks, const double *P,
                         long ldp, double *C, long ldc, long ldv);

/* ---- the versions ------------------------------------------------------------------- */

#define REAL float
#define KERNEL_T kernel_f
#define VBYTES 16
#define NAME(x) x##_generic_f
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL

#define REAL double
#define KERNEL_T kernel_d
#define VBYTES 16
#define NAME(x) x##_generic_d
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL

#if defined(__x86_64__) && defined(__GNUC__)
#define RNNCORE_X86 1

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define REAL float
#define KERNEL_T kernel_f
#define VBYTES 32
#define NAME(x) x##_avx2_f
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL
#define REAL double
#define KERNEL_T kernel_d
#define VBYTES 32
#define NAME(x) x##_avx2_d
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#define REAL float
#define KERNEL_T kernel_f
#define VBYTES 64
#define NAME(x) x##_avx512_f
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL
#define REAL double
#define KERNEL_T kernel_d
#define VBYTES 64
#define NAME(x) x##_avx512_d
#include "gemm_kernels.h"
#undef NAME
#undef VBYTES
#undef KERNEL_T
#undef REAL
#pragma GCC pop_options
#endif

/* ---- the choice --------------------------------------------------------------------- */

static struct {
    const char *isa;
    int lanes_f, lanes_d;
    const struct rnncore_gemm_plan *plan_f, *plan_d;
    /* [rows][accumulate][nv] */
    kernel_f table_f[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1];
    kernel_d table_d[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1];
    float (*fma_f)(long);
    double (*fma_d)(long);
} K;

static char setting_error[160];

static int supported(const char *name) {
    if (strcmp(name, "generic") == 0) return 1;
#ifdef RNNCORE_X86
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

static void use(const char *name) {
#ifdef RNNCORE_X86
    if (strcmp(name, "avx512") == 0) {
        K.isa = "avx512";
        K.lanes_f = 16; K.lanes_d = 8;
        K.plan_f = plan_avx512_f; K.plan_d = plan_avx512_d;
        fill_avx512_f(K.table_f); fill_avx512_d(K.table_d);
        K.fma_f = fma_loop_avx512_f; K.fma_d = fma_loop_avx512_d;
        return;
    }
    if (strcmp(name, "avx2") == 0) {
        K.isa = "avx2";
        K.lanes_f = 8; K.lanes_d = 4;
        K.plan_f = plan_avx2_f; K.plan_d = plan_avx2_d;
        fill_avx2_f(K.table_f); fill_avx2_d(K.table_d);
        K.fma_f = fma_loop_avx2_f; K.fma_d = fma_loop_avx2_d;
        return;
    }
#endif
    (void)name;
    K.isa = "generic";
    K.lanes_f = 4; K.lanes_d = 2;
    K.plan_f = plan_generic_f; K.plan_d = plan_generic_d;
    fill_generic_f(K.table_f); fill_generic_d(K.table_d);
    K.fma_f = fma_loop_generic_f; K.fma_d = fma_loop_generic_d;
}

static void choose(void) {
    if (K.isa) return;
    const char *forced = getenv("RNNCORE_KERNEL");
    if (forced && *forced) {
        if (supported(forced)) { use(forced); return; }
        snprintf(setting_error, sizeof setting_error,
                 "RNNCORE_KERNEL=%.40s is not one of avx512, avx2, generic that this CPU runs",
                 forced);
    }
    use(supported("avx512") ? "avx512" : supported("avx2") ? "avx2" : "generic");
}

const char *rnncore_gemm_isa(void) { choose(); return K.isa; }

int rnncore_gemm_use(const char *name) {
    choose();
    if (!supported(name)) return -1;
    use(name);
    return 0;
}

const char *rnncore_gemm_setting_error(void) {
    choose();
    return setting_error[0] ? setting_error : NULL;
}

int rnncore_gemm_lanes_f(void) { choose(); return K.lanes_f; }
int rnncore_gemm_lanes_d(void) { choose(); return K.lanes_d; }
int rnncore_gemm_mr_f(int nv) { choose(); return K.plan_f[nv].mr; }
int rnncore_gemm_mr_d(int nv) { choose(); return K.plan_d[nv].mr; }

double rnncore_fma_loop(int is_double, long iters) {
    choose();
    return is_double ? K.fma_d(iters) : (double)K.fma_f(iters);
}

/* ---- the product, the tile product and packing, per dtype ---------------------------- */

#define REAL float
#define SUFFIX(x) x##_f
#include "gemm_driver.h"
#undef SUFFIX
#undef REAL

#define REAL double
#define SUFFIX(x) x##_d
#include "gemm_driver.h"
#undef SUFFIX
#undef REAL
