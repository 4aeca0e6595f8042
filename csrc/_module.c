/*
 * varinit._core: the only file that sees Python or NumPy.
 *
 * It checks the target array, converts arguments, releases the GIL for long
 * fills and turns vi_status codes into Python exceptions. Distribution
 * parameters arrive already validated by the Python layer (which names the
 * user's argument in its messages); the C core checks them again only so that
 * no call can make it misbehave.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_20_API_VERSION
#include <numpy/arrayobject.h>
#include <limits.h>
#include <string.h>
#include <varinit.h>

#define VI_GIL_RELEASE_MIN 16384 /* elements; below this, releasing costs more than it frees */

static PyObject *LayoutError; /* byte-swapped or misaligned: Python stages through a copy */

static int dtype_code(PyArrayObject *arr)
{
    PyArray_Descr *d = PyArray_DESCR(arr);
    switch (d->type_num) {
    case NPY_FLOAT: return VI_F32;
    case NPY_DOUBLE: return VI_F64;
    case NPY_HALF: return VI_F16;
    default: break;
    }
    if (d->type_num >= NPY_USERDEF && PyArray_ITEMSIZE(arr) == 2) {
        const char *name = d->typeobj->tp_name, *dot = strrchr(name, '.');
        if (strcmp(dot ? dot + 1 : name, "bfloat16") == 0)
            return VI_BF16;
    }
    return -1;
}

static int raise_status(vi_status st)
{
    PyErr_SetString(st == VI_EINVAL_DTYPE ? PyExc_TypeError : PyExc_ValueError,
                    vi_status_message(st));
    return -1;
}

/* A sequence of at most `max` ints into out, their number into *n. */
static int int64_values(PyObject *obj, const char *what, int64_t *out, int max, int *n)
{
    PyObject *seq = PySequence_Fast(obj, "");
    if (!seq) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_Format(PyExc_TypeError, "%s must be a sequence of ints, got %.200s", what,
                         Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    if (len > max) {
        PyErr_Format(PyExc_ValueError, "%s has %zd entries; at most %d are supported", what, len, max);
        Py_DECREF(seq);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < len; k++) {
        long long v = PyLong_AsLongLong(items[k]);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        out[k] = v;
    }
    Py_DECREF(seq);
    *n = (int)len;
    return 0;
}

/* A sequence of ndim ints into out; None leaves *ptr NULL. */
static int int64_tuple(PyObject *obj, int ndim, const char *what, int64_t *out, const int64_t **ptr)
{
    int n;
    *ptr = NULL;
    if (obj == Py_None)
        return 0;
    if (int64_values(obj, what, out, VI_MAX_NDIM, &n) < 0)
        return -1;
    if (n != ndim) {
        PyErr_Format(PyExc_ValueError, "%s must have %d entries, one per axis; got %d", what, ndim, n);
        return -1;
    }
    *ptr = out;
    return 0;
}

/* An int (a NumPy integer included), not a sequence: an array has __index__ too. */
static int is_scalar_int(PyObject *obj)
{
    return PyLong_Check(obj) || (PyIndex_Check(obj) && !PySequence_Check(obj));
}

/* Per-axis values for `count` axes (stride, dilation): None or 1 (NULL, which
 * the core reads as 1 on every axis), one int for every axis, or a sequence of
 * `count` ints. */
static int per_axis(PyObject *obj, int count, const char *what, int64_t *out, const int64_t **ptr)
{
    *ptr = NULL;
    if (obj == Py_None)
        return 0;
    if (is_scalar_int(obj)) {
        long long v = PyLong_AsLongLong(obj);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v == 1)
            return 0;
        for (int k = 0; k < count; k++)
            out[k] = v;
        *ptr = out;
        return 0;
    }
    int n;
    if (int64_values(obj, what, out, VI_MAX_NDIM, &n) < 0)
        return -1;
    if (n != count) {
        PyErr_Format(PyExc_ValueError, "%s must be an int or have %d entries, one per kernel axis; got %d",
                     what, count, n);
        return -1;
    }
    *ptr = out;
    return 0;
}

/* None (NULL), an int or a sequence of ints as C ints (values beyond the int
 * range become INT_MAX: out of range for every tensor). */
static int axis_list(PyObject *obj, const char *what, int *out, const int **ptr, int *n)
{
    int64_t values[VI_MAX_NDIM];
    *ptr = NULL;
    *n = 0;
    if (obj == Py_None)
        return 0;
    if (is_scalar_int(obj)) {
        values[0] = PyLong_AsLongLong(obj);
        if (values[0] == -1 && PyErr_Occurred())
            return -1;
        *n = 1;
    } else if (int64_values(obj, what, values, VI_MAX_NDIM, n) < 0) {
        return -1;
    }
    for (int k = 0; k < *n; k++)
        out[k] = values[k] < INT_MIN || values[k] > INT_MAX ? INT_MAX : (int)values[k];
    *ptr = out;
    return 0;
}

