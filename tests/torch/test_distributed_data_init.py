"""lsuv and weight_norm_init on sharded models in real process groups (torch.distributed,
gloo on 127.0.0.1): a model built on the meta device, sharded with FSDP2 (fully_shard
per block, on the output layer and on the root; shards uneven, some empty on 4 ranks)
and materialized with to_empty holds on every rank, after one call, exactly the shards
of the one-process call on the same model, generator and batch; a layer that computes
on shards (tensor parallelism) is refused by name, and ranks that disagree on the batch
or the generator are refused on every rank, with nothing written."""
import data_init_workers as workers
import distributed_workers
import pytest

pytestmark = pytest.mark.slow  # starts 2- and 4-process groups (seconds); `-m 'not slow'` skips it

RUNS = [*workers.LSUV_RUNS, "weight norm"]


@pytest.fixture(scope="module")
def references():
    return workers.references()


@pytest.fixture(scope="module")
def inputs():
    return {name: tensor.numpy() for name, tensor in workers.batches().items()}


@pytest.fixture(scope="module")
def two_ranks(references, inputs):
    return distributed_workers.run_on_ranks(2, workers.data_init_job, references, inputs, ("tp",))


@pytest.fixture(scope="module")
def four_ranks(references, inputs):
    return distributed_workers.run_on_ranks(4, workers.data_init_job, references, inputs, ("fsdp+tp",))


LAYERS = {"lsuv": ["blocks.0.0", "blocks.1.0", "blocks.2.0", "head"],
          "sequence": ["attention.in_proj_weight", "attention.out_proj", "lstm.weight_ih_l0", "lstm.weight_ih_l1",
                       "head"]}


def test_the_one_process_references_changed_every_layer(references):
    for run, (kind, *_) in workers.LSUV_RUNS.items():
        _, records, _ = references[run]
        assert [r[0] for r in records] == LAYERS[kind], run
        assert all(r[3] for r in records), (run, records)   # converged
        assert any(r[1] > 0 for r in records), run          # and rescaled
    _, records, _ = references["weight norm"]
    assert [r[0] for r in records] == ["blocks.0.0", "blocks.1.0", "head"]


def _assert_equal_to_one_process(ranks):
    for rank, found in enumerate(ranks):
        for run in RUNS:
            result = found[run]
            parameters = result["parameters"]
            assert len(parameters) == (14 if run == "attention and LSTM" else 8), (rank, run, sorted(parameters))
            wrong = {n: r for n, r in parameters.items() if not r[0]}
            assert not wrong, f"rank {rank}, {run}: differ from one process: {wrong}"
            # fully_shard keeps every parameter sharded: no gathered copy left registered
            assert all(r[1] == "(Shard(dim=0),)" for r in parameters.values()), (rank, run)
            assert result["records equal"], (rank, run)
            assert result["output equal"], (rank, run)   # the model's forward after it, too


def test_lsuv_and_weight_norm_init_on_fsdp2_on_two_ranks(two_ranks):
    _assert_equal_to_one_process(two_ranks)


def test_lsuv_and_weight_norm_init_on_fsdp2_on_four_ranks_with_empty_shards(four_ranks):
    _assert_equal_to_one_process(four_ranks)


def test_layers_that_compute_on_shards_are_refused_by_name(two_ranks, four_ranks):
    for found, layout in [(f, "tp") for f in two_ranks] + [(f, "fsdp+tp") for f in four_ranks]:
        for function in ("lsuv", "weight norm"):
            named, unchanged = found["refused", layout][function]
            assert named is True, (layout, function, named)
            assert unchanged, (layout, function)


def test_ranks_that_disagree_are_refused_on_every_rank(two_ranks):
    for found in two_ranks:
        checks = found["disagreements"]
        for check in ("lsuv batch", "lsuv one NaN batch", "lsuv generator", "weight norm batch"):
            named, unchanged = checks[check]
            assert named is True, (check, named)
            assert unchanged, check
        assert checks["lsuv batch keeps the generators"] == (True, True)
        assert checks["lsuv generator keeps torch's state"]


def test_layers_computing_in_bfloat16_are_named_and_the_ranks_still_agree(two_ranks):
    """fully_shard's MixedPrecisionPolicy gathers the weights in bfloat16: the statistics
    are measured at that precision (not the one-process float32 ones), which is said; every
    rank measures the same and LSUV still converges."""
    for function in ("lsuv", "weight norm"):
        (warned, records), (other_warned, other_records) = [found["mixed precision"][function]
                                                            for found in two_ranks]
        assert warned and other_warned, function
        assert records == other_records and len(records) >= 3, function
    assert all(converged for *_, converged in two_ranks[0]["mixed precision"]["lsuv"][1])
