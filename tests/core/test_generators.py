"""Seeds, streams and the generator= argument."""
import threading

import numpy as np
import pytest

import varinit


def draw(generator=None, n=16):
    return varinit.normal_(np.empty(n, np.float64), generator=generator)


def test_generator_hands_out_one_stream_per_call():
    g = varinit.Generator(5)
    assert g.get_state() == (5, 0)
    a, b = draw(g), draw(g)
    assert g.get_state() == (5, 2)
    assert not np.array_equal(a, b)
    h = varinit.Generator(5)
    assert np.array_equal(draw(h), a) and np.array_equal(draw(h), b)


def test_int_seed_is_stream_zero_of_that_key():
    assert np.array_equal(draw(5), draw(varinit.Generator(5)))
    assert np.array_equal(draw(5), draw(5))  # an int does not advance anything
    assert not np.array_equal(draw(5), draw(6))


def test_manual_seed_restarts_and_returns_generator():
    g = varinit.Generator(1)
    first = draw(g)
    draw(g)
    assert g.manual_seed(1) is g
    assert g.get_state() == (1, 0) and np.array_equal(draw(g), first)
    g.manual_seed(2)
    assert g.initial_seed() == 2 and not np.array_equal(draw(g), first)


def test_get_state_set_state_resume_the_sequence():
    g = varinit.Generator(7)
    draw(g)
    state = g.get_state()
    a, b = draw(g), draw(g)
    assert g.set_state(state) is g
    assert np.array_equal(draw(g), a) and np.array_equal(draw(g), b)
    other = varinit.Generator(0).set_state(state)
    assert other.initial_seed() == 7 and np.array_equal(draw(other), a)


def test_set_state_rejects_bad_states():
    g = varinit.Generator(7)
    with pytest.raises(ValueError):
        g.set_state((-1, 0))
    with pytest.raises(TypeError):
        g.set_state((7, 1.5))
    assert g.get_state() == (7, 0)


def test_unseeded_generators_differ():
    a, b = varinit.Generator(), varinit.Generator()
    assert a.initial_seed() != b.initial_seed()  # 64 random bits each: equal with prob 2**-64


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**63, 2**64 - 1, np.uint64(2**64 - 1), np.int32(3)])
def test_valid_seeds(seed):
    g = varinit.Generator(seed)
    assert g.initial_seed() == int(seed) and type(g.initial_seed()) is int
    assert np.array_equal(draw(seed), draw(varinit.Generator(seed)))


def test_top_key_bits_matter():
    assert not np.array_equal(draw(1), draw(1 + 2**32))
    assert not np.array_equal(draw(0), draw(2**63))


@pytest.mark.parametrize("seed,error", [
    (-1, ValueError), (2**64, ValueError), (-(2**70), ValueError), (np.int64(-3), ValueError),
    (1.5, TypeError), (1.0, TypeError), (True, TypeError), (np.bool_(False), TypeError),
    ("3", TypeError), (b"3", TypeError), (None, TypeError), ([1], TypeError),
])
def test_invalid_seeds(seed, error):
    if seed is not None:  # Generator(None) means "seed from the OS"
        with pytest.raises(error, match="seed"):
            varinit.Generator(seed)
    with pytest.raises(error, match="seed"):
        varinit.manual_seed(seed)
    with pytest.raises(error, match="seed"):
        varinit.Generator(1).manual_seed(seed)


@pytest.mark.parametrize("seed,error", [
    (-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError),
])
def test_invalid_int_seed_as_generator_argument(seed, error):
    x = np.full(8, 7.0, np.float32)
    with pytest.raises(error, match="generator"):
        varinit.normal_(x, generator=seed)
    assert np.all(x == 7.0)


@pytest.mark.parametrize("bad", [object(), np.random.RandomState(0), np.random.PCG64(0), "default",
                                 [1, 2], {"seed": 1}, varinit.Generator])
def test_invalid_generator_objects_are_type_errors(bad):
    x = np.full(8, 7.0, np.float32)
    with pytest.raises(TypeError, match="generator"):
        varinit.uniform_(x, generator=bad)
    assert np.all(x == 7.0)


