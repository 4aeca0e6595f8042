"""init_module on sharded models in real process groups (torch.distributed, gloo
on 127.0.0.1): a model built on the meta device, sharded with FSDP2 (fully_shard),
tensor parallelism (parallelize_module) or both on a 2-D mesh (_StridedShard),
materialized with to_empty and initialized by one init_module call holds on every
rank exactly the shards of the one-process init_module of the same model."""
import distributed_workers as workers
import pytest

pytestmark = pytest.mark.slow  # starts 2- and 4-process groups (seconds); `-m 'not slow'` skips it


@pytest.fixture(scope="module")
def references():
    return workers.model_references()


@pytest.fixture(scope="module")
def two_ranks(references):
    return workers.run_on_ranks(2, workers.model_job, ("fsdp", "tp"), references,
                                workers.example_tokens().numpy())


@pytest.fixture(scope="module")
def four_ranks(references):
    return workers.run_on_ranks(4, workers.model_job, ("fsdp+tp", "fsdp"), references,
                                workers.example_tokens().numpy())


def _assert_equal_to_one_process(ranks, layouts):
    for rank, found in enumerate(ranks):
        for layout in layouts:
            for mode in workers.MODES:
                result = found[layout, mode]
                names = set(result["parameters"])
                assert len(names) == 4 + 6 * workers.BLOCKS, (layout, mode, sorted(names))
                wrong = {n: r for n, r in result["parameters"].items() if not r[0]}
                assert not wrong, f"rank {rank}, {layout}, {mode}: differ from one process: {wrong}"
                assert result["records equal"], (rank, layout, mode)
                if "fsdp" in layout:   # FSDP2 keeps every parameter sharded: no gathered copy left behind
                    plain = [n for n, r in result["parameters"].items() if r[1] == "plain"]
                    assert not plain, (rank, layout, mode, plain)


def test_fsdp2_and_tensor_parallel_on_two_ranks(two_ranks):
    _assert_equal_to_one_process(two_ranks, ("fsdp", "tp"))
    for found in two_ranks:
        fsdp = found["fsdp", "structure"]["parameters"]
        assert fsdp["embed.weight"][1] == "(Shard(dim=0),)"
        tp = found["tp", "structure"]["parameters"]
        assert tp["blocks.0.up.weight"][1] == "(Shard(dim=0),)"
        assert tp["blocks.0.down.weight"][1] == "(Shard(dim=1),)"
        assert tp["embed.weight"][1] == "plain"


def test_measured_pass_runs_under_fsdp2_and_is_skipped_under_tensor_parallel(two_ranks, four_ranks):
    for found in two_ranks + four_ranks:
        # FSDP2 gathers whole parameters before each module: the pass measures what one process
        # measures, and its corrections are those of the one-process init (checked above)
        assert not found["fsdp", "graph real"]["skipped note"]
    for found in two_ranks:
        assert found["tp", "graph real"]["skipped note"]
        assert any("measured pass was skipped" in w for w in found["tp", "graph real"]["warnings"])
    for found in four_ranks:
        assert found["fsdp+tp", "graph real"]["skipped note"]


def test_fsdp2_with_tensor_parallel_on_a_2d_mesh(four_ranks):
    _assert_equal_to_one_process(four_ranks, ("fsdp+tp", "fsdp"))
    strided = {name for found in four_ranks
               for name, (_, placements) in found["fsdp+tp", "structure"]["parameters"].items()
               if "_StridedShard" in placements}
    assert "blocks.0.up.weight" in strided


def test_ranks_that_disagree_are_refused(two_ranks):
    for found in two_ranks:
        assert found["disagreements"] == {"unseeded": True, "different inputs": True}


def test_a_sharded_meta_model_gets_the_plan_without_values(two_ranks, four_ranks):
    for found in two_ranks + four_ranks:
        layouts = {key[0] for key in found if isinstance(key, tuple)}
        for layout in layouts:
            for mode in ("structure", "graph meta"):
                assert found[layout, mode, "meta"] == (True, True), (layout, mode)
