/* The detectors' stages that made the most cv2 calls per frame, each compiled into one call: the motion kernel's
 * point-wise and 3x3 stages, lit.py's drop_lit (the light-or-object texture test and its blob rule) at the changed
 * pixels only, the lighting grid's ratio and unity test, the shake test, the tamper check's measurements and
 * gradient signature, and the chroma level.
 *
 * Why C: at the 160x90 working size a frame's analysis was about a hundred cv2 and numpy calls on arrays of a few
 * thousand pixels, most of its cost per-call overhead, more so when the code has not run for a while, which is
 * how the ingest engine runs it (once per keyframe, after a decode). On a busy street it cost a third of the
 * keyframe's decode; compiled, about a seventh (docs/detectors.md, "Speed: the compiled stages").
 *
 * Every function computes the values of the calls it replaced, bit for bit, and the tests check it against
 * them: sums in double where cv2 sums in double (exact for these values, so their order does not matter),
 * rounding half to even where cv2 rounds (cvRound), cv2's default borders (BORDER_REFLECT_101 for filters,
 * outside pixels ignored for morphology), and no floating-point contraction (-ffp-contract=off): a fused
 * multiply-add would round differently from cv2's separate multiply and add. Those that read whole frames release
 * the GIL while they run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int check_size(const char *func, const Py_buffer *buf, const char *name, Py_ssize_t want) {
    if (buf->len != want) {
        PyErr_Format(PyExc_ValueError, "%s: %s has %zd bytes, expected %zd (a C-contiguous h x w image)", func, name,
                     buf->len, want);
        return -1;
    }
    return 0;
}

static inline int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * n - 2 - i;
    }
    return i;
}

/* lit_mask of lit.py at the changed pixels: 5x5 box sums in double, scaled by 1/25 and rounded to float, the rest
 * in float; borders reflected at the edges of the ROI, as cv2.blur over the ROI does. 255 in out where changed and
 * lit, 0 elsewhere in the ROI [x0, x1) x [y0, y1) of w-wide images; returns the count, or -1 when out of memory. Row by row, each run of changed pixels first sums its columns (and two beyond each end)
 * over the 5 rows, then each pixel adds 5 of those column sums: a third of the work of 25 taps per pixel, as
 * the pixels of a blob share their windows. */
static long lit_changed_kernel(const uint8_t *img, const float *ref, const uint8_t *changed, uint8_t *out, int w,
                               int x0, int y0, int x1, int y1) {
    const int rw = x1 - x0, rh = y1 - y0;
    const double k = 1.0 / 25.0;
    double *col = malloc(5 * (size_t)rw * sizeof(double));
    if (col == NULL) return -1;
    double *c_i = col, *c_r = col + rw, *c_ii = col + 2 * rw, *c_rr = col + 3 * rw, *c_ir = col + 4 * rw;
    long count = 0;
    for (int y = 0; y < rh; y++) {
        const uint8_t *crow = changed + (size_t)(y0 + y) * w + x0;
        uint8_t *orow = out + (size_t)(y0 + y) * w + x0;
        memset(orow, 0, (size_t)rw);
        const int inner_y = y >= 2 && y + 2 < rh;
        size_t rows[5];
        for (int d = 0; d < 5; d++) rows[d] = (size_t)(y0 + (inner_y ? y - 2 + d : reflect101(y - 2 + d, rh))) * w;
        int x = 0;
        while (x < rw) {
            if (!crow[x]) {
                x++;
                continue;
            }
            const int xa = x;
            while (x < rw && crow[x]) x++;
            const int xb = x - 1;
            /* every column a pixel of the run reads, reflected ones included, lies in [ca, cb] */
            const int ca = xa > 2 ? xa - 2 : 0, cb = xb + 2 < rw ? xb + 2 : rw - 1;
            for (int c = ca; c <= cb; c++) {
                double si = 0, sr = 0, sii = 0, srr = 0, sir = 0;
                for (int d = 0; d < 5; d++) {
                    const float a = (float)img[rows[d] + x0 + c], b = ref[rows[d] + x0 + c];
                    si += a;
                    sr += b;
                    sii += (float)(a * a);
                    srr += (float)(b * b);
                    sir += (float)(a * b);
                }
                c_i[c] = si, c_r[c] = sr, c_ii[c] = sii, c_rr[c] = srr, c_ir[c] = sir;
            }
            for (int xx = xa; xx <= xb; xx++) {
                const int inner = xx >= 2 && xx + 2 < rw;
                double si = 0, sr = 0, sii = 0, srr = 0, sir = 0;
                for (int d = 0; d < 5; d++) {
                    const int c = inner ? xx - 2 + d : reflect101(xx - 2 + d, rw);
                    si += c_i[c];
                    sr += c_r[c];
                    sii += c_ii[c];
                    srr += c_rr[c];
                    sir += c_ir[c];
                }
                const float mi = (float)(si * k), mr = (float)(sr * k);
                const float eii = (float)(sii * k), err = (float)(srr * k), eir = (float)(sir * k);
                const float mi2 = mi * mi, mr2 = mr * mr;
                const float vi = eii - mi2, vr = err - mr2, cov = eir - mi * mr;
                /* ncc > 0.5, texture in the reference, contrast kept: see lit_mask in lit.py */
                const int lit = cov * cov > (float)(0.25 * vi * vr) && cov > 0.0f && vr > 9.0f &&
                                vi * (mr2 + 1.0f) > (float)(0.25 * ((mi2 + 1.0f) * vr));
                const size_t at = (size_t)(y0 + y) * w + (size_t)(x0 + xx);
                const float a = (float)img[at], b = ref[at];
                const int clipped = a >= 245.0f && b >= 230.0f;
                const int washed = mi > 200.0f && mr > 170.0f && vi < (float)(0.3 * vr);
                if (lit || clipped || washed) {
                    orow[xx] = 255;
                    count++;
                }
            }
        }
    }
    free(col);
    return count;
}

