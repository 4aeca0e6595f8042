"""varinit.torch.moment_rules' scatter rules (index_add with a shared part, scatter_mean,
scatter_extreme) against torch's own scatter_add_, index_add and scatter_reduce_ on
large random draws, and varinit.torch.graph.landing (the count statistics of a
scatter's index) against counts made by hand and, on meta, against the average over
many uniform random indices.

Statistics: each Monte Carlo check averages n iid replicate statistics (a replica
redraws the base, the sources and their shared part; the index stays, as a graph's
does) and accepts |mean - predicted| < t_(n-1)(TAIL) * se, the standard error from the
sample itself: with TAIL = 1e-9 per side that is 6.3 se at n = 200 (6.0 se at n =
4000), and a correct rule fails a check with probability 2e-9. The file makes fewer
than 40 checks, so a correct implementation fails it with probability < 1e-7. Each
check also names the rule a plausible mistake would give (independent sources where
they share a part, a wrong count), asserted two bounds away from the rule: the same
samples, whatever they are, then reject it.
"""

import pytest
from scipy import stats

torch = pytest.importorskip("torch")
import torch.nn.functional as F
from test_moment_rules import agrees, gaussian, generator
from varinit.torch import moment_rules as mr
from varinit.torch.dataflow import plan
from varinit.torch.graph import landing, value_stats
from varinit.torch.moment_rules import Moments

F64 = torch.float64


def index_with_counts(counts, gen):
    """A 1-D index that lands counts[r] times on row r, in a random order."""
    index = torch.repeat_interleave(torch.arange(counts.numel()), counts)
    return index[torch.randperm(index.numel(), generator=gen)]


def shared_sources(replicas, edges, width, mean, kappa0, var, gen):
    """s = mean + a_f + z: a_f ~ N(0, kappa0) one per (replica, feature), every source
    element of that feature shares it (what a graph's nodes share in a feature);
    z ~ N(0, var) per element. Moments (mean, mean^2 + kappa0 + var), kappa mean^2 + kappa0."""
    a = gaussian((replicas, 1, width), 0.0, kappa0, gen)
    return mean + a + gaussian((replicas, edges, width), 0.0, var, gen)


# ------------------------------------------------------------------ sums: index_add, scatter_add_

@pytest.mark.parametrize("op, alpha", [("scatter_add_", 1.0), ("index_add", -0.5)])
def test_index_add_adds_the_shared_part_coherently(op, alpha):
    # irregular counts: half the rows Poisson(1), half Poisson(6) (zeros among them): a
    # graph's in-degrees; the sources share a per-feature part a_f, which c of them add
    # coherently (c^2 kappa), their own parts incoherently (c (nu - kappa))
    gen = generator(61)
    replicas, rows, width = 200, 400, 16
    mx, vx, ms, kappa0, vs = 0.3, 0.5, 0.4, 0.8, 1.2
    lam = torch.where(torch.arange(rows) % 2 == 0, 1.0, 6.0).double()
    counts = torch.poisson(lam, generator=gen).long()
    index = index_with_counts(counts, gen)
    edges = index.numel()
    x = gaussian((replicas, rows, width), mx, vx, gen)
    s = shared_sources(replicas, edges, width, ms, kappa0, vs, gen)
    if op == "scatter_add_":
        y = x.clone().scatter_add_(1, index.view(1, edges, 1).expand(replicas, edges, width), s)
    else:
        y = x.index_add(1, index, s, alpha=alpha)
    c = counts.double()
    c1, c2 = float(c.mean()), float((c * c).mean())
    base, source, kappa = Moments(mx, mx * mx + vx), Moments(ms, ms * ms + kappa0 + vs), ms * ms + kappa0
    rule = mr.index_add(base, source, c1, c2, alpha, kappa=kappa)
    independent = mr.index_add(base, source, c1, c2, alpha)                    # kappa = mu_s^2
    regular = mr.index_add(base, source, c1, c1 * c1, alpha, kappa=kappa)      # counts read as all equal
    agrees(y.mean(dim=(1, 2)), rule.mean, f"{op}: mean")
    agrees((y * y).mean(dim=(1, 2)), rule.second, f"{op}: second",
           wrong=[independent.second, regular.second])
    # kappa = mu_s^2 is the independent rule, term by term
    assert mr.index_add(base, source, c1, c2, alpha, kappa=ms * ms) == pytest.approx(independent, rel=1e-12)


# ------------------------------------------------------------------ means: scatter_reduce "mean"