/* fill(array, dist, p0, p1, p2, p3, key, stream, global_shape, start) */
static PyObject *py_fill(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "fill takes 10 positional arguments");
        return NULL;
    }
    if (!PyArray_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "tensor must be a NumPy array, got %.200s",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)args[0];
    int dtype = dtype_code(arr);
    if (dtype < 0) {
        PyErr_Format(PyExc_TypeError,
                     "tensor must have a floating dtype (float16, bfloat16, float32, float64), got %S",
                     (PyObject *)PyArray_DESCR(arr));
        return NULL;
    }
    if (!PyArray_ISWRITEABLE(arr)) {
        PyErr_SetString(PyExc_ValueError, "tensor is read-only; expected a writable array");
        return NULL;
    }
    if (!PyArray_ISNOTSWAPPED(arr) || !PyArray_ISALIGNED(arr)) {
        PyErr_SetString(LayoutError, "tensor is byte-swapped or misaligned");
        return NULL;
    }
    vi_params params;
    params.dist = (int)PyLong_AsLong(args[1]);
    params.p0 = PyFloat_AsDouble(args[2]);
    params.p1 = PyFloat_AsDouble(args[3]);
    params.p2 = PyFloat_AsDouble(args[4]);
    params.p3 = PyFloat_AsDouble(args[5]);
    uint64_t key = PyLong_AsUnsignedLongLong(args[6]);
    uint64_t stream = PyLong_AsUnsignedLongLong(args[7]);
    if (PyErr_Occurred())
        return NULL;
    int ndim = PyArray_NDIM(arr);
    int64_t shape[VI_MAX_NDIM], strides[VI_MAX_NDIM], gshape[VI_MAX_NDIM], start[VI_MAX_NDIM];
    if (ndim > VI_MAX_NDIM) {
        PyErr_SetString(PyExc_ValueError, "tensor has too many dimensions");
        return NULL;
    }
    for (int k = 0; k < ndim; k++) {
        shape[k] = PyArray_DIM(arr, k);
        strides[k] = PyArray_STRIDE(arr, k);
    }
    vi_block block = {PyArray_DATA(arr), dtype, ndim, shape, strides, NULL, NULL};
    if (int64_tuple(args[8], ndim, "global_shape", gshape, &block.global_shape) < 0
        || int64_tuple(args[9], ndim, "start", start, &block.start) < 0)
        return NULL;
    vi_status st;
    if (PyArray_SIZE(arr) >= VI_GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        st = vi_fill(&block, &params, key, stream);
        Py_END_ALLOW_THREADS
    } else {
        st = vi_fill(&block, &params, key, stream);
    }
    if (st != VI_OK) {
        raise_status(st);
        return NULL;
    }
    Py_RETURN_NONE;
}

static int int64_arg(PyObject *obj, const char *what, int64_t *out)
{
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_Format(PyExc_TypeError, "%s must be an int, got %.200s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = v;
    return 0;
}

/* A whole fan as an int; a strided transposed conv's average fan_in as a
 * float (vi_fans never returns a whole number for it then). */
static PyObject *fan_object(double fan)
{
    if (fan == (double)(int64_t)fan) /* below 2^53: the cast is exact */
        return PyLong_FromLongLong((long long)fan);
    return PyFloat_FromDouble(fan);
}

/* fans(shape, layer=LAYER_DEFAULT, groups=1, stride=None, blocks=1, in_axes=None,
 * out_axes=None) -> (fan_in, fan_out). Positional only, for a cheap call. */
static PyObject *py_fans(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1 || nargs > 7) {
        PyErr_SetString(PyExc_TypeError, "fans takes 1 to 7 positional arguments");
        return NULL;
    }
    int64_t shape[VI_MAX_NDIM], stride[VI_MAX_NDIM], layer = VI_LAYER_DEFAULT;
    int in_axes[VI_MAX_NDIM], out_axes[VI_MAX_NDIM], ndim;
    vi_fan_spec spec = {VI_LAYER_DEFAULT, 1, 1, NULL, 0, NULL, 0, NULL};
    if (int64_values(args[0], "shape", shape, VI_MAX_NDIM, &ndim) < 0
        || (nargs > 1 && int64_arg(args[1], "layer", &layer) < 0)
        || (nargs > 2 && int64_arg(args[2], "groups", &spec.groups) < 0)
        || (nargs > 3 && per_axis(args[3], ndim > 2 ? ndim - 2 : 0, "stride", stride, &spec.stride) < 0)
        || (nargs > 4 && int64_arg(args[4], "blocks", &spec.blocks) < 0)
        || (nargs > 5 && axis_list(args[5], "in_axes", in_axes, &spec.in_axes, &spec.n_in_axes) < 0)
        || (nargs > 6 && axis_list(args[6], "out_axes", out_axes, &spec.out_axes, &spec.n_out_axes) < 0))
        return NULL;
    spec.layer = layer < INT_MIN || layer > INT_MAX ? -1 : (int)layer;
    double fan_in, fan_out;
    vi_status st = vi_fans(ndim, shape, &spec, &fan_in, &fan_out);
    if (st != VI_OK) {
        raise_status(st);
        return NULL;
    }
    PyObject *in = fan_object(fan_in), *out = in ? fan_object(fan_out) : NULL;
    PyObject *pair = out ? PyTuple_Pack(2, in, out) : NULL;
    Py_XDECREF(in);
    Py_XDECREF(out);
    return pair;
}