/* Union-find over blob labels (8-connected changed pixels): the root of label i. */
static int32_t find_root(int32_t *parent, int32_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static void unite(int32_t *parent, int32_t a, int32_t b) {
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a < b) parent[b] = a;
    else if (b < a) parent[a] = b;
}

/* drop_lit in lit.py: unmark lit changed pixels; the other pixels of blobs that are at least half lit move from
 * changed to rest (lit.py keeps of them what has a 3x3 core). lit and rest are scratch images (0 outside the
 * ROI is not written). Returns 1 if some blob was mostly lit, 0 if not, -1 when out of memory. */
static int drop_lit_kernel(const uint8_t *img, const float *ref, uint8_t *changed, uint8_t *lit, uint8_t *rest, int w,
                           int x0, int y0, int x1, int y1) {
    const int rw = x1 - x0, rh = y1 - y0;
    const long lit_count = lit_changed_kernel(img, ref, changed, lit, w, x0, y0, x1, y1);
    if (lit_count < 0) return -1;
    if (lit_count == 0) {
        for (int y = y0; y < y1; y++) memset(rest + (size_t)y * w + x0, 0, (size_t)rw);
        return 0;
    }
    const size_t n = (size_t)rw * rh;
    int32_t *label = malloc(n * sizeof(int32_t));
    int32_t *parent = malloc((n + 1) * sizeof(int32_t));
    if (!label || !parent) {
        free(label), free(parent);
        return -1;
    }
    int32_t next = 1;
    for (int y = 0; y < rh; y++) {
        for (int x = 0; x < rw; x++) {
            const size_t i = (size_t)y * rw + x;
            label[i] = 0;
            if (!changed[(size_t)(y0 + y) * w + (x0 + x)]) continue;
            /* the already labelled neighbours: west, north-west, north, north-east */
            int32_t found = 0;
            const int32_t nb[4] = {
                x > 0 ? label[i - 1] : 0,
                x > 0 && y > 0 ? label[i - rw - 1] : 0,
                y > 0 ? label[i - rw] : 0,
                x + 1 < rw && y > 0 ? label[i - rw + 1] : 0,
            };
            for (int k = 0; k < 4; k++) {
                if (!nb[k]) continue;
                if (!found) found = nb[k];
                else unite(parent, found, nb[k]);
            }
            if (!found) {
                parent[next] = next;
                found = next++;
            }
            label[i] = found;
        }
    }
    /* blob sizes, counted at each blob's root label */
    int32_t *area = calloc((size_t)next, sizeof(int32_t));
    int32_t *lit_area = calloc((size_t)next, sizeof(int32_t));
    if (!area || !lit_area) {
        free(label), free(parent), free(area), free(lit_area);
        return -1;
    }
    for (int y = 0; y < rh; y++) {
        const int32_t *lrow = label + (size_t)y * rw;
        const uint8_t *litrow = lit + (size_t)(y0 + y) * w + x0;
        for (int x = 0; x < rw; x++) {
            if (!lrow[x]) continue;
            const int32_t r = find_root(parent, lrow[x]);
            area[r]++;
            lit_area[r] += litrow[x] != 0;
        }
    }
    int mostly = 0;
    for (int y = 0; y < rh; y++) {
        const int32_t *lrow = label + (size_t)y * rw;
        const size_t at = (size_t)(y0 + y) * w + x0;
        uint8_t *crow = changed + at, *rrow = rest + at;
        const uint8_t *litrow = lit + at;
        for (int x = 0; x < rw; x++) {
            rrow[x] = 0;
            if (!lrow[x]) continue;
            const int32_t r = find_root(parent, lrow[x]);
            if (litrow[x]) {
                crow[x] = 0;
            } else if (2 * lit_area[r] >= area[r]) {
                crow[x] = 0;
                rrow[x] = 255;
                mostly = 1;
            }
        }
    }
    free(label), free(parent), free(area), free(lit_area);
    return mostly;
}

