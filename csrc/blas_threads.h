/* scipy's BLAS as rnncore's second product engine: which library it is, and its threads.
 *
 * The BLAS engine (pyx/blas.pxd) calls scipy.linalg.cython_blas's sgemm/dgemm/sgemv/dgemv
 * from inside rnncore's thread team, one call per tile; each call must run on the thread
 * that makes it, or the library's own threads would fight the team for the cores (and a
 * pthreads OpenBLAS serialises concurrent threaded calls).  OpenBLAS's thread count is
 * process-wide (its openblas_set_num_threads_local is process-wide too, in the pthreads
 * builds scipy ships), so a run that uses the engine holds it at one thread from the start
 * of the run to its end and then gives back the count it found: the first of overlapping
 * runs (several Python threads) saves it, the last restores it.  Between runs the user's
 * own numpy and scipy calls get the library as they left it.  While a run holds it, a
 * scipy call of the user's on another Python thread runs on one thread too.
 *
 * The library is the one cython_blas itself calls: rnncore_blas_locate opens that module
 * (already loaded) and looks the thread functions up among its dependencies, so numpy's
 * own OpenBLAS (another copy, with other symbol names) is never touched.  Known: OpenBLAS
 * (scipy's wheels name its symbols scipy_openblas_*; system builds openblas_*) and MKL.
 * Any other BLAS works, with its threads left as they are.
 */
#ifndef RNNCORE_BLAS_THREADS_H
#define RNNCORE_BLAS_THREADS_H

/* Find the thread controls of the BLAS that the module at `module_path` (scipy's
 * cython_blas) calls.  Returns 1 if found, 0 if not (the engine still works); idempotent. */
int rnncore_blas_locate(const char *module_path);

/* What the BLAS is, e.g. "OpenBLAS 0.3.31 DYNAMIC_ARCH ... (Haswell kernels)", or
 * "a BLAS without known thread controls" (after rnncore_blas_locate). */
const char *rnncore_blas_name(void);

/* Around a run that calls the engine: the first enter holds the library at one thread, the
 * last leave gives back the count the first found.  Safe from any thread. */
void rnncore_blas_enter(void);
void rnncore_blas_leave(void);

/* The library's thread count now (-1 if unknown): for tests. */
int rnncore_blas_threads(void);

#endif
