/* rnncore's own matrix product: a register-blocked micro-kernel over packed panels.
 *
 *   C (m, nv·lanes) = A (m, K) · P (K, nv·lanes)
 *
 * P is a panel: K rows of nv·lanes contiguous values (row stride ldp), built by
 * rnncore_pack_* from any matrix (with zero columns padding it to whole vectors).  A is read
 * in place: A[r][k] at A + r·a_rs + k·a_ks, so a row-major matrix (a_rs = K, a_ks = 1) and a
 * transposed one (a_rs = 1, a_ks = ld) both serve.  C's vector v of row r is stored at
 * C + r·ldc + v·ldv (ldv = lanes: a row-major C; ldv = a block's size: one block per vector,
 * as a gated cell's tile keeps each gate apart), always whole (nv·lanes values a row).
 *
 * The micro-kernel holds mr rows × nv vectors of C in registers for the whole K loop, loads
 * nv vectors of P and broadcasts one A value per row per k, and adds in k order: every
 * element of C is the same sum, in the same order, whatever m, mr or the caller's tiling —
 * so a row gives the same bits alone as in a batch, and a tile the same bits on any thread.
 *
 * Versions: AVX-512 (32 registers, 64-byte vectors: mr 8 for nv <= 3, mr 6 for nv 4), AVX2
 * + FMA and a generic one (16 registers, 32- and 16-byte vectors: mr 8/4/3/2 for nv 1..4),
 * the best the CPU has chosen when first used; RNNCORE_KERNEL=avx512|avx2|generic forces
 * one (an unknown or unsupported name is reported by rnncore_gemm_setting_error and the
 * automatic choice is kept).  The generic version is plain C with GCC vector extensions
 * and runs on any CPU.
 */
#ifndef RNNCORE_GEMM_H
#define RNNCORE_GEMM_H

#define RNNCORE_GEMM_NV_MAX 4

/* "avx512", "avx2" or "generic": the version in use (choosing it if none is yet) */
const char *rnncore_gemm_isa(void);
/* Use the version `name`; 0, or -1 if unknown or not supported by this CPU. */
int rnncore_gemm_use(const char *name);
/* NULL, or a one-line complaint about RNNCORE_KERNEL */
const char *rnncore_gemm_setting_error(void);

/* values of one vector, and the register block's rows for nv vectors (1..NV_MAX) */
int rnncore_gemm_lanes_f(void);
int rnncore_gemm_lanes_d(void);
int rnncore_gemm_mr_f(int nv);
int rnncore_gemm_mr_d(int nv);

void rnncore_gemm_f(long m, int nv, long K, const float *A, long a_rs, long a_ks,
                    const float *P, long ldp, float *C, long ldc, long ldv);
void rnncore_gemm_d(long m, int nv, long K, const double *A, long a_rs, long a_ks,
                    const double *P, long ldp, double *C, long ldc, long ldv);

/* The FMA peak's loop of the version in use: 24·lanes·iters flops of the dtype (double if
 * is_double), in registers; returns a value derived from all of them. */
double rnncore_fma_loop(int is_double, long iters);

/* P[k·ldp + c] = S[k·s_k + c·s_n] for k < K, c < n; 0 for n <= c < width */
void rnncore_pack_f(float *P, long ldp, const float *S, long s_k, long s_n, long K, long n,
                    long width);
void rnncore_pack_d(double *P, long ldp, const double *S, long s_k, long s_n, long K, long n,
                    long width);

#endif
