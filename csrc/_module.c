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
#include <math.h>
#include <string.h>
#include <varinit.h>

#if NPY_ABI_VERSION < 0x02000000 /* NumPy 1.x headers: the field itself */
#define PyDataType_ELSIZE(descr) ((npy_intp)(descr)->elsize)
#endif

#define VI_GIL_RELEASE_MIN 16384 /* elements; below this, releasing costs more than it frees */

static PyObject *LayoutError; /* byte-swapped or misaligned: Python stages through a copy */

/* ml_dtypes' bfloat16, a user-defined NumPy dtype, known by its scalar type's name */
static int is_bfloat16(PyArray_Descr *d)
{
    const char *name = d->typeobj->tp_name, *dot = strrchr(name, '.');
    return d->type_num >= NPY_USERDEF && strcmp(dot ? dot + 1 : name, "bfloat16") == 0;
}

/* the vi_dtype of a NumPy dtype, or -1 */
static int descr_code(PyArray_Descr *d)
{
    switch (d->type_num) {
    case NPY_FLOAT: return VI_F32;
    case NPY_DOUBLE: return VI_F64;
    case NPY_HALF: return VI_F16;
    default: break;
    }
    return PyDataType_ELSIZE(d) == 2 && is_bfloat16(d) ? VI_BF16 : -1;
}

static int dtype_code(PyArrayObject *arr)
{
    return descr_code(PyArray_DESCR(arr));
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

/* vi_fill with the GIL released for long fills; -1 with an exception set on failure */
static int run_fill(const vi_block *block, const vi_params *params, uint64_t key, uint64_t stream,
                    int64_t size)
{
    vi_status st;
    if (size >= VI_GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        st = vi_fill(block, params, key, stream);
        Py_END_ALLOW_THREADS
    } else {
        st = vi_fill(block, params, key, stream);
    }
    return st == VI_OK ? 0 : raise_status(st);
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
    if (run_fill(&block, &params, key, stream, PyArray_SIZE(arr)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- the torch direct path ---------------------------------------------------
 * A CPU torch tensor is filled through an ndarray built here from its data
 * pointer, shape, strides and dtype, without torch headers and without
 * Tensor.numpy(). Those four come from the DLPack exchange table torch.Tensor
 * publishes (DLPack >= 1.3, `__dlpack_c_exchange_api__`): one C call that
 * copies nothing, where reading them as Python attributes costs several times
 * more. Where torch has no such table, or it refuses a tensor, they are read
 * as attributes. The rules are checked here too, in the order the Python
 * layer states them; a tensor that breaks one comes back as a short reason,
 * which python/varinit/_arrays.py turns into its message, so the words live
 * in one place. */
enum {
    TV_ALLOW_INFERENCE = 1, /* the caller checked that inference mode is on */
    TV_ALLOW_IRREGULAR = 2, /* the caller checks overlap itself (by enumeration) */
    TV_CHECK_ONLY = 4,      /* any device: check the rules, read no memory, return None */
};

/* The parts of the DLPack ABI read here (dlpack.h, DLPack 1.x: DLDevice,
 * DLDataType, DLTensor, DLPackVersion, DLPackExchangeAPI), field for field. */
typedef struct { int32_t device_type, device_id; } tv_dl_device;
typedef struct { uint8_t code, bits; uint16_t lanes; } tv_dl_dtype;
typedef struct {
    void *data;
    tv_dl_device device;
    int32_t ndim;
    tv_dl_dtype dtype;
    int64_t *shape, *strides; /* in elements */
    uint64_t byte_offset;
} tv_dl_tensor;
typedef struct tv_dl_header {
    uint32_t major, minor;
    struct tv_dl_header *prev_api;
} tv_dl_header;
typedef struct {
    tv_dl_header header;
    void *managed_tensor_allocator, *managed_tensor_from_py_object_no_sync,
        *managed_tensor_to_py_object_no_sync;
    /* fills *out with borrowed pointers into the tensor; -1 with an exception set */
    int (*dltensor_from_py_object_no_sync)(void *py_object, tv_dl_tensor *out);
    void *current_work_stream;
} tv_dl_exchange;
enum { TV_DL_CPU = 1, TV_DL_FLOAT = 2, TV_DL_BFLOAT = 4 };

/* set_tensor_kinds: the NumPy dtype per torch dtype, torch.strided, the table */
static PyObject *tv_dtypes, *tv_strided, *tv_capsule;
static PyArray_Descr *tv_f16, *tv_f32, *tv_f64, *tv_bf16;
static const tv_dl_exchange *tv_exchange;

static PyObject *s_is_inference, *s_is_cpu, *s_layout, *s_python_dispatch, *s_is_nested, *s_is_neg,
    *s_dtype, *s_shape, *s_stride, *s_data_ptr;

/* 1 when obj.name (or obj.name() when `call`) is True, 0 when False, -1 on error */
static int tensor_flag(PyObject *tensor, PyObject *name, int call)
{
    PyObject *value = call ? PyObject_CallMethodNoArgs(tensor, name) : PyObject_GetAttr(tensor, name);
    if (!value)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* Distinct elements, by the sufficient rule of _arrays._elements_overlap: with
 * the axes of extent > 1 sorted by |stride|, each stride is at least the span
 * of the smaller axes. 0 when the rule cannot clear the layout. */
static int layout_is_distinct(int ndim, const npy_intp *shape, const npy_intp *strides, npy_intp itemsize)
{
    int64_t order_stride[NPY_MAXDIMS], order_n[NPY_MAXDIMS];
    int m = 0;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] == 0)
            return 1; /* no element at all */
        if (shape[k] == 1)
            continue;
        int64_t stride = strides[k] < 0 ? -(int64_t)strides[k] : (int64_t)strides[k];
        int j = m++;
        for (; j > 0 && order_stride[j - 1] > stride; j--) { /* insertion sort, ndim <= 64 */
            order_stride[j] = order_stride[j - 1];
            order_n[j] = order_n[j - 1];
        }
        order_stride[j] = stride;
        order_n[j] = shape[k];
    }
    int64_t span = itemsize;
    for (int j = 0; j < m; j++) {
        int64_t reach;
        if (order_stride[j] < span
            || __builtin_mul_overflow(order_stride[j], order_n[j] - 1, &reach)
            || __builtin_add_overflow(reach, span, &span))
            return 0;
    }
    return 1;
}

/* What a tensor's memory looks like: filled from the DLPack table or from attributes. */
typedef struct {
    void *data;
    PyArray_Descr *descr; /* borrowed */
    int ndim;
    npy_intp dims[NPY_MAXDIMS], strides[NPY_MAXDIMS]; /* strides in bytes */
} tv_layout;

/* Sizes and element strides into `out` (strides in bytes). NULL, or the reason. */
static const char *set_extents(tv_layout *out, int ndim, const int64_t *shape, const int64_t *strides)
{
    if (ndim > NPY_MAXDIMS || ndim > VI_MAX_NDIM)
        return "ndim";
    npy_intp itemsize = PyDataType_ELSIZE(out->descr);
    for (int k = 0; k < ndim; k++) {
        int64_t bytes;
        if (shape[k] < 0 || __builtin_mul_overflow(strides[k], (int64_t)itemsize, &bytes))
            return "layout";
        out->dims[k] = (npy_intp)shape[k];
        out->strides[k] = (npy_intp)bytes;
    }
    out->ndim = ndim;
    return NULL;
}

static PyArray_Descr *descr_of_dl(tv_dl_dtype t)
{
    if (t.lanes != 1)
        return NULL;
    if (t.code == TV_DL_FLOAT)
        return t.bits == 32 ? tv_f32 : t.bits == 64 ? tv_f64 : t.bits == 16 ? tv_f16 : NULL;
    return t.code == TV_DL_BFLOAT && t.bits == 16 ? tv_bf16 : NULL;
}

/* The fast route: 1 done (out filled, or *reason set), 0 when the table refused
 * the tensor (the attribute route then names why), -1 on error. The rules the
 * table cannot see (inference, subclass, negative bit) are checked before it. */
static int layout_from_dlpack(PyObject *tensor, tv_layout *out, const char **reason)
{
    tv_dl_tensor dl;
    if (tv_exchange->dltensor_from_py_object_no_sync(tensor, &dl) != 0) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError))
            return -1;
        PyErr_Clear(); /* sparse, nested, no storage, a dtype DLPack lacks, ... */
        return 0;
    }
    if (dl.device.device_type != TV_DL_CPU) {
        *reason = "device";
        return 1;
    }
    int flag = tensor_flag(tensor, s_is_neg, 1);
    if (flag)
        return flag < 0 ? -1 : (*reason = "negated", 1);
    if (!(out->descr = descr_of_dl(dl.dtype))) {
        *reason = "dtype";
        return 1;
    }
    out->data = (char *)dl.data + dl.byte_offset;
    *reason = set_extents(out, dl.ndim, dl.shape, dl.strides);
    return 1;
}

