/* One version of the micro-kernel, included by gemm.c once per (instruction set, dtype)
 * with these defined:
 *   REAL    float or double
 *   VBYTES  the vector's bytes (64 AVX-512, 32 AVX2, 16 generic)
 *   NAME(x) x with this version's suffix appended
 *   KERNEL_T the micro-kernel's function pointer type for REAL
 * and, for x86 versions, inside the matching `#pragma GCC target`.
 */

typedef REAL NAME(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL)), may_alias));
#define VEC NAME(vec)
#define LANES ((int)(VBYTES / sizeof(REAL)))

/* C (MR, NV vectors) = A (MR, K) · P (K, NV vectors): the whole K loop in registers.
 * acc += a·b is contracted into one fused multiply-add where the target has FMA. */
static inline __attribute__((always_inline)) void NAME(block)(
        const int MR, const int NV, long K, const REAL *restrict A, long a_rs, long a_ks,
        const REAL *restrict P, long ldp, REAL *restrict C, long ldc, long ldv) {
    VEC acc[8][RNNCORE_GEMM_NV_MAX];   /* fixed sizes (not MR, NV): a VLA would live in memory */
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = (VEC){0};
#pragma GCC unroll 2
    for (long k = 0; k < K; k++) {
        VEC b[RNNCORE_GEMM_NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = *(const VEC *)(P + k * ldp + v * LANES);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            VEC a = A[r * a_rs + k * a_ks] - (VEC){0};   /* broadcast (x - 0 is x) */
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) *(VEC *)(C + r * ldc + v * ldv) = acc[r][v];
}

/* The FMA peak of this version: iters × 12 independent vector multiply-adds (a chain of
 * 12 hides the FMA latency on every CPU here); returns a value that depends on all of
 * them, so nothing is optimised away.  2·12·LANES·iters flops. */
static REAL NAME(fma_loop)(long iters) {
    VEC acc[12], b = (VEC){0} + (REAL)0.999999, c = (VEC){0} + (REAL)1e-7;
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) acc[i] = (VEC){0} + (REAL)i;
    for (long k = 0; k < iters; k++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = acc[i] * b + c;
    }
    REAL total = 0;
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < LANES; j++) total += acc[i][j];
    return total;
}

#define RNNCORE_MK(MR, NV)                                                                 \
    static void NAME(mk_##MR##_##NV)(long K, const REAL *A, long a_rs, long a_ks,           \
                                     const REAL *P, long ldp, REAL *C, long ldc, long ldv) {\
        NAME(block)(MR, NV, K, A, a_rs, a_ks, P, ldp, C, ldc, ldv);                         \
    }

#if VBYTES == 64
/* 32 registers: up to 24 accumulators, the nv vectors of P and a broadcast */
RNNCORE_MK(1, 1) RNNCORE_MK(2, 1) RNNCORE_MK(3, 1) RNNCORE_MK(4, 1)
RNNCORE_MK(5, 1) RNNCORE_MK(6, 1) RNNCORE_MK(7, 1) RNNCORE_MK(8, 1)
RNNCORE_MK(1, 2) RNNCORE_MK(2, 2) RNNCORE_MK(3, 2) RNNCORE_MK(4, 2)
RNNCORE_MK(5, 2) RNNCORE_MK(6, 2) RNNCORE_MK(7, 2) RNNCORE_MK(8, 2)
RNNCORE_MK(1, 3) RNNCORE_MK(2, 3) RNNCORE_MK(3, 3) RNNCORE_MK(4, 3)
RNNCORE_MK(5, 3) RNNCORE_MK(6, 3) RNNCORE_MK(7, 3) RNNCORE_MK(8, 3)
RNNCORE_MK(1, 4) RNNCORE_MK(2, 4) RNNCORE_MK(3, 4) RNNCORE_MK(4, 4)
RNNCORE_MK(5, 4) RNNCORE_MK(6, 4)
static const int NAME(mr)[RNNCORE_GEMM_NV_MAX + 1] = {0, 8, 8, 8, 6};
static void NAME(fill)(KERNEL_T table[9][RNNCORE_GEMM_NV_MAX + 1]) {
    KERNEL_T t[9][RNNCORE_GEMM_NV_MAX + 1] = {
        {0},
        {0, NAME(mk_1_1), NAME(mk_1_2), NAME(mk_1_3), NAME(mk_1_4)},
        {0, NAME(mk_2_1), NAME(mk_2_2), NAME(mk_2_3), NAME(mk_2_4)},
        {0, NAME(mk_3_1), NAME(mk_3_2), NAME(mk_3_3), NAME(mk_3_4)},
        {0, NAME(mk_4_1), NAME(mk_4_2), NAME(mk_4_3), NAME(mk_4_4)},
        {0, NAME(mk_5_1), NAME(mk_5_2), NAME(mk_5_3), NAME(mk_5_4)},
        {0, NAME(mk_6_1), NAME(mk_6_2), NAME(mk_6_3), NAME(mk_6_4)},
        {0, NAME(mk_7_1), NAME(mk_7_2), NAME(mk_7_3), 0},
        {0, NAME(mk_8_1), NAME(mk_8_2), NAME(mk_8_3), 0},
    };
    memcpy(table, t, sizeof t);
}
#else
/* 16 registers: up to 12 accumulators */
RNNCORE_MK(1, 1) RNNCORE_MK(2, 1) RNNCORE_MK(3, 1) RNNCORE_MK(4, 1)
RNNCORE_MK(5, 1) RNNCORE_MK(6, 1) RNNCORE_MK(7, 1) RNNCORE_MK(8, 1)
RNNCORE_MK(1, 2) RNNCORE_MK(2, 2) RNNCORE_MK(3, 2) RNNCORE_MK(4, 2)
RNNCORE_MK(1, 3) RNNCORE_MK(2, 3) RNNCORE_MK(3, 3)
RNNCORE_MK(1, 4) RNNCORE_MK(2, 4)
static const int NAME(mr)[RNNCORE_GEMM_NV_MAX + 1] = {0, 8, 4, 3, 2};
static void NAME(fill)(KERNEL_T table[9][RNNCORE_GEMM_NV_MAX + 1]) {
    KERNEL_T t[9][RNNCORE_GEMM_NV_MAX + 1] = {
        {0},
        {0, NAME(mk_1_1), NAME(mk_1_2), NAME(mk_1_3), NAME(mk_1_4)},
        {0, NAME(mk_2_1), NAME(mk_2_2), NAME(mk_2_3), NAME(mk_2_4)},
        {0, NAME(mk_3_1), NAME(mk_3_2), NAME(mk_3_3), 0},
        {0, NAME(mk_4_1), NAME(mk_4_2), 0, 0},
        {0, NAME(mk_5_1), 0, 0, 0},
        {0, NAME(mk_6_1), 0, 0, 0},
        {0, NAME(mk_7_1), 0, 0, 0},
        {0, NAME(mk_8_1), 0, 0, 0},
    };
    memcpy(table, t, sizeof t);
}
#endif

#undef RNNCORE_MK
#undef VEC
#undef LANES
