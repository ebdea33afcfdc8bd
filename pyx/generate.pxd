# cython: language_level=3
"""Generation on the team: B streams advanced together one character a step, with the
step code of the window (step.pxd): feeding given characters, sampling, beam search.

A generation state is (S·L, B, H), the model's state layout: rows 0..L-1 every layer's h,
then for lstm rows L..2L-1 every layer's c.  A step's tiles all read the whole previous h,
so h alternates between the state and a second buffer `other` (L, B, H); c is updated in
place (each tile owns its units).  After an odd number of steps the last phase copies h
back into the state.  Every stream's numbers are the same whatever the other streams are
(csrc/gemm.h sums each row alone), so a stream gives the same text alone, in a batch of
samples, or as a beam of width 1.
"""
from cython cimport floating
from libc.math cimport exp, log
from libc.stdlib cimport qsort
from libc.string cimport memcpy

from gemm cimport gemm
from kernel_maths cimport max_of, exp_shift_sum
from step cimport (Net, RNN, LSTM, GRU, ForwardStep, ceil_div, pack_tiles, pack_tile,
                   forward_tile, product_tile, product_tiles)
from team cimport rnncore_crew, rnncore_phase, rnncore_tile

cdef struct Candidate:
    double score        # total log-probability of the beam's characters and this one
    double logit        # this character's logit: breaks ties as greedy does (see below)
    Py_ssize_t index    # beam · V + character

cdef struct Gen:
    Net *net
    Py_ssize_t B                    # streams (beam: the width K, of which m are live)
    void *state                     # (S·L, B, H)
    void *other                     # (S·L, B, H): the other h (and, for beams, c) buffer
    void *pre                       # (B, G·H): k >= 1's input projection of one step
    void *scratch                   # per thread: scratch_size values
    Py_ssize_t scratch_size
    double *dscratch                # per thread: 2·V doubles
    # feed: the characters (n, B) of every step
    const Py_ssize_t *chars
    # sample: out (n, B) the characters drawn, uniforms (n, B)
    Py_ssize_t *out
    const double *uniforms
    bint greedy
    double temperature
    Py_ssize_t top_k
    # beam: scores (K,), logits (K, V), candidates (K·V,), chars and parents (n, K),
    # the live beams m, and the steps run
    double *scores
    double *logits
    Candidate *cands
    Py_ssize_t *beam_chars
    Py_ssize_t *parents
    Py_ssize_t m

cdef enum:
    G_PACK = 0
    G_PROJECT = 1
    G_STEP = 2
    G_COPY = 3
    G_SAMPLE = 4
    G_BEAM_LOGITS = 5
    G_BEAM_SELECT = 6
    G_BEAM_GATHER = 7

cdef struct GenJob:
    int kind
    Gen *g
    Py_ssize_t i, k, B              # step, layer, live streams
    const Py_ssize_t *xs            # the step's characters (B,)
    void *h_cur                     # (L, B, H) the h the step starts from
    void *h_nxt                     # (L, B, H) where it writes the new h
    void *c                         # (L, B, H) lstm's c, updated in place


cdef inline floating *gen_scratch(floating *_, const Gen *g, int thread) noexcept nogil:
    return (<floating *> g.scratch) + thread * g.scratch_size


# ---------------------------------------------------------------------------------------
# The draw.
# ---------------------------------------------------------------------------------------

cdef inline void logits_of(floating *S, const Net *n, const floating *h, Py_ssize_t rows,
                           double *logits) noexcept nogil:
    """logits (rows, V) = h (rows, H) · Whyᵀ + by, widened to double; S: scratch of
    rows·n_vp·NC values."""
    cdef Py_ssize_t V = n.V, NC = n.NC, Vp = n.n_vp * NC, p, r, j
    cdef const floating *by = <const floating *> n.by
    for p in range(n.n_vp):
        gemm(rows, <int> ceil_div(min(NC, V - p * NC), n.W), n.H, h, n.H, 1,
             (<const floating *> n.Pyt) + p * n.H * NC, NC, S + p * NC, Vp, n.W)
    for r in range(rows):
        for j in range(V):
            logits[r * V + j] = <double> (S[r * Vp + j] + by[j])


