/* One version of the micro-kernel, included by gemm.c once per (instruction set, dtype)
 * with these defined:
 *   REAL    float or double
 *   VBYTES  the vector's bytes (64 AVX-512, 32 AVX2, 16 generic)
 *   NAME(x) x with this version's suffix appended
 *   KERNEL_T the micro-kernel's function pointer type for REAL
 * and, for x86 versions, inside the matching `#pragma GCC target`.
 *
 * A block holds MR rows × NV vectors of C in registers for the whole K loop.  How big a
 * block may be is the register file's business: 32 registers (AVX-512) hold 24
 * accumulators beside the NV vectors of P and a broadcast; 16 (AVX2, SSE2) hold 12.  The
 * blocks each version has, and how gemm.c cuts a product into them, are this file's
 * tables at the end.
 */

/* gcc's register allocation keeps 12 accumulators, 2 vectors of P and one broadcast in 16
 * registers only when the k loop is not unrolled (unrolled, it loads every broadcast of
 * both k first and spills accumulators); 32 registers have room for the unrolled loop */
#if VBYTES == 64
#define RNNCORE_K_UNROLL _Pragma("GCC unroll 2")
#else
#define RNNCORE_K_UNROLL _Pragma("GCC unroll 1")
#endif

typedef REAL NAME(vec) __attribute__((vector_size(VBYTES), aligned(sizeof(REAL)), may_alias));
#define VEC NAME(vec)
#define LANES ((int)(VBYTES / sizeof(REAL)))

/* C (MR, NV vectors) = [C +] A (MR, K) · P (K, NV vectors): the whole K loop in registers,
 * k in order; with ACC the sums start from C's values instead of 0 (the same sums as one
 * call over the joined K: storing and reloading a partial sum rounds nothing).
 * acc += a·b is contracted into one fused multiply-add where the target has FMA. */
static inline __attribute__((always_inline)) void NAME(block)(
        const int MR, const int NV, const int ACC, long K, const REAL *restrict A, long a_rs,
        long a_ks, const REAL *restrict P, long ldp, REAL *restrict C, long ldc, long ldv) {
    VEC acc[12][RNNCORE_GEMM_NV_MAX];   /* fixed sizes (not MR, NV): a VLA would live in memory */
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[r][v] = ACC ? *(const VEC *)(C + r * ldc + v * ldv) : (VEC){0};
    RNNCORE_K_UNROLL
    for (long k = 0; k < K; k++) {
        VEC b[RNNCORE_GEMM_NV_MAX];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = *(const VEC *)(P + k * ldp + v * LANES);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            VEC a = A[r * a_rs + k * a_ks] - (VEC){0};   /* broadcast (x - 0 is x) */
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];
        }
    }
#pragma GCC unroll 12
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

/* one block shape, as a pair of functions: C = A·P and C += A·P */
#define RNNCORE_MK(MR, NV)                                                                 \
    static void NAME(mk_##MR##_##NV)(long K, const REAL *A, long a_rs, long a_ks,           \
                                     const REAL *P, long ldp, REAL *C, long ldc, long ldv) {\
        NAME(block)(MR, NV, 0, K, A, a_rs, a_ks, P, ldp, C, ldc, ldv);                      \
    }                                                                                       \
    static void NAME(mka_##MR##_##NV)(long K, const REAL *A, long a_rs, long a_ks,          \
                                      const REAL *P, long ldp, REAL *C, long ldc, long ldv) {\
        NAME(block)(MR, NV, 1, K, A, a_rs, a_ks, P, ldp, C, ldc, ldv);                      \
    }
