# Generation's shared machinery: the layer stack stepped over a batch of streams with the
# window's step code (step.pxi), the weights' packing, and the logits.  Included by
# _cells.pyx; the programs are one file each (gen_feed, gen_sample, gen_next, gen_beam,
# gen_words).
#
# A generation state is (S·L, B, H), the model's state layout: rows 0..L-1 every layer's h,
# then for lstm rows L..2L-1 every layer's c; streams are H values apart, rows B·H apart (so
# live streams can be the first m of a batch: beams).  A step's tiles all read the whole
# previous h, so h alternates between two buffers; c is updated in place (each tile owns
# its units).  Every stream's numbers are the same whatever the other streams are
# (csrc/gemm.h sums each row alone), so a stream gives the same text alone, in a batch, or
# as a beam of width 1.
#
# A program is a sequence of phases that every worker of the team runs (csrc/team.h).  The
# stack's phases (STACK_* below) run stack_tile, the one tile function of generation that
# computes in the model's dtype; a program's own phases run its own tile function, which
# only moves bytes and reads doubles and indices, so it is written once for both dtypes.
# What a program reads between phases must never change later in the run (a worker the OS
# has descheduled may read it phases late): counts that tiles decide (live beams) are kept
# per step, in histories.
from libc.string cimport memcpy, memset

from team cimport rnncore_crew, rnncore_phase, rnncore_tile

cdef struct Streams:
    # what every program runs on: B streams of a state, a step's buffers, the scratch
    const Net *net
    rnncore_tile tile           # stack_tile of the model's dtype (_cells.pyx)
    Py_ssize_t B                # streams: a state's rows are B·H values apart
    void *state                 # (S·L, B, H)
    void *other                 # (S·L, B, H): the other h buffer (and, for beams, c)
    void *pre                   # (B, G·H): a deeper layer's input projection of one step
    void *scratch               # per thread: scratch_size values of the dtype
    Py_ssize_t scratch_size
    double *logit_rows          # per thread: 2·V doubles, a row of logits and a sort's

cdef enum:                      # the stack's phases
    STACK_PACK = 0              # tiles first .. of the weights' packing (pack_task)
    STACK_PROJECT = 1           # out (rows, G·H) = x (rows, H) · Wxh_kᵀ + bh_k
    STACK_STEP = 2              # layer k, one step, of the first `live` streams
    STACK_COPY = 3              # h row `tile` of the state from `other`
    STACK_LOGITS = 4            # the live streams' logits, `rows` streams a tile

cdef struct Stack

ctypedef void (*row_fn)(const Stack *st, Py_ssize_t b, double *z,
                        double *work) noexcept nogil

cdef struct Stack:
    # a phase of the stack, as a program sets it before the phase (every worker its own)
    int kind
    Streams *s
    Py_ssize_t k                # the layer
    Py_ssize_t live             # the streams stepped: the first `live` of the state
    Py_ssize_t i                # the program's step
    void *h_cur                 # (L, ·, H) the h read (rows s.B·H apart)
    void *h_nxt                 # (L, ·, H) where a step writes the new h
    void *c                     # (L, ·, H) lstm's c, stepped in place
    const Py_ssize_t *xs        # STEP, layer 0: (live,) the characters fed
    void *step_pre              # STEP, k >= 1: (live, G·H) the input projection
    const void *x               # PROJECT: (rows, H)
    void *out                   # PROJECT: (rows, G·H)
    Py_ssize_t rows             # PROJECT: rows; LOGITS: streams a tile
    Py_ssize_t first            # PACK: its first tile
    double *logits              # LOGITS: (live, V) where they go; NULL: a thread's row
    row_fn on_row               # LOGITS: then on_row(st, b, stream b's logits, V doubles
                                # of work), or NULL
    void *program               # the program's own struct, for on_row


