# WindowKernel: the training window (window.pxi) of one (B, T) shape as Python sees it.
# Included by _cells.pyx.

cdef class WindowKernel:
    """The compiled training window of a model (the dims of `weights`): forward, softmax
    cross-entropy and, for gradients, backward and clipping, over windows of batch_size
    streams × seq_length steps, on the engines `engine` (None: the current setting) gives
    such a window (rnncore.engines), with the buffers of that shape owned here.

    The caller writes the carried state into `state_in` (S·L, B, H) and, for dropout, the
    scaled masks into `masks` (L, T, B, H); run() leaves the last state in `state_out`.
    Gradient arrays bound (bind_grads) must stay alive and keep their shapes: the model
    rebinds whenever it replaces one.  `threads`: None lets each call choose (the whole
    team, or one thread for steps too small to split); a number caps it.  The results are
    the same bits whatever the number of threads.  Everything handed in is trusted: the
    caller (CharRNN) checks it."""
    cdef Net net
    cdef Window w
    cdef void **pointers                        # 8 arrays of L pointers: panels, gradients
    cdef void **grad_pointers                   # the gradient arrays, for clipping
    cdef Py_ssize_t *grad_sizes
    cdef readonly str cell
    cdef readonly Py_ssize_t num_layers, n_vocab, hidden_size, batch_size, seq_length
    cdef readonly object dtype
    cdef readonly object state_in, state_out, masks
    cdef readonly object bound_grads
    cdef readonly dict engines                  # {kind: "own" | "blas"}, fixed when built
    cdef public object threads
    cdef object buffers, packed, scratch
    cdef Py_ssize_t scratch_threads

    def __cinit__(self, Weights weights, Py_ssize_t batch_size, Py_ssize_t seq_length,
                  engine=None):
        cdef Py_ssize_t L = weights.num_layers, B = batch_size
        cdef Net *n = &self.net
        self.pointers = <void **> PyMem_Malloc(8 * L * sizeof(void *))
        self.grad_pointers = <void **> PyMem_Malloc((4 * L + 2) * sizeof(void *))
        self.grad_sizes = <Py_ssize_t *> PyMem_Malloc((4 * L + 2) * sizeof(Py_ssize_t))
        if self.pointers == NULL or self.grad_pointers == NULL or self.grad_sizes == NULL:
            raise MemoryError()
        memset(self.pointers, 0, 8 * L * sizeof(void *))
        self.cell, self.num_layers = weights.cell, L
        self.n_vocab, self.hidden_size, self.dtype = weights.n_vocab, weights.hidden_size, \
            weights.dtype
        self.batch_size, self.seq_length = batch_size, seq_length
        self.threads = None
        self.engines = _engines.engines_for(MICROKERNEL, engine, "window", B, self.cell,
                                            self.dtype.name)
        # a window of a few streams reads the backward products' weights in place (whole
        # vectors of a row: H a multiple of the lanes, so no read runs past an array)
        W = rnncore_gemm_lanes_d() if self.dtype == np.float64 else rnncore_gemm_lanes_f()
        init_net(n, weights, self.engines, B <= 4 and self.hidden_size % W == 0,
                 self.pointers)
        self.packed = allocate_panels(n, self.engines, self.dtype, True)
        self.w.grads = params_at(self.pointers + 4 * L, L)
        self.w.tile = window_tile_d if self.dtype == np.float64 else window_tile_f
        self.allocate()
        self.bound_grads = None
        self.scratch = None
        self.scratch_threads = 0

    def __dealloc__(self):
        PyMem_Free(self.pointers)
        PyMem_Free(self.grad_pointers)
        PyMem_Free(self.grad_sizes)

    cdef void allocate(self) except *:
        """The buffers of one (B, T) window (window.pxi)."""
        cdef Window *w = &self.w
        cdef Net *n = &self.net
        cdef Py_ssize_t L = n.L, V = n.V, H = n.H, GH = n.GH
        cdef Py_ssize_t B = self.batch_size, T = self.seq_length
        rows = (2 if self.cell == "lstm" else 1) * L
        shapes = {"hs": (L, T + 1, B, H), "ys": (L, T, B, H), "masks": (L, T, B, H),
                  "probs": (T, B, V), "dH": (2, T, B, H), "state_in": (rows, B, H),
                  "state_out": (rows, B, H), "loss": (T * B,)}
        if self.cell == "lstm":
            shapes.update(cs=(L, T + 1, B, H), dc_next=(B, H))
        if self.cell != "rnn":
            shapes.update(pre=(L, T, B, GH), aux=(L, T, B, H), da=(T, B, GH))
        if self.cell == "gru":
            shapes.update(da_h=(T, B, GH), dh_carry=(B, H))
        if n.eng_wide == OWN:
            shapes.update(rows_h=(n.n_hp, T * B, n.NC))
            if L > 1:
                shapes.update(rows_x=(n.n_hp, T * B, n.NC))
        self.buffers = {name: aligned_zeros(shape, np.float64 if name == "loss" else self.dtype,
                                            n.W) for name, shape in shapes.items()}
        w.net = n
        w.B, w.T = B, T
        w.hs, w.cs = self.buffer("hs"), self.buffer("cs")
        w.pre, w.aux, w.ys = self.buffer("pre"), self.buffer("aux"), self.buffer("ys")
        w.masks, w.probs = self.buffer("masks"), self.buffer("probs")
        w.da, w.da_h, w.dH = self.buffer("da"), self.buffer("da_h"), self.buffer("dH")
        w.dh_carry, w.dc_next = self.buffer("dh_carry"), self.buffer("dc_next")
        w.rows_h, w.rows_x = self.buffer("rows_h"), self.buffer("rows_x")
        w.state_in, w.state_out = self.buffer("state_in"), self.buffer("state_out")
        w.loss = <double *> self.buffer("loss")
        w.grads_at, w.grad_sizes, w.n_grads = self.grad_pointers, self.grad_sizes, 0
        self.state_in = self.buffers["state_in"]
        self.state_out = self.buffers["state_out"]
        self.masks = self.buffers["masks"]

    cdef void *buffer(self, str name):
        """The data of buffer `name`; NULL for one this cell does not use."""
        a = self.buffers.get(name)
        return NULL if a is None else data_pointer(a)

    cdef int reserve(self):
        """The threads this kernel's windows run on, each with its scratch."""
        cdef Net *n = &self.net
        cdef Py_ssize_t B = self.batch_size
        cdef int threads = team_threads(self.threads, B * n.GH * n.H)
        cdef Py_ssize_t size = padded(max(
            forward_scratch(n, B), backward_scratch(n, B),
            rnncore_tile_work_d(n.RT, n.NT) if self.dtype == np.float64
            else rnncore_tile_work_f(n.RT, n.NT), n.RTD * n.n_vp * n.NC, n.V * n.SW))
        if self.scratch is None or threads > self.scratch_threads:
            self.scratch_threads = max(threads, self.scratch_threads)
            self.scratch = aligned_zeros((self.scratch_threads, size), self.dtype)
            self.w.scratch = data_pointer(self.scratch)
            self.w.scratch_size = size
        return threads

    def bind_grads(self, tuple arrays):
        """Bind the gradient output arrays, in param_shapes's order: C-contiguous, writable
        arrays of the kernel's dtype and the shapes param_shapes gives."""
        cdef Py_ssize_t i
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_bound(self, arrays, "gradient", True)
        point_at(&self.w.grads, self, arrays)
        for i, a in enumerate(arrays):
            self.grad_pointers[i] = data_pointer(a)
            self.grad_sizes[i] = a.size
        self.w.n_grads = len(arrays)
        self.bound_grads = arrays

    def run(self, Weights weights, const Py_ssize_t[:, ::1] inputs,
            const Py_ssize_t[:, ::1] targets, bint backward=True, double clip=0.0,
            bint use_masks=False):
        """Forward (and, if backward, backward) over one window on `weights` (the model's,
        or weight drop's: their dims this kernel's).

        inputs, targets: (B, T) character indices in [0, V).  The state carried in is
        read from state_in; the last state is left in state_out.  With use_masks, every
        layer's output is multiplied by `masks` (already scaled).  Gradients (of
        Σ_t mean_b cross-entropy) overwrite the bound gradient arrays; clip > 0 clips them
        elementwise to [-clip, clip].  Returns the mean cross-entropy, nats per character.
        """
        cdef Py_ssize_t B = self.batch_size, T = self.seq_length, r
        if RNNCORE_DEBUG_CHECKS:
            if weights.arrays is None or (backward and self.bound_grads is None):
                raise ValueError("bind (and bind_grads for gradients) before run")
            debug_doorway().check_run(self, inputs, targets, clip)
        cdef int threads = self.reserve()
        cdef Window *w = &self.w
        self.net.params = &weights.p
        w.inputs = &inputs[0, 0]
        w.targets = &targets[0, 0]
        w.use_masks = use_masks
        w.backward = backward
        w.clip = clip
        cdef double loss = 0.0
        cdef bint uses_blas = "blas" in self.engines.values()
        with nogil:
            if uses_blas:
                rnncore_blas_enter()
            rnncore_team_run(window_program, w, threads)
            if uses_blas:
                rnncore_blas_leave()
            for r in range(B * T):
                loss += w.loss[r]
        w.inputs = w.targets = NULL
        return loss / (B * T)