/* cv2.convertScaleAbs of one float to uint8: |v * k| rounded half to even (cvRound), saturated. Clamping to 255
 * first gives the same result, and adding and subtracting 2^23 rounds a float in [0, 2^23) to an integer in the
 * default (nearest-even) mode: unlike lrintf and a branch, both vectorize. */
static inline uint8_t scale_abs_u8(float v, float k) {
    float a = fabsf(v * k + 0.0f);
    a = a < 255.0f ? a : 255.0f;
    return (uint8_t)(int)((a + 8388608.0f) - 8388608.0f);
}

static inline uint8_t max_u8(uint8_t a, uint8_t b) { return a > b ? a : b; }
static inline uint8_t min_u8(uint8_t a, uint8_t b) { return a < b ? a : b; }

/* Running max (or min) over a window of 2r+1 along each row, pixels outside the row ignored: src -> dst. */
static void row_extreme(const uint8_t *restrict src, uint8_t *restrict dst, int w, int h, int r, int is_max) {
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * w;
        uint8_t *d = dst + (size_t)y * w;
        for (int x = 0; x < w; x++) d[x] = s[x];
        for (int o = 1; o <= r; o++) {
            if (is_max) {
                for (int x = 0; x + o < w; x++) d[x] = max_u8(d[x], s[x + o]);
                for (int x = o; x < w; x++) d[x] = max_u8(d[x], s[x - o]);
            } else {
                for (int x = 0; x + o < w; x++) d[x] = min_u8(d[x], s[x + o]);
                for (int x = o; x < w; x++) d[x] = min_u8(d[x], s[x - o]);
            }
        }
    }
}

/* The same along each column: src -> dst. */
static void col_extreme(const uint8_t *restrict src, uint8_t *restrict dst, int w, int h, int r, int is_max) {
    for (int y = 0; y < h; y++) {
        uint8_t *d = dst + (size_t)y * w;
        const uint8_t *s = src + (size_t)y * w;
        for (int x = 0; x < w; x++) d[x] = s[x];
        for (int o = -r; o <= r; o++) {
            if (o == 0 || y + o < 0 || y + o >= h) continue;
            const uint8_t *t = src + (size_t)(y + o) * w;
            if (is_max)
                for (int x = 0; x < w; x++) d[x] = max_u8(d[x], t[x]);
            else
                for (int x = 0; x < w; x++) d[x] = min_u8(d[x], t[x]);
        }
    }
}

/* The point-wise and 3x3 stages of MotionStack.step for one camera (see motion.py), as its cv2 calls do them:
 * pred8 = convertScaleAbs(pred); edge = morphological gradient of pred8 (3x3) - edge_range; diff = |small - pred8|
 * - edge; thr = max(convertScaleAbs(deviation, k), floor); changed = diff > thr, eroded 3x3 and dilated 7x7
 * (pixels outside the image ignored, as cv2's default border for morphology), masked by keep; toggled = changed ^
 * prev; prev = changed. Subtractions saturate at 0. Every stage is a separable pass or a point-wise loop that the
 * compiler vectorizes: a per-pixel loop over windows cost ten times OpenCV's SIMD calls. scratch: 2 w*h bytes.
 * Returns how many pixels changed (cv2.countNonZero of the result). */
