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
 * Versions: AVX-512 (32 registers, 64-byte vectors: up to 24 accumulators, mr 8 for
 * nv <= 3, mr 6 for nv 4), AVX2 + FMA and a generic one (16 registers, 32- and 16-byte
 * vectors: up to 12 accumulators, mr 8/6/4 for nv 1..3, and 4 vectors as two passes of
 * 6 rows × 2 vectors, a last block of 1-2 rows in one pass; gemm_kernels.h's tables),
 * the best the CPU has chosen when first used; RNNCORE_KERNEL=avx512|avx2|generic forces
 * one (an unknown or unsupported name is reported by rnncore_gemm_setting_error and the
 * automatic choice is kept).  The generic version is plain C with GCC vector extensions
 * and runs on any CPU.
 */
#ifndef RNNCORE_GEMM_H
#define RNNCORE_GEMM_H

#define RNNCORE_GEMM_NV_MAX 4
#define RNNCORE_GEMM_MR_MAX 8

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

/* C = A·P, or C += A·P when accumulate (the sums continue from C's values: a product
 * over K cut into chunks gives the bits of one call over the whole K) */
void rnncore_gemm_f(long m, int nv, long K, const float *A, long a_rs, long a_ks,
                    const float *P, long ldp, float *C, long ldc, long ldv, int accumulate);
void rnncore_gemm_d(long m, int nv, long K, const double *A, long a_rs, long a_ks,
                    const double *P, long ldp, double *C, long ldc, long ldv, int accumulate);

/* A tile of a larger product, the whole of it, on packed copies:
 *
 *   C (m, n) = A (m, K) · B (K, n)  [+ bias[j] on column j, if bias]
 *
 * B's columns are panels of NC = RNNCORE_GEMM_NV_MAX vectors, panel p at
 * P + p·panel_stride with row stride ldp: ldp == NC means packed panels (rnncore_pack),
 * read as they are; anything else is a matrix read in place (P = B, panel_stride = NC,
 * ldp = B's row stride), packed here a chunk of RNNCORE_GEMM_KC rows of one panel at a
 * time.  A is read through (a_rs, a_ks); a transposed A (a_ks != 1: a weight gradient's
 * Xᵀ) is packed here too, a chunk at a time, so that the micro-kernel's broadcasts read
 * consecutive values instead of one cache line (and one page) per k.  The sums run over K
 * in chunks, each continuing the last (gemm's accumulate): the bits of one pass.
 * work: rnncore_tile_work(m, n) values of scratch. */
#define RNNCORE_GEMM_KC 256
long rnncore_tile_work_f(long m, long n);
long rnncore_tile_work_d(long m, long n);
void rnncore_tile_product_f(long m, long n, long K, const float *A, long a_rs, long a_ks,
                            const float *P, long ldp, long panel_stride, float *C, long ldc,
                            const float *bias, float *work);
void rnncore_tile_product_d(long m, long n, long K, const double *A, long a_rs, long a_ks,
                            const double *P, long ldp, long panel_stride, double *C,
                            long ldc, const double *bias, double *work);

/* The FMA peak's loop of the version in use: 24·lanes·iters flops of the dtype (double if
 * is_double), in registers; returns a value derived from all of them. */
double rnncore_fma_loop(int is_double, long iters);

/* P[k·ldp + c] = S[k·s_k + c·s_n] for k < K, c < n; 0 for n <= c < width */
void rnncore_pack_f(float *P, long ldp, const float *S, long s_k, long s_n, long K, long n,
                    long width);
void rnncore_pack_d(double *P, long ldp, const double *S, long s_k, long s_n, long K, long n,
                    long width);

#endif
