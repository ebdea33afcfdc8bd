/* The thread team under stress, in C (tests/test_threads.py builds and runs it, also under
 * ThreadSanitizer where the compiler has it): two calling threads racing for the team (the
 * loser runs alone), resizes between runs, a worker that sleeps inside tiles as a
 * descheduled thread would.  Every tile of every phase must run exactly once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "team.h"

#define MAX_TILES 64
#define PHASES 40
#define RUNS 200

typedef struct { long counts[PHASES][MAX_TILES]; } job_t;
typedef struct { job_t *job; long phase; } phase_t;

static long tiles_of(long p) { return 1 + (p * 7) % MAX_TILES; }

static void tile(void *arg, long i, int thread) {
    phase_t *ph = arg;
    if (thread == 1 && i % 13 == 0) {            /* a worker the OS takes away */
        struct timespec pause = {0, 200000};
        nanosleep(&pause, NULL);
    }
    __atomic_add_fetch(&ph->job->counts[ph->phase][i], 1, __ATOMIC_RELAXED);
}

static void program(void *arg, rnncore_crew *crew) {
    for (long p = 0; p < PHASES; p++) {
        phase_t ph = {arg, p};
        rnncore_phase(crew, tiles_of(p), tile, &ph);
    }
}

static void *caller(void *resizes) {
    long bad = 0;
    for (int r = 0; r < RUNS; r++) {
        job_t *job = calloc(1, sizeof *job);
        rnncore_team_run(program, job, 1 + r % 4);
        for (long p = 0; p < PHASES; p++)
            for (long i = 0; i < MAX_TILES; i++)
                bad += job->counts[p][i] != (i < tiles_of(p));
        free(job);
        if (resizes && r % 25 == 0) rnncore_team_set_size(1 + (r / 25) % 4);
    }
    return (void *)bad;
}

int main(void) {
    pthread_t a, b;
    void *bad_a, *bad_b;
    rnncore_team_set_size(3);
    pthread_create(&a, NULL, caller, (void *)1);
    pthread_create(&b, NULL, caller, NULL);
    pthread_join(a, &bad_a);
    pthread_join(b, &bad_b);
    printf("wrong tile counts: %ld; steals %llu\n", (long)bad_a + (long)bad_b,
           (unsigned long long)rnncore_team_steals());
    return (long)bad_a + (long)bad_b != 0;
}
