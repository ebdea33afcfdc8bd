# Generation, the word beam of predictive text: R searches, one per stream of a state, for
# the most probable completions of the word being typed (or R plain beam searches of a
# fixed length), advanced as one batch.  Included by _cells.pyx (gen_stack.pxi: the
# machinery; gen_candidates.pxi: what beams share).
from libc.math cimport exp, log

cdef struct Words:
    # R searches, each a beam of width K over completions of at most n characters keeping
    # its kf best finished words; at step i search r's live beams are rows
    # off .. off + live[i, r] - 1 of the batch, off = Σ_{q<r} live[i, q]
    Streams s                       # s.B = R·K: the most beams there can be
    Py_ssize_t R, K, kf, n
    bint fixed                      # plain beams of exactly n characters: no words
    const unsigned char *is_sep     # (V,) 1 for a separator
    bint has_sep
    double *logits                  # (R·K, V) the live beams' logits
    double *scores                  # (2, R, K) live beams' log-probabilities, by step parity
    unsigned char *started          # (2, R, K) the beam's word has a character
    Py_ssize_t *live                # (n+2, R) live beams of every search, every step
    Py_ssize_t *total               # (n+2,) all of them
    Py_ssize_t *chars               # (R, n, K) the character each beam took at each step
    Py_ssize_t *parents             # (R, n, K) and the beam it extended
    Py_ssize_t *xs                  # (R·K,) the batch's characters of one step
    Py_ssize_t *rows_of             # (R·K,) the kept beams' parents' rows in the batch
    Candidate *cands                # (threads, K·V) one search's extensions
    double *fin_scores              # (R, kf) finished words, best first
    Py_ssize_t *fin_step            # (R, kf) their completion's length
    Py_ssize_t *fin_beam            # (R, kf) and its beam at that step
    Py_ssize_t *n_fin               # (R,)

cdef enum:                          # the word beam's own phases
    WORDS_SELECT = 0                # search `tile` chooses (R tiles)
    WORDS_BATCH = 1                 # the kept beams' places in the next batch (1 tile)
    WORDS_GATHER = 2                # the kept beams' state row `tile` from their parents'

cdef struct WordsJob:
    # a phase of the searches, as the program sets it (every worker its own)
    Stack st
    int kind
    Words *words


cdef inline void word_select(Words *s, Py_ssize_t i, Py_ssize_t r, int thread) noexcept nogil:
    """Search r at step i: score its live beams' extensions, offer the words they finish,
    keep the K best extensions (in s.live[i+1, r], their parents and characters in the
    history).  A completion is c₁…c_m followed by one separator, m <= n; its
    log-probability is Σ log p(c_i | …) + log Σ_sep p(sep | …), the probability that the
    word ends there.  A beam with no word character yet (started 0: the text ended in a
    separator or was empty) may take separators first (they lead into the word); once
    started, a separator ends it.  A search stops early once its kf-th finished word
    beats its best live beam (extending only lowers a score, so this loses nothing).
    With s.fixed: plain beams, finished when they reach n characters."""
    cdef Py_ssize_t V = s.s.net.V, R = s.R, K = s.K, kf = s.kf, n = s.n
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
        lg = s.logits + (off + b) * V
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


