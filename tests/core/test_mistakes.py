"""One catalogue of argument mistakes thrown at every public function's every
relevant argument, so that the same mistake raises the same exception everywhere.

Each argument is declared with its kind (a finite number, a count, a flag, a
choice, ...); each kind lists the mistakes that apply to it and the exception
each must raise: TypeError for a wrong type (bool or str where a number is
expected, a float where an integer is expected), ValueError for a wrong value
(NaN, inf, a negative where >= 0 is needed, an integer beyond int64 or
uint64, an unknown choice). Every case also checks that the message names the
argument, that the target (arrays, tensors, models) is bit-identical
afterwards and that no stream was taken (varinit's default generator and
torch's RNG state are unchanged).

To cover a new function, add one `case(...)` line to CASES.
"""
import math
import re
import warnings

import numpy as np
import pytest

import varinit
import varinit.diagnostics as vd
import varinit.layers as vl
import varinit.recipes as vr

torch = pytest.importorskip("torch")
import varinit.torch as vt  # noqa: E402

NAN, INF = float("nan"), float("inf")

# ---- kinds of argument: mistake -> (bad value, exception it must raise) -------------
NUMBER = {"bool": (True, TypeError), "str": ("1", TypeError), "beyond_float": (10**400, ValueError)}
NOT_NAN = {**NUMBER, "nan": (NAN, ValueError)}
FINITE = {**NOT_NAN, "inf": (INF, ValueError), "minus_inf": (-INF, ValueError)}
NON_NEGATIVE = {**FINITE, "negative": (-1.0, ValueError)}
POSITIVE = {**NON_NEGATIVE, "zero": (0.0, ValueError)}
UNIT = {**NON_NEGATIVE, "above_one": (1.5, ValueError)}  # probabilities, fractions
INTEGER = {"bool": (True, TypeError), "str": ("1", TypeError), "float": (2.5, TypeError),
           "whole_float": (2.0, TypeError), "beyond_int64": (2**63, ValueError)}
COUNT = {**INTEGER, "negative": (-1, ValueError)}
SEED = {"bool": (True, TypeError), "str": ("1", TypeError), "float": (1.5, TypeError),
        "negative": (-1, ValueError), "beyond_uint64": (2**64, ValueError)}
FLAG = {"int": (1, TypeError), "str": ("yes", TypeError), "none": (None, TypeError)}
CHOICE = {"unknown": ("no_such_choice", ValueError), "not_a_str": (1, TypeError)}
SHAPE = {"not_a_sequence": (6, TypeError), "float_entry": ((2.5, 6), TypeError),
         "negative_entry": ((-1, 6), ValueError), "beyond_int64": ((2**63, 6), ValueError)}
AXIS = {"bool": (True, TypeError), "str": ("1", TypeError), "float": (1.0, TypeError),
        "out_of_range": (5, ValueError)}
REGEX = {"not_a_str": (1, TypeError), "bad_pattern": ("(", ValueError)}
FORMAT_LIST = {"unknown": (("no_such_format",), ValueError), "not_a_sequence": (1, TypeError),
               "str": ("float16", TypeError)}
ACTIVATION = {"unknown": ("no_such_activation", ValueError), "not_a_name": (1, TypeError)}
INIT = {**{m: v for m, v in NON_NEGATIVE.items() if m != "str"}, "unknown": ("no_such_init", ValueError)}
# torch.nn.init parity: calculate_gain refuses every bad slope and every bad name with
# a ValueError ("negative_slope ... not a valid number", "Unsupported nonlinearity ..."),
# and varinit's copy of it (and kaiming_*'s `a`, which it checks) keeps that type.
TORCH_SLOPE = ({mistake: (value, ValueError) for mistake, (value, _) in FINITE.items()},
               "negative_slope")
TORCH_NAME = ({mistake: (value, ValueError) for mistake, (value, _) in CHOICE.items()},
              "nonlinearity")


# ---- targets ---------------------------------------------------------------------
def matrix(shape=(4, 6), dtype=np.float32):
    """A recognisable pattern: any write shows up in a bytes comparison."""
    return (np.arange(math.prod(shape)) * 0.5 + 0.25).reshape(shape).astype(dtype)


