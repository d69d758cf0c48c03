/* detectors/lit.py's drop_lit (the light-or-object texture test and its blob rule) at the changed pixels only,
 * in one call.
 *
 * Why C: on a busy frame the ROI holds a few hundred changed pixels, and the cv2 form is some 45 calls on
 * arrays of a few thousand pixels. Each call costs microseconds of overhead, more so when the code has not run
 * for a while, which is how the ingest engine runs it (once per keyframe, after a decode): it was a third of a
 * busy keyframe's analysis. Here the test costs about 75 ns per changed pixel. Above a few thousand changed
 * pixels cv2's box filters over the whole ROI are cheaper, and lit.py uses them instead.
 *
 * The arithmetic mirrors the cv2 form exactly: 5x5 box sums in double (cv2.blur of float32 sums in double; sums
 * of these values are exact in double, so order does not matter), scaled by 1/25 and rounded to float, the rest
 * in float. Compile without floating-point contraction (-ffp-contract=off): a fused multiply-add would round
 * differently from cv2's separate multiply and subtract. Borders reflect as cv2's default (BORDER_REFLECT_101)
 * at the edges of the ROI, as cv2.blur over the ROI does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int reflect101(int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * n - 2 - i;
    }
    return i;
}

/* 255 in out where changed and lit, 0 elsewhere in the ROI [x0, x1) x [y0, y1) of w-wide images; the count. */
static long lit_changed_kernel(const uint8_t *img, const float *ref, const uint8_t *changed, uint8_t *out, int w,
                               int x0, int y0, int x1, int y1) {
    const int rw = x1 - x0, rh = y1 - y0;
    const double k = 1.0 / 25.0;
    long count = 0;
    for (int y = 0; y < rh; y++) {
        const int inner_y = y >= 2 && y + 2 < rh;
        for (int x = 0; x < rw; x++) {
            const size_t at = (size_t)(y0 + y) * w + (size_t)(x0 + x);
            out[at] = 0;
            if (!changed[at]) continue;
            int cols[5];
            const int inner = inner_y && x >= 2 && x + 2 < rw;
            for (int d = 0; d < 5; d++) cols[d] = x0 + (inner ? x - 2 + d : reflect101(x - 2 + d, rw));
            double si = 0, sr = 0, sii = 0, srr = 0, sir = 0;
            for (int dy = -2; dy <= 2; dy++) {
                const int yy = y0 + (inner_y ? y + dy : reflect101(y + dy, rh));
                const uint8_t *irow = img + (size_t)yy * w;
                const float *rrow = ref + (size_t)yy * w;
                for (int d = 0; d < 5; d++) {
                    const float a = (float)irow[cols[d]], b = rrow[cols[d]];
                    si += a;
                    sr += b;
                    sii += (float)(a * a);
                    srr += (float)(b * b);
                    sir += (float)(a * b);
                }
            }
            const float mi = (float)(si * k), mr = (float)(sr * k);
            const float eii = (float)(sii * k), err = (float)(srr * k), eir = (float)(sir * k);
            const float mi2 = mi * mi, mr2 = mr * mr;
            const float vi = eii - mi2, vr = err - mr2, cov = eir - mi * mr;
            /* ncc > 0.5, texture in the reference, contrast kept: see lit_mask in lit.py */
            const int lit = cov * cov > (float)(0.25 * vi * vr) && cov > 0.0f && vr > 9.0f &&
                            vi * (mr2 + 1.0f) > (float)(0.25 * ((mi2 + 1.0f) * vr));
            const float a = (float)img[at], b = ref[at];
            const int clipped = a >= 245.0f && b >= 230.0f;
            const int washed = mi > 200.0f && mr > 170.0f && vi < (float)(0.3 * vr);
            if (lit || clipped || washed) {
                out[at] = 255;
                count++;
            }
        }
    }
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
    if (lit_changed_kernel(img, ref, changed, lit, w, x0, y0, x1, y1) == 0) {
        for (int y = y0; y < y1; y++) memset(rest + (size_t)y * w + x0, 0, (size_t)rw);
        return 0;
    }
    const size_t n = (size_t)rw * rh;
    int32_t *label = malloc(n * sizeof(int32_t));
    int32_t *parent = malloc((n + 1) * sizeof(int32_t));
    int32_t *area = calloc(n + 1, sizeof(int32_t));
    int32_t *lit_area = calloc(n + 1, sizeof(int32_t));
    if (!label || !parent || !area || !lit_area) {
        free(label), free(parent), free(area), free(lit_area);
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
    for (size_t i = 0; i < n; i++) {
        if (!label[i]) continue;
        const int32_t r = find_root(parent, label[i]);
        label[i] = r;
        area[r]++;
        const size_t at = (size_t)(y0 + i / rw) * w + (x0 + i % rw);
        if (lit[at]) lit_area[r]++;
    }
    int mostly = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t at = (size_t)(y0 + i / rw) * w + (x0 + i % rw);
        rest[at] = 0;
        if (!label[i]) continue;
        if (lit[at]) {
            changed[at] = 0;
        } else if (2 * lit_area[label[i]] >= area[label[i]]) {
            changed[at] = 0;
            rest[at] = 255;
            mostly = 1;
        }
    }
    free(label), free(parent), free(area), free(lit_area);
    return mostly;
}

static int check_size(const Py_buffer *buf, const char *name, Py_ssize_t want) {
    if (buf->len != want) {
        PyErr_Format(PyExc_ValueError, "drop_lit: %s has %zd bytes, expected %zd (a C-contiguous h x w image)",
                     name, buf->len, want);
        return -1;
    }
    return 0;
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
    } else if (check_size(&img, "small", n) == 0 && check_size(&ref, "pred", n * (Py_ssize_t)sizeof(float)) == 0 &&
               check_size(&changed, "changed", n) == 0 && check_size(&lit, "lit", n) == 0 &&
               check_size(&rest, "rest", n) == 0) {
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "detectors._kernels",
                                    "drop_lit of detectors/lit.py at the changed pixels only.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