static long motion_points_kernel(const uint8_t *restrict small, const float *restrict pred,
                                 const float *restrict dev, const uint8_t *restrict keep, uint8_t *restrict prev,
                                 uint8_t *restrict pred8, uint8_t *restrict diff, uint8_t *restrict changed,
                                 uint8_t *restrict toggled, uint8_t *restrict scratch, int w, int h, float k,
                                 int floor_thr, int edge_range, int use_keep) {
    const size_t n = (size_t)w * h;
    uint8_t *restrict a = scratch, *restrict b = scratch + n;
    for (size_t i = 0; i < n; i++) pred8[i] = scale_abs_u8(pred[i], 1.0f);
    /* gradient = dilate 3x3 - erode 3x3 of pred8: the max into changed (as scratch), the min into toggled */
    row_extreme(pred8, a, w, h, 1, 1);
    col_extreme(a, changed, w, h, 1, 1);
    row_extreme(pred8, a, w, h, 1, 0);
    col_extreme(a, toggled, w, h, 1, 0);
    const uint8_t fl = (uint8_t)floor_thr;
    /* the threshold into a (float and byte arithmetic in separate loops: mixed, gcc vectorizes neither) */
    for (size_t i = 0; i < n; i++) a[i] = max_u8(scale_abs_u8(dev[i], k), fl);
    for (size_t i = 0; i < n; i++) {
        const int g = changed[i] - toggled[i] - edge_range;
        const int edge = g > 0 ? g : 0;
        const int ad = abs((int)small[i] - (int)pred8[i]) - edge;
        const uint8_t d = (uint8_t)(ad > 0 ? ad : 0);
        diff[i] = d;
        b[i] = (uint8_t)(d > a[i] ? 255 : 0);
    }
    /* the opening: erode 3x3, dilate 7x7 */
    row_extreme(b, a, w, h, 1, 0);
    col_extreme(a, b, w, h, 1, 0);
    row_extreme(b, a, w, h, 3, 1);
    col_extreme(a, changed, w, h, 3, 1);
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = use_keep ? (uint8_t)(changed[i] & keep[i]) : changed[i];
        changed[i] = c;
        toggled[i] = c ^ prev[i];
        prev[i] = c;
        count += c != 0;
    }
    return count;
}

/* chroma_level in source.py: mean |U - mean U| + mean |V - mean V| over every step-th sample of every step-th
 * row, as its cv2 calls compute it (sums in double; the deviation of each float32 sample from the mean rounded to
 * float32). u and v are planes of `rows` rows of line bytes; a sample of column j lies at byte j * xstride. */
static double chroma_spread_kernel(const uint8_t *u, const uint8_t *v, int rows, int cols, int line, int xstride,
                                   int step) {
    double su = 0, sv = 0;
    long n = 0;
    for (int y = 0; y < rows; y += step)
        for (int j = 0; j < cols; j += step) {
            su += u[(size_t)y * line + (size_t)j * xstride];
            sv += v[(size_t)y * line + (size_t)j * xstride];
            n++;
        }
    if (n == 0) return 0.0;
    const float mu = (float)(su / n), mv = (float)(sv / n);
    double du = 0, dv = 0;
    for (int y = 0; y < rows; y += step)
        for (int j = 0; j < cols; j += step) {
            du += fabsf((float)u[(size_t)y * line + (size_t)j * xstride] - mu);
            dv += fabsf((float)v[(size_t)y * line + (size_t)j * xstride] - mv);
        }
    return du / n + dv / n;
}

static PyObject *chroma_spread(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer u, v;
    int rows, cols, line, xstride, step, voffset;
    if (!PyArg_ParseTuple(args, "y*y*iiiiii:chroma_spread", &u, &v, &rows, &cols, &line, &xstride, &step, &voffset))
        return NULL;
    double out = -1.0;
    const Py_ssize_t need = (Py_ssize_t)(rows - 1) * line + (Py_ssize_t)(cols - 1) * xstride + 1;
    if (rows < 1 || cols < 1 || step < 1 || xstride < 1 || line < 1 || voffset < 0) {
        PyErr_Format(PyExc_ValueError,
                     "chroma_spread: rows=%d cols=%d line=%d xstride=%d step=%d voffset=%d must be positive", rows,
                     cols, line, xstride, step, voffset);
    } else if (u.len < need || v.len < need + voffset) {
        PyErr_Format(PyExc_ValueError, "chroma_spread: planes of %zd and %zd bytes, need %zd", u.len, v.len, need);
    } else {
        Py_BEGIN_ALLOW_THREADS
        out = chroma_spread_kernel(u.buf, (const uint8_t *)v.buf + voffset, rows, cols, line, xstride, step);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&u);
    PyBuffer_Release(&v);
    return out < 0 ? NULL : PyFloat_FromDouble(out);
}