def conv():
    return matrix((8, 4, 3, 3))


def stacked():
    """Three stacked (in, out) kernels: batch_axis=0."""
    return matrix((3, 4, 6))


def parameter():
    """A torch target: its fills draw their key from torch's generator."""
    return torch.nn.Parameter(torch.from_numpy(matrix()))


def net():
    return [vl.Layer(matrix((6, 5), np.float64), matrix((6,), np.float64), "tanh"),
            vl.Layer(matrix((3, 6), np.float64), None, "linear")]


def module():
    return torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


def data():
    return np.random.default_rng(0).standard_normal((64, 5))


def report():
    return varinit.propagate(net(), batch=4)


def snapshot(obj):
    """Bytes of every array or tensor reachable from obj (models, layers, lists)."""
    if isinstance(obj, np.ndarray):
        return [obj.tobytes()]
    if isinstance(obj, torch.Tensor):
        return [obj.detach().numpy().tobytes()]
    if isinstance(obj, torch.nn.Module):
        return [t.detach().numpy().tobytes() for t in obj.state_dict().values()]
    if isinstance(obj, vl.Layer):
        return snapshot([obj.weight, obj.bias, obj.g])
    if isinstance(obj, (list, tuple)):
        return [b for item in obj for b in snapshot(item)]
    if isinstance(obj, dict):
        return snapshot(list(obj.values()))
    return []


# ---- the functions ---------------------------------------------------------------
CASES = []


def case(fn, valid, **arguments):
    """One public function: `valid()` gives (args, kwargs) of a correct call on fresh
    targets; each keyword names an argument and its kind (or (kind, the word the
    message must use for it, when that is not the argument's name))."""
    CASES.append((fn, valid, arguments))


def positional(fn):
    """fn called with its keywords passed by position (C functions take no keywords)."""
    def call(**kwargs):
        return fn(*kwargs.values())

    call.__module__, call.__qualname__, call.function = fn.__module__, fn.__qualname__, fn
    return call


def on(target, **kwargs):
    return lambda: ((target(),), dict(kwargs))


def call(**kwargs):
    return lambda: ((), dict(kwargs))


REGION = dict(global_shape=(4, 6), start=(0, 0))
REGION_KINDS = dict(global_shape=SHAPE, start=SHAPE, generator=SEED)
LINEAR_LAYOUT = dict(in_axis=1, out_axis=0, keep_prob=0.5, density=0.5, input_var=2.0, blocks=2)
LINEAR_KINDS = dict(in_axis=AXIS, out_axis=AXIS, keep_prob=UNIT, density=UNIT, input_var=POSITIVE,
                    blocks=COUNT)
CONV_LAYOUT = dict(layer="conv_transpose", groups=2, stride=2, dilation=1, phase_balanced=True)
CONV_KINDS = dict(layer=CHOICE, groups=COUNT, stride=COUNT, dilation=COUNT, phase_balanced=FLAG)

case(varinit.uniform_, on(matrix, a=-1.0, b=1.0, **REGION), a=FINITE, b=FINITE, **REGION_KINDS)
case(varinit.normal_, on(matrix, mean=0.0, std=1.0, **REGION), mean=FINITE, std=NON_NEGATIVE,
     **REGION_KINDS)
case(varinit.trunc_normal_, on(matrix, mean=0.0, std=1.0, a=-2.0, b=2.0, **REGION), mean=FINITE,
     std=NON_NEGATIVE, a=NOT_NAN, b=NOT_NAN, **REGION_KINDS)
case(varinit.constant_, on(matrix, val=0.5), val=NUMBER)
case(varinit.dirac_, on(conv, groups=2), groups=COUNT)
case(varinit.orthogonal_, on(matrix, gain=1.0, blocks=2), gain=FINITE, blocks=COUNT, generator=SEED)
case(varinit.sparse_, on(matrix, sparsity=0.5, std=0.1), sparsity=UNIT, std=NON_NEGATIVE,
     generator=SEED)