cdef inline bint same_word(const Words *s, Py_ssize_t r, Py_ssize_t m1, Py_ssize_t b1,
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


cdef inline void add_finished(Words *s, Py_ssize_t r, double score, Py_ssize_t step,
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


cdef inline void word_batch(Words *s, Py_ssize_t i) noexcept nogil:
    """After every search chose: the kept beams' places in the next batch (their parents'
    rows in this one, into s.rows_of) and characters (s.xs), and their number,
    s.total[i+1]."""
    cdef Py_ssize_t R = s.R, K = s.K, n = s.n, r, b, off = 0, new_off = 0
    for r in range(R):
        for b in range(s.live[(i + 1) * R + r]):
            s.xs[new_off + b] = s.chars[(r * n + i) * K + b]
            s.rows_of[new_off + b] = off + s.parents[(r * n + i) * K + b]
        off += s.live[i * R + r]
        new_off += s.live[(i + 1) * R + r]
    s.total[i + 1] = new_off


cdef void words_tile(void *arg, long tile, int thread) noexcept nogil:
    cdef const WordsJob *job = <const WordsJob *> arg
    cdef Words *s = job.words
    if job.kind == WORDS_SELECT:
        word_select(s, job.st.i, tile, thread)
    elif job.kind == WORDS_BATCH:
        word_batch(s, job.st.i)
    else:
        gather_rows(&s.s, tile, job.st.i, s.rows_of, job.st.live)


cdef void words_program(void *arg, rnncore_crew *crew) noexcept nogil:
    """R word searches advanced together (word_select says what a search does): every
    step scores all live beams (a beam a tile), each search chooses (a tile each), the
    kept beams are gathered and advanced as one batch of streams, laid out as
    beam_program's."""
    cdef Words *s = <Words *> arg
    cdef Py_ssize_t i
    cdef WordsJob job
    cdef Stack *st = &job.st
    start_stack(st, &s.s)
    job.words = s
    pack_weights(st, crew, 0, pack_tiles(s.s.net, False))
    for i in range(s.n + 1):
        st.i = i
        st.live = s.total[i]
        st.h_cur = s.s.state
        logits_phase(st, crew, s.logits, 1, NULL, NULL)
        job.kind = WORDS_SELECT
        rnncore_phase(crew, s.R, words_tile, &job)
        job.kind = WORDS_BATCH
        rnncore_phase(crew, 1, words_tile, &job)
        if s.total[i + 1] == 0:
            break
        st.live = s.total[i + 1]
        job.kind = WORDS_GATHER
        advance_kept(st, words_tile, &job, s.xs, crew)


cdef object words_buffers(Words *s, Py_ssize_t V, const unsigned char[::1] started,
                          Py_ssize_t[::1] counts):
    """s's histories and work arrays for its R searches of width K, kf words of at most n
    characters; returns them (keep them alive through the call)."""
    cdef Py_ssize_t R = s.R, K = s.K, kf = s.kf, n = s.n, n_hist = max(n, 1)
    logits = np.zeros((R * K, V))
    scores = np.zeros((2, R, K))
    flags = np.zeros((2, R, K), np.uint8)
    flags[0, :, 0] = started
    live = np.zeros((n + 2, R), np.intp)
    live[0] = 1
    total = np.zeros(n + 2, np.intp)
    total[0] = R
    history = np.zeros((2, R, n_hist, K), np.intp)      # chars, parents
    rows_of = np.zeros(R * K, np.intp)
    xs = np.zeros(R * K, np.intp)
    finished = np.zeros((2, R, kf), np.intp)            # steps, beams
    cdef Py_ssize_t *hist = <Py_ssize_t *> data_pointer(history)
    cdef Py_ssize_t *fin = <Py_ssize_t *> data_pointer(finished)
    s.logits = <double *> data_pointer(logits)
    s.scores = <double *> data_pointer(scores)
    s.started = <unsigned char *> data_pointer(flags)
    s.live = <Py_ssize_t *> data_pointer(live)
    s.total = <Py_ssize_t *> data_pointer(total)
    s.chars, s.parents = hist, hist + R * n_hist * K
    s.xs = <Py_ssize_t *> data_pointer(xs)
    s.rows_of = <Py_ssize_t *> data_pointer(rows_of)
    s.fin_step, s.fin_beam = fin, fin + R * kf
    s.n_fin = &counts[0]
    return logits, scores, flags, live, total, history, rows_of, xs, finished


def word_beam(GenerationKernel kernel, state, const unsigned char[::1] is_sep,
              const unsigned char[::1] started, Py_ssize_t beam, Py_ssize_t[:, :, ::1] out,
              Py_ssize_t[:, ::1] out_len, double[:, ::1] out_scores,
              bint fixed_length=False):
    """R word searches of width `beam`, one per stream of `state` (S·L, R, H) (left as it
    was), advanced as one batch: the most probable completions of the word being typed,
    each ending in a separator (is_sep (V,): 1 for a separator character).  started (R,):
    1 where the text ends inside a word (a separator then ends it at once), 0 where it
    ends in a separator or is empty (separators may then lead into the word).  out
    (R, kf, n): search r's kf best completions of at most n characters that spell
    different words (each word in its most probable spelling: separators may lead into
    it), the ending separator not included, best first, their lengths in out_len (R, kf)
    and log-probabilities in nats, the ending separator's included, in out_scores
    (R, kf).  Returns an (R,) array: how many each search found (rows after them are
    untouched).  fixed_length: R plain beam searches for exactly n characters instead
    (is_sep and started unused; kf <= beam best beams each).  See word_select."""
    if RNNCORE_DEBUG_CHECKS:
        debug_doorway().check_word_beam(kernel, state, is_sep, started, beam, out, out_len,
                                        out_scores, fixed_length)
    cdef Py_ssize_t R = state.shape[1], K = beam, kf = out.shape[1], n = out.shape[2]
    cdef Py_ssize_t r, b, m
    cdef int threads = kernel.reserve(R * K)
    batch = np.zeros((state.shape[0], R * K, kernel.hidden_size), kernel.dtype)
    batch[:, :R] = state                    # up to R·K live beams, the R texts' states first
    counts = np.zeros(R, np.intp)
    cdef Words s
    s.R, s.K, s.kf, s.n = R, K, kf, n
    s.fixed = fixed_length
    s.is_sep = &is_sep[0]
    s.has_sep = any(is_sep)
    s.fin_scores = &out_scores[0, 0]
    keep = words_buffers(&s, kernel.n_vocab, started, counts), \
        kernel.streams(&s.s, batch, R * K)
    s.cands = <Candidate *> PyMem_Malloc(threads * K * kernel.n_vocab * sizeof(Candidate))
    if s.cands == NULL:
        raise MemoryError()
    try:
        kernel.run(words_program, &s, threads)
        with nogil:
            for r in range(R):
                for b in range(s.n_fin[r]):
                    m = s.fin_step[r * kf + b]
                    out_len[r, b] = m
                    if m > 0:
                        trace_back(&out[r, b, 0], m, s.fin_beam[r * kf + b],
                                   s.chars + r * n * K, s.parents + r * n * K, K)
    finally:
        PyMem_Free(s.cands)
    return counts
