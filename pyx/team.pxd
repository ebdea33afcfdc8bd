# cython: language_level=3
"""The thread team of csrc/team.c (see csrc/team.h for its promises): a run executes one
program on every worker; a phase is a set of tiles each done once by some worker."""
from libc.stdint cimport uint64_t

cdef extern from "team.h" nogil:
    enum: RNNCORE_MAX_THREADS
    ctypedef struct rnncore_crew:
        int thread
        int n_threads
    ctypedef void (*rnncore_program)(void *arg, rnncore_crew *crew) noexcept nogil
    ctypedef void (*rnncore_tile)(void *arg, long index, int thread) noexcept nogil
    int rnncore_team_set_size(int n)
    int rnncore_team_size()
    int rnncore_team_run(rnncore_program program, void *arg, int max_threads)
    void rnncore_phase(rnncore_crew *crew, long n_tiles, rnncore_tile tile, void *arg)
    uint64_t rnncore_team_steals()
    uint64_t rnncore_team_sleeps()
    void rnncore_team_set_spin(long inside_us, long between_us)