cdef inline void *state_row(const Streams *s, const void *base, Py_ssize_t row,
                            Py_ssize_t b) noexcept nogil:
    """Stream b's H values in row `row` (of S·L) of a buffer laid out as the state."""
    return skip(base, (row * s.B + b) * s.net.H, s.net.itemsize)


cdef inline void *stack_scratch(const Stack *st, int thread) noexcept nogil:
    return skip(st.s.scratch, thread * st.s.scratch_size, st.s.net.itemsize)


cdef inline void start_stack(Stack *st, Streams *s) noexcept nogil:
    """st ready for a program on s: every stream live, h read from the state and written
    to `other`, c in the state, no logits kept."""
    memset(st, 0, sizeof(Stack))
    st.s = s
    st.live = s.B
    st.h_cur, st.h_nxt = s.state, s.other
    st.c = state_row(s, s.state, s.net.L, 0)


cdef inline Py_ssize_t argmax(Py_ssize_t V, const double *logits) noexcept nogil:
    """The index of the largest of logits (V,), the first of equal maxima."""
    cdef Py_ssize_t j, best = 0
    for j in range(1, V):
        if logits[j] > logits[best]:
            best = j
    return best


# ---------------------------------------------------------------------------------------
# The stack's tiles: the products and the cell steps, in the model's dtype.
# ---------------------------------------------------------------------------------------

cdef inline void step_tile(floating *S, const Stack *st, Py_ssize_t u) noexcept nogil:
    """Layer st.k, units of tile u, of the st.live streams."""
    cdef const Net *n = st.s.net
    cdef Py_ssize_t k = st.k, BH = st.s.B * n.H            # state rows are B·H apart
    cdef ForwardStep f
    f.k, f.B = k, st.live
    f.xs, f.xs_stride = st.xs, 1
    f.pre = st.step_pre
    f.h_prev = (<const floating *> st.h_cur) + k * BH
    f.h_out = (<floating *> st.h_nxt) + k * BH
    if n.cell == LSTM:
        f.c_prev = f.c_out = (<floating *> st.c) + k * BH
    else:
        f.c_prev = f.c_out = NULL
    f.gates = f.aux = f.y_out = NULL
    f.mask = NULL
    forward_tile(S, n, &f, u)


cdef inline void projection_tile(floating *S, const Stack *st,
                                 Py_ssize_t tile) noexcept nogil:
    """Tile `tile` of st.out (rows, G·H) = st.x (rows, H) · Wxh_kᵀ + bh_k."""
    cdef const Net *n = st.s.net
    cdef Operand wxh_t = packed(n.Px[st.k], n.H, n.NC, n.params.Wxh[st.k], 1, n.H)  # Wxh_kᵀ
    product_tile(S, n, st.rows, n.GH, n.H, <const floating *> st.x, n.H, 1, &wxh_t, tile,
                 <floating *> st.out, n.GH, <const floating *> n.params.bh[st.k])


cdef inline void logits_of(floating *S, const Net *n, const floating *h, Py_ssize_t rows,
                           double *logits) noexcept nogil:
    """logits (rows, V) = h (rows, H) · Whyᵀ + by, widened to double; S: scratch of
    rows·n_vp·NC values."""
    cdef Py_ssize_t V = n.V, NC = n.NC, Vp = n.n_vp * NC, r, j
    cdef const floating *by = <const floating *> n.params.by
    logits_rows(S, n, h, rows, Vp)
    for r in range(rows):
        for j in range(V):
            logits[r * V + j] = <double> (S[r * Vp + j] + by[j])