def test_none_uses_default_generator_and_manual_seed_reproduces():
    varinit.manual_seed(99)
    assert varinit.initial_seed() == 99
    assert varinit.default_generator.get_state() == (99, 0)
    a, b = draw(), draw()
    assert varinit.default_generator.get_state() == (99, 2)
    assert not np.array_equal(a, b)
    assert varinit.manual_seed(99) is varinit.default_generator
    assert np.array_equal(draw(), a) and np.array_equal(draw(), b)
    varinit.manual_seed(99)
    assert np.array_equal(draw(varinit.default_generator), a)


def test_numpy_generator_keys_come_from_its_stream():
    rng = np.random.default_rng(4)
    a = draw(rng)
    b = draw(rng)
    assert not np.array_equal(a, b)
    rng2 = np.random.default_rng(4)
    assert np.array_equal(draw(rng2), a) and np.array_equal(draw(rng2), b)


def test_concurrent_calls_get_distinct_streams():
    g = varinit.Generator(3)
    seen, lock = [], threading.Lock()

    def work():
        for _ in range(50):
            key_stream = g.take_stream()
            with lock:
                seen.append(key_stream)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for _, s in seen) == list(range(200))


def test_same_seed_different_shapes_share_the_prefix():
    # value i depends only on (key, stream, i): a longer fill extends a shorter one
    short, long = draw(1, 50), draw(1, 500)
    assert np.array_equal(long[:50], short)


# ---- state round trips, pickling, reserved streams --------------------------------
def test_generators_pickle_and_deepcopy_and_continue_the_same_sequence():
    import copy
    import pickle

    g = varinit.Generator(11)
    varinit.normal_(np.empty(3), generator=g)
    for twin in (pickle.loads(pickle.dumps(g)), copy.deepcopy(g), copy.copy(g)):
        assert twin.get_state() == g.get_state() and twin is not g
        a = varinit.normal_(np.empty(5), generator=twin)
        assert twin.get_state() == (11, 2)
    b = varinit.normal_(np.empty(5), generator=g)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("state, error", [
    (b"ab", TypeError), ("ab", TypeError), ({1: 2}, TypeError), ([1, 2], TypeError), ((1,), TypeError),
    ((1, 2, 3), TypeError), ((1.0, 2), TypeError), ((1, True), TypeError),
    ((-1, 0), ValueError), ((1, 2**62 + 1), ValueError), ((1, 2**63 + 5), ValueError), ((0, 2**64 - 1), ValueError),
])
def test_set_state_refuses_anything_get_state_cannot_return(state, error):
    g = varinit.Generator(3)
    with pytest.raises(error, match="state"):
        g.set_state(state)
    assert g.get_state() == (3, 0)


def test_the_last_counter_stream_is_usable_and_then_the_generator_says_it_is_spent():
    g = varinit.Generator(5).set_state((5, 2**62 - 1))
    last = varinit.normal_(np.empty(4), generator=g)
    np.testing.assert_array_equal(last, varinit.normal_(np.empty(4), generator=varinit.Stream(5, 2**62 - 1)))
    target = np.zeros(4)
    with pytest.raises(RuntimeError, match="handed out all 2\\*\\*62"):
        varinit.normal_(target, generator=g)
    assert g.get_state() == (5, 2**62) and not target.any()
    assert varinit.Generator(0).set_state(g.get_state()).get_state() == (5, 2**62)  # a spent state round-trips
    assert varinit.Generator(1).set_state(varinit.Generator(1).get_state()).get_state() == (1, 0)


def test_an_int_seed_in_a_loop_warns_that_every_tensor_gets_the_same_values():
    layers = [np.empty((4, 4), np.float32) for _ in range(3)]
    with pytest.warns(UserWarning, match="generator=42 fills another tensor from the same line") as caught:
        for w in layers:
            varinit.kaiming_normal_(w, generator=42)
    assert caught[0].filename == __file__   # it points at the user's line
    np.testing.assert_array_equal(layers[0], layers[2])


def test_an_int_seed_reused_for_one_tensor_or_for_blocks_does_not_warn():
    import warnings

    whole = np.empty((4, 6), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            varinit.normal_(whole, generator=7)           # the same tensor again
        for start in (0, 2):
            block = np.empty((2, 6), np.float32)          # blocks of one virtual tensor
            varinit.normal_(block, generator=7, global_shape=(4, 6), start=(start, 0))
        a = varinit.normal_(np.empty(3), generator=8)     # two lines, two tensors: deliberate
        b = varinit.normal_(np.empty(3), generator=8)
    np.testing.assert_array_equal(a, b)
