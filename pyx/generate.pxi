# Generation on the team: B streams advanced together one character a step, with the
# step code of the window (step.pxi): feeding characters (the same to every stream, or each
# stream its own text), the next-character distribution, sampling with each stream's own
# settings (temperature, top-k, nucleus), beam search and the word beam of predictive text.
#
# A generation state is (S·L, B, H), the model's state layout: rows 0..L-1 every layer's h,
# then for lstm rows L..2L-1 every layer's c; streams are H values apart, rows B·H apart (so
# live streams can be the first m of a batch: beams).  A step's tiles all read the whole
# previous h, so h alternates between two buffers; c is updated in place (each tile owns its
# units).  Every stream's numbers are the same whatever the other streams are (csrc/gemm.h
# sums each row alone), so a stream gives the same text alone, in a batch, or as a beam of
# width 1.
#
# What a program reads between phases must never change later in the run (a worker the OS
# has descheduled may read it phases late): counts that tiles decide (live beams) are kept
# per step, in histories.
# Included by _cells.pyx.

from libc.math cimport exp, log
from libc.stdlib cimport qsort
from libc.string cimport memcpy

from team cimport rnncore_crew, rnncore_phase, rnncore_tile

cdef struct Candidate:
    double score        # total log-probability of the beam's characters and this one
    double logit        # this character's logit: breaks ties as greedy does (see below)
    Py_ssize_t index    # beam · V + character

cdef struct WordBeam:
    # R searches, each a beam of width K over completions of at most n characters keeping
    # its kf best finished words; at step i search r's live beams are rows
    # off .. off + live[i, r] - 1 of the batch, off = Σ_{q<r} live[i, q]
    Py_ssize_t R, K, kf, n
    bint fixed                      # plain beams of exactly n characters: no words
    const unsigned char *is_sep     # (V,) 1 for a separator
    bint has_sep
    double *scores                  # (2, R, K) live beams' log-probabilities, by step parity
    unsigned char *started          # (2, R, K) the beam's word has a character
    Py_ssize_t *live                # (n+2, R) live beams of every search, every step
    Py_ssize_t *total               # (n+2,) all of them
    Py_ssize_t *chars               # (R, n, K) the character each beam took at each step
    Py_ssize_t *parents             # (R, n, K) and the beam it extended
    Py_ssize_t *xs                  # (R·K,) the batch's characters of one step
    Candidate *cands                # (threads, K·V) one search's extensions
    double *fin_scores              # (R, kf) finished words, best first
    Py_ssize_t *fin_step            # (R, kf) their completion's length
    Py_ssize_t *fin_beam            # (R, kf) and its beam at that step
    Py_ssize_t *n_fin               # (R,)

cdef struct Gen:
    Net *net
    Py_ssize_t B                    # streams (beams: the most there can be)
    void *state                     # (S·L, B, H)
    void *other                     # (S·L, B, H): the other h (and, for beams, c) buffer
    void *pre                       # (B, G·H): k >= 1's input projection of one step
    # feeding characters, layer after layer (feed_program): chunks of feed_chunk steps,
    # whose rows (one per stream and step) are at most feed_chunk·B
    Py_ssize_t feed_chunk
    void *hist                      # (feed_chunk·B, H) layer k's h of the chunk's steps
    void *pre_rows                  # (feed_chunk·B, G·H) layer k+1's input projection of them
    void *scratch                   # per thread: scratch_size values
    Py_ssize_t scratch_size
    double *dscratch                # per thread: 2·V doubles
    # feeding: chars (n, B), every stream the character of its column
    const Py_ssize_t *chars
    # feeding texts: text (B, P) right-aligned, stream b's from starts[b]; the streams in
    # order of their starts (order (B,), sorted_starts (B,)); `given` the state to start
    # from, in the caller's order
    const Py_ssize_t *text
    Py_ssize_t P
    const Py_ssize_t *order
    const Py_ssize_t *sorted_starts
    Py_ssize_t *xs
    void *given
    # sampling: out (n, B) the characters drawn, uniforms (n, B), every stream's settings
    Py_ssize_t *out
    const double *uniforms
    const double *temperature       # (B,) 0: greedy
    const Py_ssize_t *top_k         # (B,) 0: all
    const double *top_p             # (B,) >= 1: all
    # the distribution: probs (B, V)
    double *probs
    # beam search: scores (K,), logits (K, V), candidates (K·V,), chars and parents (n, K),
    # the live beams after every step (n,)
    double *scores
    double *logits
    Candidate *cands
    Py_ssize_t *beam_chars
    Py_ssize_t *parents
    Py_ssize_t *live
    WordBeam *word