cdef inline int cmp_double_desc(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x < y) - (x > y)


cdef inline Py_ssize_t choose_char(Py_ssize_t V, double *logits, double *work, bint greedy,
                                   double temperature, Py_ssize_t top_k,
                                   double u) noexcept nogil:
    """Pick the next character from logits (V,): argmax when greedy (the first of equal
    maxima), else a draw from softmax(logits / temperature) restricted to the top_k
    largest (0 = all), using the uniform number u in [0, 1).  logits is overwritten."""
    cdef Py_ssize_t j, best = 0
    cdef double threshold, row_max, total, acc
    for j in range(1, V):
        if logits[j] > logits[best]:
            best = j
    if greedy:
        return best
    threshold = -1e308
    if 0 < top_k < V:
        memcpy(work, logits, V * sizeof(double))
        qsort(work, V, sizeof(double), cmp_double_desc)
        threshold = work[top_k - 1]
    row_max = logits[best]
    total = 0.0
    for j in range(V):
        if logits[j] >= threshold:
            logits[j] = exp((logits[j] - row_max) / temperature)
        else:
            logits[j] = 0.0
        total += logits[j]
    acc = 0.0
    u *= total
    for j in range(V):
        acc += logits[j]
        if logits[j] > 0 and u < acc:
            return j
    return best  # only reached through rounding in the last bin


cdef inline int cmp_candidates(const void *a, const void *b) noexcept nogil:
    """Best first: higher score, then higher logit, then lower index.  At width 1 every
    candidate extends the same beam, and score = s + (logit - logsumexp) never decreases
    as the logit grows, so this order puts greedy's argmax (its first maximum) first even
    where rounding makes two scores equal."""
    cdef const Candidate *x = <const Candidate *> a
    cdef const Candidate *y = <const Candidate *> b
    if x.score != y.score:
        return -1 if x.score > y.score else 1
    if x.logit != y.logit:
        return -1 if x.logit > y.logit else 1
    return (x.index > y.index) - (x.index < y.index)


# ---------------------------------------------------------------------------------------
# Tiles.
# ---------------------------------------------------------------------------------------

cdef inline void step_tile(floating *S, const GenJob *job, Py_ssize_t u) noexcept nogil:
    """Layer job.k, units of tile u, of every live stream."""
    cdef const Net *n = job.g.net
    cdef Py_ssize_t k = job.k, BH = job.g.B * n.H            # state rows are B·H apart
    cdef ForwardStep s
    s.k, s.B = k, job.B
    s.xs, s.xs_stride = job.xs, 1
    s.pre = job.g.pre
    s.h_prev = (<const floating *> job.h_cur) + k * BH
    s.h_out = (<floating *> job.h_nxt) + k * BH
    if n.cell == LSTM:
        s.c_prev = s.c_out = (<floating *> job.c) + k * BH
    else:
        s.c_prev = s.c_out = NULL
    s.gates = s.aux = s.y_out = NULL
    s.mask = NULL
    forward_tile(S, n, &s, u)


cdef inline void project_rows_tile(floating *S, const GenJob *job,
                                   Py_ssize_t tile) noexcept nogil:
    """pre (B, G·H) = h_nxt[k-1] · Wxh_kᵀ + bh_k: the input of layer k this step."""
    cdef const Net *n = job.g.net
    cdef Py_ssize_t k = job.k
    product_tile(S, n, job.B, n.GH, n.H, (<const floating *> job.h_nxt) + (k - 1) * job.g.B * n.H,
                 n.H, 1, <const floating *> n.Px[k], n.NC, n.H * n.NC, tile,
                 <floating *> job.g.pre, n.GH, <const floating *> n.bh[k])


