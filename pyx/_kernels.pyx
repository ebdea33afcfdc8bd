# cython: language_level=3
"""Compiled kernels of rnncore: the vanilla RNN's window forward/backward, generation,
and the optimizer updates.

Layout of this file, top to bottom:
  1. BLAS on row-major arrays (the one place the row/column-major swap is written).
  2. Small ``cdef ... noexcept nogil`` maths on raw pointers and sizes.
  3. One ``def`` per operation: it checks shapes, indices and sizes once, holding the GIL,
     then runs the maths in a single ``with nogil`` block.

Sizes in comments: V vocabulary, H hidden units, B streams, T time steps.
Every array is C-contiguous; the Python layer (rnncore/model.py) converts dtypes and
layouts before calling in, so a fused-type mismatch never reaches the user.
"""
from cython cimport floating
from libc.math cimport exp, log, tanh, sqrt
from libc.stdlib cimport qsort
from libc.string cimport memset, memcpy
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

ctypedef int blas_int  # scipy's cython_blas takes C int sizes (LP64)

cdef extern from "vecmath.h" nogil:
    const char *rnncore_vecmath_describe()
    int rnncore_vecmath_uses_libmvec()
    const char *rnncore_vecmath_setting_error()
    void rnncore_tanh_d(double *x, Py_ssize_t n)
    void rnncore_tanh_f(float *x, Py_ssize_t n)
    void rnncore_sigmoid_d(double *x, Py_ssize_t n)
    void rnncore_sigmoid_f(float *x, Py_ssize_t n)
    double rnncore_exp_shift_sum_d(double *x, Py_ssize_t n, double shift)
    double rnncore_exp_shift_sum_f(float *x, Py_ssize_t n, float shift)
    double rnncore_max_d(const double *x, Py_ssize_t n)
    float rnncore_max_f(const float *x, Py_ssize_t n)
    void rnncore_clip_d(double *x, Py_ssize_t n, double limit)
    void rnncore_clip_f(float *x, Py_ssize_t n, float limit)

# The run-time choice of maths (vecmath.h), made now so that a bad RNNCORE_VECMATH fails
# the import rather than going unnoticed
if rnncore_vecmath_setting_error() != NULL:
    raise ValueError(rnncore_vecmath_setting_error().decode())
#: Which maths tanh/exp run on in this process, e.g. "libmvec (tanh, exp), AVX-512 loops"
MATHS = rnncore_vecmath_describe().decode()
#: True when tanh or exp runs on glibc's vector maths (libmvec)
USES_LIBMVEC = bool(rnncore_vecmath_uses_libmvec())