cdef enum:
    G_PACK = 0
    G_PACK_DECODER = 1
    G_PROJECT = 2
    G_STEP = 3
    G_COPY = 4
    G_SAMPLE = 5
    G_NEXT = 6
    G_BEAM_LOGITS = 7
    G_BEAM_SELECT = 8
    G_BEAM_GATHER = 9
    G_JOIN = 10
    G_SCATTER = 11
    G_WORD_SELECT = 12
    G_WORD_BATCH = 13
    G_WORD_GATHER = 14
    G_KEEP = 15
    G_FEED_PROJECT = 16
    FEED_ROWS = 256                 # rows (streams × steps) of a feed chunk, at most
    KEEP_BY_INSERTION = 64          # the widest beam keep_best keeps by insertion

cdef struct GenJob:
    int kind
    Gen *g
    Py_ssize_t i, k, B              # step, layer, live streams
    const Py_ssize_t *xs            # the step's characters (B,)
    void *h_cur                     # (L, ·, H) the h the step starts from (rows g.B·H apart)
    void *h_nxt                     # (L, ·, H) where it writes the new h
    void *c                         # (L, ·, H) lstm's c, updated in place
    Py_ssize_t a, a_new             # feeding texts: the streams under way before / after
    void *pre                       # (B, G·H) k >= 1: the step's input projection
    Py_ssize_t rows                 # feeding: the chunk's rows so far (streams × steps)


cdef inline floating *gen_scratch(floating *_, const Gen *g, int thread) noexcept nogil:
    return (<floating *> g.scratch) + thread * g.scratch_size


# ---------------------------------------------------------------------------------------
# The draw.
# ---------------------------------------------------------------------------------------

cdef inline void logits_of(floating *S, const Net *n, const floating *h, Py_ssize_t rows,
                           double *logits) noexcept nogil:
    """logits (rows, V) = h (rows, H) · Whyᵀ + by, widened to double; S: scratch of
    rows·n_vp·NC values."""
    cdef Py_ssize_t V = n.V, NC = n.NC, Vp = n.n_vp * NC, r, j
    cdef const floating *by = <const floating *> n.by
    logits_rows(S, n, h, rows, Vp)
    for r in range(rows):
        for j in range(V):
            logits[r * V + j] = <double> (S[r * Vp + j] + by[j])


cdef inline int cmp_double_desc(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x < y) - (x > y)


cdef inline Py_ssize_t argmax(Py_ssize_t V, const double *logits) noexcept nogil:
    """The index of the largest of logits (V,), the first of equal maxima."""
    cdef Py_ssize_t j, best = 0
    for j in range(1, V):
        if logits[j] > logits[best]:
            best = j
    return best


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


# ---------------------------------------------------------------------------------------
# Tiles.
# ---------------------------------------------------------------------------------------

cdef inline void step_tile(floating *S, const GenJob *job, Py_ssize_t u) noexcept nogil:
    """Layer job.k, units of tile u, of the job.B live streams."""
    cdef const Net *n = job.g.net
    cdef Py_ssize_t k = job.k, BH = job.g.B * n.H            # state rows are B·H apart
    cdef ForwardStep s
    s.k, s.B = k, job.B
    s.xs, s.xs_stride = job.xs, 1
    s.pre = job.pre
    s.h_prev = (<const floating *> job.h_cur) + k * BH
    s.h_out = (<floating *> job.h_nxt) + k * BH
    if n.cell == LSTM:
        s.c_prev = s.c_out = (<floating *> job.c) + k * BH
    else:
        s.c_prev = s.c_out = NULL
    s.gates = s.aux = s.y_out = NULL
    s.mask = NULL
    forward_tile(S, n, &s, u)


