# Generation, the next-character distribution of every stream.  Included by _cells.pyx
# (gen_stack.pxi: the machinery; the programs' pattern).
from libc.math cimport exp

cdef struct Next:
    # every stream's next-character distribution into probs (B, V)
    Streams s
    double *probs


cdef void softmax_row(const Stack *st, Py_ssize_t b, double *p, double *work) noexcept nogil:
    """p (V,) = softmax(p) in place."""
    cdef Py_ssize_t V = st.s.net.V, j
    cdef double total = 0.0, row_max = p[argmax(V, p)]
    for j in range(V):
        p[j] = exp(p[j] - row_max)
        total += p[j]
    for j in range(V):
        p[j] /= total


cdef void next_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """probs[b] = softmax(Why·h + by) of stream b's top-layer h, a stream a tile; only the
    decoder's weights are packed."""
    cdef Next *x = <Next *> arg
    cdef PackCounts counts = pack_counts(x.s.net, False)
    cdef Stack st
    start_stack(&st, &x.s)
    pack_weights(&st, crew, counts.f + counts.x + counts.e, counts.yt)
    logits_phase(&st, crew, x.probs, 1, softmax_row, x)


def next_probs(GenerationKernel kernel, state, double[:, ::1] out):
    """out (B, V) = the next-character distribution of every stream of `state`
    (S·L, B, H): softmax(Why·h + by) of its top layer's h, in float64."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_next_probs(kernel, state, out)
    cdef Py_ssize_t B = state.shape[1]
    cdef Next x
    cdef int threads = kernel.reserve(B)
    keep = kernel.streams(&x.s, state, B)
    x.probs = &out[0, 0]
    kernel.run(next_program, &x, threads)