/* The tamper check's measurements (tamper.py), as its cv2 calls compute them: mean and standard deviation of the
 * frame (cv2.meanStdDev), and the mean of |Laplacian| saturated at 255 (cv2.Laplacian, 3x3 aperture
 * [2 0 2; 0 -8 0; 2 0 2], borders reflected as BORDER_REFLECT_101, then cv2.convertScaleAbs and cv2.mean), over
 * the pixels where valid is set (all when valid is NULL). */
static void tamper_stats_kernel(const uint8_t *img, const uint8_t *valid, int w, int h, double out[3]) {
    /* integer sums, exact: the same doubles as cv2's */
    int64_t s = 0, sq = 0, lap = 0, n = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *up = img + (size_t)reflect101(y - 1, h) * w;
        const uint8_t *row = img + (size_t)y * w;
        const uint8_t *down = img + (size_t)reflect101(y + 1, h) * w;
        const uint8_t *vrow = valid ? valid + (size_t)y * w : NULL;
        for (int x = 0; x < w; x++) {
            int xl, xr;
            if (x > 0 && x + 1 < w) {
                xl = x - 1, xr = x + 1;
            } else {
                xl = reflect101(x - 1, w), xr = reflect101(x + 1, w);
            }
            const int v = 2 * (up[xl] + up[xr] + down[xl] + down[xr]) - 8 * row[x];
            const int a = v < 0 ? -v : v;
            const int on = vrow ? vrow[x] != 0 : 1;
            s += on * row[x];
            sq += on * row[x] * row[x];
            lap += on * (a > 255 ? 255 : a);
            n += on;
        }
    }
    if (n == 0) {
        out[0] = out[1] = out[2] = 0.0;
        return;
    }
    const double scale = 1.0 / (double)n, mean = (double)s * scale, var = (double)sq * scale - mean * mean;
    out[0] = mean;
    out[1] = sqrt(var > 0 ? var : 0);
    out[2] = (double)lap * scale;
}

static PyObject *tamper_stats(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer img, valid;
    int w, h, use_valid;
    if (!PyArg_ParseTuple(args, "y*y*iip:tamper_stats", &img, &valid, &w, &h, &use_valid)) return NULL;
    double out[3];
    int ok = 0;
    const Py_ssize_t n = (Py_ssize_t)w * h;
    if (w < 1 || h < 1) {
        PyErr_Format(PyExc_ValueError, "tamper_stats: w and h must be positive, got w=%d h=%d", w, h);
    } else if (check_size("tamper_stats", &img, "small", n) == 0 &&
               (!use_valid || check_size("tamper_stats", &valid, "valid", n) == 0)) {
        Py_BEGIN_ALLOW_THREADS
        tamper_stats_kernel(img.buf, use_valid ? valid.buf : NULL, w, h, out);
        Py_END_ALLOW_THREADS
        ok = 1;
    }
    PyBuffer_Release(&img);
    PyBuffer_Release(&valid);
    if (!ok) return NULL;
    return Py_BuildValue("(ddd)", out[0], out[1], out[2]);
}

/* The lighting grid's ratio and unity test (MotionStack._gain_map and _unity_everywhere in motion.py), as their
 * cv2 calls compute them: ratio = (small + bias) / (background + bias) in float; unity when every cell lies
 * strictly within (1/band, band) (compared in double, as cv2.minMaxLoc's results are), or when every
 * median x median window (borders replicated) holds a majority of cells within [1/band, band] (compared in
 * float, as cv2.inRange does). Returns 1 for unity, 0 if not. */
static int gain_ratio_kernel(const uint8_t *small, const float *bg, float *ratio, int gw, int gh, float bias,
                             double band, int median) {
    const size_t n = (size_t)gw * gh;
    float lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        const float r = ((float)small[i] + bias) / (bg[i] + bias);
        ratio[i] = r;
        if (i == 0 || r < lo) lo = r;
        if (i == 0 || r > hi) hi = r;
    }
    if ((double)lo > 1.0 / band && (double)hi < band) return 1;
    if (gw < median || gh < median) return 0;
    const float flo = (float)(1.0 / band), fhi = (float)band;
    const int r = median / 2, majority = median * median / 2 + 1;
    for (int y = 0; y < gh; y++)
        for (int x = 0; x < gw; x++) {
            int inside = 0;
            for (int dy = -r; dy <= r; dy++) {
                const int yy = y + dy < 0 ? 0 : (y + dy >= gh ? gh - 1 : y + dy);
                for (int dx = -r; dx <= r; dx++) {
                    const int xx = x + dx < 0 ? 0 : (x + dx >= gw ? gw - 1 : x + dx);
                    const float v = ratio[(size_t)yy * gw + xx];
                    inside += v >= flo && v <= fhi;
                }
            }
            if (inside < majority) return 0;
        }
    return 1;
}