cdef inline void projection_tile(floating *S, const Net *n, Py_ssize_t k, Py_ssize_t rows,
                                 const floating *X, floating *dest,
                                 Py_ssize_t tile) noexcept nogil:
    """Tile `tile` of dest (rows, G·H) = X (rows, H) · Wxh_kᵀ + bh_k: layer k's input."""
    cdef Operand wxh_t = packed(n.Px[k], n.H, n.NC, n.Wxh[k], 1, n.H)    # Wxh_kᵀ
    product_tile(S, n, rows, n.GH, n.H, X, n.H, 1, &wxh_t, tile, dest, n.GH,
                 <const floating *> n.bh[k])


cdef inline void project_rows_tile(floating *S, const GenJob *job,
                                   Py_ssize_t tile) noexcept nogil:
    """pre (B, G·H) = h_nxt[k-1] · Wxh_kᵀ + bh_k: the input of layer k this step."""
    projection_tile(S, job.g.net, job.k, job.B,
                    (<const floating *> job.h_nxt) + (job.k - 1) * job.g.B * job.g.net.H,
                    <floating *> job.g.pre, tile)


cdef inline void sample_tile(floating *S, const GenJob *job, Py_ssize_t tile,
                             int thread) noexcept nogil:
    """Streams of tile `tile` (RTD of them): draw step i's character from the top layer,
    each with its own settings."""
    cdef const Gen *g = job.g
    cdef const Net *n = g.net
    cdef Py_ssize_t V = n.V, B = g.B, r0 = tile * n.RTD, rows = min(n.RTD, B - r0), r, b
    cdef double *d = g.dscratch + thread * 2 * V
    cdef const floating *h_top = (<const floating *> job.h_cur) + ((n.L - 1) * B + r0) * n.H
    for r in range(rows):
        b = r0 + r
        logits_of(S, n, h_top + r * n.H, 1, d)
        g.out[job.i * B + b] = choose_char(V, d, d + V, g.temperature[b], g.top_k[b],
                                           g.top_p[b], g.uniforms[job.i * B + b])


cdef inline void next_tile(floating *S, const Gen *g, Py_ssize_t b) noexcept nogil:
    """probs[b] (V,) = softmax(Why·h + by) of stream b's top-layer h."""
    cdef const Net *n = g.net
    cdef Py_ssize_t V = n.V, j
    cdef double *p = g.probs + b * V
    cdef double total = 0.0, row_max
    logits_of(S, n, (<const floating *> g.state) + ((n.L - 1) * g.B + b) * n.H, 1, p)
    row_max = p[argmax(V, p)]
    for j in range(V):
        p[j] = exp(p[j] - row_max)
        total += p[j]
    for j in range(V):
        p[j] /= total


cdef inline void beam_select(Gen *g, Py_ssize_t i, Py_ssize_t m) noexcept nogil:
    """Score every one of the m live beams' V continuations by log-softmax, keep the K
    best (sorted); their number goes into g.live[i]."""
    cdef const Net *n = g.net
    cdef Py_ssize_t V = n.V, K = g.B, nc = 0, b, j, m_new
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
        g.beam_chars[i * K + b] = g.cands[b].index % V
        g.scores[b] = g.cands[b].score
    g.live[i] = m_new


