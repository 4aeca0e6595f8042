"""DTensor fills on 4 real processes (torch.distributed, gloo on 127.0.0.1): every
rank's shard holds the one-process fill's bits at its indices, for every init
function, on 1-D and 2-D meshes, with Shard, _StridedShard, Replicate and uneven
(and empty) shards; stateful generators agree across ranks or are refused; bad
input raises on every rank and changes nothing."""
import distributed_workers as workers
import pytest

pytestmark = pytest.mark.slow  # starts a 4-process group (seconds); `-m 'not slow'` skips it


@pytest.fixture(scope="module")
def four_ranks():
    references = workers.fill_references()
    extra = workers.generator_references()
    return workers.run_on_ranks(4, workers.fill_job, references, extra)


def test_every_shard_is_the_one_process_fill(four_ranks):
    planned = workers.fill_plan(4)
    assert len(planned) > 250
    for rank, found in enumerate(four_ranks):
        rows = found["rows"]
        assert [(config, case) for config, case, *_ in rows] == planned   # nothing skipped
        wrong = [(config, case) for config, case, local_ok, *_ in rows if not local_ok]
        assert not wrong, f"rank {rank}: shards that differ from the one-process fill: {wrong}"


def test_strided_and_uneven_shards_are_covered():
    configs = {config for config, _ in workers.fill_plan(4)}
    assert {"2d SS0 S0", "2d SS1 S1", "world S0", "world S1", "world R", "tp S0"} <= configs
    # 13 rows over 4 ranks: 4, 4, 4, 1; 3 rows: 1, 1, 1 and an empty shard; 7: 2, 2, 2, 1
    shapes = {shape for _, _, shape, *_ in workers.FILL_CASES}
    assert {(13, 11), (3, 2), (7,)} <= shapes


def test_functions_without_a_region_form_warn_when_sharded(four_ranks):
    paths = {case: path for case, path, *_ in workers.FILL_CASES}
    for found in four_ranks:
        for config, case, _, warned, part_held in found["rows"]:
            expected = part_held and paths[case] in workers.WHOLE_BUILDS
            assert warned == expected, (config, case, warned, part_held)


def test_stateful_generators_agree_or_are_refused(four_ranks):
    for rank, found in enumerate(four_ranks):
        checks = found["generators"]
        assert checks["torch_default"] is True, rank
        assert checks["generator_first"] is True, rank
        assert checks["generator_second"] is True, rank
        # torch seeded differently per rank: ValueError on every rank, the shard still NaN
        assert checks["mismatch"] == (True, True), (rank, checks["mismatch"])


def test_bad_input_raises_on_every_rank_and_changes_nothing(four_ranks):
    expected = {"negative std", "bad layout keyword", "global_shape given", "partial", "integer dtype",
                "sparse 3-D", "meta no-op", "meta bad argument"}
    for rank, found in enumerate(four_ranks):
        checks = found["bad_input"]
        assert set(checks) == expected
        for name, (message_ok, unchanged, stream_kept) in checks.items():
            assert message_ok is True and unchanged and stream_kept, (rank, name, checks[name])