/* The attribute route: 0 done (out filled, or *reason set), -1 on error. */
static int layout_from_attributes(PyObject *tensor, int check_only, tv_layout *out, const char **reason)
{
    int flag;
    if (!check_only) {
        if ((flag = tensor_flag(tensor, s_is_cpu, 0)) < 0)
            return -1;
        if (!flag)
            return (*reason = "device", 0);
    }
    PyObject *layout = PyObject_GetAttr(tensor, s_layout);
    if (!layout)
        return -1;
    Py_DECREF(layout); /* only its identity is compared */
    if (layout != tv_strided)
        return (*reason = "layout", 0);
    if ((flag = tensor_flag(tensor, s_is_nested, 0)) < 0)
        return -1;
    if (flag)
        return (*reason = "nested", 0);
    if ((flag = tensor_flag(tensor, s_is_neg, 1)) < 0)
        return -1;
    if (flag)
        return (*reason = "negated", 0);
    PyObject *dtype = PyObject_GetAttr(tensor, s_dtype);
    if (!dtype)
        return -1;
    PyObject *descr = PyDict_GetItemWithError(tv_dtypes, dtype); /* borrowed */
    Py_DECREF(dtype);
    if (!descr)
        return PyErr_Occurred() ? -1 : (*reason = "dtype", 0);
    out->descr = (PyArray_Descr *)descr;
    PyObject *shape = PyObject_GetAttr(tensor, s_shape);
    PyObject *strides = shape ? PyObject_CallMethodNoArgs(tensor, s_stride) : NULL;
    int status = -1;
    int64_t dims[NPY_MAXDIMS], steps[NPY_MAXDIMS];
    if (!strides)
        goto done;
    if (!PyTuple_Check(shape) || !PyTuple_Check(strides) || PyTuple_GET_SIZE(shape) != PyTuple_GET_SIZE(strides)) {
        PyErr_SetString(PyExc_TypeError, "tensor_view: shape and stride() must be tuples of one length");
        goto done;
    }
    Py_ssize_t ndim = PyTuple_GET_SIZE(shape);
    if (ndim > NPY_MAXDIMS) {
        *reason = "ndim";
        status = 0;
        goto done;
    }
    for (Py_ssize_t k = 0; k < ndim; k++) {
        dims[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, k));
        steps[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(strides, k));
        if ((dims[k] == -1 || steps[k] == -1) && PyErr_Occurred())
            goto done;
    }
    *reason = set_extents(out, (int)ndim, dims, steps);
    out->data = NULL;
    status = 0;
    if (!*reason && !check_only) {
        PyObject *address = PyObject_CallMethodNoArgs(tensor, s_data_ptr);
        if (!address) {
            /* a tensor without storage (a functorch wrapper, ...) */
            if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
                PyErr_Clear();
                *reason = "storage";
            } else {
                status = -1;
            }
        } else {
            out->data = PyLong_AsVoidPtr(address);
            Py_DECREF(address);
            if (!out->data && PyErr_Occurred())
                status = -1;
        }
    }
done:
    Py_XDECREF(shape);
    Py_XDECREF(strides);
    return status;
}

/* A tensor's memory by the rules tensor_view states (flags as for it): 1 with
 * *layout filled (layout->data NULL with TV_CHECK_ONLY), 0 with *reason naming
 * the rule the tensor breaks, -1 on error. */
static int read_tensor(PyObject *tensor, long flags, tv_layout *layout, const char **reason)
{
    int check_only = (flags & TV_CHECK_ONLY) != 0, flag;
    *reason = NULL;
    /* torch's own first check: an inference tensor has no version counter */
    if ((flag = tensor_flag(tensor, s_is_inference, 1)) < 0)
        return -1;
    if (flag && !(flags & TV_ALLOW_INFERENCE))
        return (*reason = "inference", 0);
    /* a subclass that handles torch's dispatch (FakeTensor, DTensor) has no
     * memory of its own to write: Tensor.numpy() refuses it by this same bit */
    if ((flag = tensor_flag(tensor, s_python_dispatch, 0)) < 0)
        return -1;
    if (flag)
        return (*reason = "subclass", 0);
    int done = tv_exchange && !check_only ? layout_from_dlpack(tensor, layout, reason) : 0;
    if (done < 0 || (!done && layout_from_attributes(tensor, check_only, layout, reason) < 0))
        return -1;
    if (*reason)
        return 0;
    int any_empty = 0;
    for (int k = 0; k < layout->ndim; k++)
        any_empty |= layout->dims[k] == 0;
    /* two elements at one address would be written by two threads with two values */
    if (!(flags & TV_ALLOW_IRREGULAR)
        && !layout_is_distinct(layout->ndim, layout->dims, layout->strides, PyDataType_ELSIZE(layout->descr)))
        return (*reason = "irregular", 0);
    if (check_only)
        return 1;
    if (!layout->data) {
        /* an empty tensor may have no allocation; NumPy would make one of its own */
        static double nothing;
        if (!any_empty)
            return (*reason = "storage", 0);
        layout->data = &nothing;
    }
    return 1;
}

/* tensor_view(tensor, flags) -> ndarray sharing the tensor's memory (None with
 * TV_CHECK_ONLY), or the str naming the rule it breaks: "inference", "subclass",
 * "device", "layout", "nested", "negated", "dtype", "ndim", "irregular" (the
 * stride rule cannot clear it: enumerate), "storage". */