cdef inline void gather_rows(floating *_, const Gen *g, Py_ssize_t row, Py_ssize_t i,
                             const Py_ssize_t *parents, Py_ssize_t m_new,
                             const Py_ssize_t *src_index) noexcept nogil:
    """State row `row` (of S·L) of the m_new kept beams, from their parents' (src_index:
    the parents' rows, or NULL: the parents are rows parents[b]).  h goes from the state
    to `other`; c goes to whichever buffer it does not live in (it lives in the state
    after even steps, in `other` after odd ones)."""
    cdef Py_ssize_t H = g.net.H, L = g.net.L, K = g.B, b, p
    cdef const floating *src = <const floating *> g.state
    cdef floating *dst = <floating *> g.other
    if row >= L and i % 2 == 1:
        src, dst = <const floating *> g.other, <floating *> g.state
    for b in range(m_new):
        p = parents[b] if src_index == NULL else src_index[b]
        memcpy(dst + (row * K + b) * H, src + (row * K + p) * H, H * sizeof(floating))


cdef inline void word_select(Gen *g, Py_ssize_t i, Py_ssize_t r, int thread) noexcept nogil:
    """Search r at step i: score its live beams' extensions, offer the words they finish,
    keep the K best extensions (in s.live[i+1, r], their parents and characters in the
    history).  A completion is c₁…c_m followed by one separator, m <= n; its
    log-probability is Σ log p(c_i | …) + log Σ_sep p(sep | …), the probability that the
    word ends there.  A beam with no word character yet (started 0: the text ended in a
    separator or was empty) may take separators first (they lead into the word); once
    started, a separator ends it.  A search stops early once its kf-th finished word
    beats its best live beam (extending only lowers a score, so this loses nothing).
    With s.fixed: plain beams, finished when they reach n characters."""
    cdef WordBeam *s = g.word
    cdef Py_ssize_t V = g.net.V, R = s.R, K = s.K, kf = s.kf, n = s.n
    cdef Py_ssize_t q, b, j, off = 0, m = s.live[i * R + r], nc = 0, keep = 0, p
    cdef double lse, sep_total, base, bound, row_max
    cdef double *lg
    cdef const double *scores = s.scores + (i % 2) * R * K + r * K
    cdef const unsigned char *started = s.started + (i % 2) * R * K + r * K
    cdef double *next_scores = s.scores + ((i + 1) % 2) * R * K + r * K
    cdef unsigned char *next_started = s.started + ((i + 1) % 2) * R * K + r * K
    cdef Candidate *cands = s.cands + thread * K * V
    for q in range(r):
        off += s.live[i * R + q]
    for b in range(m):
        lg = g.logits + (off + b) * V
        lse = log_softmax_shift(V, lg)
        base = scores[b]
        if s.fixed:
            if i == n:
                add_finished(s, r, base, i, b)
                continue
        elif started[b] and s.has_sep:
            # the word ends here: log Σ_sep p(sep)
            row_max = lg[argmax(V, lg)]
            sep_total = 0.0
            for j in range(V):
                if s.is_sep[j]:
                    sep_total += exp(lg[j] - row_max)
            add_finished(s, r, base + (row_max + log(sep_total) - lse), i, b)
        if i == n:
            continue
        for j in range(V):
            if s.is_sep[j] and started[b] and not s.fixed:
                continue
            cands[nc].score = base + (lg[j] - lse)
            cands[nc].logit = lg[j]
            cands[nc].index = b * V + j
            nc += 1
    if nc > 0:
        keep = keep_best(cands, nc, K)
        if s.n_fin[r] == kf:
            # a beam below the kf-th finished word can never beat it
            bound = s.fin_scores[r * kf + kf - 1]
            while keep > 0 and cands[keep - 1].score <= bound:
                keep -= 1
    for b in range(keep):
        q = (r * n + i) * K + b
        p = cands[b].index // V
        j = cands[b].index % V
        s.parents[q] = p
        s.chars[q] = j
        next_scores[b] = cands[b].score
        next_started[b] = started[p] or not s.is_sep[j]
    s.live[(i + 1) * R + r] = keep


