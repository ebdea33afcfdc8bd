# Generation, beams: what beam search (gen_beam.pxi) and the word beam (gen_words.pxi)
# share: candidates and their order, keeping the best of them, the kept beams' states
# gathered and stepped as one batch, and reading a beam's characters back through its
# parents.  Included by _cells.pyx.
from libc.math cimport exp, log
from libc.stdlib cimport qsort
from libc.string cimport memcpy

cdef enum:
    KEEP_BY_INSERTION = 64      # the widest beam keep_best keeps by insertion

cdef struct Candidate:
    double score        # total log-probability of the beam's characters and this one
    double logit        # this character's logit: breaks ties as greedy does (see better)
    Py_ssize_t index    # beam · V + character


cdef inline int descending(double a, double b) noexcept nogil:
    """1 if a comes before b in decreasing order with NaN last, 0 if after, -1 if neither
    (equal, or both NaN)."""
    if a > b:
        return 1
    if a < b:
        return 0
    if a == b or (a != a and b != b):
        return -1
    return 1 if b != b else 0


cdef inline bint better(const Candidate *x, const Candidate *y) noexcept nogil:
    """x comes before y, best first: higher score, then higher logit, then lower index, a
    NaN below every number (a diverged beam never crowds out the others).  At width 1 every
    candidate extends the same beam, and score = s + (logit - logsumexp) never decreases
    as the logit grows, so this order puts greedy's argmax (its first maximum) first even
    where rounding makes two scores equal."""
    cdef int order = descending(x.score, y.score)
    if order >= 0:
        return order
    order = descending(x.logit, y.logit)
    if order >= 0:
        return order
    return x.index < y.index


cdef inline int cmp_candidates(const void *a, const void *b) noexcept nogil:
    """qsort's form of better()."""
    if better(<const Candidate *> a, <const Candidate *> b):
        return -1
    return 1 if better(<const Candidate *> b, <const Candidate *> a) else 0


cdef inline Py_ssize_t keep_best(Candidate *c, Py_ssize_t nc, Py_ssize_t K) noexcept nogil:
    """The K best of c[0 .. nc) (all of them if nc <= K) moved to c[0 .. K), best first;
    returns how many.  The order is total (indices differ), so these are exactly the first
    K of c sorted, found without sorting the rest: a search's step offers K·V candidates
    for K places, and sorting them all took a quarter of a batched word search.  In place:
    c[i] is read before any write reaches it (the kept ones never outnumber those read).
    Beyond KEEP_BY_INSERTION places, a sort (an exhaustive beam keeps every candidate)."""
    cdef Py_ssize_t m = 0, i, j
    cdef Candidate x
    if K > KEEP_BY_INSERTION:       # a wide beam: insertion would move K values per candidate
        qsort(c, nc, sizeof(Candidate), cmp_candidates)
        return K if nc > K else nc
    for i in range(nc):
        x = c[i]
        if m == K:
            if not better(&x, &c[K - 1]):
                continue
            j = K - 1
        else:
            j = m
            m += 1
        while j > 0 and better(&x, &c[j - 1]):
            c[j] = c[j - 1]
            j -= 1
        c[j] = x
    return m


cdef inline double log_softmax_shift(Py_ssize_t V, const double *z) noexcept nogil:
    """logsumexp(z): log p[j] = z[j] - this."""
    cdef Py_ssize_t j
    cdef double row_max = z[argmax(V, z)], total = 0.0
    for j in range(V):
        total += exp(z[j] - row_max)
    return row_max + log(total)


cdef inline void gather_rows(const Streams *s, Py_ssize_t row, Py_ssize_t i,
                             const Py_ssize_t *parents, Py_ssize_t m) noexcept nogil:
    """State row `row` (of S·L) of the m beams kept after step i, from their parents' rows
    parents[b].  h goes from the state to `other`; c goes to whichever buffer it does not
    live in (it lives in the state after even steps, in `other` after odd ones)."""
    cdef Py_ssize_t b
    cdef const void *src = s.state
    cdef void *dst = s.other
    if row >= s.net.L and i % 2 == 1:
        src, dst = s.other, s.state
    for b in range(m):
        memcpy(state_row(s, dst, row, b), state_row(s, src, row, parents[b]),
               s.net.H * s.net.itemsize)


cdef inline void advance_kept(Stack *st, rnncore_tile gather, void *job,
                              const Py_ssize_t *xs, rnncore_crew *crew) noexcept nogil:
    """Beams, after step st.i's choice: the st.live kept beams start from their parents'
    states (the `gather` tiles of `job`, gather_rows) and take their characters xs as one
    batch.  h goes from the state to `other` and is stepped back; c lives in the state
    after even steps and in `other` after odd ones, and is stepped where it was gathered
    to."""
    cdef const Streams *s = st.s
    rnncore_phase(crew, (2 if s.net.cell == LSTM else 1) * s.net.L, gather, job)
    st.xs = xs
    st.h_cur, st.h_nxt = s.other, s.state
    st.c = state_row(s, s.other if st.i % 2 == 0 else s.state, s.net.L, 0)
    step_stack(st, crew)


cdef inline void trace_back(Py_ssize_t *out, Py_ssize_t m, Py_ssize_t beam,
                            const Py_ssize_t *chars, const Py_ssize_t *parents,
                            Py_ssize_t K) noexcept nogil:
    """out[0 .. m) = the characters of what is beam `beam` after m steps, read backwards
    through its parents: at step i beam q took chars[i·K + q], extending parents[i·K + q]."""
    cdef Py_ssize_t i = m - 1
    while i >= 0:
        out[i] = chars[i * K + beam]
        beam = parents[i * K + beam]
        i -= 1