static PyObject *py_tensor_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "tensor_view(tensor, flags: int)");
        return NULL;
    }
    if (!tv_dtypes) {
        PyErr_SetString(PyExc_RuntimeError, "tensor_view: call set_tensor_kinds first");
        return NULL;
    }
    PyObject *tensor = args[0];
    long flags = PyLong_AsLong(args[1]);
    if (flags == -1 && PyErr_Occurred())
        return NULL;
    tv_layout layout;
    const char *reason;
    int status = read_tensor(tensor, flags, &layout, &reason);
    if (status < 0)
        return NULL;
    if (reason)
        return PyUnicode_FromString(reason);
    if (flags & TV_CHECK_ONLY)
        Py_RETURN_NONE;
    Py_INCREF(layout.descr); /* stolen by the constructor */
    PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, layout.descr, layout.ndim, layout.dims,
                                         layout.strides, layout.data, NPY_ARRAY_WRITEABLE, NULL);
    if (!arr)
        return NULL;
    /* the flags (contiguity, alignment) follow the strides and the address */
    PyArray_UpdateFlags((PyArrayObject *)arr, NPY_ARRAY_UPDATE_ALL);
    Py_INCREF(tensor); /* the view keeps the tensor, so its memory, alive */
    if (PyArray_SetBaseObject((PyArrayObject *)arr, tensor) < 0) {
        Py_DECREF(tensor);
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

/* set_tensor_kinds(dtypes, strided, exchange) -> bool: dtypes maps torch's
 * float16/float32/float64/bfloat16 to NumPy dtypes, strided is torch.strided,
 * exchange is torch.Tensor.__dlpack_c_exchange_api__ or None. True when the
 * DLPack route is used. Once per process (later calls replace the first). */
static PyObject *py_set_tensor_kinds(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "set_tensor_kinds(dtypes: dict, strided, exchange)");
        return NULL;
    }
    PyArray_Descr *f16 = NULL, *f32 = NULL, *f64 = NULL, *bf16 = NULL;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(args[0], &pos, &key, &value)) {
        if (!PyArray_DescrCheck(value)) {
            PyErr_SetString(PyExc_TypeError, "set_tensor_kinds: dtypes must map to NumPy dtypes");
            return NULL;
        }
        PyArray_Descr *d = (PyArray_Descr *)value;
        if (d->type_num == NPY_HALF) f16 = d;
        else if (d->type_num == NPY_FLOAT) f32 = d;
        else if (d->type_num == NPY_DOUBLE) f64 = d;
        else if (PyDataType_ELSIZE(d) == 2 && is_bfloat16(d)) bf16 = d;
    }
    const tv_dl_exchange *exchange = NULL;
    if (args[2] != Py_None) {
        exchange = PyCapsule_GetPointer(args[2], "dlpack_exchange_api");
        if (!exchange)
            return NULL;
        /* a major version other than 1 may lay the table out differently */
        if (exchange->header.major != 1 || !exchange->dltensor_from_py_object_no_sync)
            exchange = NULL;
    }
    Py_XINCREF(f16); Py_XINCREF(f32); Py_XINCREF(f64); Py_XINCREF(bf16);
    Py_XDECREF(tv_f16); Py_XDECREF(tv_f32); Py_XDECREF(tv_f64); Py_XDECREF(tv_bf16);
    tv_f16 = f16; tv_f32 = f32; tv_f64 = f64; tv_bf16 = bf16;
    PyObject *old[3] = {tv_dtypes, tv_strided, tv_capsule};
    Py_INCREF(args[0]); Py_INCREF(args[1]); Py_INCREF(args[2]); /* the capsule keeps the table */
    tv_dtypes = args[0];
    tv_strided = args[1];
    tv_capsule = args[2];
    for (int k = 0; k < 3; k++)
        Py_XDECREF(old[k]);
    tv_exchange = exchange;
    return PyBool_FromLong(exchange != NULL);
}

/* ---- the one-call path -------------------------------------------------------
 * What a small fill costs is mostly Python: argument checks, the tensor's
 * view, the calls in between. fast_fill(kind, target, args, kwargs) makes the
 * common call of one public function of python/varinit/init.py (`kind`: its
 * FAST_ code) in C, from the wrapper that python/varinit/_arrays.py's
 * writes_in_place puts around it, before anything else runs. The calls it
 * makes: the target a NumPy array, or a torch.Tensor or nn.Parameter on the
 * CPU with no __torch_function__ mode active; numbers of type float or int;
 * generator None, an int, a varinit Generator or Stream; global_shape, start
 * and the layout keywords not given (or given as their default objects). It
 * makes the Python layer's checks with the same floating-point operations in
 * the same order, takes the stream as generator.resolve does, and bumps a
 * tensor's version counter as the wrapper does. Any other call -- every
 * mistake included -- gets NotImplemented, with nothing written and no stream
 * taken, and the Python path runs as if this one did not exist: the messages
 * for bad input live there alone. */
enum {
    FAST_UNIFORM, FAST_NORMAL, FAST_TRUNC_NORMAL, FAST_KAIMING_UNIFORM, FAST_KAIMING_NORMAL,
    FAST_XAVIER_UNIFORM, FAST_XAVIER_NORMAL, FAST_ZEROS, FAST_ONES, FAST_KINDS
};
#define FAST_MAX_ARGS 5

/* Each function's parameters after the tensor, in order, as this file reads
 * them; fast_fill_register checks them against the function's own and takes
 * its defaults. */
static struct {
    const char *names[FAST_MAX_ARGS];
    int count;
    int registered;
    PyObject *interned[FAST_MAX_ARGS];
    PyObject *defaults;   /* fn.__defaults__: a tuple of `count`, or None when count is 0 */
    PyObject *kwdefaults; /* fn.__kwdefaults__: keyword-only name -> default, or None */
} fast_signatures[FAST_KINDS] = {
    [FAST_UNIFORM] = {{"a", "b", "generator"}, 3, 0, {NULL}, NULL, NULL},
    [FAST_NORMAL] = {{"mean", "std", "generator"}, 3, 0, {NULL}, NULL, NULL},
    [FAST_TRUNC_NORMAL] = {{"mean", "std", "a", "b", "generator"}, 5, 0, {NULL}, NULL, NULL},
    [FAST_KAIMING_UNIFORM] = {{"a", "mode", "nonlinearity", "generator"}, 4, 0, {NULL}, NULL, NULL},
    [FAST_KAIMING_NORMAL] = {{"a", "mode", "nonlinearity", "generator"}, 4, 0, {NULL}, NULL, NULL},
    [FAST_XAVIER_UNIFORM] = {{"gain", "generator"}, 2, 0, {NULL}, NULL, NULL},
    [FAST_XAVIER_NORMAL] = {{"gain", "generator"}, 2, 0, {NULL}, NULL, NULL},
    [FAST_ZEROS] = {{NULL}, 0, 0, {NULL}, NULL, NULL},
    [FAST_ONES] = {{NULL}, 0, 0, {NULL}, NULL, NULL},
};