cdef inline bint same_word(const WordBeam *s, Py_ssize_t r, Py_ssize_t m1, Py_ssize_t b1,
                           Py_ssize_t m2, Py_ssize_t b2) noexcept nogil:
    """Whether search r's finished completions of m1 characters (beam b1 at step m1) and
    m2 (b2) spell the same word: the same characters after their leading separators (a
    completion is separators, then the word's characters; a started one has no separators
    at all).  Read backwards through the beams' parents."""
    cdef Py_ssize_t K = s.K, n = s.n, i1 = m1 - 1, i2 = m2 - 1, q1, q2
    cdef bint end1, end2
    while True:
        q1 = (r * n + i1) * K + b1
        q2 = (r * n + i2) * K + b2
        end1 = i1 < 0 or s.is_sep[s.chars[q1]]
        end2 = i2 < 0 or s.is_sep[s.chars[q2]]
        if end1 or end2:
            return end1 and end2
        if s.chars[q1] != s.chars[q2]:
            return False
        b1, b2 = s.parents[q1], s.parents[q2]
        i1 -= 1
        i2 -= 1


cdef inline void add_finished(WordBeam *s, Py_ssize_t r, double score, Py_ssize_t step,
                              Py_ssize_t beam) noexcept nogil:
    """Insert a finished word into search r's kf best distinct words (best first; among
    equal scores the earlier one first).  A word already kept in another spelling (more
    or fewer separators before it) keeps the more probable of the two: so a search after a
    separator can stop at its kf-th word, instead of keeping more spellings in case some
    spell the same word."""
    cdef Py_ssize_t kf = s.kf, j = s.n_fin[r], q
    cdef double *sc = s.fin_scores + r * kf
    cdef Py_ssize_t *st = s.fin_step + r * kf
    cdef Py_ssize_t *bm = s.fin_beam + r * kf
    if not s.fixed:
        for q in range(j):
            if same_word(s, r, st[q], bm[q], step, beam):
                if score <= sc[q]:
                    return
                while q < j - 1:                       # the worse spelling goes
                    sc[q], st[q], bm[q] = sc[q + 1], st[q + 1], bm[q + 1]
                    q += 1
                j -= 1
                s.n_fin[r] -= 1
                break
    if j == kf:
        if score <= sc[kf - 1]:
            return
        j = kf - 1
    else:
        s.n_fin[r] += 1
    while j > 0 and sc[j - 1] < score:
        sc[j], st[j], bm[j] = sc[j - 1], st[j - 1], bm[j - 1]
        j -= 1
    sc[j], st[j], bm[j] = score, step, beam


cdef inline void word_batch(Gen *g, Py_ssize_t i) noexcept nogil:
    """After every search chose: the kept beams' places in the next batch (their parents'
    rows in this one, into g.xs-sized index g.parents) and characters (s.xs), and their
    number, s.total[i+1]."""
    cdef WordBeam *s = g.word
    cdef Py_ssize_t R = s.R, K = s.K, n = s.n, r, b, off = 0, new_off = 0
    for r in range(R):
        for b in range(s.live[(i + 1) * R + r]):
            s.xs[new_off + b] = s.chars[(r * n + i) * K + b]
            g.parents[new_off + b] = off + s.parents[(r * n + i) * K + b]
        off += s.live[i * R + r]
        new_off += s.live[(i + 1) * R + r]
    s.total[i + 1] = new_off


cdef inline void join_tile(floating *_, const GenJob *job) noexcept nogil:
    """Feeding texts, layer job.k: the streams whose text begins now join the batch
    (positions a .. a_new, in order of their starts) with the state they were given; at
    layer 0, every stream under way gets its character."""
    cdef const Gen *g = job.g
    cdef const Net *n = g.net
    cdef Py_ssize_t H = n.H, L = n.L, B = g.B, k = job.k, b, src
    cdef floating *h = <floating *> job.h_cur
    cdef floating *c = <floating *> job.c
    cdef const floating *given = <const floating *> g.given
    for b in range(job.a, job.a_new):
        src = g.order[b]
        memcpy(h + (k * B + b) * H, given + (k * B + src) * H, H * sizeof(floating))
        if n.cell == LSTM:
            memcpy(c + (k * B + b) * H, given + ((L + k) * B + src) * H, H * sizeof(floating))
    if k == 0:
        for b in range(job.a_new):
            g.xs[b] = g.text[g.order[b] * g.P + job.i]


