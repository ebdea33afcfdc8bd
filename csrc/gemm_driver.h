/* The product over the version in use (see gemm.h), included by gemm.c once per dtype with
 * REAL (float or double) and SUFFIX(x) (x##_f or x##_d) defined.  K is gemm.c's table of
 * the version in use. */

void SUFFIX(rnncore_gemm)(long m, int nv, long Kdim, const REAL *A, long a_rs, long a_ks,
                          const REAL *P, long ldp, REAL *C, long ldc, long ldv,
                          int accumulate) {
    choose();
    const struct rnncore_gemm_plan *plan = &SUFFIX(K.plan)[nv];
    const int acc = accumulate != 0;
    for (long r = 0; r < m;) {
        int rows = m - r < plan->mr ? (int)(m - r) : plan->mr;
        int cw = rows <= plan->whole_rows ? nv : plan->cw;
        for (int c = 0; c < nv; c += cw)
            SUFFIX(K.table)[rows][acc][cw](Kdim, A + r * a_rs, a_rs, a_ks,
                                           P + c * SUFFIX(K.lanes), ldp,
                                           C + r * ldc + c * ldv, ldc, ldv);
        r += rows;
    }
}

void SUFFIX(rnncore_pack)(REAL *restrict P, long ldp, const REAL *restrict S, long s_k,
                          long s_n, long Kdim, long n, long width) {
    long c0 = 0;
    if (s_n == 1) {                 /* rows of S: copies (a loop: most are short) */
        for (long k = 0; k < Kdim; k++) {
            REAL *restrict p = P + k * ldp;
            const REAL *restrict q = S + k * s_k;
            for (long c = 0; c < n; c++) p[c] = q[c];
        }
        c0 = n;
    } else {                        /* 8 columns of S a pass: 8 streams of reads */
        for (; c0 + 8 <= n; c0 += 8)
            for (long k = 0; k < Kdim; k++) {
                REAL *p = P + k * ldp + c0;
                const REAL *q = S + k * s_k + c0 * s_n;
                for (int c = 0; c < 8; c++) p[c] = q[c * s_n];
            }
    }
    for (long k = 0; k < Kdim; k++) {
        for (long c = c0; c < n; c++) P[k * ldp + c] = S[k * s_k + c * s_n];
        for (long c = n; c < width; c++) P[k * ldp + c] = 0;
    }
}

long SUFFIX(rnncore_tile_work)(long m, long n) {
    choose();
    long nc = RNNCORE_GEMM_NV_MAX * SUFFIX(K.lanes);
    long width = (n + nc - 1) / nc * nc;
    return m * width + RNNCORE_GEMM_KC * (m + nc);
}

void SUFFIX(rnncore_tile_product)(long m, long n, long Kdim, const REAL *A, long a_rs,
                                  long a_ks, const REAL *P, long ldp, long panel_stride,
                                  REAL *C, long ldc, const REAL *bias, REAL *work) {
    choose();
    const long W = SUFFIX(K.lanes), nc = RNNCORE_GEMM_NV_MAX * W;
    const long width = (n + nc - 1) / nc * nc, panels = width / nc;
    REAL *sums = work;                          /* (m, width): the tile's sums */
    REAL *a_pack = sums + m * width;            /* (kc, m): a chunk of A, k-major */
    REAL *p_pack = a_pack + RNNCORE_GEMM_KC * m;  /* (KC, nc): a chunk of one panel */
    const int pack_p = ldp != nc;
    if (Kdim == 0)
        memset(sums, 0, m * width * sizeof(REAL));
    for (long k0 = 0; k0 < Kdim; k0 += RNNCORE_GEMM_KC) {
        long kc = Kdim - k0 < RNNCORE_GEMM_KC ? Kdim - k0 : RNNCORE_GEMM_KC;
        SUFFIX(rnncore_pack)(a_pack, m, A + k0 * a_ks, a_ks, a_rs, kc, m, m);
        for (long p = 0; p < panels; p++) {
            long cols = n - p * nc < nc ? n - p * nc : nc;
            const REAL *panel = P + p * panel_stride + k0 * ldp;
            if (pack_p) {
                SUFFIX(rnncore_pack)(p_pack, nc, panel, ldp, 1, kc, cols, nc);
                panel = p_pack;
            }
            SUFFIX(rnncore_gemm)(m, (int)((cols + W - 1) / W), kc, a_pack, 1, m, panel,
                                 pack_p ? nc : ldp, sums + p * nc, width, W, k0 > 0);
        }
    }
    for (long r = 0; r < m; r++) {
        REAL *c = C + r * ldc;
        const REAL *s = sums + r * width;
        if (bias)
            for (long j = 0; j < n; j++) c[j] = s[j] + bias[j];
        else
            memcpy(c, s, n * sizeof(REAL));
    }
}
