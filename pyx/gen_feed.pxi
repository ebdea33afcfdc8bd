# Generation, feeding: characters into the streams of a state, the same to every stream
# (advance, feed) or each stream its own text (feed_rows), layer after layer.  Included by
# _cells.pyx (gen_stack.pxi: the machinery; the programs' pattern).

cdef enum:
    FEED_ROWS = 256             # rows (streams × steps) of a feed chunk, at most

cdef struct Feed:
    # feeding steps first .. end-1, layer after layer in chunks of `chunk` steps, whose rows
    # (one per stream and step) are at most chunk·B
    Streams s
    Py_ssize_t first, end
    Py_ssize_t chunk
    void *hist                  # (chunk·B, H) layer k's h of the chunk's steps
    void *pre_rows              # (chunk·B, G·H) layer k+1's input projection of them
    # the same characters to all: chars (n, B), stream b the character of column b
    const Py_ssize_t *chars
    # or, where chars is NULL, texts: text (B, P) right-aligned, stream b's from
    # starts[b]; the streams in order of their starts (order (B,), sorted_starts (B,)),
    # run so in the state; `given` the state to start from and to leave the result in, in
    # the caller's order; xs (B,) the characters of a step
    const Py_ssize_t *text
    Py_ssize_t P
    const Py_ssize_t *order
    const Py_ssize_t *sorted_starts
    Py_ssize_t *xs
    void *given

cdef enum:                      # the feed's own phases
    FEED_JOIN = 0               # texts: streams whose text begins now join (1 tile)
    FEED_KEEP = 1               # layer k's new h into the chunk's rows (1 tile)
    FEED_SCATTER = 2            # texts, at the end: state row `tile` back to `given`

cdef struct FeedJob:
    # a phase of the feed, as the program sets it (every worker its own)
    Stack st
    int kind
    const Feed *f
    Py_ssize_t on, joined       # texts: the streams under way before / after this step
    Py_ssize_t rows             # the chunk's rows so far (streams × steps)


cdef inline void join_tile(const FeedJob *job) noexcept nogil:
    """Feeding texts, layer st.k: the streams whose text begins now join the batch
    (positions on .. joined, in order of their starts) with the state they were given; at
    layer 0, every stream under way gets its character."""
    cdef const Feed *f = job.f
    cdef const Streams *s = &f.s
    cdef Py_ssize_t H = s.net.H, L = s.net.L, k = job.st.k, b, src
    cdef size_t size = H * s.net.itemsize
    for b in range(job.on, job.joined):
        src = f.order[b]
        memcpy(state_row(s, job.st.h_cur, k, b), state_row(s, f.given, k, src), size)
        if s.net.cell == LSTM:
            memcpy(state_row(s, job.st.c, k, b), state_row(s, f.given, L + k, src), size)
    if k == 0:
        for b in range(job.joined):
            f.xs[b] = f.text[f.order[b] * f.P + job.st.i]


cdef inline void keep_tile(const FeedJob *job) noexcept nogil:
    """Feeding, layer st.k < L-1: its new h of the st.live streams under way, into the
    chunk's rows (from job.rows on), for the layer above's projection."""
    cdef const Streams *s = &job.f.s
    cdef Py_ssize_t H = s.net.H, size = s.net.itemsize
    memcpy(skip(job.f.hist, job.rows * H, size), state_row(s, job.st.h_nxt, job.st.k, 0),
           job.st.live * H * size)


cdef inline void scatter_tile(const FeedJob *job, Py_ssize_t row) noexcept nogil:
    """Feeding texts, at the end: state row `row` of every stream under way back into the
    caller's state, in its order."""
    cdef const Feed *f = job.f
    cdef const Streams *s = &f.s
    cdef Py_ssize_t L = s.net.L, b
    cdef const void *src = state_row(s, job.st.h_cur, row, 0) if row < L \
        else state_row(s, job.st.c, row - L, 0)
    for b in range(job.on):
        memcpy(state_row(s, f.given, row, f.order[b]), skip(src, b * s.net.H, s.net.itemsize),
               s.net.H * s.net.itemsize)


cdef void feed_tile(void *arg, long tile, int thread) noexcept nogil:
    cdef const FeedJob *job = <const FeedJob *> arg
    if job.kind == FEED_JOIN:
        join_tile(job)
    elif job.kind == FEED_KEEP:
        keep_tile(job)
    else:
        scatter_tile(job, tile)


cdef inline void feed_step(FeedJob *job, rnncore_crew *crew, Py_ssize_t i) noexcept nogil:
    """Step i of layer st.k: the streams that join now join (texts), then the layer's
    step of every stream under way, its h kept for the layer above."""
    cdef const Feed *f = job.f
    cdef Stack *st = &job.st
    cdef const Net *n = f.s.net
    cdef Py_ssize_t steps = i - f.first
    st.i = i
    st.h_cur = f.s.state if steps % 2 == 0 else f.s.other
    st.h_nxt = f.s.other if steps % 2 == 0 else f.s.state
    if f.chars == NULL:
        job.joined = job.on
        while job.joined < f.s.B and f.sorted_starts[job.joined] <= i:
            job.joined += 1
        if st.k == 0 or job.joined > job.on:    # layer 0's also gives the characters
            job.kind = FEED_JOIN
            rnncore_phase(crew, 1, feed_tile, job)
        job.on = st.live = job.joined
        st.xs = f.xs
    else:
        st.live = f.s.B
        st.xs = f.chars + i * f.s.B
    st.step_pre = skip(f.pre_rows, job.rows * n.GH, n.itemsize)
    step_layer(st, crew)
    if st.k < n.L - 1:
        job.kind = FEED_KEEP
        rnncore_phase(crew, 1, feed_tile, job)
    job.rows += st.live


