"""The lean per-call path (a model's many small tensors must cost no more per call
than torch.nn.init's) keeps every semantic of the slow one:
keys drawn from torch's generator, Parameters filled in place, torch's fan
rule, and key draws from several threads at once."""
import threading

import numpy as np
import pytest

import varinit
from varinit.fan_rules import fans, torch_rule_fans

torch = pytest.importorskip("torch")


def randint_key(generator=None):
    """The documented key for a torch generator: two 32-bit words of torch.randint."""
    words = torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64)
    return int(words[0]) | int(words[1]) << 32


def test_default_torch_generator_key_is_randints_and_advances_it_the_same():
    torch.manual_seed(2024)
    filled = varinit.normal_(torch.empty(7, 9))
    after_fill = torch.rand(3)
    torch.manual_seed(2024)
    key = randint_key()
    after_randint = torch.rand(3)
    expected = varinit.normal_(np.empty((7, 9), np.float32), generator=varinit.Generator(key))
    assert filled.numpy().tobytes() == expected.tobytes()
    assert torch.equal(after_fill, after_randint)


def test_explicit_torch_generator_key_is_randints():
    g = torch.Generator().manual_seed(99)
    filled = varinit.uniform_(np.empty(100, np.float64), generator=g)
    twin = torch.Generator().manual_seed(99)
    expected = varinit.uniform_(np.empty(100, np.float64), generator=randint_key(twin))
    assert filled.tobytes() == expected.tobytes()
    assert torch.equal(g.get_state(), twin.get_state())


def test_parameter_is_filled_in_place_without_autograd_history():
    param = torch.nn.Parameter(torch.zeros(6, 5))
    storage = param.data_ptr()
    out = varinit.kaiming_uniform_(param, generator=3)
    assert out is param and param.data_ptr() == storage
    assert param.requires_grad and param.is_leaf and param.grad_fn is None
    expected = varinit.kaiming_uniform_(np.empty((6, 5), np.float32), generator=3)
    assert param.detach().numpy().tobytes() == expected.tobytes()


def test_first_draw_inside_inference_mode_does_not_break_later_draws():
    def draw_in_fresh_thread(use_inference_mode):
        result = {}

        def run():
            if use_inference_mode:
                with torch.inference_mode():
                    result["a"] = varinit.normal_(torch.empty(4, 4)).clone()
            result["b"] = varinit.normal_(torch.empty(4, 4)).clone()

        worker = threading.Thread(target=run)  # a fresh thread: its key buffer is made here
        worker.start()
        worker.join()
        return result

    torch.manual_seed(5)
    inside = draw_in_fresh_thread(True)
    torch.manual_seed(5)
    outside = draw_in_fresh_thread(False)
    assert set(inside) == {"a", "b"}
    assert torch.equal(inside["a"], outside["b"])  # the same first key either way


def test_keys_drawn_from_four_threads_at_once_are_the_serial_ones():
    # Each thread has its own word buffer; a shared one would let two threads
    # read the same words and fill two tensors with the same values.
    draws = 50
    torch.manual_seed(77)
    serial = {randint_key() for _ in range(4 * draws)}
    torch.manual_seed(77)
    got = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        mine = [varinit.normal_(torch.empty(3), generator=None).numpy().tobytes() for _ in range(draws)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {varinit.normal_(np.empty(3, np.float32), generator=k).tobytes() for k in serial}
    assert len(got) == 4 * draws and set(got) == expected


@pytest.mark.parametrize("shape", [(3, 4), (8, 3, 5), (16, 4, 3, 3), (2, 6, 1, 2, 3), (0, 5), (5, 0, 3)])
def test_torch_rule_fans_is_fans_without_keywords(shape):
    assert torch_rule_fans(shape) == fans(shape)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_torch_rule_fans_rejects_fewer_than_two_dimensions(shape):
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        torch_rule_fans(shape)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        varinit.kaiming_normal_(np.empty(shape, np.float32))


def test_layout_keywords_still_reach_fans():
    # (in, out) = (400, 100): fan_in 400 with in_axis=0, 100 by torch's rule
    a = varinit.kaiming_normal_(np.empty((400, 100), np.float64), generator=1, in_axis=0, out_axis=1)
    b = varinit.kaiming_normal_(np.empty((400, 100), np.float64), generator=1)
    assert np.allclose(a * np.sqrt(400.0), b * np.sqrt(100.0), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="groups"):
        varinit.kaiming_normal_(np.empty((4, 4), np.float32), groups=0)