def test_scatter_mean_averages_what_lands_and_keeps_the_rest():
    # Poisson(1.2) counts: 30% of x's rows take no source and keep their value
    # (include_self=False); the others the mean of c sources: kappa + (nu - kappa) / c
    gen = generator(62)
    replicas, rows, width = 400, 400, 32
    mx, vx, ms, kappa0, vs = -0.5, 0.5, 0.4, 0.8, 1.2
    counts = torch.poisson(torch.full((rows,), 1.2, dtype=F64), generator=gen).long()
    index = index_with_counts(counts, gen)
    edges = index.numel()
    x = gaussian((replicas, rows, width), mx, vx, gen)
    s = shared_sources(replicas, edges, width, ms, kappa0, vs, gen)
    y = x.clone().scatter_reduce_(1, index.view(1, edges, 1).expand(replicas, edges, width), s, "mean",
                                  include_self=False)
    c = counts.double()
    written = float((c > 0).double().mean())
    inverse = float(torch.where(c > 0, 1.0 / c.clamp(min=1.0), 0.0).mean())
    assert 0.25 < 1.0 - written < 0.35
    base, source, kappa = Moments(mx, mx * mx + vx), Moments(ms, ms * ms + kappa0 + vs), ms * ms + kappa0
    rule = mr.scatter_mean(base, source, written, inverse, kappa=kappa)
    every_row = mr.scatter_mean(base, source, 1.0, inverse, kappa=kappa)       # the unwritten rows dropped
    independent = mr.scatter_mean(base, source, written, inverse)
    # E[1/c; c > 0] read as P(c > 0) / E[c | c > 0]: the mean count's reciprocal (Jensen's gap)
    mean_count = mr.scatter_mean(base, source, written, written * written / float(c.mean()), kappa=kappa)
    agrees(y.mean(dim=(1, 2)), rule.mean, "scatter mean: mean", wrong=[every_row.mean])
    agrees((y * y).mean(dim=(1, 2)), rule.second, "scatter mean: second",
           wrong=[independent.second, mean_count.second])


# ------------------------------------------------------------------ extremes: scatter_reduce "amax", "amin"

MX, VX, MS, VS = -0.5, 0.5, 0.4, 1.2     # x's and the sources' means and variances


def extremes(counts, reduce, gen, replicas=200, width=16):
    """x.scatter_reduce_(1, index, s, reduce, include_self=False) over `replicas` draws of x
    ~ N(MX, VX) and the sources s ~ N(MS, VS), counts[r] sources landing on row r."""
    index = index_with_counts(counts, gen)
    edges = index.numel()
    x = gaussian((replicas, counts.numel(), width), MX, VX, gen)
    s = gaussian((replicas, edges, width), MS, VS, gen)
    return x.clone().scatter_reduce_(1, index.view(1, edges, 1).expand(replicas, edges, width), s, reduce,
                                     include_self=False)


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_scatter_extreme_is_the_extreme_of_as_many_as_land(reduce):
    # a share of x's rows written, each by exactly 4 iid Gaussian sources: the largest
    # (smallest) of 4; the other rows keep x's value
    gen = generator(63)
    size = 4
    counts = (torch.rand(400, generator=gen) < 0.6).long() * size
    y = extremes(counts, reduce, gen)
    written = float((counts > 0).double().mean())
    base, source, largest = Moments(MX, MX * MX + VX), Moments(MS, MS * MS + VS), reduce == "amax"
    rule = mr.scatter_extreme(base, source, written, size, largest=largest)
    per_row = mr.scatter_extreme(base, source, written, round(float(counts.double().mean())), largest=largest)
    one = mr.scatter_extreme(base, source, written, 1, largest=largest)      # the sources' own moments
    agrees(y.mean(dim=(1, 2)), rule.mean, f"{reduce} of 4: mean", wrong=[per_row.mean, one.mean])
    agrees((y * y).mean(dim=(1, 2)), rule.second, f"{reduce} of 4: second", wrong=[per_row.second, one.second])


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_scatter_extreme_over_poisson_counts_is_the_mixture_over_sizes(reduce):
    # Poisson(3) counts: each row is the extreme of its own c sources, so the moments are
    # the rule's at each size, weighed by the share of rows of that size. One size for all
    # rows read as E[c^2] / E[c] (the size of the segment a source element lands in, 4
    # here: size-biased) misses the mean by 25% (amax: 1.43 for 1.14) and 67% (amin)
    gen = generator(64)
    counts = torch.poisson(torch.full((400,), 3.0, dtype=F64), generator=gen).long()
    y = extremes(counts, reduce, gen)
    base, source, largest = Moments(MX, MX * MX + VX), Moments(MS, MS * MS + VS), reduce == "amax"
    mean = second = 0.0
    for k in counts.unique().tolist():
        share = float((counts == k).double().mean())
        part = base if k == 0 else mr.scatter_extreme(base, source, 1.0, k, largest=largest)
        mean, second = mean + share * part.mean, second + share * part.second
    c = counts.double()
    written = float((c > 0).double().mean())
    size_biased = mr.scatter_extreme(base, source, written, round(float((c * c).mean() / c.mean())), largest=largest)
    agrees(y.mean(dim=(1, 2)), mean, f"{reduce} of Poisson(3): mean", wrong=[size_biased.mean])
    agrees((y * y).mean(dim=(1, 2)), second, f"{reduce} of Poisson(3): second",
           wrong=[size_biased.second] if largest else [])


