/* The thread team (see team.h for what it promises).
 *
 * Shared words, each on a line of its own (128 bytes: the adjacent-line prefetcher pairs
 * 64-byte lines):
 *   claim[p]  (phase << 24 | next tile) of worker p's range in the phase being run; any
 *             worker moves it forward with a compare-and-swap, so a tile is taken once.
 *             A worker that reaches a phase before p does opens p's range itself.
 *   done[p]   the number of tiles worker p has finished, ever; only p writes it (a release
 *             store).  A phase has ended when the sum over the run's workers reaches the
 *             goal that every worker computes alike from the tile counts.
 *   run_seq   bumped to start a run (a futex word the parked workers sleep on).
 *   join      (run << 32 | threads << 16 | closed << 15 | joined): a worker joins the
 *             current run with a compare-and-swap; the caller closes the run when its own
 *             program ends, then waits only for the workers that joined.
 */
#define _GNU_SOURCE
#include "team.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>            /* nanosleep */
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#include <sched.h>
#include <sys/time.h>

#if defined(__GLIBC__) && defined(__x86_64__) && __GLIBC_PREREQ(2, 34)
/* glibc 2.34 moved the pthread functions from libpthread into libc under new versions; the
 * old GLIBC_2.2.5 ones are still exported (and on an older glibc, libpthread, which Python
 * loads, defines them), so bind those: the module loads on the wheel's oldest glibc. */
__asm__(".symver pthread_create,pthread_create@GLIBC_2.2.5");
__asm__(".symver pthread_join,pthread_join@GLIBC_2.2.5");
__asm__(".symver pthread_once,pthread_once@GLIBC_2.2.5");
__asm__(".symver pthread_mutex_trylock,pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver pthread_sigmask,pthread_sigmask@GLIBC_2.2.5");
#endif

#define LINE 128
#define TILE_BITS 24
#define CLOSED ((uint64_t)1 << 15)

typedef struct { _Atomic uint64_t v; char pad[LINE - sizeof(uint64_t)]; } line64;
typedef struct { _Atomic uint32_t v; char pad[LINE - sizeof(uint32_t)]; } line32;

static struct {
    pthread_mutex_t run_lock;        /* one run (or resize) at a time */
    _Atomic int size;                /* workers wanted, the caller included */
    int live;                        /* worker threads running: indices 1..live */
    pthread_t threads[RNNCORE_MAX_THREADS];
    uint32_t born_at[RNNCORE_MAX_THREADS];   /* run_seq when worker w was created */
    /* the current run, written under run_lock before run_seq is bumped */
    rnncore_program program;
    void *arg;
    int n_threads;
    uint64_t base_phase, base_done;
    _Atomic int quit_from;           /* workers with an index >= this exit */
    line32 run_seq;
    line64 join;
    line32 left;                     /* workers that have finished a run, ever */
    line32 parked;                   /* workers asleep between runs */
    line32 caller_waits;             /* the caller sleeps on `left` */
    line32 wake_seq;                 /* futex word of the workers asleep inside a run */
    line32 sleepers;
    line64 claim[RNNCORE_MAX_THREADS];
    line64 done[RNNCORE_MAX_THREADS];
    _Atomic uint64_t steals, sleeps;
    uint64_t next_phase;             /* under run_lock */
    long spin_inside_ns, spin_between_ns;
} T = {
    .run_lock = PTHREAD_MUTEX_INITIALIZER,
    .size = 1,
    .quit_from = RNNCORE_MAX_THREADS,
    .next_phase = 1,
    .spin_inside_ns = 50000,
    .spin_between_ns = 100000,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* ---- waiting ------------------------------------------------------------------------ */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Microseconds are enough to bound a spin; gettimeofday is in every glibc's libc (before
 * 2.17 clock_gettime was librt's, which Python does not load). */
static long now_ns(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec * 1000000000L + tv.tv_usec * 1000L;
}

/* Sleep while *word == expected (or until a spurious wake-up or 10 ms pass). */
static void sleep_on(_Atomic uint32_t *word, uint32_t expected) {
#ifdef __linux__
    struct timespec limit = {0, 10000000};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, &limit, NULL, 0);
#else
    (void)word; (void)expected;
    struct timespec pause_for = {0, 50000};
    nanosleep(&pause_for, NULL);
#endif
}

static void wake_all(_Atomic uint32_t *word) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* ---- workers ------------------------------------------------------------------------ */

static uint64_t tiles_done(int n) {
    uint64_t total = 0;
    for (int p = 0; p < n; p++) total += atomic_load_explicit(&T.done[p].v, memory_order_acquire);
    return total;
}

static void worker_run(int me, uint32_t seq) {
    uint64_t v = atomic_load_explicit(&T.join.v, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != seq || (v & CLOSED)) return;     /* not this run's */
        if (me >= (int)((v >> 16) & 0x7f)) return;                  /* not one of its threads */
        if (atomic_compare_exchange_weak_explicit(&T.join.v, &v, v + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            break;
    }
    /* joined: the run cannot end before we leave, so its fields stay as they are */
    rnncore_crew crew = {me, T.n_threads, T.base_phase, T.base_done, &T};
    T.program(T.arg, &crew);
    atomic_fetch_add_explicit(&T.left.v, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&T.caller_waits.v, memory_order_seq_cst)) wake_all(&T.left.v);
}