cdef inline void sample_tile(floating *S, const GenJob *job, Py_ssize_t tile,
                             int thread) noexcept nogil:
    """Streams of tile `tile` (RTD of them): draw step i's character from the top layer."""
    cdef const Gen *g = job.g
    cdef const Net *n = g.net
    cdef Py_ssize_t V = n.V, B = g.B, r0 = tile * n.RTD, rows = min(n.RTD, B - r0), r, b
    cdef double *d = g.dscratch + thread * 2 * V
    cdef const floating *h_top = (<const floating *> job.h_cur) + ((n.L - 1) * B + r0) * n.H
    for r in range(rows):
        b = r0 + r
        logits_of(S, n, h_top + r * n.H, 1, d)
        g.out[job.i * B + b] = choose_char(V, d, d + V, g.greedy, g.temperature, g.top_k,
                                           0.0 if g.greedy else g.uniforms[job.i * B + b])


cdef inline void beam_select(Gen *g, Py_ssize_t i) noexcept nogil:
    """Score every live beam's V continuations by log-softmax, keep the K best (sorted)."""
    cdef const Net *n = g.net
    cdef Py_ssize_t V = n.V, K = g.B, m = g.m, nc = 0, b, j, m_new
    cdef double row_max, total, lse
    cdef double *z
    for b in range(m):
        z = g.logits + b * V
        row_max = z[0]
        for j in range(1, V):
            if z[j] > row_max:
                row_max = z[j]
        total = 0.0
        for j in range(V):
            total += exp(z[j] - row_max)
        # log p[j] = z[j] - logsumexp(z)
        lse = row_max + log(total)
        for j in range(V):
            g.cands[nc].score = g.scores[b] + (z[j] - lse)
            g.cands[nc].logit = z[j]
            g.cands[nc].index = b * V + j
            nc += 1
    qsort(g.cands, nc, sizeof(Candidate), cmp_candidates)
    m_new = K if nc > K else nc
    for b in range(m_new):
        g.parents[i * K + b] = g.cands[b].index // V
        g.beam_chars[i * K + b] = g.cands[b].index % V
        g.scores[b] = g.cands[b].score
    g.m = m_new


cdef inline void beam_gather_tile(floating *_, const GenJob *job,
                                  Py_ssize_t row) noexcept nogil:
    """State row `row` (of S·L) of every kept beam, from its parent's (see beam_program
    for which buffer holds what)."""
    cdef const Gen *g = job.g
    cdef Py_ssize_t H = g.net.H, L = g.net.L, K = g.B, b
    cdef const Py_ssize_t *parents = g.parents + job.i * g.B
    cdef const floating *src = <const floating *> g.state
    cdef floating *dst = <floating *> g.other
    if row >= L and job.i % 2 == 1:
        src, dst = <const floating *> g.other, <floating *> g.state
    for b in range(job.B):
        memcpy(dst + (row * K + b) * H, src + (row * K + parents[b]) * H,
               H * sizeof(floating))


cdef inline void gen_tile(floating *_, GenJob *job, Py_ssize_t tile,
                          int thread) noexcept nogil:
    cdef Gen *g = job.g
    cdef const Net *n = g.net
    cdef floating *S = gen_scratch(_, g, thread)
    cdef Py_ssize_t BH
    if job.kind == G_PACK:
        pack_tile(_, n, tile)
    elif job.kind == G_PROJECT:
        project_rows_tile(S, job, tile)
    elif job.kind == G_STEP:
        step_tile(S, job, tile)
    elif job.kind == G_COPY:
        BH = g.B * n.H
        memcpy((<floating *> g.state) + tile * BH, (<const floating *> g.other) + tile * BH,
               BH * sizeof(floating))
    elif job.kind == G_SAMPLE:
        sample_tile(S, job, tile, thread)
    elif job.kind == G_BEAM_LOGITS:
        logits_of(S, n, (<const floating *> job.h_cur) + ((n.L - 1) * g.B + tile) * n.H, 1,
                  g.logits + tile * n.V)
    elif job.kind == G_BEAM_SELECT:
        beam_select(g, job.i)
    else:
        beam_gather_tile(_, job, tile)