static PyObject *gain_ratio(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer small, bg, ratio;
    int gw, gh, median;
    double bias, band;
    if (!PyArg_ParseTuple(args, "y*y*w*iiddi:gain_ratio", &small, &bg, &ratio, &gw, &gh, &bias, &band, &median))
        return NULL;
    int unity = -1;
    const Py_ssize_t n = (Py_ssize_t)gw * gh;
    if (gw < 1 || gh < 1 || median < 1 || band <= 1.0) {
        PyErr_Format(PyExc_ValueError, "gain_ratio: gw=%d gh=%d median=%d must be positive and band > 1", gw, gh,
                     median);
    } else if (check_size("gain_ratio", &small, "small_grid", n) == 0 &&
               check_size("gain_ratio", &bg, "bg_grid", n * (Py_ssize_t)sizeof(float)) == 0 &&
               check_size("gain_ratio", &ratio, "ratio", n * (Py_ssize_t)sizeof(float)) == 0) {
        unity = gain_ratio_kernel(small.buf, bg.buf, ratio.buf, gw, gh, (float)bias, band, median);
    }
    PyBuffer_Release(&small);
    PyBuffer_Release(&bg);
    PyBuffer_Release(&ratio);
    if (unity < 0) return NULL;
    return PyBool_FromLong(unity);
}

/* The shake test (_shifted in motion.py): the sum of |small - pred8| over the frame less its 1-pixel rim, in
 * place and with pred8 shifted by one pixel in each of the 8 directions (the values of cv2.norm(NORM_L1), exact
 * integers). 1 when a shifted placement sums less than the placement in place. */
static int shifted_kernel(const uint8_t *pred8, const uint8_t *small, int w, int h) {
    int64_t sums[9] = {0};
    for (int y = 1; y + 1 < h; y++) {
        const uint8_t *cur = small + (size_t)y * w;
        int k = 0;
        for (int dy = -1; dy <= 1; dy++) {
            const uint8_t *ref = pred8 + (size_t)(y + dy) * w;
            for (int dx = -1; dx <= 1; dx++, k++) {
                int64_t acc = 0;
                for (int x = 1; x + 1 < w; x++) acc += abs((int)cur[x] - (int)ref[x + dx]);
                sums[k] += acc;
            }
        }
    }
    for (int k = 0; k < 9; k++)
        if (k != 4 && sums[k] < sums[4]) return 1;
    return 0;
}

static PyObject *shifted(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer pred8, small;
    int w, h;
    if (!PyArg_ParseTuple(args, "y*y*ii:shifted", &pred8, &small, &w, &h)) return NULL;
    int out = -1;
    const Py_ssize_t n = (Py_ssize_t)w * h;
    if (w < 3 || h < 3) {
        PyErr_Format(PyExc_ValueError, "shifted: the frame must be at least 3x3, got w=%d h=%d", w, h);
    } else if (check_size("shifted", &pred8, "pred8", n) == 0 && check_size("shifted", &small, "small", n) == 0) {
        Py_BEGIN_ALLOW_THREADS
        out = shifted_kernel(pred8.buf, small.buf, w, h);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&pred8);
    PyBuffer_Release(&small);
    if (out < 0) return NULL;
    return PyBool_FromLong(out);
}

/* The tamper signature before its normalisation (_signature in tamper.py), as its cv2 and numpy calls compute it:
 * both 3x3 Sobel gradients of the uint8 grid (cv2.spatialGradient, borders reflected as BORDER_REFLECT_101), x
 * then y, as one float32 vector, multiplied by keep (0 or 1 per sample) when given, less its mean (summed in
 * double as cv2.mean does, exact for these integers, then rounded to float32). */
