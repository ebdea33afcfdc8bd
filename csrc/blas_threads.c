/* scipy's BLAS: its threads held at one through a run (blas_threads.h). */
#include "blas_threads.h"

#include <pthread.h>
#include <stddef.h>

static struct {
    rnncore_blas_get_threads_t get;
    rnncore_blas_set_threads_t set;
    pthread_mutex_t lock;
    int runs;                /* runs between enter and leave */
    int saved;               /* the count the first of them found */
} B = {.lock = PTHREAD_MUTEX_INITIALIZER};

void rnncore_blas_bind(rnncore_blas_get_threads_t get, rnncore_blas_set_threads_t set) {
    pthread_mutex_lock(&B.lock);
    if (get && set) B.get = get, B.set = set;
    else B.get = NULL, B.set = NULL;
    pthread_mutex_unlock(&B.lock);
}

void rnncore_blas_enter(void) {
    pthread_mutex_lock(&B.lock);
    if (B.runs++ == 0 && B.get) {
        B.saved = B.get();
        if (B.saved != 1) B.set(1);
    }
    pthread_mutex_unlock(&B.lock);
}

void rnncore_blas_leave(void) {
    pthread_mutex_lock(&B.lock);
    if (--B.runs == 0 && B.get && B.saved != 1) B.set(B.saved);
    pthread_mutex_unlock(&B.lock);
}

int rnncore_blas_threads(void) { return B.get ? B.get() : -1; }