class _Extreme(torch.nn.Module):
    """The extreme of the source rows landing on each of `rows` rows of zeros made in forward."""

    def __init__(self, rows, reduce):
        super().__init__()
        self.rows, self.reduce = rows, reduce

    def forward(self, s, index):
        out = torch.zeros(self.rows, s.shape[1], dtype=s.dtype, device=s.device)
        return out.scatter_reduce(0, index.view(-1, 1).expand_as(s), s, self.reduce, include_self=False)


@pytest.mark.parametrize("reduce", ["amax", "amin"])
def test_the_solve_averages_the_extreme_over_the_sizes_the_index_gives(reduce):
    # the walk's moments for the op itself: the mixture over the real index's sizes (the
    # rule above, read off landing's "sizes"), not one size-biased count
    gen = generator(65)
    counts = torch.poisson(torch.full((300,), 3.0, dtype=F64), generator=gen).long()
    index = index_with_counts(counts, gen)
    s = gaussian((index.numel(), 8), MS, VS, gen)
    result = plan(_Extreme(counts.numel(), reduce), (s, index))
    (node,) = [n for n in result.graph.nodes if n.kind == "scatter"]
    source, zero = Moments(float(s.mean()), float((s * s).mean())), Moments(0.0, 0.0)
    mean = second = 0.0
    for k in counts.unique().tolist():
        share = float((counts == k).double().mean())
        part = zero if k == 0 else mr.scatter_extreme(zero, source, 1.0, k, largest=reduce == "amax")
        mean, second = mean + share * part.mean, second + share * part.second
    found = result.moments[node.index]
    assert found.mean == pytest.approx(mean, rel=1e-9) and found.second == pytest.approx(second, rel=1e-9)


# ------------------------------------------------------------------ landing: an index's count statistics

def by_hand(counts):
    """counts: nested lists of how many land on each element -> landing's four statistics."""
    flat = [float(c) for row in counts for c in (row if isinstance(row, list) else [row])]
    n = len(flat)
    return {"counts": sum(flat) / n, "counts_sq": sum(c * c for c in flat) / n,
            "written": sum(c > 0 for c in flat) / n, "inverse": sum(1.0 / c for c in flat if c > 0) / n}


def assert_landing(found, expected):
    assert set(found) == set(expected) | {"sizes"}
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (key, found, expected)
    assert_sizes(found)


def assert_sizes(found):
    """The size distribution the statistics are read from: its shares add to the written
    share, and its mean and mean square are E[c] and E[c^2]."""
    sizes = found["sizes"]
    assert sum(w for _, w in sizes) == pytest.approx(found["written"], rel=1e-9)
    assert sum(k * w for k, w in sizes) == pytest.approx(found["counts"], rel=1e-9)
    assert sum(k * k * w for k, w in sizes) == pytest.approx(found["counts_sq"], rel=1e-9)


def test_landing_reads_a_real_index_add_index():
    rows = 13
    index = torch.tensor([4, 0, 4, 9, 2, 4, 0, 11, 9, 4, 12, 7])   # rows left out, rows several land on
    counts = [0] * rows
    for i in index.tolist():
        counts[i] += 1
    assert counts[4] == 4 and counts.count(0) == 6
    base = torch.zeros(rows, 5)
    assert_landing(landing(base, 0, index, whole_rows=True), by_hand(counts))
    # along dim 1: the rows of index_add are base's columns
    assert_landing(landing(torch.zeros(3, rows), 1, index.int(), whole_rows=True), by_hand(counts))


@pytest.mark.parametrize("dim", [0, 1])
def test_landing_reads_a_real_scatter_index(dim):
    # scatter's index: one entry per source element; it may cover part of base (the
    # elements outside it take no source)
    gen = generator(72)
    base = torch.zeros(7, 6)
    shape = (11, 4) if dim == 0 else (5, 9)         # (index, base's other dim covered in part)
    index = torch.randint(0, base.shape[dim], shape, generator=gen)
    counts = [[0] * base.shape[1] for _ in range(base.shape[0])]
    for i in range(shape[0]):
        for j in range(shape[1]):
            k = int(index[i, j])
            if dim == 0:
                counts[k][j] += 1
            else:
                counts[i][k] += 1
    expected = by_hand(counts)
    assert 0.0 < expected["written"] < 1.0
    assert_landing(landing(base, dim, index, whole_rows=False), expected)


