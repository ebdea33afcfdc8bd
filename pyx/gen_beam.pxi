# Generation, beam search: the K most probable continuations of one stream's state, the
# live beams advanced as one batch of streams.  Included by _cells.pyx (gen_stack.pxi:
# the machinery; gen_candidates.pxi: what beams share).

cdef struct Beam:
    # beam search of width K = s.B for n characters from the one-stream state in s.state:
    # the m live beams are the first m of the (S·L, K, H) state and `other`
    Streams s
    Py_ssize_t n
    double *scores              # (K,) the live beams' log-probabilities
    double *logits              # (K, V)
    Candidate *cands            # (K·V,)
    Py_ssize_t *chars           # (n, K) the character each beam took at each step
    Py_ssize_t *parents         # (n, K) and the beam it extended
    Py_ssize_t *live            # (n,) the live beams after each step

cdef enum:                      # the beam's own phases
    BEAM_SELECT = 0             # the K best extensions (1 tile)
    BEAM_GATHER = 1             # the kept beams' state row `tile` from their parents'

cdef struct BeamJob:
    # a phase of the search, as the program sets it (every worker its own)
    Stack st
    int kind
    Beam *beam


cdef inline void beam_select(Beam *g, Py_ssize_t i, Py_ssize_t m) noexcept nogil:
    """Score every one of the m live beams' V continuations by log-softmax, keep the K
    best (sorted); their number goes into g.live[i]."""
    cdef Py_ssize_t V = g.s.net.V, K = g.s.B, nc = 0, b, j, m_new
    cdef double lse
    cdef double *z
    for b in range(m):
        z = g.logits + b * V
        lse = log_softmax_shift(V, z)
        for j in range(V):
            g.cands[nc].score = g.scores[b] + (z[j] - lse)
            g.cands[nc].logit = z[j]
            g.cands[nc].index = b * V + j
            nc += 1
    m_new = keep_best(g.cands, nc, K)
    for b in range(m_new):
        g.parents[i * K + b] = g.cands[b].index // V
        g.chars[i * K + b] = g.cands[b].index % V
        g.scores[b] = g.cands[b].score
    g.live[i] = m_new


cdef void beam_tile(void *arg, long tile, int thread) noexcept nogil:
    cdef const BeamJob *job = <const BeamJob *> arg
    cdef Beam *g = job.beam
    if job.kind == BEAM_SELECT:
        beam_select(g, job.st.i, job.st.live)
    else:
        gather_rows(&g.s, tile, job.st.i, g.parents + job.st.i * g.s.B, job.st.live)


cdef void beam_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """Every step scores the live beams (their logits, a beam a tile), keeps the K best
    extensions, and advances the kept beams from their parents' states (advance_kept)."""
    cdef Beam *g = <Beam *> arg
    cdef Py_ssize_t i
    cdef BeamJob job
    cdef Stack *st = &job.st
    start_stack(st, &g.s)
    job.beam = g
    pack_weights(st, crew, 0, pack_tiles(g.s.net, False))
    st.live = 1
    for i in range(g.n):
        st.i = i
        st.h_cur = g.s.state
        logits_phase(st, crew, g.logits, 1, NULL, NULL)
        job.kind = BEAM_SELECT
        rnncore_phase(crew, 1, beam_tile, &job)
        if i == g.n - 1:
            break
        st.live = g.live[i]
        job.kind = BEAM_GATHER
        advance_kept(st, beam_tile, &job, g.chars + i * g.s.B, crew)


def beam(GenerationKernel kernel, state, Py_ssize_t[:, ::1] out, double[::1] scores):
    """Beam search of width K = out.shape[0] for n = out.shape[1] characters, from the
    one-stream state (S·L, 1, H) (left as it was).  Writes the best beams' characters to
    out (K, n) and their total log-probabilities (nats) to scores (K,), best first;
    returns how many beams there are (min(K, V**n); rows after them are untouched).  The
    next character of a beam is predicted from its state, exactly as sample_rows predicts
    it; never drops out."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_beam(kernel, state, out, scores)
    cdef Py_ssize_t K = out.shape[0], n = out.shape[1], V = kernel.n_vocab, b, m
    if n == 0:
        return 0
    # the live beams are the first m of (S·L, K, H); the first one is given
    live = np.zeros((state.shape[0], K, kernel.hidden_size), kernel.dtype)
    live[:, 0] = state[:, 0]
    logits = np.zeros((K, V))
    history = np.zeros((3, n, K), np.intp)        # chars, parents, live counts
    cdef Candidate *cands = <Candidate *> PyMem_Malloc(K * V * sizeof(Candidate))
    if cands == NULL:
        raise MemoryError()
    cdef Beam g
    cdef Py_ssize_t *hist = <Py_ssize_t *> data_pointer(history)
    cdef int threads
    try:
        threads = kernel.reserve(K)
        keep = kernel.streams(&g.s, live, K)
        g.n = n
        g.scores = &scores[0]
        g.logits = <double *> data_pointer(logits)
        g.cands = cands
        g.chars, g.parents, g.live = hist, hist + n * K, hist + 2 * n * K
        scores[0] = 0.0
        kernel.run(beam_program, &g, threads)
        m = g.live[n - 1]
        with nogil:
            for b in range(m):
                trace_back(&out[b, 0], n, b, g.chars, g.parents, K)
    finally:
        PyMem_Free(cands)
    return m
