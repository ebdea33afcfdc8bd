# GenerationKernel: what generation's programs (gen_*.pxi) run on, as Python sees it.
# Included by _cells.pyx.

cdef class GenerationKernel:
    """Generation's compiled kernel for a model's weights (a Weights, read as they are at
    each call): the Net of generation's engines (`engine`, None: the current setting;
    under `auto` the micro-kernel; on either a stream's bits are the same alone or in any
    batch: BLAS is called one row at a time), its
    packed panels, and each thread's scratch.  The programs are the module's functions
    that take it first (advance, feed, feed_rows, sample_rows, next_probs, beam,
    word_beam), one call at a time (a kernel holds the scratch of one call).  Everything
    handed in is trusted: the caller (rnncore.doorway) checks it.  `threads`: None lets
    each call choose (the whole team, or one thread for steps too small to split); a
    number caps it."""
    cdef Net net
    cdef void **pointers                        # 4 arrays of L pointers: the panels
    cdef rnncore_tile tile                      # stack_tile of the model's dtype
    cdef readonly Weights weights
    cdef readonly str cell
    cdef readonly Py_ssize_t num_layers, n_vocab, hidden_size
    cdef readonly object dtype
    cdef readonly dict engines                  # {kind: "own" | "blas"}, fixed when built
    cdef public object threads
    cdef object packed, scratch, logit_rows
    cdef Py_ssize_t scratch_threads

    def __cinit__(self, Weights weights, engine=None):
        cdef Py_ssize_t L = weights.num_layers
        self.pointers = <void **> PyMem_Malloc(4 * L * sizeof(void *))
        if self.pointers == NULL:
            raise MemoryError()
        memset(self.pointers, 0, 4 * L * sizeof(void *))
        self.weights = weights
        self.cell, self.num_layers = weights.cell, L
        self.n_vocab, self.hidden_size, self.dtype = weights.n_vocab, weights.hidden_size, \
            weights.dtype
        self.threads = None
        self.engines = _engines.engines_for(MICROKERNEL, engine, "generation")
        init_net(&self.net, weights, self.engines, False, self.pointers, True)
        self.packed = allocate_panels(&self.net, self.engines, self.dtype, False)
        self.tile = stack_tile_d if self.dtype == np.float64 else stack_tile_f
        self.scratch = self.logit_rows = None
        self.scratch_threads = 0

    def __dealloc__(self):
        PyMem_Free(self.pointers)

    cdef int reserve(self, Py_ssize_t B) except -1:
        """The threads a call of B streams runs on, each with its scratch."""
        cdef Net *n = &self.net
        cdef int threads = team_threads(self.threads, B * n.GH * n.H)
        cdef Py_ssize_t size = padded(max(
            forward_scratch(n, B), n.n_vp * n.NC,
            rnncore_tile_work_d(n.RT, n.NT) if self.dtype == np.float64
            else rnncore_tile_work_f(n.RT, n.NT)))
        if self.scratch is None or threads > self.scratch_threads or \
                size > self.scratch.shape[1]:
            self.scratch_threads = max(threads, self.scratch_threads)
            self.scratch = aligned_zeros((self.scratch_threads, size), self.dtype)
            self.logit_rows = np.zeros((self.scratch_threads, 2 * n.V))
        return threads

    cdef object streams(self, Streams *s, object state, Py_ssize_t B):
        """s for B streams of `state` (S·L, B, H), after reserve(B); returns the arrays it
        points into (keep them alive through the call)."""
        other = np.zeros_like(state)
        pre = np.zeros((B, self.net.GH), self.dtype)
        s.net = &self.net
        s.tile = self.tile
        s.B = B
        s.state = data_pointer(state)
        s.other = data_pointer(other)
        s.pre = data_pointer(pre)
        s.scratch = data_pointer(self.scratch)
        s.scratch_size = self.scratch.shape[1]
        s.logit_rows = <double *> data_pointer(self.logit_rows)
        return other, pre

    cdef void run(self, rnncore_program program, void *arg, int threads) except *:
        """Run `program` over arg on the team (without the GIL), on the weights bound."""
        cdef bint uses_blas = "blas" in self.engines.values()
        if RNNCORE_DEBUG_CHECKS and self.weights.arrays is None:
            raise ValueError("bind the weights before generating")
        self.net.params = &self.weights.p
        with nogil:
            if uses_blas:
                rnncore_blas_enter()
            rnncore_team_run(program, arg, threads)
            if uses_blas:
                rnncore_blas_leave()