static void gradient_vector_kernel(const uint8_t *g, const float *keep, int w, int h, float *out) {
    const size_t n = (size_t)w * h;
    double sum = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *up = g + (size_t)reflect101(y - 1, h) * w, *row = g + (size_t)y * w;
        const uint8_t *down = g + (size_t)reflect101(y + 1, h) * w;
        for (int x = 0; x < w; x++) {
            const int l = reflect101(x - 1, w), r = reflect101(x + 1, w);
            const int gx = (up[r] + 2 * row[r] + down[r]) - (up[l] + 2 * row[l] + down[l]);
            const int gy = (down[l] + 2 * down[x] + down[r]) - (up[l] + 2 * up[x] + up[r]);
            const size_t i = (size_t)y * w + x;
            float vx = (float)gx, vy = (float)gy;
            if (keep) vx *= keep[i], vy *= keep[n + i];
            out[i] = vx;
            out[n + i] = vy;
            sum += (double)vx + (double)vy;
        }
    }
    const float mean = (float)(sum / (double)(2 * n));
    for (size_t i = 0; i < 2 * n; i++) out[i] -= mean;
}

static PyObject *gradient_vector(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer g, keep, out;
    int w, h, use_keep;
    if (!PyArg_ParseTuple(args, "y*y*w*iip:gradient_vector", &g, &keep, &out, &w, &h, &use_keep)) return NULL;
    int ok = 0;
    const Py_ssize_t n = (Py_ssize_t)w * h, nf = 2 * n * (Py_ssize_t)sizeof(float);
    if (w < 1 || h < 1) {
        PyErr_Format(PyExc_ValueError, "gradient_vector: w and h must be positive, got w=%d h=%d", w, h);
    } else if (check_size("gradient_vector", &g, "grid", n) == 0 && check_size("gradient_vector", &out, "out", nf) == 0 &&
               (!use_keep || check_size("gradient_vector", &keep, "keep", nf) == 0)) {
        gradient_vector_kernel(g.buf, use_keep ? keep.buf : NULL, w, h, out.buf);
        ok = 1;
    }
    PyBuffer_Release(&g);
    PyBuffer_Release(&keep);
    PyBuffer_Release(&out);
    if (!ok) return NULL;
    Py_RETURN_NONE;
}

static PyObject *motion_points(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer small, pred, dev, keep, prev, pred8, diff, changed, toggled;
    int w, h, floor_thr, edge_range, use_keep;
    double k;
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*w*w*w*w*iidiip:motion_points", &small, &pred, &dev, &keep, &prev, &pred8,
                          &diff, &changed, &toggled, &w, &h, &k, &floor_thr, &edge_range, &use_keep))
        return NULL;
    long count = -1;
    const Py_ssize_t n = (Py_ssize_t)w * h;
    const Py_ssize_t nf = n * (Py_ssize_t)sizeof(float);
    if (w < 1 || h < 1) {
        PyErr_Format(PyExc_ValueError, "motion_points: w and h must be positive, got w=%d h=%d", w, h);
    } else if (floor_thr < 0 || floor_thr > 255) {
        PyErr_Format(PyExc_ValueError, "motion_points: threshold must be in 0..255, got %d", floor_thr);
    } else if (check_size("motion_points", &small, "small", n) == 0 && check_size("motion_points", &pred, "pred", nf) == 0 &&
               check_size("motion_points", &dev, "deviation", nf) == 0 && check_size("motion_points", &keep, "keep", n) == 0 &&
               check_size("motion_points", &prev, "prev", n) == 0 && check_size("motion_points", &pred8, "pred8", n) == 0 &&
               check_size("motion_points", &diff, "diff", n) == 0 && check_size("motion_points", &changed, "changed", n) == 0 &&
               check_size("motion_points", &toggled, "toggled", n) == 0) {
        uint8_t *scratch = PyMem_Malloc(2 * (size_t)n);
        if (scratch == NULL) {
            PyErr_NoMemory();
        } else {
            Py_BEGIN_ALLOW_THREADS
            count = motion_points_kernel(small.buf, pred.buf, dev.buf, keep.buf, prev.buf, pred8.buf, diff.buf,
                                         changed.buf, toggled.buf, scratch, w, h, (float)k, floor_thr, edge_range,
                                         use_keep);
            Py_END_ALLOW_THREADS
            PyMem_Free(scratch);
        }
    }
    Py_buffer *all[] = {&small, &pred, &dev, &keep, &prev, &pred8, &diff, &changed, &toggled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) PyBuffer_Release(all[i]);
    if (count < 0) return NULL;
    return PyLong_FromLong(count);
}