/* fast_fill_setup: what the Python layer computes with, read once */
static PyObject *fast_gains;          /* init._TORCH_GAINS: (name, type(a), a) -> torch's gain */
enum { LIM_LARGEST, LIM_COMPUTE_LARGEST, LIM_Z, LIM_EPS, LIM_SMALLEST, LIM_COUNT };
static double fast_limits[4][LIM_COUNT]; /* per vi_dtype: init._limits */
static PyTypeObject *fast_generator_type, *fast_stream_type, *fast_named_stream_type;
static PyObject *fast_generator_module; /* its default_generator, read at each call as resolve does */
static PyObject *fast_torch_words, *fast_torch_key, *fast_warn_seed, *fast_dry_run;
/* set_torch_calls */
static PyTypeObject *fast_tensor_type, *fast_parameter_type;
static PyObject *fast_has_torch_function, *fast_increment_version;
static PyObject *fast_word_bound; /* 2**32 */
static PyObject *s_active, *s_buffer, *s_random_, *s_take_stream, *s_key, *s_stream_id, *s_default_generator;

/* What is filled: a NumPy array's or a CPU tensor's memory. */
typedef struct {
    void *data;
    int dtype; /* a vi_dtype */
    int ndim, is_torch;
    int64_t size, itemsize;
    int64_t shape[VI_MAX_NDIM], strides[VI_MAX_NDIM]; /* strides in bytes */
} fast_target;

/* 1 with t's extents filled, 0 for an empty or misaligned target (the Python
 * path returns early or stages it through a copy) */
static int fast_extents(fast_target *t, void *data, int ndim, const npy_intp *dims, const npy_intp *strides,
                        int64_t itemsize)
{
    if (ndim > VI_MAX_NDIM)
        return 0;
    uintptr_t misaligned = (uintptr_t)data;
    int overflow = 0;
    t->size = 1;
    for (int k = 0; k < ndim; k++) {
        t->shape[k] = dims[k];
        t->strides[k] = strides[k];
        /* checked size arithmetic, as in the core (torch and NumPy refuse such shapes) */
        overflow |= __builtin_mul_overflow(t->size, (int64_t)dims[k], &t->size);
        if (dims[k] > 1)
            misaligned |= (uintptr_t)strides[k];
    }
    t->data = data;
    t->ndim = ndim;
    t->itemsize = itemsize;
    return !overflow && t->size > 0 && misaligned % (uintptr_t)itemsize == 0;
}

/* 1 when `obj` is a target of this path (t filled), 0 when not, -1 on error */
static int fast_target_of(PyObject *obj, fast_target *t)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type == &PyArray_Type) { /* what _arrays.as_array accepts without a copy */
        PyArrayObject *arr = (PyArrayObject *)obj;
        int ndim = PyArray_NDIM(arr);
        t->dtype = dtype_code(arr);
        t->is_torch = 0;
        if (t->dtype < 0 || !PyArray_ISWRITEABLE(arr) || !PyArray_ISNOTSWAPPED(arr) || !PyArray_ISALIGNED(arr)
            || (!PyArray_IS_C_CONTIGUOUS(arr) && !PyArray_IS_F_CONTIGUOUS(arr)
                && !layout_is_distinct(ndim, PyArray_DIMS(arr), PyArray_STRIDES(arr), PyArray_ITEMSIZE(arr))))
            return 0;
        return fast_extents(t, PyArray_DATA(arr), ndim, PyArray_DIMS(arr), PyArray_STRIDES(arr),
                            PyArray_ITEMSIZE(arr));
    }
    if (!fast_tensor_type || (type != fast_tensor_type && type != fast_parameter_type) || !tv_dtypes)
        return 0;
    /* an active __torch_function__ mode must see the call: the Python path hands it over */
    PyObject *handled = PyObject_CallOneArg(fast_has_torch_function, obj);
    if (!handled)
        return -1;
    int truth = PyObject_IsTrue(handled);
    Py_DECREF(handled);
    if (truth)
        return truth < 0 ? -1 : 0;
    tv_layout layout;
    const char *reason;
    int status = read_tensor(obj, 0, &layout, &reason);
    if (status <= 0)
        return status; /* a rule broken: the Python path names it */
    t->dtype = descr_code(layout.descr);
    t->is_torch = 1;
    return t->dtype >= 0 && fast_extents(t, layout.data, layout.ndim, layout.dims, layout.strides,
                                         PyDataType_ELSIZE(layout.descr));
}

static int same_name(PyObject *given, PyObject *name)
{
    return given == name || (PyUnicode_Check(given) && PyUnicode_Compare(given, name) == 0);
}

/* The arguments after the tensor into v (borrowed), defaults for those not
 * given. 0 for a call this path leaves to Python: too many arguments, one given
 * twice, a keyword the function does not take, or a keyword-only one given as
 * another object than its default (global_shape, start, the layout keywords). */
static int fast_bind(int kind, PyObject *args, PyObject *kwargs, PyObject **v)
{
    int count = fast_signatures[kind].count;
    Py_ssize_t given = PyTuple_GET_SIZE(args);
    if (given > count)
        return 0;
    for (int k = 0; k < count; k++)
        v[k] = k < given ? PyTuple_GET_ITEM(args, k) : NULL;
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(kwargs, &pos, &name, &value)) {
        int k = 0;
        while (k < count && !same_name(name, fast_signatures[kind].interned[k]))
            k++;
        if (k < count) {
            if (v[k])
                return 0;
            v[k] = value;
            continue;
        }
        PyObject *keyword_defaults = fast_signatures[kind].kwdefaults;
        if (!PyDict_Check(keyword_defaults) || PyDict_GetItemWithError(keyword_defaults, name) != value)
            return 0; /* (a str key: the lookup cannot fail) */
    }
    for (int k = (int)given; k < count; k++)
        if (!v[k])
            v[k] = PyTuple_GET_ITEM(fast_signatures[kind].defaults, k);
    return 1;
}

/* _validate.real's constraints */
enum { REAL_FINITE, REAL_NON_NEGATIVE, REAL_NOT_NAN };

/* 1 with *out when `obj` is a float or an int (not a bool) that _validate.real
 * accepts as `constraint`, 0 otherwise (other types take the Python path) */
static int fast_real(PyObject *obj, int constraint, double *out)
{
    double x;
    if (PyFloat_CheckExact(obj)) {
        x = PyFloat_AS_DOUBLE(obj);
    } else if (PyLong_CheckExact(obj)) {
        x = PyLong_AsDouble(obj); /* float(int), correctly rounded */
        if (x == -1.0 && PyErr_Occurred()) {
            PyErr_Clear(); /* OverflowError: too large for a float */
            return 0;
        }
    } else {
        return 0;
    }
    *out = x;
    switch (constraint) {
    case REAL_FINITE: return isfinite(x);
    case REAL_NON_NEGATIVE: return 0.0 <= x && x < INFINITY;
    default: return !isnan(x);
    }
}

/* Python's max(x, y) and min(x, y) of two floats, NaN included: y if y > x (y < x), else x */
static double py_max(double x, double y) { return y > x ? y : x; }
static double py_min(double x, double y) { return y < x ? y : x; }