cdef void feed_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """Feed steps first .. end-1 to every stream of the state: f.chars, or f.text as
    feed_rows says.  Layer after layer, in chunks of f.chunk steps: layer k runs the
    chunk's steps, keeping its h of each; layer k+1's input projection is then one product
    over all of them, and its steps follow.  So a step meets one layer's recurrent
    weights, not every layer's: at one stream, where every step reads all its weights
    once, a layer's stay in cache (a 2×256 GRU fed step after step read its 2.3 MB each
    step from L3).  The same tiles as step_stack(), in another order: the same bits."""
    cdef Feed *f = <Feed *> arg
    cdef const Net *n = f.s.net
    cdef Py_ssize_t i, i0 = f.first, i1, k, on_start
    cdef FeedJob job
    cdef Stack *st = &job.st
    start_stack(st, &f.s)
    job.f = f
    job.on = job.rows = 0
    pack_weights(st, crew, 0, pack_tiles(n, False))
    while i0 < f.end:
        i1 = min(f.end, i0 + max(1, f.chunk))
        on_start = job.on
        for k in range(n.L):
            st.k = k
            if k > 0:                               # job.rows: the layer below's
                project(st, crew, f.hist, job.rows, f.pre_rows)
            job.on = on_start
            job.rows = 0
            for i in range(i0, i1):
                feed_step(&job, crew, i)
        i0 = i1
    st.h_cur = f.s.state if (f.end - f.first) % 2 == 0 else f.s.other
    if f.chars == NULL:
        job.kind = FEED_SCATTER
        rnncore_phase(crew, (2 if n.cell == LSTM else 1) * n.L, feed_tile, &job)
    elif (f.end - f.first) % 2 == 1:
        copy_back(st, crew)


# ---------------------------------------------------------------------------------------
# The entries.
# ---------------------------------------------------------------------------------------

cdef object feed_buffers(GenerationKernel kernel, Feed *f, Py_ssize_t B):
    """f's buffers for feeding B streams layer after layer; returns them (keep them alive
    through the call)."""
    chunk = max(1, FEED_ROWS // B)
    rows = chunk * B if kernel.num_layers > 1 else 1
    hist = np.zeros((rows, kernel.hidden_size), kernel.dtype)
    pre_rows = np.zeros((rows, kernel.net.GH), kernel.dtype)
    f.chunk = chunk
    f.hist = data_pointer(hist)
    f.pre_rows = data_pointer(pre_rows)
    return hist, pre_rows


def advance(GenerationKernel kernel, const Py_ssize_t[:, ::1] chars, state):
    """Feed chars[i, b] to stream b of `state` (S·L, B, H) at step i, for every row i of
    chars (n, B), in place.  Never drops out."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_advance(kernel, chars, state)
    cdef Py_ssize_t B = state.shape[1], n = chars.shape[0]
    if n == 0:
        return
    cdef Feed f
    cdef int threads = kernel.reserve(B)
    keep = kernel.streams(&f.s, state, B), feed_buffers(kernel, &f, B)
    f.first, f.end = 0, n
    f.chars = &chars[0, 0]
    kernel.run(feed_program, &f, threads)


def feed(GenerationKernel kernel, const Py_ssize_t[::1] chars, state):
    """Feed the characters `chars` in order to every stream of `state` (S·L, B, H), in
    place.  Never drops out."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_feed(kernel, chars, state)
    cdef Py_ssize_t B = state.shape[1], n = chars.shape[0]
    if n > 0:
        advance(kernel, np.ascontiguousarray(np.broadcast_to(
            np.asarray(chars)[:, None], (n, B))), state)


def feed_rows(GenerationKernel kernel, const Py_ssize_t[:, ::1] chars,
              const Py_ssize_t[::1] starts, state):
    """Feed stream b of `state` (S·L, B, H) the characters chars[b, starts[b]:] in place,
    all B streams advanced as one batch: chars (B, P) holds every stream's text
    right-aligned (what stands before starts[b] is padding, never fed: it must still be a
    valid index).  Different texts, one batch; no step is spent on padding: the streams
    run in order of their starts, and at step i only those whose text has begun, each
    joining with its state at its first character.  Never drops out."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_feed_rows(kernel, chars, starts, state)
    cdef Py_ssize_t B = state.shape[1], P = chars.shape[1]
    if P == 0:
        return
    order = np.argsort(np.asarray(starts), kind="stable").astype(np.intp)
    sorted_starts = np.ascontiguousarray(np.asarray(starts)[order])
    if sorted_starts[0] >= P:
        return
    cdef Feed f
    cdef int threads = kernel.reserve(B)
    work = np.zeros_like(state)                     # the streams, in order of start
    keep = kernel.streams(&f.s, work, B), feed_buffers(kernel, &f, B)
    xs = np.zeros(B, np.intp)
    f.first, f.end = sorted_starts[0], P
    f.chars = NULL
    f.text, f.P = &chars[0, 0], P
    f.order = <const Py_ssize_t *> data_pointer(order)
    f.sorted_starts = <const Py_ssize_t *> data_pointer(sorted_starts)
    f.xs = <Py_ssize_t *> data_pointer(xs)
    f.given = data_pointer(state)
    kernel.run(feed_program, &f, threads)