static void *worker_main(void *index) {
    int me = (int)(intptr_t)index;
    /* the run_seq of when we were created, not of when we start: a thread may start after
     * runs (which it then misses: harmless) or after a stop (which it must not miss) */
    uint32_t seen = T.born_at[me];
    for (;;) {
        long start = now_ns();
        uint32_t seq;
        int spins = 0;
        while ((seq = atomic_load_explicit(&T.run_seq.v, memory_order_acquire)) == seen) {
            cpu_relax();
            if (++spins < 64) continue;
            spins = 0;
            if (now_ns() - start < T.spin_between_ns) continue;
            atomic_fetch_add_explicit(&T.parked.v, 1, memory_order_seq_cst);
            if (atomic_load_explicit(&T.run_seq.v, memory_order_seq_cst) == seen)
                sleep_on(&T.run_seq.v, seen);
            atomic_fetch_sub_explicit(&T.parked.v, 1, memory_order_seq_cst);
        }
        seen = seq;
        if (me >= atomic_load_explicit(&T.quit_from, memory_order_acquire)) return NULL;
        worker_run(me, seq);
    }
}

/* Create workers 1..size-1 that do not exist yet; under run_lock. */
static int create_workers(void) {
    sigset_t all, old;
    int err = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);       /* inherited: workers take no signals */
    while (T.live < T.size - 1) {
        T.born_at[T.live + 1] = atomic_load_explicit(&T.run_seq.v, memory_order_relaxed);
        err = pthread_create(&T.threads[T.live + 1], NULL, worker_main,
                             (void *)(intptr_t)(T.live + 1));
        if (err) break;
        T.live++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) { errno = err; return -1; }
    return 0;
}

/* Stop workers with an index >= n; under run_lock. */
static void stop_workers_from(int n) {
    if (T.live < n) return;
    atomic_store_explicit(&T.quit_from, n, memory_order_release);
    atomic_fetch_add_explicit(&T.run_seq.v, 1, memory_order_seq_cst);
    wake_all(&T.run_seq.v);
    for (int w = n; w <= T.live; w++) pthread_join(T.threads[w], NULL);
    T.live = n - 1;
    atomic_store_explicit(&T.quit_from, RNNCORE_MAX_THREADS, memory_order_release);
}

static void before_fork(void) { pthread_mutex_lock(&T.run_lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&T.run_lock); }
static void after_fork_child(void) {
    /* the workers did not come along: the next run creates them again */
    pthread_mutex_init(&T.run_lock, NULL);
    T.live = 0;
    atomic_store(&T.parked.v, 0);
    atomic_store(&T.sleepers.v, 0);
    atomic_store(&T.caller_waits.v, 0);
}

static void init_once(void) {
    const char *spin = getenv("RNNCORE_SPIN_US");
    if (spin && *spin) {
        char *end;
        long us = strtol(spin, &end, 10);
        if (*end == '\0' && us >= 0) T.spin_inside_ns = T.spin_between_ns = us * 1000;
    }
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ---- the API ------------------------------------------------------------------------ */

int rnncore_team_set_size(int n) {
    if (n < 1 || n > RNNCORE_MAX_THREADS) { errno = EINVAL; return -1; }
    pthread_once(&once, init_once);
    pthread_mutex_lock(&T.run_lock);
    stop_workers_from(n);
    T.size = n;
    pthread_mutex_unlock(&T.run_lock);
    return 0;
}

int rnncore_team_size(void) { return atomic_load_explicit(&T.size, memory_order_relaxed); }

void rnncore_team_set_spin(long inside_us, long between_us) {
    pthread_once(&once, init_once);
    if (inside_us >= 0) T.spin_inside_ns = inside_us * 1000;
    if (between_us >= 0) T.spin_between_ns = between_us * 1000;
}

uint64_t rnncore_team_steals(void) { return atomic_load(&T.steals); }
uint64_t rnncore_team_sleeps(void) { return atomic_load(&T.sleeps); }

int rnncore_team_run(rnncore_program program, void *arg, int max_threads) {
    rnncore_crew solo = {0, 1, 0, 0, NULL};
    pthread_once(&once, init_once);
    if (max_threads <= 1 || rnncore_team_size() <= 1 ||
        pthread_mutex_trylock(&T.run_lock) != 0) {
        program(arg, &solo);
        return 1;
    }
    if (create_workers() != 0 && T.live == 0) {   /* no threads to be had: alone */
        pthread_mutex_unlock(&T.run_lock);
        program(arg, &solo);
        return 1;
    }
    int n = max_threads < T.live + 1 ? max_threads : T.live + 1;
    T.program = program;
    T.arg = arg;
    T.n_threads = n;
    T.base_phase = T.next_phase;
    T.base_done = tiles_done(n);
    uint32_t seq = atomic_load_explicit(&T.run_seq.v, memory_order_relaxed) + 1;
    uint32_t left_before = atomic_load_explicit(&T.left.v, memory_order_acquire);
    atomic_store_explicit(&T.join.v, (uint64_t)seq << 32 | (uint64_t)n << 16,
                          memory_order_release);
    atomic_store_explicit(&T.run_seq.v, seq, memory_order_seq_cst);
    if (atomic_load_explicit(&T.parked.v, memory_order_seq_cst)) wake_all(&T.run_seq.v);

    rnncore_crew crew = {0, n, T.base_phase, T.base_done, &T};
    program(arg, &crew);

    uint64_t v = atomic_fetch_or_explicit(&T.join.v, CLOSED, memory_order_acq_rel);
    uint32_t joined = (uint32_t)(v & (CLOSED - 1));
    long start = now_ns();
    int spins = 0;
    uint32_t left;
    while ((left = atomic_load_explicit(&T.left.v, memory_order_acquire)) - left_before < joined) {
        cpu_relax();
        if (++spins < 64) continue;
        spins = 0;
        if (now_ns() - start < T.spin_inside_ns) continue;
        atomic_store_explicit(&T.caller_waits.v, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&T.left.v, memory_order_seq_cst) == left)
            sleep_on(&T.left.v, left);
        atomic_store_explicit(&T.caller_waits.v, 0, memory_order_seq_cst);
    }
    T.next_phase = crew.phase;
    pthread_mutex_unlock(&T.run_lock);
    return n;
}

