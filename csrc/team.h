/* The process's thread team: persistent workers that run a window's whole time loop.
 *
 * One team per process, created on first use with the size set by rnncore_team_set_size
 * (the Python layer sets it: rnncore.set_num_threads).  The thread that calls
 * rnncore_team_run is worker 0; workers 1..n-1 are pthreads that sleep on a futex between
 * runs and spin (bounded, then sleep again) inside one.  Signals are blocked in the workers,
 * so Ctrl-C always reaches the Python thread.  After fork() the child has no workers; they
 * are created again at its first run.
 *
 * A run executes one program on every worker (SPMD).  The program is a fixed sequence of
 * phases; a phase is a set of tiles numbered 0..n-1, each done exactly once by some worker,
 * and rnncore_phase returns on every worker once all of them are done (that return is the
 * only synchronisation: its release/acquire hand-off makes every tile's writes visible to
 * the next phase).  Tile i belongs to worker i*n_threads/n_tiles (contiguous ranges, the
 * same every step, so a worker keeps meeting the same weights in its own cache); a worker
 * that has finished its own takes the remaining tiles of the others, so a worker that the
 * OS has descheduled never stalls a step.  What a tile computes depends only on its index,
 * never on who runs it: the results are the same bits for any number of threads.
 *
 * Everything a program does between phases must be free of side effects (pointer
 * arithmetic only): a worker may join late and walk through phases that are already done.
 */
#ifndef RNNCORE_TEAM_H
#define RNNCORE_TEAM_H

#include <stdint.h>

#define RNNCORE_MAX_THREADS 64

typedef struct rnncore_crew rnncore_crew;

/* program(arg, crew): what every worker of a run executes; crew says who it is */
typedef void (*rnncore_program)(void *arg, rnncore_crew *crew);
/* tile(arg, index, thread): one tile of a phase; thread < the run's thread count, for
 * per-thread scratch */
typedef void (*rnncore_tile)(void *arg, long index, int thread);

/* A worker's view of the run it takes part in. */
struct rnncore_crew {
    int thread;          /* 0 .. n_threads-1; 0 is the caller */
    int n_threads;       /* the run's thread count: tile ownership is by this number */
    uint64_t phase;      /* the next phase's number (team-wide, increasing) */
    uint64_t done_goal;  /* tiles that must be done, in all, when the current phase ends */
    void *team;          /* NULL when the run is the caller's alone */
};

/* Set the team's size (workers, the caller included), 1..RNNCORE_MAX_THREADS.  Waits for a
 * run in progress to end.  Returns 0, or -1 with errno set (EINVAL: out of range). */
int rnncore_team_set_size(int n);
/* The team's size (1 until set). */
int rnncore_team_size(void);

/* Run program on min(max_threads, size) workers, the caller being worker 0, and return
 * the number of threads the run was divided for.  If another thread's run holds the team,
 * or max_threads <= 1, or no worker thread can be created, the caller runs the program
 * alone (n_threads 1), which gives the same results. */
int rnncore_team_run(rnncore_program program, void *arg, int max_threads);

/* One phase of n_tiles tiles (see above); n_tiles may be 0. */
void rnncore_phase(rnncore_crew *crew, long n_tiles, rnncore_tile tile, void *arg);

/* Tiles a worker took from another worker since the team was created (a diagnostic: how
 * often the busy-machine path ran) and the number of times a worker slept inside a run. */
uint64_t rnncore_team_steals(void);
uint64_t rnncore_team_sleeps(void);

/* How long a waiting worker spins before it sleeps, in microseconds (inside a run, and
 * between runs).  Defaults 50 and 100; RNNCORE_SPIN_US sets both at the first run. */
void rnncore_team_set_spin(long inside_us, long between_us);

#endif
