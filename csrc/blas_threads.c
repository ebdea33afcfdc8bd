/* scipy's BLAS: which library, and its threads held at one through a run (blas_threads.h). */
#define _GNU_SOURCE
#include "blas_threads.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

typedef int (*get_threads_t)(void);
typedef void (*set_threads_t)(int);
typedef char *(*text_t)(void);

static struct {
    int located;
    get_threads_t get;
    set_threads_t set;
    char name[200];
    pthread_mutex_t lock;
    int runs;                /* runs between enter and leave */
    int saved;               /* the count the first of them found */
} B = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* OpenBLAS's names as scipy's wheels prefix them, as numpy-style ILP64 builds suffix them,
 * and as system builds leave them; MKL's */
static const char *const GET[] = {"scipy_openblas_get_num_threads", "openblas_get_num_threads",
                                  "scipy_openblas_get_num_threads64_",
                                  "openblas_get_num_threads64_", "MKL_Get_Max_Threads", NULL};
static const char *const SET[] = {"scipy_openblas_set_num_threads", "openblas_set_num_threads",
                                  "scipy_openblas_set_num_threads64_",
                                  "openblas_set_num_threads64_", "MKL_Set_Num_Threads", NULL};
static const char *const CONFIG[] = {"scipy_openblas_get_config", "openblas_get_config",
                                     "scipy_openblas_get_config64_", "openblas_get_config64_",
                                     NULL, NULL};
static const char *const CORE[] = {"scipy_openblas_get_corename", "openblas_get_corename",
                                   "scipy_openblas_get_corename64_", "openblas_get_corename64_",
                                   NULL, NULL};
static const char *const VENDOR[] = {"OpenBLAS", "OpenBLAS", "OpenBLAS", "OpenBLAS", "MKL",
                                     NULL};

int rnncore_blas_locate(const char *module_path) {
    pthread_mutex_lock(&B.lock);
    if (!B.located) {
        B.located = 1;
        snprintf(B.name, sizeof B.name, "a BLAS without known thread controls");
        /* the module is loaded: this only gives a handle whose lookups search it and the
         * libraries it depends on, in load order */
        void *h = dlopen(module_path, RTLD_LAZY | RTLD_NOLOAD);
        for (int i = 0; h && GET[i]; i++) {
            get_threads_t get = (get_threads_t)dlsym(h, GET[i]);
            set_threads_t set = (set_threads_t)dlsym(h, SET[i]);
            if (!get || !set) continue;
            B.get = get, B.set = set;
            text_t config = CONFIG[i] ? (text_t)dlsym(h, CONFIG[i]) : NULL;
            text_t core = CORE[i] ? (text_t)dlsym(h, CORE[i]) : NULL;
            if (config && core) {   /* "OpenBLAS 0.3.31 DYNAMIC_ARCH ...": its first two words */
                const char *c = config(), *end = strchr(c, ' ');
                end = end ? strchr(end + 1, ' ') : NULL;
                int len = end ? (int)(end - c) : (int)strlen(c);
                snprintf(B.name, sizeof B.name, "%.*s (%s kernels)", len, c, core());
            }
            else
                snprintf(B.name, sizeof B.name, "%s", VENDOR[i]);
            break;
        }
        if (h) dlclose(h);
    }
    int found = B.get != NULL;
    pthread_mutex_unlock(&B.lock);
    return found;
}

const char *rnncore_blas_name(void) { return B.name; }

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