cdef inline void tanh_inplace(floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        rnncore_tanh_d(x, n)
    else:
        rnncore_tanh_f(x, n)


cdef inline double max_of(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return rnncore_max_d(x, n)
    else:
        return rnncore_max_f(x, n)


cdef inline double exp_shift_sum(floating *x, Py_ssize_t n, double shift) noexcept nogil:
    """x = exp(x - shift); returns Σ x."""
    if floating is double:
        return rnncore_exp_shift_sum_d(x, n, shift)
    else:
        return rnncore_exp_shift_sum_f(x, n, <float> shift)


# ---------------------------------------------------------------------------------------
# 1. BLAS on row-major arrays.
#
# numpy's C order is row-major; BLAS is column-major.  A row-major M×N matrix stored with
# leading dimension ld is, read by BLAS, the column-major N×M matrix that is its transpose,
# with the same ld.  Hence:
#   gemm:  C = op(A)·op(B)  (row-major)   <=>   Cᵀ = op(B)ᵀ·op(A)ᵀ  (column-major):
#          call BLAS with A and B swapped and M and N swapped; the trans flags stay.
#   gemv:  y = op(A)·x with A row-major M×N  <=>  y = op'(Aᵀ)·x with Aᵀ column-major N×M:
#          call BLAS with the trans flag flipped and (m, n) = (N, M).
# Nothing below this section mentions column-major again.
# ---------------------------------------------------------------------------------------

cdef inline void gemm_rm(bint trans_a, bint trans_b, blas_int M, blas_int N, blas_int K,
                         floating alpha, const floating *A, blas_int lda,
                         const floating *B, blas_int ldb,
                         floating beta, floating *C, blas_int ldc) noexcept nogil:
    """C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, all row-major."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is double:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *> B, &ldb, <double *> A, &lda,
              &beta, C, &ldc)
    else:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *> B, &ldb, <float *> A, &lda,
              &beta, C, &ldc)


cdef inline void gemv_rm(bint trans, blas_int M, blas_int N, floating alpha,
                         const floating *A, blas_int lda, const floating *x,
                         floating beta, floating *y) noexcept nogil:
    """y = alpha · op(A) · x + beta · y, A row-major (M,N), x and y contiguous."""
    cdef char t = b'N' if trans else b'T'
    cdef blas_int one = 1
    if floating is double:
        dgemv(&t, &N, &M, &alpha, <double *> A, &lda, <double *> x, &one, &beta, y, &one)
    else:
        sgemv(&t, &N, &M, &alpha, <float *> A, &lda, <float *> x, &one, &beta, y, &one)


# ---------------------------------------------------------------------------------------
# 2. The maths, on raw pointers.
# ---------------------------------------------------------------------------------------

cdef void rnn_forward_window(Py_ssize_t V, Py_ssize_t H, Py_ssize_t B, Py_ssize_t T,
                             const floating *Wxh, const floating *Whh, const floating *Why,
                             const floating *bh, const floating *by,
                             const Py_ssize_t *inputs, floating *hs,
                             floating *logits) noexcept nogil:
    """Run T steps of B streams.

    hs (T+1, B, H): hs[0] holds h0 on entry; hs[t+1] receives h after step t.
    logits (T, B, V) receives y_t = Why·h_t + by.  inputs (B, T).
    """
    cdef Py_ssize_t t, b, i, x
    cdef floating *h_prev
    cdef floating *h_new
    for t in range(T):
        h_prev = hs + t * B * H
        h_new = hs + (t + 1) * B * H
        for b in range(B):
            x = inputs[b * T + t]
            # Wxh·onehot(x) is column x of Wxh
            for i in range(H):
                h_new[b * H + i] = Wxh[i * V + x] + bh[i]
        # h_new (B,H) += h_prev (B,H) · Whhᵀ
        if B == 1:
            gemv_rm(False, <blas_int> H, <blas_int> H, <floating> 1.0, Whh, <blas_int> H,
                    h_prev, <floating> 1.0, h_new)
        else:
            gemm_rm(False, True, <blas_int> B, <blas_int> H, <blas_int> H, <floating> 1.0,
                    h_prev, <blas_int> H, Whh, <blas_int> H, <floating> 1.0, h_new,
                    <blas_int> H)
        tanh_inplace(h_new, B * H)
    # one GEMM for the whole window: logits (TB,V) = hs[1:] (TB,H) · Whyᵀ + by
    for i in range(T * B):
        memcpy(logits + i * V, by, V * sizeof(floating))
    gemm_rm(False, True, <blas_int> (T * B), <blas_int> V, <blas_int> H, <floating> 1.0,
            hs + B * H, <blas_int> H, Why, <blas_int> H, <floating> 1.0, logits,
            <blas_int> V)


cdef double softmax_xent_rows(Py_ssize_t n_rows, Py_ssize_t V, floating *logits,
                              const Py_ssize_t *targets_bt, Py_ssize_t B,
                              Py_ssize_t T) noexcept nogil:
    """Turn each row of logits (T·B rows, row t*B+b) into probabilities in place and
    return the summed cross-entropy -log p[target] in nats.  targets_bt is (B, T).

    Subtracting the row max first keeps exp() finite for any finite logits; the target's
    log-probability is taken as (y - max) - log(sum), never as log of a rounded p.
    """
    cdef Py_ssize_t r, j, t, b, target
    cdef double row_max, total, loss = 0.0
    cdef floating inv_total
    cdef floating *y
    for r in range(n_rows):
        t = r // B
        b = r - t * B
        target = targets_bt[b * T + t]
        y = logits + r * V
        row_max = max_of(y, V)
        # -log p[target] = log Σ exp(y - max) - (y[target] - max)
        loss -= y[target] - row_max
        total = exp_shift_sum(y, V, row_max)
        loss += log(total)
        inv_total = <floating> (1.0 / total)
        for j in range(V):
            y[j] *= inv_total
    return loss


cdef void rnn_backward_window(Py_ssize_t V, Py_ssize_t H, Py_ssize_t B, Py_ssize_t T,
                              const floating *Wxh, const floating *Whh, const floating *Why,
                              const Py_ssize_t *inputs, const Py_ssize_t *targets,
                              const floating *hs, floating *probs, floating *dh_raw,
                              floating *dh_next,
                              floating *dWxh, floating *dWhh, floating *dWhy,
                              floating *dbh, floating *dby) noexcept nogil:
    """Backprop through time over the window, after rnn_forward_window and
    softmax_xent_rows.  Gradients are of Σ_t mean_b cross-entropy.

    probs (T,B,V) is overwritten with dy; dh_raw (T,B,H) with the gradient at the tanh's
    input; dh_next (B,H) is scratch.
    """
    cdef Py_ssize_t t, b, i, j, x, TB = T * B
    cdef floating inv_B = <floating> (1.0 / B)
    cdef floating *dy
    cdef floating *dh
    cdef const floating *h
    # dy = (p - onehot(target)) / B
    for t in range(T):
        for b in range(B):
            dy = probs + (t * B + b) * V
            dy[targets[b * T + t]] -= 1
            for j in range(V):
                dy[j] *= inv_B
    # dWhy (V,H) = dyᵀ (V,TB) · hs[1:] (TB,H)
    gemm_rm(True, False, <blas_int> V, <blas_int> H, <blas_int> TB, <floating> 1.0,
            probs, <blas_int> V, hs + B * H, <blas_int> H, <floating> 0.0, dWhy,
            <blas_int> H)
    memset(dby, 0, V * sizeof(floating))
    for i in range(TB):
        for j in range(V):
            dby[j] += probs[i * V + j]
    # dh from the outputs, all steps at once: dh_raw (TB,H) = dy (TB,V) · Why (V,H)
    gemm_rm(False, False, <blas_int> TB, <blas_int> H, <blas_int> V, <floating> 1.0,
            probs, <blas_int> V, Why, <blas_int> H, <floating> 0.0, dh_raw, <blas_int> H)
    # the recurrence, backwards: dh_raw[t] = (1 - h_t²) ⊙ (dh_out[t] + dh_next)
    memset(dh_next, 0, B * H * sizeof(floating))
    t = T - 1
    while t >= 0:
        dh = dh_raw + t * B * H
        h = hs + (t + 1) * B * H
        for i in range(B * H):
            dh[i] = (1 - h[i] * h[i]) * (dh[i] + dh_next[i])
        if t > 0:
            # dh_next (B,H) = dh (B,H) · Whh (H,H)
            if B == 1:
                gemv_rm(True, <blas_int> H, <blas_int> H, <floating> 1.0, Whh, <blas_int> H,
                        dh, <floating> 0.0, dh_next)
            else:
                gemm_rm(False, False, <blas_int> B, <blas_int> H, <blas_int> H,
                        <floating> 1.0, dh, <blas_int> H, Whh, <blas_int> H,
                        <floating> 0.0, dh_next, <blas_int> H)
        t -= 1
    # dWhh (H,H) = dh_rawᵀ (H,TB) · hs[:-1] (TB,H)
    gemm_rm(True, False, <blas_int> H, <blas_int> H, <blas_int> TB, <floating> 1.0,
            dh_raw, <blas_int> H, hs, <blas_int> H, <floating> 0.0, dWhh, <blas_int> H)
    # dbh = Σ rows dh_raw; dWxh[:, x] += dh_raw[t, b]
    memset(dbh, 0, H * sizeof(floating))
    memset(dWxh, 0, H * V * sizeof(floating))
    for t in range(T):
        for b in range(B):
            x = inputs[b * T + t]
            dh = dh_raw + (t * B + b) * H
            for i in range(H):
                dbh[i] += dh[i]
                dWxh[i * V + x] += dh[i]


cdef inline void clip_values(floating *a, Py_ssize_t n, floating limit) noexcept nogil:
    """a = clamp(a, -limit, limit), nan kept"""
    if floating is double:
        rnncore_clip_d(a, n, limit)
    else:
        rnncore_clip_f(a, n, limit)


cdef void rnn_step(Py_ssize_t V, Py_ssize_t H, const floating *Wxh, const floating *Whh,
                   const floating *bh, Py_ssize_t x, floating *h,
                   floating *h_scratch) noexcept nogil:
    """One step of one stream, in place: h (H,) <- tanh(Wxh[:, x] + Whh·h + bh)."""
    cdef Py_ssize_t i
    for i in range(H):
        h_scratch[i] = Wxh[i * V + x] + bh[i]
    gemv_rm(False, <blas_int> H, <blas_int> H, <floating> 1.0, Whh, <blas_int> H, h,
            <floating> 1.0, h_scratch)
    tanh_inplace(h_scratch, H)
    memcpy(h, h_scratch, H * sizeof(floating))


cdef void output_logits(Py_ssize_t V, Py_ssize_t H, const floating *Why,
                        const floating *by, const floating *h,
                        double *logits) noexcept nogil:
    """logits (V,) = Why·h + by, widened to double for the sampler."""
    cdef Py_ssize_t j, i
    cdef double acc
    for j in range(V):
        acc = by[j]
        for i in range(H):
            acc += Why[j * H + i] * h[i]
        logits[j] = acc


cdef int cmp_double_desc(const void *a, const void *b) noexcept nogil:
    cdef double x = (<const double *> a)[0]
    cdef double y = (<const double *> b)[0]
    return (x < y) - (x > y)


cdef Py_ssize_t choose_char(Py_ssize_t V, double *logits, double *work, bint greedy,
                            double temperature, Py_ssize_t top_k,
                            double u) noexcept nogil:
    """Pick the next character from logits (V,): argmax when greedy, else a draw from
    softmax(logits / temperature) restricted to the top_k largest (0 = all), using the
    uniform number u in [0, 1).  logits is overwritten."""
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


# ---------------------------------------------------------------------------------------
# 3. Python entry points: validate once, then one nogil block.
# ---------------------------------------------------------------------------------------

cdef int check_indices(const Py_ssize_t[:, ::1] a, Py_ssize_t V, str name) except -1:
    cdef Py_ssize_t i, j
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if a[i, j] < 0 or a[i, j] >= V:
                raise ValueError(
                    f"{name}[{i}, {j}] = {a[i, j]} is not a character index in [0, {V})")
    return 0


cdef int check_params(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
                      const floating[:, ::1] Why, const floating[::1] bh,
                      const floating[::1] by) except -1:
    cdef Py_ssize_t H = Wxh.shape[0], V = Wxh.shape[1]
    if H < 1 or V < 1:
        raise ValueError(f"Wxh has shape ({H}, {V}); both sizes must be >= 1")
    if Whh.shape[0] != H or Whh.shape[1] != H:
        raise ValueError(f"Whh has shape ({Whh.shape[0]}, {Whh.shape[1]}), expected ({H}, {H})")
    if Why.shape[0] != V or Why.shape[1] != H:
        raise ValueError(f"Why has shape ({Why.shape[0]}, {Why.shape[1]}), expected ({V}, {H})")
    if bh.shape[0] != H:
        raise ValueError(f"bh has shape ({bh.shape[0]},), expected ({H},)")
    if by.shape[0] != V:
        raise ValueError(f"by has shape ({by.shape[0]},), expected ({V},)")
    return 0


cdef int check_shape(str name, tuple got, tuple want) except -1:
    if got != want:
        raise ValueError(f"{name} has shape {got}, expected {want}")
    return 0


def rnn_window(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
               const floating[:, ::1] Why, const floating[::1] bh, const floating[::1] by,
               const Py_ssize_t[:, ::1] inputs, const Py_ssize_t[:, ::1] targets,
               floating[:, :, ::1] hs, floating[:, :, ::1] probs,
               floating[:, :, ::1] dh_raw, floating[:, ::1] dh_next,
               floating[:, ::1] dWxh, floating[:, ::1] dWhh, floating[:, ::1] dWhy,
               floating[::1] dbh, floating[::1] dby,
               bint compute_grads=True, double clip=0.0):
    """Forward (and, if compute_grads, backward) over one window of B streams × T steps.

    inputs, targets: (B, T) character indices in [0, V).
    hs: (T+1, B, H) with h0 in hs[0] on entry; on return hs[t+1] is h after step t, so
        hs[T] is h_last.
    probs (T,B,V), dh_raw (T,B,H), dh_next (B,H): scratch owned by the caller.
    dWxh..dby: gradient outputs, overwritten (untouched when compute_grads is False).
    clip > 0 clips every gradient element to [-clip, clip].
    Returns the mean cross-entropy per character, in nats.
    """
    check_params(Wxh, Whh, Why, bh, by)
    cdef Py_ssize_t H = Wxh.shape[0], V = Wxh.shape[1]
    cdef Py_ssize_t B = inputs.shape[0], T = inputs.shape[1]
    if B < 1 or T < 1:
        raise ValueError(f"inputs has shape ({B}, {T}); a window needs B >= 1 and T >= 1")
    check_shape("targets", (targets.shape[0], targets.shape[1]), (B, T))
    check_shape("hs", (hs.shape[0], hs.shape[1], hs.shape[2]), (T + 1, B, H))
    check_shape("probs", (probs.shape[0], probs.shape[1], probs.shape[2]), (T, B, V))
    check_indices(inputs, V, "inputs")
    check_indices(targets, V, "targets")
    if compute_grads:
        check_shape("dh_raw", (dh_raw.shape[0], dh_raw.shape[1], dh_raw.shape[2]), (T, B, H))
        check_shape("dh_next", (dh_next.shape[0], dh_next.shape[1]), (B, H))
        check_shape("dWxh", (dWxh.shape[0], dWxh.shape[1]), (H, V))
        check_shape("dWhh", (dWhh.shape[0], dWhh.shape[1]), (H, H))
        check_shape("dWhy", (dWhy.shape[0], dWhy.shape[1]), (V, H))
        check_shape("dbh", (dbh.shape[0],), (H,))
        check_shape("dby", (dby.shape[0],), (V,))
    if not clip >= 0:
        raise ValueError(f"clip must be >= 0, got {clip}")
    cdef double loss
    with nogil:
        rnn_forward_window(V, H, B, T, &Wxh[0, 0], &Whh[0, 0], &Why[0, 0], &bh[0], &by[0],
                           &inputs[0, 0], &hs[0, 0, 0], &probs[0, 0, 0])
        loss = softmax_xent_rows(T * B, V, &probs[0, 0, 0], &targets[0, 0], B, T)
        if compute_grads:
            rnn_backward_window(V, H, B, T, &Wxh[0, 0], &Whh[0, 0], &Why[0, 0],
                                &inputs[0, 0], &targets[0, 0], &hs[0, 0, 0],
                                &probs[0, 0, 0], &dh_raw[0, 0, 0], &dh_next[0, 0],
                                &dWxh[0, 0], &dWhh[0, 0], &dWhy[0, 0], &dbh[0], &dby[0])
            if clip > 0:
                clip_values(&dWxh[0, 0], H * V, <floating> clip)
                clip_values(&dWhh[0, 0], H * H, <floating> clip)
                clip_values(&dWhy[0, 0], V * H, <floating> clip)
                clip_values(&dbh[0], H, <floating> clip)
                clip_values(&dby[0], V, <floating> clip)
    return loss / (B * T)


def rnn_generate(const floating[:, ::1] Wxh, const floating[:, ::1] Whh,
                 const floating[:, ::1] Why, const floating[::1] bh, const floating[::1] by,
                 const Py_ssize_t[::1] prime, floating[::1] h, floating[::1] h_scratch,
                 double[::1] logits, double[::1] work, Py_ssize_t[::1] out,
                 const double[::1] uniforms, bint greedy=True, double temperature=1.0,
                 Py_ssize_t top_k=0):
    """Feed the prime through one stream, then generate len(out) characters.

    h (H,): the hidden state, updated in place (zeros for a fresh start).
    With an empty prime the first character is predicted from h as given.
    uniforms (len(out),): one number in [0, 1) per sampled character (unused if greedy).
    logits, work (V,) and h_scratch (H,) are scratch.  out receives the indices.
    """
    check_params(Wxh, Whh, Why, bh, by)
    cdef Py_ssize_t H = Wxh.shape[0], V = Wxh.shape[1]
    cdef Py_ssize_t n = out.shape[0], n_prime = prime.shape[0], i, c
    check_shape("h", (h.shape[0],), (H,))
    check_shape("h_scratch", (h_scratch.shape[0],), (H,))
    check_shape("logits", (logits.shape[0],), (V,))
    check_shape("work", (work.shape[0],), (V,))
    if not greedy:
        check_shape("uniforms", (uniforms.shape[0],), (n,))
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
    for i in range(n_prime):
        if prime[i] < 0 or prime[i] >= V:
            raise ValueError(f"prime[{i}] = {prime[i]} is not a character index in [0, {V})")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if n == 0:
        return
    with nogil:
        for i in range(n_prime):
            rnn_step(V, H, &Wxh[0, 0], &Whh[0, 0], &bh[0], prime[i], &h[0], &h_scratch[0])
        for i in range(n):
            output_logits(V, H, &Why[0, 0], &by[0], &h[0], &logits[0])
            c = choose_char(V, &logits[0], &work[0], greedy, temperature, top_k,
                            0.0 if greedy else uniforms[i])
            out[i] = c
            rnn_step(V, H, &Wxh[0, 0], &Whh[0, 0], &bh[0], c, &h[0], &h_scratch[0])


# ---------------------------------------------------------------------------------------
# Optimizer updates, in place on one flattened parameter and its gradient.
# ---------------------------------------------------------------------------------------

cdef int check_same_length(Py_ssize_t n, str name, Py_ssize_t m) except -1:
    if m != n:
        raise ValueError(f"{name} has {m} elements, the parameter has {n}")
    return 0


def sgd_update(floating[::1] param, const floating[::1] grad, double lr):
    """param -= lr · grad"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    with nogil:
        for i in range(n):
            param[i] -= <floating> (lr * grad[i])


def adagrad_update(floating[::1] param, const floating[::1] grad, floating[::1] mem,
                   double lr, double eps):
    """mem += grad²;  param -= lr · grad / sqrt(mem + eps)   (min-char-rnn's form)"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "mem", mem.shape[0])
    with nogil:
        for i in range(n):
            mem[i] += grad[i] * grad[i]
            param[i] -= <floating> (lr * grad[i] / sqrt(mem[i] + eps))


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[::1] mean_sq,
                   double lr, double decay, double eps):
    """mean_sq = decay·mean_sq + (1-decay)·grad²;  param -= lr · grad / (sqrt(mean_sq) + eps)
    (char-rnn's form)"""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "mean_sq", mean_sq.shape[0])
    with nogil:
        for i in range(n):
            mean_sq[i] = <floating> (decay * mean_sq[i] + (1 - decay) * grad[i] * grad[i])
            param[i] -= <floating> (lr * grad[i] / (sqrt(mean_sq[i]) + eps))


def adam_update(floating[::1] param, const floating[::1] grad, floating[::1] m,
                floating[::1] v, double lr, double beta1, double beta2, double eps,
                long step):
    """Adam (Kingma & Ba) with bias correction; step counts from 1."""
    cdef Py_ssize_t i, n = param.shape[0]
    check_same_length(n, "grad", grad.shape[0])
    check_same_length(n, "m", m.shape[0])
    check_same_length(n, "v", v.shape[0])
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cdef double c1 = 1 - beta1 ** step, c2 = 1 - beta2 ** step
    with nogil:
        for i in range(n):
            m[i] = <floating> (beta1 * m[i] + (1 - beta1) * grad[i])
            v[i] = <floating> (beta2 * v[i] + (1 - beta2) * grad[i] * grad[i])
            param[i] -= <floating> (lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps))


def elementwise(str function, floating[::1] x):
    """Apply one of vecmath.h's in-place functions to x, for the tests of both maths paths:
    "tanh", "sigmoid", or "exp" (x = exp(x - max x); returns Σ x).  Returns None or the sum."""
    cdef Py_ssize_t n = x.shape[0]
    cdef int which = ("tanh", "sigmoid", "exp").index(function) if function in (
        "tanh", "sigmoid", "exp") else -1
    if which < 0:
        raise ValueError(f"unknown elementwise function {function!r}: tanh, sigmoid or exp")
    if n == 0:
        raise ValueError("elementwise: x is empty")
    cdef double total = 0.0
    with nogil:
        if which == 0:
            tanh_inplace(&x[0], n)
        elif which == 1:
            if floating is double:
                rnncore_sigmoid_d(&x[0], n)
            else:
                rnncore_sigmoid_f(&x[0], n)
        else:
            total = exp_shift_sum(&x[0], n, max_of(&x[0], n))
    return total if which == 2 else None