cdef inline void keep_tile(floating *_, const GenJob *job) noexcept nogil:
    """Feeding, layer job.k < L-1: its new h of the job.B streams under way, into the
    chunk's rows (from job.rows on), for the layer above's projection."""
    cdef Py_ssize_t H = job.g.net.H
    memcpy((<floating *> job.g.hist) + job.rows * H,
           (<const floating *> job.h_nxt) + job.k * job.g.B * H, job.B * H * sizeof(floating))


cdef inline void feed_project_tile(floating *S, const GenJob *job,
                                   Py_ssize_t tile) noexcept nogil:
    """Feeding, layer job.k >= 1: pre_rows (rows, G·H) = hist · Wxh_kᵀ + bh_k, the input
    of every step of the chunk at once."""
    projection_tile(S, job.g.net, job.k, job.rows, <const floating *> job.g.hist,
                    <floating *> job.g.pre_rows, tile)


cdef inline void scatter_tile(floating *_, const GenJob *job, Py_ssize_t row) noexcept nogil:
    """Feeding texts, at the end: state row `row` of every stream under way back into the
    caller's state, in its order."""
    cdef const Gen *g = job.g
    cdef Py_ssize_t H = g.net.H, L = g.net.L, B = g.B, b
    cdef const floating *src = (<const floating *> (job.h_cur if row < L else job.c)) + \
        ((row if row < L else row - L) * B) * H
    cdef floating *dst = <floating *> g.given
    for b in range(job.a):
        memcpy(dst + (row * B + g.order[b]) * H, src + b * H, H * sizeof(floating))


cdef inline void gen_tile(floating *_, GenJob *job, Py_ssize_t tile,
                          int thread) noexcept nogil:
    cdef Gen *g = job.g
    cdef const Net *n = g.net
    cdef floating *S = gen_scratch(_, g, thread)
    cdef Py_ssize_t BH, offset
    cdef PackCounts counts
    cdef PackTask task
    if job.kind == G_PACK:
        task = pack_task(n, False, tile)
        pack_panel(<floating *> task.P, &task)
    elif job.kind == G_PACK_DECODER:
        # the decoder's panels only (Pyt): the tiles of pack_task after Pf, Px and E
        counts = pack_counts(n, False)
        task = pack_task(n, False, counts.f + counts.x + counts.e + tile)
        pack_panel(<floating *> task.P, &task)
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
    elif job.kind == G_NEXT:
        next_tile(S, g, tile)
    elif job.kind == G_BEAM_LOGITS:
        logits_of(S, n, (<const floating *> job.h_cur) + ((n.L - 1) * g.B + tile) * n.H, 1,
                  g.logits + tile * n.V)
    elif job.kind == G_BEAM_SELECT:
        beam_select(g, job.i, job.B)
    elif job.kind == G_BEAM_GATHER:
        gather_rows(_, g, tile, job.i, g.parents + job.i * g.B, job.B, NULL)
    elif job.kind == G_JOIN:
        join_tile(_, job)
    elif job.kind == G_SCATTER:
        scatter_tile(_, job, tile)
    elif job.kind == G_WORD_SELECT:
        word_select(g, job.i, tile, thread)
    elif job.kind == G_WORD_BATCH:
        word_batch(g, job.i)
    elif job.kind == G_KEEP:
        keep_tile(_, job)
    elif job.kind == G_FEED_PROJECT:
        feed_project_tile(S, job, tile)
    else:                                           # G_WORD_GATHER
        gather_rows(_, g, tile, job.i, NULL, job.B, g.parents)


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
        job.pre = job.g.pre
        job.kind = G_STEP
        rnncore_phase(crew, n.n_uf, tile, job)