cdef inline void logits_tile(floating *S, const Stack *st, Py_ssize_t tile,
                             int thread) noexcept nogil:
    """Streams tile·rows .. of the live ones: each one's logits (from its top layer's h in
    h_cur, in float64), into st.logits or the thread's row, then st.on_row."""
    cdef const Streams *s = st.s
    cdef const Net *n = s.net
    cdef Py_ssize_t V = n.V, b, r0 = tile * st.rows
    cdef double *work = s.logit_rows + thread * 2 * V
    cdef double *z
    cdef const floating *h_top = (<const floating *> st.h_cur) + (n.L - 1) * s.B * n.H
    for b in range(r0, min(r0 + st.rows, st.live)):
        z = work if st.logits == NULL else st.logits + b * V
        logits_of(S, n, h_top + b * n.H, 1, z)
        if st.on_row != NULL:
            st.on_row(st, b, z, work + V)


cdef inline void stack_tile(floating *S, const Stack *st, Py_ssize_t tile,
                            int thread) noexcept nogil:
    """Tile `tile` of the stack's phase st; S: the thread's scratch."""
    cdef const Net *n = st.s.net
    cdef Py_ssize_t BH = st.s.B * n.H, size = n.itemsize
    cdef PackTask task
    if st.kind == STACK_PACK:
        task = pack_task(n, False, st.first + tile)
        pack_panel(<floating *> task.P, &task)
    elif st.kind == STACK_PROJECT:
        projection_tile(S, st, tile)
    elif st.kind == STACK_STEP:
        step_tile(S, st, tile)
    elif st.kind == STACK_COPY:
        memcpy(skip(st.s.state, tile * BH, size), skip(st.s.other, tile * BH, size), BH * size)
    else:
        logits_tile(S, st, tile, thread)


# ---------------------------------------------------------------------------------------
# The stack's phases, as programs run them.
# ---------------------------------------------------------------------------------------

cdef inline void pack_weights(Stack *st, rnncore_crew *crew, Py_ssize_t first,
                              Py_ssize_t count) noexcept nogil:
    """Tiles first .. first+count-1 of the weights' packing (pack_task)."""
    st.kind = STACK_PACK
    st.first = first
    rnncore_phase(crew, count, st.s.tile, st)


cdef inline void project(Stack *st, rnncore_crew *crew, const void *x, Py_ssize_t rows,
                         void *out) noexcept nogil:
    """out (rows, G·H) = x (rows, H) · Wxh_kᵀ + bh_k: the input of layer st.k."""
    st.kind = STACK_PROJECT
    st.x, st.rows, st.out = x, rows, out
    rnncore_phase(crew, product_tiles(st.s.net, rows, st.s.net.GH), st.s.tile, st)


cdef inline void step_layer(Stack *st, rnncore_crew *crew) noexcept nogil:
    """Layer st.k of the st.live streams, one step."""
    st.kind = STACK_STEP
    rnncore_phase(crew, st.s.net.n_uf, st.s.tile, st)


cdef inline void step_stack(Stack *st, rnncore_crew *crew) noexcept nogil:
    """Feed st.xs to the st.live streams: every layer, one step, from h_cur to h_nxt."""
    cdef const Net *n = st.s.net
    cdef Py_ssize_t k
    for k in range(n.L):
        st.k = k
        if k > 0:
            project(st, crew, skip(st.h_nxt, (k - 1) * st.s.B * n.H, n.itemsize), st.live,
                    st.s.pre)
        st.step_pre = st.s.pre
        step_layer(st, crew)


cdef inline void copy_back(Stack *st, rnncore_crew *crew) noexcept nogil:
    """Every layer's h from `other` into the state (after an odd number of steps)."""
    st.kind = STACK_COPY
    rnncore_phase(crew, st.s.net.L, st.s.tile, st)


cdef inline void logits_phase(Stack *st, rnncore_crew *crew, double *logits,
                              Py_ssize_t rows, row_fn on_row, void *program) noexcept nogil:
    """The logits of the st.live streams of h_cur, `rows` streams a tile, into logits (or
    each thread's row), each followed by on_row (or nothing)."""
    st.kind = STACK_LOGITS
    st.logits, st.rows, st.on_row, st.program = logits, rows, on_row, program
    rnncore_phase(crew, ceil_div(st.live, rows), st.s.tile, st)