/* init._check_representable: 1 when the distribution stays within the dtype's finite values */
static int fast_fits(int dtype, const vi_params *p)
{
    const double *lim = fast_limits[dtype];
    if (p->dist == VI_UNIFORM) {
        double reach = py_max(fabs(p->p0), fabs(p->p1));
        return reach <= lim[LIM_LARGEST] && p->p1 - p->p0 <= lim[LIM_COMPUTE_LARGEST];
    }
    double low = p->p0 - lim[LIM_Z] * p->p1, high = p->p0 + lim[LIM_Z] * p->p1;
    if (p->dist == VI_TRUNC_NORMAL) {
        low = py_max(low, p->p2);
        high = py_min(high, p->p3);
    }
    return py_max(fabs(low), fabs(high)) <= lim[LIM_LARGEST];
}

/* init._check_uniform_has_values, its quick answer: 1 when a value of the dtype
 * lies in [a, b) (or a == b); 0 when the Python path must look */
static int fast_uniform_has_values(int dtype, double a, double b)
{
    const double *lim = fast_limits[dtype];
    return !(a < b) || (fabs(a) <= lim[LIM_LARGEST]
                        && b - a > 2.0 * (fabs(a) * lim[LIM_EPS] + lim[LIM_SMALLEST]));
}

/* torch's rule for the (out, in, *kernel) layout, as fan_rules.torch_rule_fans: 1 or 0 */
/* The uniform law of that std (bound sqrt(3) std, as init.py computes it) or
 * the zero-mean normal of it: kaiming's and xavier's two distributions */
static void fast_set_std(vi_params *p, int uniform, double std)
{
    if (uniform) {
        double bound = sqrt(3.0) * std;
        p->dist = VI_UNIFORM;
        p->p0 = -bound;
        p->p1 = bound;
    } else {
        p->dist = VI_NORMAL;
        p->p1 = std;
    }
}

static int fast_fans(const fast_target *t, double *fan_in, double *fan_out)
{
    vi_fan_spec spec = {VI_LAYER_DEFAULT, 1, 1, NULL, 0, NULL, 0, NULL};
    return t->ndim >= 2 && vi_fans(t->ndim, t->shape, &spec, fan_in, fan_out) == VI_OK;
}

/* init._kaiming_gain for the names in torch's table, from its cache: 1 with
 * *gain, 0 when the Python path computes it (and caches it for the next call),
 * -1 on error */
static int fast_kaiming_gain(PyObject *a, PyObject *nonlinearity, double *gain)
{
    if (!PyUnicode_CheckExact(nonlinearity) || !(PyLong_CheckExact(a) || PyFloat_CheckExact(a)))
        return 0;
    PyObject *key = PyTuple_Pack(3, nonlinearity, (PyObject *)Py_TYPE(a), a);
    if (!key)
        return -1;
    PyObject *value = PyDict_GetItemWithError(fast_gains, key); /* borrowed */
    Py_DECREF(key);
    if (!value)
        return PyErr_Occurred() ? -1 : 0;
    if (PyFloat_CheckExact(value)) {
        *gain = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    if (!PyLong_CheckExact(value)) /* the table's gains are floats, and 1 */
        return 0;
    *gain = PyLong_AsDouble(value);
    return *gain == -1.0 && PyErr_Occurred() ? -1 : 1;
}

/* The distribution a random kind's call asks for, by init.py's checks and
 * arithmetic: 1 with *p and *generator (borrowed), 0 for the Python path, -1 on error */
static int fast_distribution(int kind, PyObject *const *v, const fast_target *t, vi_params *p,
                             PyObject **generator)
{
    double fan_in, fan_out, gain, std;
    p->p0 = p->p1 = p->p2 = p->p3 = 0.0;
    switch (kind) {
    case FAST_UNIFORM:
        if (!fast_real(v[0], REAL_FINITE, &p->p0) || !fast_real(v[1], REAL_FINITE, &p->p1)
            || p->p0 > p->p1 || isinf(p->p1 - p->p0) || !fast_uniform_has_values(t->dtype, p->p0, p->p1))
            return 0;
        p->dist = VI_UNIFORM;
        *generator = v[2];
        break;
    case FAST_NORMAL:
        if (!fast_real(v[0], REAL_FINITE, &p->p0) || !fast_real(v[1], REAL_NON_NEGATIVE, &p->p1))
            return 0;
        p->dist = VI_NORMAL;
        *generator = v[2];
        break;
    case FAST_TRUNC_NORMAL:
        if (!fast_real(v[0], REAL_FINITE, &p->p0) || !fast_real(v[1], REAL_NON_NEGATIVE, &p->p1)
            || !fast_real(v[2], REAL_NOT_NAN, &p->p2) || !fast_real(v[3], REAL_NOT_NAN, &p->p3) || p->p2 > p->p3)
            return 0;
        if (p->p1 > 0 && p->p2 < p->p3) { /* an interval the core cannot sample */
            double mean, var;
            if (vi_truncnorm_moments((p->p2 - p->p0) / p->p1, (p->p3 - p->p0) / p->p1, &mean, &var) != VI_OK)
                return 0;
        }
        p->dist = VI_TRUNC_NORMAL;
        *generator = v[4];
        break;
    case FAST_KAIMING_UNIFORM:
    case FAST_KAIMING_NORMAL: {
        if (!fast_fans(t, &fan_in, &fan_out) || !PyUnicode_CheckExact(v[1]))
            return 0;
        int fan_mode_in = PyUnicode_CompareWithASCIIString(v[1], "fan_in") == 0;
        if (!fan_mode_in && PyUnicode_CompareWithASCIIString(v[1], "fan_out") != 0)
            return 0;
        int found = fast_kaiming_gain(v[0], v[2], &gain);
        if (found <= 0)
            return found;
        /* gain / sqrt(fan / variance_factor), the factor 1.0 of torch's rule */
        std = gain / sqrt((fan_mode_in ? fan_in : fan_out) / 1.0);
        fast_set_std(p, kind == FAST_KAIMING_UNIFORM, std);
        *generator = v[3];
        break;
    }
    case FAST_XAVIER_UNIFORM:
    case FAST_XAVIER_NORMAL:
        if (!fast_real(v[0], REAL_NON_NEGATIVE, &gain) || !fast_fans(t, &fan_in, &fan_out)
            || fan_in + fan_out == 0)
            return 0;
        /* gain * sqrt(2 variance_factor / (fan_in + fan_out)); the sum of two whole
         * doubles rounds as float() of the int sum does */
        std = gain * sqrt(2.0 * 1.0 / (fan_in + fan_out));
        fast_set_std(p, kind == FAST_XAVIER_UNIFORM, std);
        *generator = v[1];
        break;
    default:
        return 0;
    }
    return fast_fits(t->dtype, p);
}

/* Where the stream comes from, as generator.resolve reads `generator` */
enum { SOURCE_TORCH, SOURCE_DEFAULT, SOURCE_GENERATOR, SOURCE_FIXED };
typedef struct {
    int kind, seed; /* seed: an int seed (warn_if_seed_reused follows the fill) */
    PyObject *generator; /* borrowed */
    uint64_t key, stream;
} fast_source;

/* 1 with *s, 0 for a generator the Python path resolves (or refuses), -1 on error */
static int fast_source_of(PyObject *generator, int is_torch, fast_source *s)
{
    s->generator = generator;
    s->seed = 0;
    s->key = s->stream = 0;
    if (generator == Py_None) {
        s->kind = is_torch ? SOURCE_TORCH : SOURCE_DEFAULT;
        return 1;
    }
    PyTypeObject *type = Py_TYPE(generator);
    if (type == fast_generator_type) {
        s->kind = SOURCE_GENERATOR;
        return 1;
    }
    if (type == fast_stream_type || type == fast_named_stream_type) {
        s->kind = SOURCE_FIXED;
        PyObject *key = PyObject_GetAttr(generator, s_key);
        PyObject *stream = key ? PyObject_GetAttr(generator, s_stream_id) : NULL;
        if (stream) {
            s->key = PyLong_AsUnsignedLongLong(key);
            s->stream = PyLong_AsUnsignedLongLong(stream);
        }
        Py_XDECREF(key);
        Py_XDECREF(stream);
        return stream && !PyErr_Occurred() ? 1 : -1;
    }
    if (PyLong_CheckExact(generator)) {
        s->kind = SOURCE_FIXED;
        s->seed = 1;
        s->key = PyLong_AsUnsignedLongLong(generator);
        if (s->key == (uint64_t)-1 && PyErr_Occurred()) {
            PyErr_Clear(); /* negative, or 2**64 and beyond: check_seed names it */
            return 0;
        }
        return 1;
    }
    return 0;
}

/* 1 while a meta tensor's fill is checked (_arrays.dry_run_active), 0, -1 on error */
static int fast_dry_run_active(void)
{
    PyObject *active = PyObject_GetAttr(fast_dry_run, s_active);
    if (!active)
        return -1;
    int truth = PyObject_IsTrue(active);
    Py_DECREF(active);
    return truth;
}

/* generator._torch_key(None): two words of random_(2**32) on this thread's
 * int64 pair from torch's default generator, low | high << 32. The pair and its
 * NumPy view are generator.py's own (its _torch_words.buffer); a thread's first
 * draw is generator._torch_key's, which makes them. 0 or -1. */
static int fast_torch_key_draw(uint64_t *key)
{
    PyObject *buffer = PyObject_GetAttr(fast_torch_words, s_buffer);
    if (!buffer) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        PyObject *drawn = PyObject_CallOneArg(fast_torch_key, Py_None);
        if (!drawn)
            return -1;
        *key = PyLong_AsUnsignedLongLong(drawn);
        Py_DECREF(drawn);
        return *key == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
    }
    PyObject *words = PyTuple_Check(buffer) && PyTuple_GET_SIZE(buffer) == 2 ? PyTuple_GET_ITEM(buffer, 0) : NULL;
    PyObject *values = words ? PyTuple_GET_ITEM(buffer, 1) : NULL;
    if (!values || !PyArray_Check(values) || PyArray_TYPE((PyArrayObject *)values) != NPY_INT64
        || PyArray_SIZE((PyArrayObject *)values) != 2 || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)values)) {
        Py_DECREF(buffer);
        PyErr_SetString(PyExc_RuntimeError, "fast_fill: generator._torch_words.buffer is not (words, int64 view)");
        return -1;
    }
    PyObject *call[2] = {words, fast_word_bound};
    PyObject *done = PyObject_VectorcallMethod(s_random_, call, 2, NULL);
    if (done) {
        const int64_t *w = PyArray_DATA((PyArrayObject *)values);
        *key = (uint64_t)w[0] | (uint64_t)w[1] << 32; /* each word below 2**32 */
        Py_DECREF(done);
    }
    Py_DECREF(buffer);
    return done ? 0 : -1;
}

