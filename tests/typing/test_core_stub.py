"""python/varinit/_core.pyi describes the built C extension: the same functions,
classes and constants, each function with the number of positional arguments
its C code takes (csrc/_module.c)."""
import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from varinit import _core

STUB = Path(__file__).resolve().parents[2] / "python" / "varinit" / "_core.pyi"


def stub_names():
    """{name: ast node} of the stub's top-level functions, classes and annotated constants."""
    tree = ast.parse(STUB.read_text("utf-8"))
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def test_the_stub_names_what_the_extension_holds():
    runtime = {name for name in dir(_core) if not name.startswith("__")}
    assert set(stub_names()) == runtime


def test_constants_are_ints_and_layout_error_a_value_error():
    for name, node in stub_names().items():
        if isinstance(node, ast.AnnAssign):
            assert type(getattr(_core, name)) is int, name
    assert issubclass(_core.LayoutError, ValueError)


def positional_range(node):
    """(fewest, most) positional arguments a stub function takes."""
    args = node.args.posonlyargs + node.args.args
    return len(args) - len(node.args.defaults), len(args)


# One call per function with the fewest and with the most arguments the stub allows.
CALLS = {
    "fill": lambda n: (np.empty(4, np.float32), _core.NORMAL, 0.0, 1.0, 0.0, 0.0, 1, 0, None, None),
    "fans": lambda n: ((8, 4, 3), _core.LAYER_CONV, 1, None, 1, None, None)[:n],
    "phase_scale": lambda n: ((3,), 2, 1)[:n],
    "philox4x32_10": lambda n: ((0, 0, 0, 0), (0, 0)),
    "normal_cdf": lambda n: (0.5,),
    "truncnorm_moments": lambda n: (-2.0, 2.0),
    "normal_max_abs_z": lambda n: (_core.F32,),
    "isa": lambda n: (),
    "cpu_features": lambda n: (),
    "available_isas": lambda n: (),
    "get_num_threads": lambda n: (),
    "set_num_threads": lambda n: (_core.get_num_threads(),),
}
RESULTS = {"fill": type(None), "fans": tuple, "phase_scale": np.ndarray, "philox4x32_10": tuple,
           "normal_cdf": float, "truncnorm_moments": tuple, "normal_max_abs_z": float, "isa": str,
           "cpu_features": dict, "available_isas": list, "get_num_threads": int, "set_num_threads": type(None)}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_function_takes_the_arguments_and_returns_the_type_the_stub_declares(name):
    node = stub_names()[name]
    assert isinstance(node, ast.FunctionDef)
    fewest, most = positional_range(node)
    for count in sorted({fewest, most}):
        result = getattr(_core, name)(*CALLS[name](count))
        assert isinstance(result, RESULTS[name]), (name, count, result)
    declared = ast.unparse(node.returns)
    assert {type(None): "None", tuple: "tuple", np.ndarray: "NDArray", float: "float", str: "str",
            dict: "dict", list: "list", int: "int"}[RESULTS[name]] in declared, (name, declared)
    with pytest.raises(TypeError):
        getattr(_core, name)(*CALLS[name](most), 0)   # one argument too many


def test_every_function_is_covered_above():
    functions = {name for name, node in stub_names().items() if isinstance(node, ast.FunctionDef)}
    # tests/torch exercises these (test_direct_tensor_path.py, test_fast_call_path.py)
    assert functions - set(CALLS) == {"tensor_view", "set_tensor_kinds", "set_torch_calls", "fast_fill",
                                      "fast_fill_register", "fast_fill_setup"}
    assert all(inspect.isbuiltin(getattr(_core, name)) for name in functions)
