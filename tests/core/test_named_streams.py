"""Generator.stream(name): a stream fixed by (seed, name) alone."""
import hashlib
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import varinit
from varinit.generator import NAMED_BIT, SECONDARY_BIT, NamedStream, resolve

# where the varinit under test lives (site-packages when installed), for child processes
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(varinit.__file__)))


def _fill(shape, generator, init=varinit.kaiming_normal_):
    return init(np.empty(shape, np.float32), generator=generator)


def test_stream_id_formula():
    name = "encoder.layers.0.attn.q_proj.weight"
    low62 = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little") & ((1 << 62) - 1)
    s = varinit.Generator(7).stream(name)
    assert s.stream_id == (1 << 63) | low62
    assert s.key == 7 and s.name == name
    # Bit 62 is reserved for the secondary stream sparse_ derives.
    assert s.stream_id & SECONDARY_BIT == 0 and s.stream_id & NAMED_BIT
    assert resolve(s, False) == (7, s.stream_id)
    assert resolve(s, True) == (7, s.stream_id)


def test_independent_of_creation_order_and_other_fills():
    names = ["a.weight", "b.weight", "c.weight"]
    shapes = {"a.weight": (16, 8), "b.weight": (5, 7, 3), "c.weight": (33,)}
    g1 = varinit.Generator(99)
    first = {n: _fill(shapes[n], g1.stream(n), varinit.normal_) for n in names}
    g2 = varinit.Generator(99)
    _fill((100,), g2, varinit.normal_)  # counter streams in between must not shift named ones
    second = {n: _fill(shapes[n], g2.stream(n), varinit.normal_) for n in reversed(names)}
    _fill((100,), g2, varinit.normal_)
    for n in names:
        np.testing.assert_array_equal(first[n], second[n])
    # Named streams do not advance the counter.
    assert g1.get_state() == (99, 0)


def test_two_uses_give_identical_fills_for_every_random_init():
    s = varinit.Generator(2024).stream("layer.weight")
    for init in (varinit.uniform_, varinit.normal_, varinit.trunc_normal_, varinit.kaiming_normal_,
                 varinit.kaiming_uniform_, varinit.xavier_uniform_, varinit.xavier_normal_,
                 varinit.variance_scaling_, varinit.lecun_normal_, varinit.lecun_uniform_):
        np.testing.assert_array_equal(_fill((12, 9), s, init), _fill((12, 9), s, init))


def test_distinct_names_and_seeds_give_distinct_streams():
    g = varinit.Generator(5)
    names = [f"layers.{i}.weight" for i in range(200)]
    ids = {g.stream(n).stream_id for n in names}
    assert len(ids) == len(names)
    a, b = _fill((64,), g.stream("w1"), varinit.normal_), _fill((64,), g.stream("w2"), varinit.normal_)
    assert not np.array_equal(a, b)
    c = _fill((64,), varinit.Generator(6).stream("w1"), varinit.normal_)
    assert not np.array_equal(a, c)
    # A named stream never coincides with a counter stream of the same seed.
    assert not np.array_equal(a, _fill((64,), varinit.Generator(5), varinit.normal_))


def test_same_values_in_another_process():
    name = "decoder.blocks.3.mlp.fc1.weight"
    here = _fill((7, 11), varinit.Generator(31337).stream(name))
    code = (
        "import sys, numpy as np, varinit\n"
        f"w = varinit.kaiming_normal_(np.empty((7, 11), np.float32), generator=varinit.Generator(31337).stream({name!r}))\n"
        "sys.stdout.write(w.tobytes().hex())\n"
    )
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert bytes.fromhex(out.stdout) == here.tobytes()


def test_accessors_repr_pickle():
    s = varinit.Generator(3).stream("head.bias")
    assert repr(s) == "varinit.Generator(seed=3).stream('head.bias')"
    assert eval(repr(s), {"varinit": varinit}) == s
    t = pickle.loads(pickle.dumps(s))
    assert t == s and hash(t) == hash(s) and t.stream_id == s.stream_id
    assert isinstance(s, NamedStream)
    with pytest.raises(AttributeError):
        s.key = 4


@pytest.mark.parametrize("bad", [b"bytes", 3, None, ("a",)])
def test_name_must_be_str(bad):
    with pytest.raises(TypeError, match="name must be a str"):
        varinit.Generator(1).stream(bad)


def test_torch_tensor_uses_named_stream_not_torch_seed():
    torch = pytest.importorskip("torch")
    s = varinit.Generator(11).stream("fc.weight")
    torch.manual_seed(0)
    t = varinit.kaiming_uniform_(torch.empty(6, 4), generator=s)
    torch.manual_seed(1)
    u = varinit.kaiming_uniform_(torch.empty(6, 4), generator=s)
    assert torch.equal(t, u)
    np.testing.assert_array_equal(t.numpy(), _fill((6, 4), s, varinit.kaiming_uniform_))