/* Take the stream: (key, stream) into s. 0 or -1. */
static int fast_draw(fast_source *s)
{
    PyObject *generator = s->generator, *pair;
    switch (s->kind) {
    case SOURCE_TORCH:
        return fast_torch_key_draw(&s->key);
    case SOURCE_FIXED:
        return 0;
    case SOURCE_DEFAULT:
        if (!(generator = PyObject_GetAttr(fast_generator_module, s_default_generator)))
            return -1;
        pair = PyObject_CallMethodNoArgs(generator, s_take_stream);
        Py_DECREF(generator);
        break;
    default:
        pair = PyObject_CallMethodNoArgs(generator, s_take_stream);
        break;
    }
    if (!pair)
        return -1;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_TypeError, "fast_fill: take_stream() must return (key, stream)");
        return -1;
    }
    s->key = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(pair, 0));
    s->stream = PyErr_Occurred() ? 0 : PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(pair, 1));
    Py_DECREF(pair);
    return PyErr_Occurred() ? -1 : 0;
}

/* zeros_ and ones_: every element of t set to 0 or 1 in its dtype, row by row */
static void fast_write_constant(const fast_target *t, int one)
{
    /* 1 in each vi_dtype: float32, float64, float16, bfloat16 */
    static const uint64_t ones[4] = {0x3F800000u, 0x3FF0000000000000u, 0x3C00u, 0x3F80u};
    const uint64_t bits = one ? ones[t->dtype] : 0;
    const uint32_t word = (uint32_t)bits;
    const uint16_t half = (uint16_t)bits;
    int last = t->ndim - 1; /* the row's axis; a 0-d target is one row of one */
    int64_t row_length = last >= 0 ? t->shape[last] : 1, step = last >= 0 ? t->strides[last] : 0;
    int64_t index[VI_MAX_NDIM];
    memset(index, 0, sizeof index);
    char *row = t->data;
    for (int64_t written = 0; written < t->size; written += row_length) {
        char *at = row;
        if (t->itemsize == 8)
            for (int64_t j = 0; j < row_length; j++, at += step)
                memcpy(at, &bits, 8);
        else if (t->itemsize == 4)
            for (int64_t j = 0; j < row_length; j++, at += step)
                memcpy(at, &word, 4);
        else
            for (int64_t j = 0; j < row_length; j++, at += step)
                memcpy(at, &half, 2);
        for (int k = last - 1; k >= 0; k--) { /* the next row in row-major order */
            if (++index[k] < t->shape[k]) {
                row += t->strides[k];
                break;
            }
            row -= t->strides[k] * (t->shape[k] - 1);
            index[k] = 0;
        }
    }
}

/* fast_fill's end: a tensor's version counter bumped, as after any in-place op */
static PyObject *fast_done(PyObject *target, const fast_target *t)
{
    if (t->is_torch) {
        PyObject *one = PyTuple_Pack(1, target);
        PyObject *done = one ? PyObject_CallOneArg(fast_increment_version, one) : NULL;
        Py_XDECREF(one);
        if (!done)
            return NULL;
        Py_DECREF(done);
    }
    Py_INCREF(target);
    return target;
}

/* fast_fill(kind, target, args, kwargs) -> target, filled; or NotImplemented, having
 * written and drawn nothing, for every call the Python path must make */