#define RNNCORE_ROW(MR, F1, F2, F3, F4) \
    [MR] = {{0, F1(MR, 1), F2(MR, 2), F3(MR, 3), F4(MR, 4)}, \
            {0, F1##A(MR, 1), F2##A(MR, 2), F3##A(MR, 3), F4##A(MR, 4)}}
#define HAS(MR, NV) NAME(mk_##MR##_##NV)
#define HASA(MR, NV) NAME(mka_##MR##_##NV)
#define NO(MR, NV) 0
#define NOA(MR, NV) 0

#if VBYTES == 64
/* 32 registers: up to 24 accumulators, the nv vectors of P and a broadcast; every width
 * in one pass */
RNNCORE_MK(1, 1) RNNCORE_MK(2, 1) RNNCORE_MK(3, 1) RNNCORE_MK(4, 1)
RNNCORE_MK(5, 1) RNNCORE_MK(6, 1) RNNCORE_MK(7, 1) RNNCORE_MK(8, 1)
RNNCORE_MK(1, 2) RNNCORE_MK(2, 2) RNNCORE_MK(3, 2) RNNCORE_MK(4, 2)
RNNCORE_MK(5, 2) RNNCORE_MK(6, 2) RNNCORE_MK(7, 2) RNNCORE_MK(8, 2)
RNNCORE_MK(1, 3) RNNCORE_MK(2, 3) RNNCORE_MK(3, 3) RNNCORE_MK(4, 3)
RNNCORE_MK(5, 3) RNNCORE_MK(6, 3) RNNCORE_MK(7, 3) RNNCORE_MK(8, 3)
RNNCORE_MK(1, 4) RNNCORE_MK(2, 4) RNNCORE_MK(3, 4) RNNCORE_MK(4, 4)
RNNCORE_MK(5, 4) RNNCORE_MK(6, 4)
static const struct rnncore_gemm_plan NAME(plan)[RNNCORE_GEMM_NV_MAX + 1] = {
    {0, 0, 0, 0}, {8, 1, 0, 0}, {8, 2, 0, 0}, {8, 3, 0, 0}, {6, 4, 0, 0}};
static void NAME(fill)(KERNEL_T table[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1]) {
    KERNEL_T t[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1] = {
        RNNCORE_ROW(1, HAS, HAS, HAS, HAS), RNNCORE_ROW(2, HAS, HAS, HAS, HAS),
        RNNCORE_ROW(3, HAS, HAS, HAS, HAS), RNNCORE_ROW(4, HAS, HAS, HAS, HAS),
        RNNCORE_ROW(5, HAS, HAS, HAS, HAS), RNNCORE_ROW(6, HAS, HAS, HAS, HAS),
        RNNCORE_ROW(7, HAS, HAS, HAS, NO), RNNCORE_ROW(8, HAS, HAS, HAS, NO),
    };
    memcpy(table, t, sizeof t);
}
#else
/* 16 registers: up to 12 accumulators beside the nv vectors of P and a broadcast (BLIS's
 * and OpenBLAS's Haswell kernels are 6 rows × 2 vectors).  Four vectors are two passes of
 * two, 6 rows at a time; a last block of 1-2 rows takes all four in one pass (4-8 chains
 * of FMAs instead of 2-4: a row alone is bound by the FMA's latency, not its rate).  One
 * vector: 8 rows (12 would need more integer registers for the rows than there are). */
RNNCORE_MK(1, 1) RNNCORE_MK(2, 1) RNNCORE_MK(3, 1) RNNCORE_MK(4, 1)
RNNCORE_MK(5, 1) RNNCORE_MK(6, 1) RNNCORE_MK(7, 1) RNNCORE_MK(8, 1)
RNNCORE_MK(1, 2) RNNCORE_MK(2, 2) RNNCORE_MK(3, 2) RNNCORE_MK(4, 2)
RNNCORE_MK(5, 2) RNNCORE_MK(6, 2)
RNNCORE_MK(1, 3) RNNCORE_MK(2, 3) RNNCORE_MK(3, 3) RNNCORE_MK(4, 3)
RNNCORE_MK(1, 4) RNNCORE_MK(2, 4)
static const struct rnncore_gemm_plan NAME(plan)[RNNCORE_GEMM_NV_MAX + 1] = {
    {0, 0, 0, 0}, {8, 1, 0, 0}, {6, 2, 0, 0}, {4, 3, 0, 0}, {6, 2, 2, 0}};
static void NAME(fill)(KERNEL_T table[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1]) {
    KERNEL_T t[RNNCORE_GEMM_MR_MAX + 1][2][RNNCORE_GEMM_NV_MAX + 1] = {
        RNNCORE_ROW(1, HAS, HAS, HAS, HAS), RNNCORE_ROW(2, HAS, HAS, HAS, HAS),
        RNNCORE_ROW(3, HAS, HAS, HAS, NO), RNNCORE_ROW(4, HAS, HAS, HAS, NO),
        RNNCORE_ROW(5, HAS, HAS, NO, NO), RNNCORE_ROW(6, HAS, HAS, NO, NO),
        RNNCORE_ROW(7, HAS, NO, NO, NO), RNNCORE_ROW(8, HAS, NO, NO, NO),
    };
    memcpy(table, t, sizeof t);
}
#endif

#undef RNNCORE_MK
#undef RNNCORE_K_UNROLL
#undef RNNCORE_ROW
#undef HAS
#undef HASA
#undef NO
#undef NOA
#undef VEC
#undef LANES