case(varinit.xavier_uniform_, on(matrix, gain=1.0, **REGION), gain=NON_NEGATIVE, **REGION_KINDS)
case(varinit.xavier_normal_, on(matrix, gain=1.0, **REGION), gain=NON_NEGATIVE, **REGION_KINDS)
case(varinit.kaiming_uniform_, on(matrix, a=0.1, mode="fan_in", nonlinearity="leaky_relu", **REGION),
     a=TORCH_SLOPE, mode=CHOICE, nonlinearity=ACTIVATION, **REGION_KINDS)
case(varinit.kaiming_normal_, on(matrix, a=0.1, mode="fan_in", nonlinearity="leaky_relu", **REGION),
     a=TORCH_SLOPE, mode=CHOICE, nonlinearity=ACTIVATION, **REGION_KINDS)
case(varinit.variance_scaling_, on(matrix, scale=1.0, mode="fan_avg", distribution="uniform", **REGION),
     scale=POSITIVE, mode=CHOICE, distribution=CHOICE, **REGION_KINDS)
case(varinit.normal_, on(parameter, mean=0.0, std=1.0), mean=FINITE, std=NON_NEGATIVE)
case(varinit.kaiming_uniform_, on(parameter, a=0.1, mode="fan_out", **LINEAR_LAYOUT), a=TORCH_SLOPE,
     mode=CHOICE, **LINEAR_KINDS)
case(varinit.lecun_normal_, on(matrix, **REGION), **REGION_KINDS)
case(varinit.lecun_uniform_, on(matrix, **REGION), **REGION_KINDS)
for fan_based in (varinit.xavier_uniform_, varinit.xavier_normal_, varinit.kaiming_uniform_,
                  varinit.kaiming_normal_, varinit.variance_scaling_, varinit.lecun_normal_,
                  varinit.lecun_uniform_):
    case(fan_based, on(matrix, **LINEAR_LAYOUT), **LINEAR_KINDS)
    case(fan_based, on(conv, **CONV_LAYOUT), **CONV_KINDS)
    case(fan_based, on(stacked, in_axis=1, out_axis=2, batch_axis=0), batch_axis=AXIS)
case(varinit.calculate_gain, call(nonlinearity="leaky_relu", param=0.2), nonlinearity=TORCH_NAME,
     param=TORCH_SLOPE)
case(varinit.gain, call(activation="leaky_relu", param=0.2), activation=ACTIVATION, param=FINITE)
case(varinit.fans, call(shape=(8, 4, 3, 3), layer="conv_transpose", groups=2, stride=2, blocks=2),
     shape=SHAPE, layer=CHOICE, groups=COUNT, stride=COUNT, blocks=COUNT)
case(varinit.fans, call(shape=(8, 4), in_axis=1, out_axis=0), in_axis=AXIS, out_axis=AXIS)
case(varinit.fans, call(shape=(3, 8, 4), in_axis=2, out_axis=1, batch_axis=0), batch_axis=AXIS)
case(varinit.Generator, call(seed=1), seed=SEED)
case(varinit.manual_seed, call(seed=1), seed=SEED)
case(varinit.Stream, call(key=1, stream_id=2), key=SEED, stream_id=SEED)
case(varinit.NamedStream, call(seed=1, name="w"), seed=SEED)
case(positional(varinit.set_num_threads), call(n=1), n=COUNT)
case(varinit.propagate, lambda: ((net(),), dict(batch=4, seed=0, precision=True, formats=("int8",),
                                                int8_clip=4.0)),
     batch=COUNT, seed=SEED, precision=FLAG, formats=FORMAT_LIST, int8_clip=POSITIVE)

case(vr.depth_scale, call(scheme="fixup", num_layers=4, layers_per_branch=2, num_decoder_layers=3),
     scheme=CHOICE, num_layers=COUNT, layers_per_branch=COUNT, num_decoder_layers=COUNT)
case(vr.branch_scale, call(num_branches=4), num_branches=COUNT)
case(vr.identity_, on(conv, noise_std=0.1, groups=2), noise_std=NON_NEGATIVE, groups=COUNT,
     generator=SEED)
case(vr.attention_qk_std, call(d_model=8, d_head=4, target_logit_var=1.0, input_var=1.0, scaled=True),
     d_model=COUNT, d_head=COUNT, target_logit_var=POSITIVE, input_var=POSITIVE, scaled=FLAG)
