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
 * The library is the one cython_blas itself calls: Python (pyx/_cells.pyx, with ctypes, as
 * threadpoolctl does) looks the thread functions up in that module's dependencies, so
 * numpy's own OpenBLAS (another copy, with other symbol names) is never touched, and hands
 * them here; the extension itself calls no dlopen/dlsym, whose glibc 2.34 versions would
 * raise the wheel's manylinux floor.  Known: OpenBLAS (scipy's wheels name its symbols
 * scipy_openblas_*; system builds openblas_*) and MKL.  Any other BLAS works, with its
 * threads left as they are.
 */
#ifndef RNNCORE_BLAS_THREADS_H
#define RNNCORE_BLAS_THREADS_H

typedef int (*rnncore_blas_get_threads_t)(void);
typedef void (*rnncore_blas_set_threads_t)(int);

/* The thread controls of the BLAS that scipy's cython_blas calls (both NULL: none known;
 * the engine still works).  Called once, at import, before any run. */
void rnncore_blas_bind(rnncore_blas_get_threads_t get, rnncore_blas_set_threads_t set);

/* Around a run that calls the engine: the first enter holds the library at one thread, the
 * last leave gives back the count the first found.  Safe from any thread. */
void rnncore_blas_enter(void);
void rnncore_blas_leave(void);

/* The library's thread count now (-1 if unknown): for tests. */
int rnncore_blas_threads(void);

#endif