static PyObject *py_fast_fill(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4 || !PyLong_CheckExact(args[0]) || !PyTuple_CheckExact(args[2]) || !PyDict_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "fast_fill(kind: int, target, args: tuple, kwargs: dict)");
        return NULL;
    }
    long kind = PyLong_AsLong(args[0]);
    if (kind < 0 || kind >= FAST_KINDS) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "fast_fill: no function has kind %ld", kind);
        return NULL;
    }
    PyObject *target = args[1], *v[FAST_MAX_ARGS], *generator;
    fast_target t;
    vi_params params;
    fast_source source;
    int status;
    if (!fast_signatures[kind].registered || !fast_gains || !fast_bind((int)kind, args[2], args[3], v))
        Py_RETURN_NOTIMPLEMENTED;
    if ((status = fast_target_of(target, &t)) <= 0)
        return status < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    if (kind == FAST_ZEROS || kind == FAST_ONES) {
        if (t.size >= VI_GIL_RELEASE_MIN) {
            Py_BEGIN_ALLOW_THREADS
            fast_write_constant(&t, kind == FAST_ONES);
            Py_END_ALLOW_THREADS
        } else {
            fast_write_constant(&t, kind == FAST_ONES);
        }
        return fast_done(target, &t);
    }
    if ((status = fast_distribution((int)kind, v, &t, &params, &generator)) <= 0
        || (status = fast_source_of(generator, t.is_torch, &source)) <= 0)
        return status < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    /* during a meta tensor's check no stream is taken: the Python path ends it */
    if ((status = fast_dry_run_active()) != 0)
        return status < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    vi_block block = {t.data, t.dtype, t.ndim, t.shape, t.strides, NULL, NULL};
    if (fast_draw(&source) < 0 || run_fill(&block, &params, source.key, source.stream, t.size) < 0)
        return NULL;
    if (source.seed) { /* generator.warn_if_seed_reused(seed, the address written) */
        PyObject *address = PyLong_FromVoidPtr(t.data);
        PyObject *done = address ? PyObject_CallFunctionObjArgs(fast_warn_seed, generator, address, NULL) : NULL;
        Py_XDECREF(address);
        if (!done)
            return NULL;
        Py_DECREF(done);
    }
    return fast_done(target, &t);
}

/* fast_fill_register(kind, fn): `fn` is init.py's function for `kind`, before
 * its wrapper; its parameters after the tensor must be the ones read here */
static PyObject *py_fast_fill_register(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    long kind = nargs == 2 && PyLong_Check(args[0]) ? PyLong_AsLong(args[0]) : -1;
    if (kind < 0 || kind >= FAST_KINDS) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "fast_fill_register(kind: a FAST_ code, fn)");
        return NULL;
    }
    PyObject *code = PyObject_GetAttrString(args[1], "__code__");
    PyObject *names = code ? PyObject_GetAttrString(code, "co_varnames") : NULL;
    PyObject *argcount = names ? PyObject_GetAttrString(code, "co_argcount") : NULL;
    PyObject *defaults = argcount ? PyObject_GetAttrString(args[1], "__defaults__") : NULL;
    PyObject *kwdefaults = defaults ? PyObject_GetAttrString(args[1], "__kwdefaults__") : NULL;
    PyObject *result = NULL;
    int count = fast_signatures[kind].count;
    if (!kwdefaults)
        goto done;
    int same = PyTuple_Check(names) && PyLong_AsLong(argcount) == count + 1
               && (count ? PyTuple_Check(defaults) && PyTuple_GET_SIZE(defaults) == count : defaults == Py_None)
               && (kwdefaults == Py_None || PyDict_Check(kwdefaults));
    for (int k = 0; same && k < count; k++)
        same = PyUnicode_Check(PyTuple_GET_ITEM(names, k + 1))
               && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(names, k + 1), fast_signatures[kind].names[k]) == 0;
    if (!same) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ValueError, "fast_fill_register: %R does not take the arguments kind %ld reads",
                         args[1], kind);
        goto done;
    }
    Py_INCREF(defaults);
    Py_INCREF(kwdefaults);
    Py_XSETREF(fast_signatures[kind].defaults, defaults);
    Py_XSETREF(fast_signatures[kind].kwdefaults, kwdefaults);
    fast_signatures[kind].registered = 1;
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(code);
    Py_XDECREF(names);
    Py_XDECREF(argcount);
    Py_XDECREF(defaults);
    Py_XDECREF(kwdefaults);
    return result;
}

/* A new reference to module.name as a type, or NULL */
static PyTypeObject *type_attr(PyObject *module, const char *name)
{
    PyObject *type = PyObject_GetAttrString(module, name);
    if (type && !PyType_Check(type)) {
        PyErr_Format(PyExc_TypeError, "fast_fill_setup: %s is not a type", name);
        Py_CLEAR(type);
    }
    return (PyTypeObject *)type;
}

/* fast_fill_setup(generator_module, arrays_module, gains, limits): what the one-call
 * path reads of the Python layer. From varinit.generator: Generator, Stream,
 * NamedStream, default_generator (at each call), _torch_words, _torch_key,
 * warn_if_seed_reused; from varinit._arrays: _dry_run; gains is
 * init._TORCH_GAINS; limits maps each fillable NumPy dtype to init._limits(dtype). */
static PyObject *py_fast_fill_setup(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4 || !PyDict_Check(args[2]) || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "fast_fill_setup(generator_module, arrays_module, gains: dict, limits: dict)");
        return NULL;
    }
    double limits[4][LIM_COUNT];
    int seen = 0;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(args[3], &pos, &key, &value)) {
        int code = PyArray_DescrCheck(key) ? descr_code((PyArray_Descr *)key) : -1;
        if (code < 0 || !PyTuple_Check(value) || PyTuple_GET_SIZE(value) != LIM_COUNT) {
            PyErr_SetString(PyExc_TypeError, "fast_fill_setup: limits must map NumPy dtypes to 5-tuples");
            return NULL;
        }
        for (int k = 0; k < LIM_COUNT; k++)
            if ((limits[code][k] = PyFloat_AsDouble(PyTuple_GET_ITEM(value, k))) == -1.0 && PyErr_Occurred())
                return NULL;
        seen |= 1 << code;
    }
    if (seen != 15) {
        PyErr_SetString(PyExc_ValueError, "fast_fill_setup: limits needs float16, bfloat16, float32 and float64");
        return NULL;
    }
    PyTypeObject *generator = type_attr(args[0], "Generator"), *stream = generator ? type_attr(args[0], "Stream") : NULL,
                 *named = stream ? type_attr(args[0], "NamedStream") : NULL;
    PyObject *words = named ? PyObject_GetAttrString(args[0], "_torch_words") : NULL;
    PyObject *draw = words ? PyObject_GetAttrString(args[0], "_torch_key") : NULL;
    PyObject *warn = draw ? PyObject_GetAttrString(args[0], "warn_if_seed_reused") : NULL;
    PyObject *dry_run = warn ? PyObject_GetAttrString(args[1], "_dry_run") : NULL;
    if (!dry_run) {
        Py_XDECREF(generator); Py_XDECREF(stream); Py_XDECREF(named);
        Py_XDECREF(words); Py_XDECREF(draw); Py_XDECREF(warn);
        return NULL;
    }
    memcpy(fast_limits, limits, sizeof limits);
    Py_XSETREF(fast_generator_type, generator);
    Py_XSETREF(fast_stream_type, stream);
    Py_XSETREF(fast_named_stream_type, named);
    Py_XSETREF(fast_torch_words, words);
    Py_XSETREF(fast_torch_key, draw);
    Py_XSETREF(fast_warn_seed, warn);
    Py_XSETREF(fast_dry_run, dry_run);
    Py_XSETREF(fast_generator_module, Py_NewRef(args[0]));
    Py_XSETREF(fast_gains, Py_NewRef(args[2]));
    Py_RETURN_NONE;
}