case(vr.attention_qk_, on(matrix, d_head=2, target_logit_var=1.0, input_var=1.0, scaled=False,
                          in_axis=1),
     d_head=COUNT, target_logit_var=POSITIVE, input_var=POSITIVE, scaled=FLAG, in_axis=AXIS,
     generator=SEED)
case(vr.mup_scales, call(kind="output", base_width=4, width=8, optimizer="sgd"), kind=CHOICE,
     base_width=COUNT, width=COUNT, optimizer=CHOICE)
case(vr.mup_init_, on(matrix, kind="output", base_width=4, width=8, gain=1.0, **LINEAR_LAYOUT),
     kind=CHOICE, base_width=COUNT, width=COUNT, gain=NON_NEGATIVE, generator=SEED, **LINEAR_KINDS)
case(vr.mup_init_, on(conv, kind="hidden", base_width=4, width=8, **CONV_LAYOUT), **CONV_KINDS)
case(vr.whitening_, on(matrix, cov=np.eye(6), gain=1.0, in_axis=1, eps=0.1), gain=FINITE, eps=NON_NEGATIVE,
     in_axis=AXIS, generator=SEED)
case(vr.delta_orthogonal_, on(conv, gain=1.0), gain=FINITE, generator=SEED)
case(vr.optimistic_bias_, on(matrix, max_reward=1.0, discount=0.5), max_reward=FINITE, discount=UNIT)
case(vr.optimistic_bias_, on(matrix, value=1.0), value=FINITE)
case(vr.prior_bias_, on(matrix, prior=0.1), prior=UNIT)

case(vd.propagate, lambda: ((net(),), dict(batch=4)), batch=COUNT, seed=SEED)
case(vd.compare_text, lambda: (([report()],), dict(every=2)), every=COUNT)
case(vd.PropagationReport.to_text, lambda: ((report(),), dict(every=2)), every=COUNT)
case(vd.criticality, call(activation="tanh", sigma_w=1.5, sigma_b=0.1, q0=1.0), activation=ACTIVATION,
     sigma_w=POSITIVE, sigma_b=NON_NEGATIVE, q0=POSITIVE)
case(vd.critical_sigma_w, call(activation="tanh", sigma_b=0.1, q0=1.0), activation=ACTIVATION,
     sigma_b=NON_NEGATIVE, q0=POSITIVE)
case(vd.range_checks, call(x=np.ones(4), formats=("int8",), int8_clip=4.0), formats=FORMAT_LIST,
     int8_clip=POSITIVE)
case(vd.min_weight_std, call(depth=3, width=8, activation="relu", input_rms=1.0, floor=1e-3),
     depth=COUNT, width=COUNT, activation=ACTIVATION, input_rms=POSITIVE, floor=POSITIVE)
case(vd.int8_input_scale, call(std=1.0, clip=4.0, max_saturation=1e-3), std=POSITIVE, clip=POSITIVE,
     max_saturation=UNIT)
case(vd.quantize_int8, call(x=np.ones(4), clip=4.0), clip=POSITIVE)
case(vd.adam_lr, call(init_std=0.1, rho=0.02), init_std=POSITIVE, rho=POSITIVE)
case(vd.critical_input_scale, call(weight_std=0.1, fan_in=64, lr=0.1, grad_rms=1.0, batch=2,
                                   tolerance=1.0),
     weight_std=POSITIVE, fan_in=POSITIVE, lr=POSITIVE, grad_rms=POSITIVE, batch=COUNT, tolerance=POSITIVE)
case(vd.gradient_norm_growth, call(alpha=1.1, depth=3), alpha=POSITIVE, depth=COUNT)
case(vd.plot_weight_histograms, call(inits=("naive",), shape=(4, 6), activation="relu", seed=0),
     shape=SHAPE, activation=ACTIVATION, seed=SEED)
case(vd.mlp_spec, call(depth=2, width=4, activation="relu", init="naive", seed=0, in_features=3,
                       bias_std=0.1),
     depth=COUNT, width=COUNT, activation=ACTIVATION, init=INIT, seed=SEED, in_features=COUNT,
     bias_std=NON_NEGATIVE)