/* phase_scale(kernel, stride=None, dilation=None) -> float64 array of shape kernel */
static PyObject *py_phase_scale(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "phase_scale takes 1 to 3 positional arguments");
        return NULL;
    }
    int64_t kernel[VI_MAX_NDIM], stride[VI_MAX_NDIM], dilation[VI_MAX_NDIM];
    const int64_t *sp = NULL, *dp = NULL;
    int kdim;
    if (int64_values(args[0], "kernel", kernel, VI_MAX_NDIM, &kdim) < 0
        || (nargs > 1 && per_axis(args[1], kdim, "stride", stride, &sp) < 0)
        || (nargs > 2 && per_axis(args[2], kdim, "dilation", dilation, &dp) < 0))
        return NULL;
    vi_status st = vi_phase_scale(kdim, kernel, sp, dp, NULL); /* check before allocating */
    if (st != VI_OK) {
        raise_status(st);
        return NULL;
    }
    npy_intp dims[VI_MAX_NDIM];
    for (int k = 0; k < kdim; k++)
        dims[k] = (npy_intp)kernel[k];
    PyArrayObject *arr = (PyArrayObject *)PyArray_SimpleNew(kdim, dims, NPY_DOUBLE);
    if (!arr)
        return NULL;
    st = vi_phase_scale(kdim, kernel, sp, dp, (double *)PyArray_DATA(arr));
    if (st != VI_OK) {
        Py_DECREF(arr);
        raise_status(st);
        return NULL;
    }
    return (PyObject *)arr;
}

static PyObject *py_philox(PyObject *self, PyObject *args)
{
    (void)self;
    uint32_t ctr[4], key[2], out[4];
    unsigned long c0, c1, c2, c3, k0, k1;
    if (!PyArg_ParseTuple(args, "(kkkk)(kk)", &c0, &c1, &c2, &c3, &k0, &k1))
        return NULL;
    ctr[0] = (uint32_t)c0; ctr[1] = (uint32_t)c1; ctr[2] = (uint32_t)c2; ctr[3] = (uint32_t)c3;
    key[0] = (uint32_t)k0; key[1] = (uint32_t)k1;
    vi_philox4x32_10(ctr, key, out);
    return Py_BuildValue("(kkkk)", (unsigned long)out[0], (unsigned long)out[1],
                         (unsigned long)out[2], (unsigned long)out[3]);
}

static PyObject *py_normal_cdf(PyObject *self, PyObject *arg)
{
    (void)self;
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(vi_normal_cdf(x));
}

static PyObject *py_truncnorm_moments(PyObject *self, PyObject *args)
{
    (void)self;
    double alpha, beta, mean, var;
    if (!PyArg_ParseTuple(args, "dd", &alpha, &beta))
        return NULL;
    vi_status st = vi_truncnorm_moments(alpha, beta, &mean, &var);
    if (st != VI_OK) {
        raise_status(st);
        return NULL;
    }
    return Py_BuildValue("(dd)", mean, var);
}

static PyObject *py_normal_max_abs_z(PyObject *self, PyObject *arg)
{
    (void)self;
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(vi_normal_max_abs_z((int)code));
}

static PyObject *py_isa(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    const char *name = vi_isa(); /* never NULL here: the import refuses a bad VARINIT_ISA */
    if (!name) {
        PyErr_SetString(PyExc_RuntimeError, vi_isa_error());
        return NULL;
    }
    return PyUnicode_FromString(name);
}

/* {feature name: detected} from CPUID/XGETBV (x86-64) or the architecture (AArch64) */
static PyObject *py_cpu_features(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    int count;
    const vi_cpu_feature *f = vi_cpu_features(&count);
    PyObject *d = PyDict_New();
    for (int k = 0; d && k < count; k++)
        if (PyDict_SetItemString(d, f[k].name, f[k].present ? Py_True : Py_False) < 0)
            Py_CLEAR(d);
    return d;
}

