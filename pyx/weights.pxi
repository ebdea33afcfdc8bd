# What the kernels share: a model's parameters bound once (Weights), the Net each kernel
# builds for its engines, its packed panels, the team's thread count for a call, aligned
# buffers.  Included by _cells.pyx.

CELL_CODES = {"rnn": RNN, "lstm": LSTM, "gru": GRU}

#: The units of a forward or backward step tile when BLAS runs its products: one call per
#: gate of 64 units (the micro-kernel's tiles are a vector's lanes)
cdef Py_ssize_t BLAS_UNITS = 64

#: Below this many multiply-adds in a step of one layer (B·G·H·H), a call runs on one
#: thread: handing a step over between cores costs more than splitting it saves.
cdef Py_ssize_t min_parallel_work = 1 << 17


cdef inline void *data_pointer(object a):
    return <void *> <size_t> a.ctypes.data


def aligned_zeros(shape, dtype, Py_ssize_t slack=0):
    """Zeros of `shape` starting on a 64-byte boundary, with `slack` more values behind
    the last one (a product may read whole vectors past a row's end)."""
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.zeros(count + slack + 64 // dt.itemsize, dt)
    start = (-raw.ctypes.data % 64) // dt.itemsize
    return raw[start:start + count].reshape(shape)


cdef int team_threads(object cap, Py_ssize_t work):
    """The threads a call may use: the whole team, or one thread for steps of fewer than
    min_parallel_work multiply-adds; at most `cap` (None: no cap)."""
    team = rnncore_team_size()
    if cap is not None:
        return max(1, min(int(cap), team))
    return team if work >= min_parallel_work else 1


cdef class Weights:
    """A model's parameter arrays as the kernels reach them (Params), bound once and read
    by every kernel of the model (its windows' and its generation's).

    bind(arrays): the arrays in rnncore.layout.param_shapes's order, C-contiguous, of the
    dtype and shapes it gives (read-only is fine), checked by the caller (CharRNN); they
    must stay alive and keep their shapes while bound (`arrays` keeps them).  Rebinding
    points every kernel at the new arrays."""
    cdef Params p
    cdef void **pointers                        # 4 arrays of L pointers: p's
    cdef readonly str cell
    cdef readonly Py_ssize_t num_layers, n_vocab, hidden_size
    cdef readonly object dtype
    cdef readonly tuple arrays                  # what is bound (None: nothing yet)

    def __cinit__(self, str cell, Py_ssize_t num_layers, Py_ssize_t n_vocab,
                  Py_ssize_t hidden_size, dtype):
        cdef Py_ssize_t L = num_layers
        self.cell, self.num_layers = cell, num_layers
        self.n_vocab, self.hidden_size, self.dtype = n_vocab, hidden_size, np.dtype(dtype)
        self.arrays = None
        self.pointers = <void **> PyMem_Malloc(4 * L * sizeof(void *))
        if self.pointers == NULL:
            raise MemoryError()
        memset(self.pointers, 0, 4 * L * sizeof(void *))
        self.p = params_at(self.pointers, L)

    def __dealloc__(self):
        PyMem_Free(self.pointers)

    def bind(self, tuple arrays):
        if RNNCORE_DEBUG_CHECKS:
            debug_doorway().check_bound(self, arrays, "parameter", False)
        point_at(&self.p, self, arrays)
        self.arrays = arrays


cdef Params params_at(void **pointers, Py_ssize_t L):
    """Params whose per-layer arrays are the 4·L pointers at `pointers`."""
    cdef Params p
    p.Wxh, p.Whh, p.bh, p.bhn = pointers, pointers + L, pointers + 2 * L, pointers + 3 * L
    p.Why = p.by = NULL
    return p


cdef void point_at(Params *p, object shape, tuple arrays) except *:
    """p at `arrays`, in param_shapes's order for the model whose cell, n_vocab,
    hidden_size and num_layers `shape` has (a Weights, a kernel)."""
    cdef Py_ssize_t k
    named = dict(zip(param_shapes(shape.cell, shape.n_vocab, shape.hidden_size,
                                  shape.num_layers), arrays))
    for k in range(shape.num_layers):
        s = "" if k == 0 else f"_l{k}"
        p.Wxh[k] = data_pointer(named["Wxh" + s])
        p.Whh[k] = data_pointer(named["Whh" + s])
        p.bh[k] = data_pointer(named["bh" + s])
        p.bhn[k] = data_pointer(named["bhn" + s]) if shape.cell == "gru" else NULL
    p.Why = data_pointer(named["Why"])
    p.by = data_pointer(named["by"])


cdef void init_net(Net *n, Weights weights, dict engines, bint bwd_in_place,
                   void **panels, bint blas_row_by_row=False) except *:
    """n for the model of `weights` (whose parameters it reads) with these engines; its
    panels' per-layer pointer arrays are the 4·L pointers at `panels`; blas_row_by_row:
    BLAS runs one row per call (generation)."""
    cdef Py_ssize_t L = weights.num_layers, V = weights.n_vocab, H = weights.hidden_size
    cdef bint is_double = weights.dtype == np.float64
    cdef Py_ssize_t G = GATES[weights.cell]
    n.cell, n.L, n.V, n.H, n.G, n.GH = CELL_CODES[weights.cell], L, V, H, G, G * H
    n.itemsize = weights.dtype.itemsize
    n.W = rnncore_gemm_lanes_d() if is_double else rnncore_gemm_lanes_f()
    n.NC = 4 * n.W
    n.n_hp = ceil_div(H, n.NC)
    n.n_gp = ceil_div(G * H, n.NC)
    n.n_vp = ceil_div(V, n.NC)
    n.RT = 16 * (rnncore_gemm_mr_d(4) if is_double else rnncore_gemm_mr_f(4))
    n.NT = max(n.NC, 512 // n.NC * n.NC)     # a weight gradient's rows whole (H <= 512)
    n.SW = n.NC * max(1, min(8, 16384 // (V * n.NC)))
    n.RTD = max(1, min(n.RT, 65536 // (n.n_vp * n.NC)))
    n.bwd_in_place = bwd_in_place
    n.blas_row_by_row = blas_row_by_row
    n.params = &weights.p
    n.Pf, n.Pb, n.Px, n.Pd = panels, panels + L, panels + 2 * L, panels + 3 * L
    set_engines(n, engines)


cdef void set_engines(Net *n, dict engines) except *:
    """n's engine for each kind of product, and the step tiles that follow from them."""
    n.eng_fwd = BLAS if engines["forward"] == "blas" else OWN
    n.eng_bwd = BLAS if engines["backward"] == "blas" else OWN
    n.eng_wide = BLAS if engines["wide"] == "blas" else OWN
    n.eng_logits = BLAS if engines["logits"] == "blas" else OWN
    cdef Py_ssize_t unit_vectors = ceil_div(n.H, n.W)
    if n.eng_fwd == BLAS:               # one BLAS call per gate of BLAS_UNITS units
        n.UW, n.NVG, n.NVF = BLAS_UNITS, 0, 0
    else:                               # every gate of NVG vectors of units: 8 vectors in
        # all (rnn: 8 of units; lstm 4 × 2; gru 3 × 2), so that one stream's product has 8
        # chains of multiply-adds; never wider than the layer
        n.NVG = min(max(1, 8 // n.G), unit_vectors)
        n.UW, n.NVF = n.NVG * n.W, n.NVG * n.G
    if n.eng_bwd == BLAS:
        n.UB = BLAS_UNITS
    elif n.bwd_in_place:                # Whh's rows in place: tiles of 8 vectors
        n.UB = 2 * n.NC
    else:
        n.UB = n.NC
    n.n_uf = ceil_div(n.H, n.UW)
    n.n_ub = ceil_div(n.H, n.UB)


cdef object allocate_panels(Net *n, dict engines, object dtype, bint backward):
    """The packed weights of n (net.pxi), rebuilt from the parameters by every call: the
    micro-kernel's panels for the kinds of product it runs (the backward products' only
    for a kernel that runs them), and E.  Returns the arrays (keep them alive)."""
    cdef Py_ssize_t k, L = n.L, H = n.H, GH = n.GH, NC = n.NC, V = n.V
    own = {kind: engine == "own" for kind, engine in engines.items()}
    packs_backward = backward and not n.bwd_in_place
    shapes = {"E": (V, GH)}
    if own["logits"]:
        shapes["Pyt"] = (n.n_vp, H, NC)
    if own["wide"] and packs_backward:
        shapes["Py"] = (n.n_hp, V, NC)
    for k in range(L):
        if own["forward"]:
            shapes[f"Pf{k}"] = (n.n_uf, H, n.NVF * n.W)
        if own["backward"] and packs_backward:
            shapes[f"Pb{k}"] = (n.n_hp, GH, NC)
        if k > 0 and own["wide"]:
            shapes[f"Px{k}"] = (n.n_gp, H, NC)
            if packs_backward:
                shapes[f"Pd{k}"] = (n.n_hp, GH, NC)
    packed = {name: aligned_zeros(shape, dtype) for name, shape in shapes.items()}
    address = {name: a.ctypes.data for name, a in packed.items()}     # NULL: not packed
    for k in range(L):
        n.Pf[k] = <void *> <size_t> address.get(f"Pf{k}", 0)
        n.Pb[k] = <void *> <size_t> address.get(f"Pb{k}", 0)
        n.Px[k] = <void *> <size_t> address.get(f"Px{k}", 0)
        n.Pd[k] = <void *> <size_t> address.get(f"Pd{k}", 0)
    n.E = <void *> <size_t> address["E"]
    n.Pyt = <void *> <size_t> address.get("Pyt", 0)
    n.Py = <void *> <size_t> address.get("Py", 0)
    return packed