# ---------------------------------------------------------------------------------------
# Programs.
# ---------------------------------------------------------------------------------------

cdef inline void advance(GenJob *job, rnncore_crew *crew, rnncore_tile tile) noexcept nogil:
    """Feed job.xs to the job.B live streams: every layer, one step."""
    cdef const Net *n = job.g.net
    cdef Py_ssize_t k
    for k in range(n.L):
        job.k = k
        if k > 0:
            job.kind = G_PROJECT
            rnncore_phase(crew, product_tiles(n, job.B, n.GH), tile, job)
        job.kind = G_STEP
        rnncore_phase(crew, n.n_uf, tile, job)


cdef inline void steps_program(floating *_, Gen *g, Py_ssize_t n_steps, bint draw,
                               rnncore_crew *crew, rnncore_tile tile) noexcept nogil:
    """n_steps steps of every stream of g.state: feeding g.chars (n, B), or, when draw,
    drawing each step's characters into g.out first and feeding those."""
    cdef const Net *n = g.net
    cdef Py_ssize_t i, L = n.L, BH = g.B * n.H
    cdef floating *h = <floating *> g.state
    cdef floating *other = <floating *> g.other
    cdef GenJob job
    job.g = g
    job.B = g.B
    job.c = h + L * BH
    job.kind = G_PACK
    rnncore_phase(crew, pack_tiles(n, False), tile, &job)
    for i in range(n_steps):
        job.i = i
        job.h_cur = h if i % 2 == 0 else other
        job.h_nxt = other if i % 2 == 0 else h
        if draw:
            job.kind = G_SAMPLE
            rnncore_phase(crew, ceil_div(g.B, n.RTD), tile, &job)
            job.xs = g.out + i * g.B
        else:
            job.xs = g.chars + i * g.B
        advance(&job, crew, tile)
    if n_steps % 2 == 1:
        job.kind = G_COPY
        rnncore_phase(crew, L, tile, &job)


cdef inline void beam_program(floating *_, Gen *g, Py_ssize_t n_steps, rnncore_crew *crew,
                              rnncore_tile tile) noexcept nogil:
    """Beam search of width K = g.B for n_steps characters from the one-stream state in
    g.state.  The m live beams are the first m of the (S·L, K, H) g.state and g.other,
    which take turns: every step gathers each kept beam's h from its parent's in the state into
    `other` and steps it back into the state; c is gathered into whichever buffer it does
    not live in, and stepped there in place (in the state after even steps, in `other`
    after odd ones)."""
    cdef const Net *n = g.net
    cdef Py_ssize_t i, L = n.L
    cdef floating *X = <floating *> g.state
    cdef floating *Y = <floating *> g.other
    cdef GenJob job
    job.g = g
    job.kind = G_PACK
    rnncore_phase(crew, pack_tiles(n, False), tile, &job)
    job.B = 1
    for i in range(n_steps):
        job.i = i
        job.h_cur = X
        job.kind = G_BEAM_LOGITS
        rnncore_phase(crew, job.B, tile, &job)
        job.kind = G_BEAM_SELECT
        rnncore_phase(crew, 1, tile, &job)
        if i == n_steps - 1:
            break
        job.B = g.m
        job.kind = G_BEAM_GATHER
        rnncore_phase(crew, (2 if n.cell == LSTM else 1) * L, tile, &job)
        job.xs = g.beam_chars + i * g.B
        job.h_cur = Y
        job.h_nxt = X
        job.c = (Y if i % 2 == 0 else X) + L * g.B * n.H
        advance(&job, crew, tile)
