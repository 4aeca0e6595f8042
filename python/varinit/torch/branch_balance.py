"""Smaller residual branches where the measured gradient grows over a residual stack.

Each residual branch adds its share to the gradient on the way back as it adds
its variance to the stream on the way forward, and a branch whose signal is
multiplied by what it computes (gates, a selective scan's decays) passes back
more than its forward variance says: a 4-block Mamba stack, each branch 0.75 of
the stream, multiplied the gradient by about 1.5 per block (first/last 5.3).
The solve sizes the branches from the forward alone (dataflow's stream budget).
With real inputs, where the measured first/last ratio is above the band, the
branches' ends are measured again at a smaller share of their stream, as small
as keeps each branch end's output within ACT_ROOM of the largest layer output
(the act bound, 2, with a margin), and the change is kept when it brings the
ratio closer to the band (by LEAST_TILT at least) and holds the forward; a ratio
left outside is named.
"""
from __future__ import annotations

from collections.abc import Callable, Collection

import torch

from .gradient_balance import ACT_ROOM, LEAST_TILT, TILT_MARGIN, Balanced, band_distance, comes_closer, forward_held
from .gradient_check import EndCauses, Layer, end_explained, gradient_ratio, in_band, measured_profile, profile_note
from .graph import ExampleInputs


def balance_branches(model: torch.nn.Module, example_inputs: ExampleInputs, branch_ends: Collection[str],
                     score_layers: Collection[str], resize: Callable[[dict[str, float]], None], cause: str,
                     pooled: str | None = None, ends: EndCauses | None = None) -> Balanced:
    """Measure the gradient on the example inputs; where its first/last ratio is above
    the band (or within TILT_MARGIN of its edge), ``resize({module: std})`` draws the
    layers in `branch_ends` (the residual branches' last layers) again with their
    outputs measured to those stds: each its measured std times one factor, fixed
    rather than a share of its stream, which the smaller branches before it make
    smaller (``resize({})`` draws them back). The layers in `score_layers` (attention's
    query and key projections, Plan.score_layers) are measured smaller by the same
    bound, with the branch ends held at their stds: flatter attention passes back less
    through its scores (muP starts from a zero query: Yang et al. 2022, Tensor
    Programs V, arXiv:2203.03466). The notes name a ratio left outside the band
    (`profile_note`), or a failed backward."""
    layers = measured_profile(model, example_inputs)
    if layers is None or isinstance(layers, str):
        return Balanced([layers] if isinstance(layers, str) else [], None)

    def noted(profile: list[Layer], done: str = "") -> Balanced:
        note = profile_note(profile, cause, pooled, ends, done)
        return Balanced([note] if note is not None else [], profile)

    ratio = gradient_ratio(layers)
    explained = end_explained(layers, ratio, ends)
    if ratio < 1.0 or band_distance(ratio, TILT_MARGIN) == 0.0 or (explained is not None and in_band(explained[1])):
        return noted(layers)
    branches = {layer.module: layer.act for layer in layers if layer.module in branch_ends and layer.act > 0}
    scores = {layer.module: layer.act for layer in layers if layer.module in score_layers and layer.act > 0}
    if not branches:
        return noted(layers)
    bound = max(layer.act for layer in layers) / ACT_ROOM
    shrink, cool = bound / min(branches.values()), bound / min(scores.values(), default=bound)
    stds, done = {}, []
    if shrink * LEAST_TILT < 1.0:
        stds.update({module: act * shrink for module, act in branches.items()})
        done.append(f"the residual branches' outputs were measured at x{shrink:.3g} of their std")
    if cool * LEAST_TILT < 1.0:
        stds = {**branches, **stds, **{module: act * cool for module, act in scores.items()}}
        done.append(f"the attention's query and key layers at x{cool:.3g}")
    also = " and the attention's query and key layers" if scores else ""
    if not stds:
        return noted(layers, f"; the residual branches' outputs{also} are within {ACT_ROOM:g} of the largest "
                             "layer's already, which leaves no room to make them smaller")
    resize(stds)
    after = measured_profile(model, example_inputs)
    if not (isinstance(after, list) and comes_closer(ratio, gradient_ratio(after), LEAST_TILT)
            and forward_held(layers, after)):
        resize({})
        return noted(layers, f"; smaller residual branches{also} were measured and undone: they moved the "
                             f"output's std or brought the ratio less than {LEAST_TILT:g}-fold closer")
    return noted(after, f", from {ratio:.3g} before " + " and ".join(done))