static PyObject *drop_lit(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer img, ref, changed, lit, rest;
    int w, h, x0, y0, x1, y1;
    if (!PyArg_ParseTuple(args, "y*y*w*w*w*iiiiii:drop_lit", &img, &ref, &changed, &lit, &rest, &w, &h, &x0, &y0,
                          &x1, &y1))
        return NULL;
    int mostly = -2;
    const Py_ssize_t n = (Py_ssize_t)w * h;
    if (w < 1 || h < 1) {
        PyErr_Format(PyExc_ValueError, "drop_lit: w and h must be positive, got w=%d h=%d", w, h);
    } else if (x0 < 0 || y0 < 0 || x1 > w || y1 > h || x0 >= x1 || y0 >= y1) {
        PyErr_Format(PyExc_ValueError, "drop_lit: ROI x0=%d y0=%d x1=%d y1=%d is not inside a %dx%d image", x0, y0,
                     x1, y1, w, h);
    } else if (check_size("drop_lit", &img, "small", n) == 0 &&
               check_size("drop_lit", &ref, "pred", n * (Py_ssize_t)sizeof(float)) == 0 &&
               check_size("drop_lit", &changed, "changed", n) == 0 && check_size("drop_lit", &lit, "lit", n) == 0 &&
               check_size("drop_lit", &rest, "rest", n) == 0) {
        Py_BEGIN_ALLOW_THREADS
        mostly = drop_lit_kernel(img.buf, ref.buf, changed.buf, lit.buf, rest.buf, w, x0, y0, x1, y1);
        Py_END_ALLOW_THREADS
        if (mostly == -1) PyErr_NoMemory();
    }
    PyBuffer_Release(&img);
    PyBuffer_Release(&ref);
    PyBuffer_Release(&changed);
    PyBuffer_Release(&lit);
    PyBuffer_Release(&rest);
    if (mostly < 0) return NULL;
    return PyBool_FromLong(mostly);
}

static PyMethodDef methods[] = {
    {"drop_lit", drop_lit, METH_VARARGS,
     "drop_lit(small, pred, changed, lit, rest, w, h, x0, y0, x1, y1) -> bool\n\n"
     "In the ROI: unmark the changed pixels the texture test finds lit (marked 255 in lit), and move the other\n"
     "pixels of blobs at least half lit from changed to rest; True if there were any such. small, changed, lit\n"
     "and rest are h x w uint8, pred h x w float32, all C-contiguous; changed, lit and rest are written."},
    {"motion_points", motion_points, METH_VARARGS,
     "motion_points(small, pred, deviation, keep, prev, pred8, diff, changed, toggled, w, h, noise_factor,\n"
     "              threshold, edge_range, use_keep) -> int\n\n"
     "The point-wise and 3x3 stages of MotionStack.step for one camera's h x w frame: writes pred8, diff,\n"
     "changed and toggled, updates prev, and returns the count of changed pixels. pred and deviation are\n"
     "float32, the others uint8; all C-contiguous."},
    {"chroma_spread", chroma_spread, METH_VARARGS,
     "chroma_spread(u, v, rows, cols, line, xstride, step, voffset) -> float\n\n"
     "Mean absolute deviation of U plus that of V over every step-th sample of every step-th row; a sample of\n"
     "row y, column j lies at byte y * line + j * xstride (+ voffset in v)."},
    {"tamper_stats", tamper_stats, METH_VARARGS,
     "tamper_stats(small, valid, w, h, use_valid) -> (mean, std, mean_abs_laplacian)\n\n"
     "The tamper check's measurements of an h x w uint8 frame over the pixels where valid is set (all unless\n"
     "use_valid), as cv2.meanStdDev, and cv2.Laplacian (3x3), cv2.convertScaleAbs and cv2.mean compute them."},
    {"gain_ratio", gain_ratio, METH_VARARGS,
     "gain_ratio(small_grid, bg_grid, ratio, gw, gh, bias, band, median) -> bool\n\n"
     "Write (small_grid + bias) / (bg_grid + bias) into ratio (gh x gw float32); True when the median-filtered\n"
     "gain would lie within the unity band (1/band, band) in every cell."},
    {"shifted", shifted, METH_VARARGS,
     "shifted(pred8, small, w, h) -> bool\n\n"
     "True when pred8 shifted by one pixel in some direction matches small better (sum of absolute\n"
     "differences over the frame less its rim) than in place; both h x w uint8, C-contiguous."},
    {"gradient_vector", gradient_vector, METH_VARARGS,
     "gradient_vector(grid, keep, out, w, h, use_keep) -> None\n\n"
     "Both 3x3 Sobel gradients of the h x w uint8 grid into out (2 h w float32: x, then y), times keep when\n"
     "use_keep, less their mean: the tamper signature before its normalisation."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "detectors._kernels",
                                    "The motion kernel's point-wise stages and drop_lit of detectors/lit.py, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