case(vl.init_layers, on(net, scheme="xavier", mode="fan_out", distribution="uniform", residual_scale=0.5,
                        by_name=True, gain_rule="torch"),
     scheme=CHOICE, mode=CHOICE, distribution=CHOICE, residual_scale=POSITIVE, by_name=FLAG,
     gain_rule=CHOICE, generator=SEED)
case(vl.lsuv, lambda: ((net(), data()), dict(tol=0.1, max_iter=3, mean_correction=True,
                                               orthogonal_init=True, by_name=True)),
     tol=UNIT, max_iter=COUNT, mean_correction=FLAG, orthogonal_init=FLAG, by_name=FLAG, generator=SEED)

case(vt.init_module, on(module, scheme="kaiming", mode="fan_in", distribution="normal", residual_scale=0.5,
                        residual_pattern="^2$", embedding_std=1.0, phase_balanced=True,
                        infer_dropout=True, by_name=True, gain_rule="exact"),
     scheme=CHOICE, mode=CHOICE, distribution=CHOICE, residual_scale=POSITIVE, residual_pattern=REGEX,
     embedding_std=NON_NEGATIVE, phase_balanced=FLAG, infer_dropout=FLAG, by_name=FLAG, gain_rule=CHOICE,
     generator=SEED)
case(vt.init_module, lambda: ((module(), torch.from_numpy(data()).float()),
                              dict(target=1.0, residual="depth", distribution="uniform")),
     target=POSITIVE, residual=CHOICE, distribution=CHOICE, generator=SEED)
case(vt.lsuv, lambda: ((module(), torch.from_numpy(data()).float()),
                       dict(tol=0.1, max_iter=3, mean_correction=True, orthogonal_init=True, by_name=True)),
     tol=UNIT, max_iter=COUNT, mean_correction=FLAG, orthogonal_init=FLAG, by_name=FLAG, generator=SEED)

try:
    import varinit.scale_out.dask_arrays as vda
except ImportError:  # dask is optional
    vda = None
if vda is not None:
    for constructor in (vda.uniform, vda.normal, vda.trunc_normal, vda.xavier_uniform, vda.xavier_normal,
                        vda.kaiming_uniform, vda.kaiming_normal, vda.variance_scaling, vda.lecun_normal,
                        vda.lecun_uniform):
        case(constructor, call(shape=(4, 6), chunks=2, generator=0), shape=SHAPE, generator=SEED)
    case(vda.normal, call(shape=(4, 6), mean=0.0, std=1.0), mean=FINITE, std=NON_NEGATIVE)
    case(vda.kaiming_normal, call(shape=(4, 6), a=0.1, mode="fan_in"), a=TORCH_SLOPE, mode=CHOICE)


def label(fn):
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__qualname__}"


def expand():
    for fn, valid, arguments in CASES:
        for argument, kind in arguments.items():
            kind, word = kind if isinstance(kind, tuple) else (kind, argument)
            yield pytest.param(fn, valid, argument, kind, word, id=f"{label(fn)}-{argument}")


def problem(fn, valid, argument, value, error, word):
    """What is wrong with fn's answer to `value` as `argument`, or None."""
    args, kwargs = valid()
    kwargs[argument] = value
    before = snapshot(args)
    state = varinit.default_generator.get_state()
    torch_state = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the type is what is checked
            caught = exc
        else:
            return "no exception"
    if type(caught) is not error:
        return f"{type(caught).__name__} instead of {error.__name__}: {caught}"
    if not re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", str(caught), re.IGNORECASE):
        return f"the message does not name {word}: {caught}"
    if snapshot(args) != before:
        return "the target was changed"
    if varinit.default_generator.get_state() != state:
        return "a stream was taken"
    if not torch.equal(torch.get_rng_state(), torch_state):
        return "torch's generator advanced"
    return None


VALID = set()