cdef inline void feed_program(floating *_, Gen *g, Py_ssize_t first, Py_ssize_t end,
                              bint texts, rnncore_crew *crew, rnncore_tile tile) noexcept nogil:
    """Feed steps first .. end-1 to every stream of g.state: g.chars (n, B) (texts 0), or
    g.text as texts_program says (texts 1).  Layer after layer, in chunks of
    g.feed_chunk steps: layer k runs the chunk's steps, keeping its h of each; layer k+1's
    input projection is then one product over all of them, and its steps follow.  So a
    step meets one layer's recurrent weights, not every layer's: at one stream, where
    every step reads all its weights once, a layer's stay in cache (a 2×256 GRU fed
    step after step read its 2.3 MB each step from L3).  The same tiles as advance(), in
    another order: the same bits."""
    cdef const Net *n = g.net
    cdef Py_ssize_t L = n.L, B = g.B, i, i0 = first, i1, k, a_start, steps
    cdef floating *h = <floating *> g.state
    cdef floating *other = <floating *> g.other
    cdef GenJob job
    job.g = g
    job.c = h + L * B * n.H
    job.a = 0
    job.rows = 0
    job.kind = G_PACK
    rnncore_phase(crew, pack_tiles(n, False), tile, &job)
    while i0 < end:
        i1 = min(end, i0 + max(1, g.feed_chunk))
        a_start = job.a
        for k in range(L):
            job.k = k
            if k > 0:
                job.kind = G_FEED_PROJECT                # job.rows: the layer below's
                rnncore_phase(crew, product_tiles(n, job.rows, n.GH), tile, &job)
            job.a = a_start
            job.rows = 0
            for i in range(i0, i1):
                steps = i - first
                job.i = i
                job.h_cur = h if steps % 2 == 0 else other
                job.h_nxt = other if steps % 2 == 0 else h
                if texts:
                    job.a_new = job.a
                    while job.a_new < B and g.sorted_starts[job.a_new] <= i:
                        job.a_new += 1
                    if k == 0 or job.a_new > job.a:     # layer 0's also gives the characters
                        job.kind = G_JOIN
                        rnncore_phase(crew, 1, tile, &job)
                    job.a = job.B = job.a_new
                    job.xs = g.xs
                else:
                    job.B = B
                    job.xs = g.chars + i * B
                job.pre = (<floating *> g.pre_rows) + job.rows * n.GH
                job.kind = G_STEP
                rnncore_phase(crew, n.n_uf, tile, &job)
                if k < L - 1:
                    job.kind = G_KEEP
                    rnncore_phase(crew, 1, tile, &job)
                job.rows += job.B
        i0 = i1
    steps = end - first
    job.h_cur = h if steps % 2 == 0 else other
    if texts:
        job.kind = G_SCATTER
        rnncore_phase(crew, (2 if n.cell == LSTM else 1) * L, tile, &job)
    elif steps % 2 == 1:
        job.kind = G_COPY
        rnncore_phase(crew, L, tile, &job)


cdef inline void steps_program(floating *_, Gen *g, Py_ssize_t n_steps, bint draw,
                               rnncore_crew *crew, rnncore_tile tile) noexcept nogil:
    """n_steps steps of every stream of g.state: feeding g.chars (n, B), or, when draw,
    drawing each step's characters into g.out first and feeding those."""
    if not draw:
        feed_program(_, g, 0, n_steps, False, crew, tile)
        return
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
        job.kind = G_SAMPLE
        rnncore_phase(crew, ceil_div(g.B, n.RTD), tile, &job)
        job.xs = g.out + i * g.B
        advance(&job, crew, tile)
    if n_steps % 2 == 1:
        job.kind = G_COPY
        rnncore_phase(crew, L, tile, &job)


