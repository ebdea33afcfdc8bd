# Generation, sampling: every stream draws its next character from the top layer's
# logits, each with its own settings (temperature, top-k, nucleus), and takes it, for n
# steps.  Included by _cells.pyx (gen_stack.pxi: the machinery; the programs' pattern).
from libc.math cimport exp
from libc.stdlib cimport qsort
from libc.string cimport memcpy

cdef struct Draw:
    # n steps of every stream of s: the characters drawn into out (n, B) by the uniforms
    # (n, B), each stream with its own settings
    Streams s
    Py_ssize_t n
    Py_ssize_t *out
    const double *uniforms
    const double *temperature   # (B,) 0: greedy
    const Py_ssize_t *top_k     # (B,) 0: all
    const double *top_p         # (B,) >= 1: all


cdef inline int cmp_double_desc(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x < y) - (x > y)


cdef inline double top_k_weights(Py_ssize_t V, double *logits, double *work, Py_ssize_t best,
                                 double temperature, Py_ssize_t top_k) noexcept nogil:
    """Overwrite logits (V,) with the unnormalised weights exp((l - l_best) / T) of the
    top_k largest (0 = all; ties at the k-th all kept), zero elsewhere; returns their
    sum.  best: the argmax."""
    cdef Py_ssize_t j
    cdef double threshold = -1e308, row_max = logits[best], total = 0.0
    if 0 < top_k < V:
        memcpy(work, logits, V * sizeof(double))
        qsort(work, V, sizeof(double), cmp_double_desc)
        threshold = work[top_k - 1]
    for j in range(V):
        if logits[j] >= threshold:
            logits[j] = exp((logits[j] - row_max) / temperature)
        else:
            logits[j] = 0.0
        total += logits[j]
    return total


cdef inline Py_ssize_t draw_index(Py_ssize_t V, const double *weights, double total,
                                  double u, Py_ssize_t best) noexcept nogil:
    """Draw index j with probability weights[j] / total, by the uniform u in [0, 1)."""
    cdef Py_ssize_t j
    cdef double acc = 0.0
    u *= total
    for j in range(V):
        acc += weights[j]
        if weights[j] > 0 and u < acc:
            return j
    return best  # only reached through rounding in the last bin


cdef inline Py_ssize_t choose_char(Py_ssize_t V, double *logits, double *work,
                                   double temperature, Py_ssize_t top_k, double top_p,
                                   double u) noexcept nogil:
    """Pick the next character from logits (V,), overwritten: temperature 0 is greedy (the
    first of equal maxima); else a draw by the uniform u in [0, 1) from softmax(logits /
    temperature) restricted to the top_k largest (0: all) and, for top_p < 1, to the
    nucleus: the smallest set of the most likely of those whose probabilities sum to at
    least top_p (characters tied with its least likely member kept too)."""
    cdef Py_ssize_t j, best = argmax(V, logits)
    cdef double total, acc, cut, kept
    if temperature == 0:
        return best
    total = top_k_weights(V, logits, work, best, temperature, top_k)
    if top_p >= 1:
        return draw_index(V, logits, total, u, best)
    # the nucleus: the weights in decreasing order, until they reach top_p of the total
    memcpy(work, logits, V * sizeof(double))
    qsort(work, V, sizeof(double), cmp_double_desc)
    acc = 0.0
    cut = work[0]
    for j in range(V):
        acc += work[j]
        cut = work[j]
        if acc >= top_p * total:
            break
    kept = 0.0
    for j in range(V):
        if logits[j] < cut:
            logits[j] = 0.0
        kept += logits[j]
    return draw_index(V, logits, kept, u, best)


cdef void draw_row(const Stack *st, Py_ssize_t b, double *z, double *work) noexcept nogil:
    """Stream b's character of step st.i, drawn from its logits z (V,), overwritten."""
    cdef const Draw *d = <const Draw *> st.program
    cdef Py_ssize_t at = st.i * d.s.B + b
    d.out[at] = choose_char(d.s.net.V, z, work, d.temperature[b], d.top_k[b], d.top_p[b],
                            d.uniforms[at])


cdef void sample_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """d.n steps of every stream: each step draws the streams' characters (RTD streams a
    tile) into d.out, then feeds them."""
    cdef Draw *d = <Draw *> arg
    cdef Streams *s = &d.s
    cdef Py_ssize_t i
    cdef Stack st
    start_stack(&st, s)
    pack_weights(&st, crew, 0, pack_tiles(s.net, False))
    for i in range(d.n):
        st.i = i
        st.h_cur = s.state if i % 2 == 0 else s.other
        st.h_nxt = s.other if i % 2 == 0 else s.state
        logits_phase(&st, crew, NULL, s.net.RTD, draw_row, d)
        st.xs = d.out + i * s.B
        step_stack(&st, crew)
    if d.n % 2 == 1:
        copy_back(&st, crew)


def sample_rows(GenerationKernel kernel, state, Py_ssize_t[:, ::1] out,
                const double[:, ::1] uniforms, const double[::1] temperature,
                const Py_ssize_t[::1] top_k, const double[::1] top_p):
    """Generate out.shape[0] characters for each of the B streams of `state` (S·L, B, H),
    into out (n, B), advancing the state in place past every character generated (so a
    further call continues the streams), each stream with settings of its own:
    temperature (B,) (0: greedy, else > 0), top_k (B,) (0: all), top_p (B,) in (0, 1]
    (1: all; below 1, nucleus sampling).  The first character is predicted from the state
    as given.  uniforms (n, B): one number in [0, 1) per character, unused where greedy.
    Never drops out."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_sample_rows(kernel, state, out, uniforms, temperature, top_k,
                                          top_p)
    cdef Py_ssize_t B = state.shape[1], n = out.shape[0]
    if n == 0:
        return
    cdef Draw d
    cdef int threads = kernel.reserve(B)
    keep = kernel.streams(&d.s, state, B)
    d.n = n
    d.out = &out[0, 0]
    d.uniforms = &uniforms[0, 0]
    d.temperature, d.top_k, d.top_p = &temperature[0], &top_k[0], &top_p[0]
    kernel.run(sample_program, &d, threads)