/* Take the next tile of owner's range [start, end) in phase ph, or -1 if none is left. */
static long claim(int owner, uint64_t ph, long start, long end) {
    _Atomic uint64_t *word = &T.claim[owner].v;
    uint64_t v = atomic_load_explicit(word, memory_order_acquire), next;
    long index;
    for (;;) {
        uint64_t vp = v >> TILE_BITS;
        if (vp < ph) {                          /* the range is not open yet: open it */
            if (start >= end) return -1;
            index = start;
        } else if (vp == ph) {
            index = (long)(v & (((uint64_t)1 << TILE_BITS) - 1));
            if (index >= end) return -1;
        } else {
            return -1;                          /* the phase is over */
        }
        next = ph << TILE_BITS | (uint64_t)(index + 1);
        if (atomic_compare_exchange_weak_explicit(word, &v, next, memory_order_acq_rel,
                                                  memory_order_acquire))
            return index;
    }
}

static void finished_one(int me) {
    uint64_t d = atomic_load_explicit(&T.done[me].v, memory_order_relaxed);
    atomic_store_explicit(&T.done[me].v, d + 1, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&T.sleepers.v, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&T.wake_seq.v, 1, memory_order_seq_cst);
        wake_all(&T.wake_seq.v);
    }
}

static void wait_for(uint64_t goal, int n) {
    long start = 0;
    int spins = 0;
    while (tiles_done(n) < goal) {
        cpu_relax();
        if (++spins < 64) continue;
        spins = 0;
        long t = now_ns();
        if (start == 0) start = t;
        if (t - start < T.spin_inside_ns) continue;
        atomic_fetch_add_explicit(&T.sleepers.v, 1, memory_order_seq_cst);
        uint32_t s = atomic_load_explicit(&T.wake_seq.v, memory_order_seq_cst);
        if (tiles_done(n) < goal) {
            atomic_fetch_add_explicit(&T.sleeps, 1, memory_order_relaxed);
            sleep_on(&T.wake_seq.v, s);
        }
        atomic_fetch_sub_explicit(&T.sleepers.v, 1, memory_order_seq_cst);
        start = 0;                                /* spin again a while after waking */
    }
}

void rnncore_phase(rnncore_crew *crew, long n_tiles, rnncore_tile tile, void *arg) {
    if (crew->team == NULL) {
        for (long i = 0; i < n_tiles; i++) tile(arg, i, 0);
        return;
    }
    int n = crew->n_threads, me = crew->thread;
    uint64_t ph = crew->phase++;
    crew->done_goal += (uint64_t)n_tiles;
    if (n_tiles >= ((long)1 << TILE_BITS)) {     /* too many to number: worker 0 does all */
        if (me == 0)
            for (long i = 0; i < n_tiles; i++) { tile(arg, i, 0); finished_one(0); }
        wait_for(crew->done_goal, n);
        return;
    }
    for (int j = 0; j < n; j++) {
        int owner = (me + j) % n;
        long start = (long)owner * n_tiles / n, end = (long)(owner + 1) * n_tiles / n, i;
        while ((i = claim(owner, ph, start, end)) >= 0) {
            tile(arg, i, me);
            finished_one(me);
            if (j) atomic_fetch_add_explicit(&T.steals, 1, memory_order_relaxed);
        }
    }
    wait_for(crew->done_goal, n);
}