@pytest.mark.parametrize("fn,valid,argument,kind,word", list(expand()))
def test_mistakes(fn, valid, argument, kind, word):
    if valid not in VALID:  # the call is valid before one argument is spoiled
        args, kwargs = valid()
        answer = fn(*args, **kwargs)
        if type(answer).__name__ == "Figure":
            vd.plots.pyplot().close(answer)
        VALID.add(valid)
    problems = {mistake: problem(fn, valid, argument, value, error, word)
                for mistake, (value, error) in kind.items()}
    assert not {m: p for m, p in problems.items() if p}


def test_every_public_function_with_arguments_is_in_the_catalogue():
    covered = {getattr(fn, "function", fn) for fn, _, _ in CASES}
    namespaces = [(varinit, varinit.__all__), (vr, vr.__all__), (vd, vd.__all__), (vl, vl.__all__),
                  (vt, vt.__all__)] + ([(vda, vda.__all__)] if vda is not None else [])
    # functions whose only arguments are targets, data or models: test_bad_input covers them
    only_targets = {varinit.ones_, varinit.zeros_, varinit.eye_, varinit.initial_seed, varinit.isa,
                    varinit.cpu_features, varinit.get_num_threads, vr.zero_branch_output_,
                    vr.zero_gamma_, vd.plot_propagation, vl.forward, vl.backward, vl.weight_norm_init,
                    vt.weight_norm_init, vt.activation_of_module,
                    vt.trace}   # a model and its example inputs: tests/torch/test_graph.py
    missing = sorted(
        f"{ns.__name__}.{name}" for ns, names in namespaces for name in names
        if callable(getattr(ns, name)) and not isinstance(getattr(ns, name), type)
        and getattr(ns, name) not in covered | only_targets
    )
    assert not missing


# ---- values at the edge: each was once a ZeroDivisionError, OverflowError or NumPy error --
EDGES = [  # (id, call, exception or None for a valid no-op, the word its message must use)
    ("tiny_input_var_kaiming", lambda: varinit.kaiming_normal_(matrix(), input_var=1e-310), ValueError,
     "input_var"),
    ("tiny_input_var_xavier", lambda: varinit.xavier_uniform_(matrix(), input_var=1e-310), ValueError,
     "input_var"),
    ("global_shape_beyond_int64_elements",
     lambda: varinit.normal_(matrix((1, 1)), global_shape=(2**32, 2**32), start=(0, 0)), ValueError,
     "global_shape"),
    ("mup_init_empty", lambda: vr.mup_init_(matrix((4, 0)), "output", 4, 8), None, None),
    ("whitening_empty_input", lambda: vr.whitening_(matrix((4, 0)), np.eye(0)), None, None),
    ("whitening_empty_output", lambda: vr.whitening_(matrix((0, 4)), np.eye(4)), None, None),
    ("delta_orthogonal_empty", lambda: vr.delta_orthogonal_(matrix((4, 4, 0))), None, None),
    ("discounted_return_overflows", lambda: vr.optimistic_bias_(matrix((3,)), max_reward=1e308,
                                                                 discount=0.5), ValueError, "max_reward"),
    ("slope_of_10_to_400", lambda: varinit.kaiming_normal_(matrix(), a=10**400), ValueError,
     "negative_slope"),
    ("slope_of_10_to_5000", lambda: varinit.calculate_gain("leaky_relu", 10**5000), ValueError,
     "negative_slope"),
]
if vda is not None:
    EDGES.append(("dask_shape_beyond_int64_elements", lambda: vda.normal((2**62, 4)), ValueError, "shape"))


@pytest.mark.parametrize("make,error,word", [e[1:] for e in EDGES], ids=[e[0] for e in EDGES])
def test_edge_values(make, error, word):
    state = varinit.default_generator.get_state()
    if error is None:
        make()
    else:
        with pytest.raises(error, match=rf"(?<![A-Za-z0-9_]){word}(?![A-Za-z0-9_])"):
            make()
    assert varinit.default_generator.get_state() == state


def test_overflowing_intermediate_values_give_the_limit():
    assert varinit.calculate_gain("leaky_relu", 1e200) == 0.0  # sqrt(2 / (1 + slope^2)) -> 0
    assert vd.critical_input_scale(1.0, 1.0, lr=1e-200, grad_rms=1e-200) == math.inf