def binomial(n, rows, covered=1.0):
    """The exact statistics of binomial(n, 1 / rows) counts on a share `covered` of base."""
    b = stats.binom(n, 1.0 / rows)
    mean = n / rows
    return {"counts": covered * mean, "counts_sq": covered * (b.var() + mean * mean),
            "written": covered * (1.0 - b.pmf(0)),
            "inverse": covered * sum(b.pmf(k) / k for k in range(1, n + 1))}


def poisson(n, rows, covered=1.0):
    """The same with Poisson(n / rows) counts (what a plausible shortcut would give)."""
    p = stats.poisson(n / rows)
    mean = n / rows
    return {"counts": covered * mean, "counts_sq": covered * (mean + mean * mean),
            "written": covered * (1.0 - p.pmf(0)),
            "inverse": covered * sum(p.pmf(k) / k for k in range(1, 200))}


@pytest.mark.parametrize("index_columns", [6, 3], ids=["whole base", "half the columns"])
def test_landing_on_meta_is_binomial_and_matches_random_indices(index_columns):
    # a meta index: each source element lands on a row drawn uniformly. Few rows (6) and
    # few sources (10) per column, so binomial and Poisson counts differ
    rows, columns, edges, draws = 6, 6, 10, 4000
    base = torch.zeros(rows, columns, device="meta")
    index = torch.zeros(edges, index_columns, dtype=torch.long, device="meta")
    found = landing(base, 0, index, whole_rows=False)
    covered = index_columns / columns
    expected = binomial(edges, rows, covered)
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-9), (key, found, expected)
    assert_sizes(found)
    # against the average over uniform random indices, counted with one_hot
    drawn = torch.randint(0, rows, (draws, edges, index_columns), generator=generator(73))
    c = F.one_hot(drawn, rows).sum(1).transpose(1, 2).double()               # (draws, rows, index_columns)
    c = torch.cat([c, torch.zeros(draws, rows, columns - index_columns, dtype=F64)], 2)
    landed = c > 0
    samples = {"counts": c.mean((1, 2)), "counts_sq": (c * c).mean((1, 2)),
               "written": landed.double().mean((1, 2)),
               "inverse": torch.where(landed, 1.0 / c.clamp(min=1.0), 0.0).mean((1, 2))}
    # (every draw lands the same number of sources: its mean count is exact)
    assert torch.allclose(samples["counts"], torch.tensor(found["counts"], dtype=F64), rtol=1e-12)
    shortcut = poisson(edges, rows, covered)
    for key in ("counts_sq", "written", "inverse"):
        agrees(samples[key], found[key], f"landing on meta ({index_columns} columns): {key}", wrong=[shortcut[key]])
    # counted as if every element took the mean count: no spread, all written, 1 / E[c]
    naive = edges / rows * covered
    assert abs(found["counts_sq"] - covered * (edges / rows) ** 2) > 0.3 * naive
    assert found["inverse"] < covered / (edges / rows)


def test_landing_on_meta_index_add_rows():
    rows, edges = 5, 12
    found = landing(torch.zeros(rows, 3, device="meta"), 0, torch.zeros(edges, dtype=torch.long, device="meta"),
                    whole_rows=True)
    expected = binomial(edges, rows)
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, rel=1e-9), key
    assert_sizes(found)
    one_row = landing(torch.zeros(1, 3, device="meta"), 0, torch.zeros(edges, dtype=torch.long, device="meta"),
                      whole_rows=True)
    assert one_row == {"counts": edges, "counts_sq": edges * edges, "written": 1.0, "inverse": 1.0 / edges,
                       "sizes": ((edges, 1.0),)}


def test_value_stats_of_a_fixed_tensor():
    degrees = torch.tensor([1.0, 2.0, 4.0, 4.0])
    mean, second, inverse, inverse_sq = value_stats(degrees)
    assert (mean, second) == (pytest.approx(2.75), pytest.approx(37 / 4))
    assert (inverse, inverse_sq) == (pytest.approx(2.0 / 4), pytest.approx((1 + 0.25 + 2 / 16) / 4))
    assert value_stats(torch.tensor([0.0, 2.0])) == (1.0, 2.0, None, None)
    assert value_stats(torch.tensor([1.0, float("inf")])) is None