/* names of the kernel tables this machine runs, best first */
static PyObject *py_available_isas(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    PyObject *out = PyList_New(0);
    for (const char *const *name = vi_available_isas(); out && *name; name++) {
        PyObject *s = PyUnicode_FromString(*name);
        if (!s || PyList_Append(out, s) < 0)
            Py_CLEAR(out);
        Py_XDECREF(s);
    }
    return out;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    (void)self;
    if (PyBool_Check(arg) || !PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_num_threads: n must be an int, got %.200s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow;
    long n = PyLong_AsLongAndOverflow(arg, &overflow);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || n < 1 || n > VI_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n must be an int from 1 to %d, got %S",
                     VI_MAX_THREADS, arg);
        return NULL;
    }
    vi_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused)
{
    (void)self; (void)unused;
    return PyLong_FromLong(vi_get_num_threads());
}

static PyMethodDef methods[] = {
    {"fill", (PyCFunction)(void (*)(void))py_fill, METH_FASTCALL,
     "fill(array, dist, p0, p1, p2, p3, key, stream, global_shape, start)"},
    {"fans", (PyCFunction)(void (*)(void))py_fans, METH_FASTCALL,
     "fans(shape, layer=LAYER_DEFAULT, groups=1, stride=None, blocks=1, in_axes=None, out_axes=None)"
     " -> (fan_in, fan_out): ints, except a strided transposed conv's average fan_in (a float)"},
    {"phase_scale", (PyCFunction)(void (*)(void))py_phase_scale, METH_FASTCALL,
     "phase_scale(kernel, stride=None, dilation=None) -> per-tap std multipliers (float64,"
     " shape kernel) that balance the output phases of a strided transposed conv"},
    {"philox4x32_10", py_philox, METH_VARARGS, "philox4x32_10((c0, c1, c2, c3), (k0, k1))"},
    {"normal_cdf", py_normal_cdf, METH_O, "standard normal CDF (libm-free)"},
    {"truncnorm_moments", py_truncnorm_moments, METH_VARARGS,
     "(mean, variance) of N(0, 1) truncated to [alpha, beta]"},
    {"normal_max_abs_z", py_normal_max_abs_z, METH_O,
     "largest |z| the normal sampler returns for a dtype code"},
    {"isa", py_isa, METH_NOARGS, "name of the active kernel table"},
    {"cpu_features", py_cpu_features, METH_NOARGS, "CPU features detected for dispatch"},
    {"available_isas", py_available_isas, METH_NOARGS, "kernel tables this machine runs"},
    {"set_num_threads", py_set_num_threads, METH_O,
     "set_num_threads(n): fill large arrays on n threads (the calling one included)"},
    {"get_num_threads", py_get_num_threads, METH_NOARGS,
     "number of threads a large fill uses (default: usable cores, or VARINIT_NUM_THREADS)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "varinit._core", "C core of varinit.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    /* a VARINIT_ISA this machine cannot honour stops the import with its reason */
    if (vi_isa_error()) {
        PyErr_SetString(PyExc_ImportError, vi_isa_error());
        return NULL;
    }
    import_array();
    PyObject *m = PyModule_Create(&moduledef);
    if (!m)
        return NULL;
    LayoutError = PyErr_NewException("varinit._core.LayoutError", PyExc_ValueError, NULL);
    if (!LayoutError || PyModule_AddObjectRef(m, "LayoutError", LayoutError) < 0
        || PyModule_AddIntConstant(m, "STREAM_VERSION", VI_STREAM_VERSION) < 0
        || PyModule_AddIntConstant(m, "UNIFORM", VI_UNIFORM) < 0
        || PyModule_AddIntConstant(m, "NORMAL", VI_NORMAL) < 0
        || PyModule_AddIntConstant(m, "TRUNC_NORMAL", VI_TRUNC_NORMAL) < 0
        || PyModule_AddIntConstant(m, "F32", VI_F32) < 0
        || PyModule_AddIntConstant(m, "F64", VI_F64) < 0
        || PyModule_AddIntConstant(m, "LAYER_DEFAULT", VI_LAYER_DEFAULT) < 0
        || PyModule_AddIntConstant(m, "LAYER_LINEAR", VI_LAYER_LINEAR) < 0
        || PyModule_AddIntConstant(m, "LAYER_CONV", VI_LAYER_CONV) < 0
        || PyModule_AddIntConstant(m, "LAYER_CONV_TRANSPOSE", VI_LAYER_CONV_TRANSPOSE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    const char *rejected = vi_num_threads_env_rejected();
    if (rejected && PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                     "VARINIT_NUM_THREADS=%s ignored: expected an integer from 1 to %d;"
                                     " using %d threads", rejected, VI_MAX_THREADS,
                                     vi_get_num_threads()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