cdef inline void texts_program(floating *_, Gen *g, rnncore_crew *crew,
                               rnncore_tile tile) noexcept nogil:
    """Feed stream b the characters text[b, starts[b]:P], from the state g.given, back
    into it.  The streams run in order of their starts (g.state, g.other hold them so),
    and at step i only the a streams whose text has begun run: no step is spent on
    padding; a stream joins, with its state, at its first character (feed_program)."""
    feed_program(_, g, g.sorted_starts[0], g.P, True, crew, tile)


cdef inline void next_program(floating *_, Gen *g, rnncore_crew *crew,
                              rnncore_tile tile) noexcept nogil:
    """g.probs (B, V): every stream's next-character distribution."""
    cdef GenJob job
    job.g = g
    job.kind = G_PACK_DECODER
    rnncore_phase(crew, pack_counts(g.net, False).yt, tile, &job)
    job.kind = G_NEXT
    rnncore_phase(crew, g.B, tile, &job)


cdef inline void advance_kept(floating *_, GenJob *job, int gather, const Py_ssize_t *xs,
                              rnncore_crew *crew, rnncore_tile tile) noexcept nogil:
    """Beams, after step job.i's choice: the job.B kept beams start from their parents'
    states (the `gather` tiles) and take their characters xs as one batch.  h goes from
    the state to `other` and is stepped back; c lives in the state after even steps and
    in `other` after odd ones, and is stepped where it was gathered to (gather_rows)."""
    cdef const Net *n = job.g.net
    cdef Py_ssize_t i = job.i, L = n.L
    cdef floating *X = <floating *> job.g.state
    cdef floating *Y = <floating *> job.g.other
    job.kind = gather
    rnncore_phase(crew, (2 if n.cell == LSTM else 1) * L, tile, job)
    job.xs = xs
    job.h_cur = Y
    job.h_nxt = X
    job.c = (Y if i % 2 == 0 else X) + L * job.g.B * n.H
    advance(job, crew, tile)


cdef inline void beam_program(floating *_, Gen *g, Py_ssize_t n_steps, rnncore_crew *crew,
                              rnncore_tile tile) noexcept nogil:
    """Beam search of width K = g.B for n_steps characters from the one-stream state in
    g.state.  The m live beams are the first m of the (S·L, K, H) g.state and g.other,
    which take turns: every step gathers each kept beam's h from its parent's in the state
    into `other` and steps it back into the state; c is gathered into whichever buffer it
    does not live in, and stepped there in place (see gather_rows).  g.live[i]: the live
    beams after step i."""
    cdef const Net *n = g.net
    cdef Py_ssize_t i, L = n.L
    cdef floating *X = <floating *> g.state
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
        job.B = g.live[i]
        advance_kept(_, &job, G_BEAM_GATHER, g.beam_chars + i * g.B, crew, tile)


cdef inline void word_program(floating *_, Gen *g, rnncore_crew *crew,
                              rnncore_tile tile) noexcept nogil:
    """R word searches advanced together (WordBeam; word_select says what a search
    does): every step scores all live beams, each search chooses (a tile each), the kept
    beams are gathered and advanced as one batch of streams, laid out as beam_program's."""
    cdef const Net *n = g.net
    cdef WordBeam *s = g.word
    cdef Py_ssize_t i, L = n.L
    cdef floating *X = <floating *> g.state
    cdef GenJob job
    job.g = g
    job.kind = G_PACK
    rnncore_phase(crew, pack_tiles(n, False), tile, &job)
    for i in range(s.n + 1):
        job.i = i
        job.B = s.total[i]
        job.h_cur = X
        job.kind = G_BEAM_LOGITS
        rnncore_phase(crew, job.B, tile, &job)
        job.kind = G_WORD_SELECT
        rnncore_phase(crew, s.R, tile, &job)
        job.kind = G_WORD_BATCH
        rnncore_phase(crew, 1, tile, &job)
        if s.total[i + 1] == 0:
            break
        job.B = s.total[i + 1]
        advance_kept(_, &job, G_WORD_GATHER, s.xs, crew, tile)