/* set_torch_calls(Tensor, Parameter, has_torch_function_unary, _increment_version):
 * the torch side of the one-call path, once torch is imported */
static PyObject *py_set_torch_calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyCallable_Check(args[2])
        || !PyCallable_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "set_torch_calls(Tensor, Parameter, has_torch_function_unary, increment_version)");
        return NULL;
    }
    Py_XSETREF(fast_has_torch_function, Py_NewRef(args[2]));
    Py_XSETREF(fast_increment_version, Py_NewRef(args[3]));
    Py_XSETREF(fast_parameter_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(fast_tensor_type, (PyTypeObject *)Py_NewRef(args[0]));
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
    {"tensor_view", (PyCFunction)(void (*)(void))py_tensor_view, METH_FASTCALL,
     "tensor_view(tensor, flags) -> ndarray sharing a CPU torch tensor's memory"
     " (None with TV_CHECK_ONLY), or a str naming the rule the tensor breaks"},
    {"set_tensor_kinds", (PyCFunction)(void (*)(void))py_set_tensor_kinds, METH_FASTCALL,
     "set_tensor_kinds(dtypes, strided, exchange) -> True when torch's DLPack exchange table is used"},
    {"fast_fill", (PyCFunction)(void (*)(void))py_fast_fill, METH_FASTCALL,
     "fast_fill(kind, target, args, kwargs) -> target filled as init.py's function `kind` would,"
     " or NotImplemented (nothing written, no stream taken) for a call the Python path makes"},
    {"fast_fill_register", (PyCFunction)(void (*)(void))py_fast_fill_register, METH_FASTCALL,
     "fast_fill_register(kind, fn): fn's defaults, after checking it takes the arguments kind reads"},
    {"fast_fill_setup", (PyCFunction)(void (*)(void))py_fast_fill_setup, METH_FASTCALL,
     "fast_fill_setup(generator_module, arrays_module, gains, limits): what fast_fill reads of Python"},
    {"set_torch_calls", (PyCFunction)(void (*)(void))py_set_torch_calls, METH_FASTCALL,
     "set_torch_calls(Tensor, Parameter, has_torch_function_unary, increment_version)"},
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
    static const struct { PyObject **slot; const char *name; } names[] = {
        {&s_is_inference, "is_inference"}, {&s_is_cpu, "is_cpu"}, {&s_layout, "layout"},
        {&s_python_dispatch, "_python_dispatch"}, {&s_is_nested, "is_nested"}, {&s_is_neg, "is_neg"},
        {&s_dtype, "dtype"}, {&s_shape, "shape"}, {&s_stride, "stride"}, {&s_data_ptr, "data_ptr"},
        {&s_active, "active"}, {&s_buffer, "buffer"}, {&s_random_, "random_"}, {&s_take_stream, "take_stream"},
        {&s_key, "_key"}, {&s_stream_id, "_stream_id"}, {&s_default_generator, "default_generator"},
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (!*names[k].slot && !(*names[k].slot = PyUnicode_InternFromString(names[k].name))) {
            Py_DECREF(m);
            return NULL;
        }
    for (int kind = 0; kind < FAST_KINDS; kind++)
        for (int k = 0; k < fast_signatures[kind].count; k++)
            if (!fast_signatures[kind].interned[k]
                && !(fast_signatures[kind].interned[k] = PyUnicode_InternFromString(fast_signatures[kind].names[k]))) {
                Py_DECREF(m);
                return NULL;
            }
    if (!fast_word_bound && !(fast_word_bound = PyLong_FromUnsignedLongLong(1ull << 32))) {
        Py_DECREF(m);
        return NULL;
    }
    LayoutError = PyErr_NewException("varinit._core.LayoutError", PyExc_ValueError, NULL);
    if (!LayoutError || PyModule_AddObjectRef(m, "LayoutError", LayoutError) < 0
        || PyModule_AddIntConstant(m, "STREAM_VERSION", VI_STREAM_VERSION) < 0
        || PyModule_AddIntConstant(m, "UNIFORM", VI_UNIFORM) < 0
        || PyModule_AddIntConstant(m, "NORMAL", VI_NORMAL) < 0
        || PyModule_AddIntConstant(m, "TRUNC_NORMAL", VI_TRUNC_NORMAL) < 0
        || PyModule_AddIntConstant(m, "F32", VI_F32) < 0
        || PyModule_AddIntConstant(m, "F64", VI_F64) < 0
        || PyModule_AddIntConstant(m, "TV_ALLOW_INFERENCE", TV_ALLOW_INFERENCE) < 0
        || PyModule_AddIntConstant(m, "TV_ALLOW_IRREGULAR", TV_ALLOW_IRREGULAR) < 0
        || PyModule_AddIntConstant(m, "TV_CHECK_ONLY", TV_CHECK_ONLY) < 0
        || PyModule_AddIntConstant(m, "LAYER_DEFAULT", VI_LAYER_DEFAULT) < 0
        || PyModule_AddIntConstant(m, "LAYER_LINEAR", VI_LAYER_LINEAR) < 0
        || PyModule_AddIntConstant(m, "LAYER_CONV", VI_LAYER_CONV) < 0
        || PyModule_AddIntConstant(m, "LAYER_CONV_TRANSPOSE", VI_LAYER_CONV_TRANSPOSE) < 0
        || PyModule_AddIntConstant(m, "FAST_UNIFORM", FAST_UNIFORM) < 0
        || PyModule_AddIntConstant(m, "FAST_NORMAL", FAST_NORMAL) < 0
        || PyModule_AddIntConstant(m, "FAST_TRUNC_NORMAL", FAST_TRUNC_NORMAL) < 0
        || PyModule_AddIntConstant(m, "FAST_KAIMING_UNIFORM", FAST_KAIMING_UNIFORM) < 0
        || PyModule_AddIntConstant(m, "FAST_KAIMING_NORMAL", FAST_KAIMING_NORMAL) < 0
        || PyModule_AddIntConstant(m, "FAST_XAVIER_UNIFORM", FAST_XAVIER_UNIFORM) < 0
        || PyModule_AddIntConstant(m, "FAST_XAVIER_NORMAL", FAST_XAVIER_NORMAL) < 0
        || PyModule_AddIntConstant(m, "FAST_ZEROS", FAST_ZEROS) < 0
        || PyModule_AddIntConstant(m, "FAST_ONES", FAST_ONES) < 0) {
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
