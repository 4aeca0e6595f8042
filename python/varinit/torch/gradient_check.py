"""The measured gradient after the graph-aware init, with real example inputs.

`measured_profile` runs one forward and backward pass on the example inputs
and gives each weight layer's output std and gradient std. Every model with
real example inputs reads it (init_module); a ratio outside verdicts'
GRADIENT_BAND (the same band for the second moment, [1/16, 16]) is named
with its cause:

- a model whose norms use batch statistics, or layer, group or RMS norms
  without attention (`gradient_balance`, with BATCH_STATISTICS, SCALE_RESET
  or the residual cause as the cause of a ratio left outside). The solve
  works on forward moments, and a batch-statistics norm divides the gradient
  by its input's per-channel std, which leaves out the offset a layer gives
  an input with a mean: after an activation with a mean, each such layer
  multiplies the gradient's second moment by nu / (nu - mu^2) whatever the
  weights' scale (pi / (pi - 1) after ReLU; Yang et al. 2019, "A mean field
  theory of batch normalization"). In residual branches the solve caps it
  (dataflow's gradient budget); in a chain without a skip the layers' output
  stds are tilted within the forward's room;
- a plain model, without norms, attention or residual streams
  (`gradient_balance`), whose layers' scales can move the ratio; AlphaDropout
  (`alpha_dropout`) passes back a^2 (1 - p) of the gradient's energy;
- any other model (`measured_note`): a mean over the tokens an attention
  mixes (`pooled_attention`; `averaged_down` below the band), a layer whose
  output a condition broadcasts over the positions or a constant multiplies
  (`end_cause`), a residual stack (`residual_streams`), or the rest
  (NOT_SOLVED).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from ..generator import Generator
from ..init import normal_
from .graph import ExampleInputs, Graph, StateGuard, example_call, output_tensors
from .moment_rules import alpha_dropout_affine
from .refine import MEASURED_MODULES
from .verdicts import GRADIENT_BAND


# the modules with weights whose outputs the measured gradient reads: the layers the measured
# pass corrects, nn.MultiheadAttention (its output is out_proj's), embeddings and recurrent layers
PROFILED_MODULES = MEASURED_MODULES + (torch.nn.Embedding, torch.nn.RNNBase)

# the activations one backward pass may hold before the gradient check is left out (named):
# autograd keeps about every floating intermediate of the forward pass for it
GRADIENT_CHECK_BYTES = 2 * 2 ** 30


def activation_bytes(graph: Graph) -> int:
    """About what autograd holds for one backward pass on the traced inputs: the bytes of
    every floating node's output that is not a parameter or a constant."""
    return sum(math.prod(node.shape) * node.dtype.itemsize for node in graph.nodes
               if node.dtype.is_floating_point and node.kind not in ("param", "constant"))


class Layer(NamedTuple):
    """One weight layer module in a measured pass: its output's std, the std of the
    gradient there, and how many elements its output has per example."""

    module: str
    act: float
    grad: float
    elements: int


def measured_profile(model: torch.nn.Module, example_inputs: ExampleInputs) -> list[Layer] | str | None:
    """The weight layers called as modules (PROFILED_MODULES), in call order, in one
    forward and backward pass on the example inputs (an embedding's stds over the
    positions that do not read its padding_idx: `_not_padding`), the gradient at
    each floating output (in a tuple, dict or Hugging Face ModelOutput) N(0, 1)
    from a fixed seed (varinit's stream "upstream i" of seed 0); a sentence when
    autograd fails there; None when there is no gradient to measure (no output
    with one, fewer than three layers, a layer without a finite gradient). Nothing
    is kept: no parameter's .grad, no buffer, no random state."""
    outputs: list[tuple[str, torch.Tensor]] = []
    live: dict[int, torch.Tensor] = {}   # output index -> the positions that are not padding

    def keep(name: str) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            out = output[0] if isinstance(output, tuple) and output else output
            if isinstance(out, torch.Tensor) and out.requires_grad and out.is_floating_point():
                mask = _not_padding(module, args)
                if mask is not None:
                    live[len(outputs)] = mask
                outputs.append((name, out))
                copy = out.clone()   # an in-place activation after it must not overwrite it
                return (copy,) + tuple(output[1:]) if isinstance(output, tuple) else copy
            return None
        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in model.named_modules()
               if isinstance(m, PROFILED_MODULES)]
    rng = torch.get_rng_state()
    try:
        args, kwargs = example_call(example_inputs)
        with torch.enable_grad(), StateGuard(model):   # the buffers and held tensors are put back after it
            ends = [t for t in output_tensors(model(*args, **kwargs))
                    if t.requires_grad and t.is_floating_point()]
            if not ends or len(outputs) < 3:
                return None
            # varinit's own draws: torch.randn took 35 ms of GPT-2's 128 x 50257 logits, this 4 ms
            streams = Generator(0)
            upstream = [normal_(torch.empty_like(t, memory_format=torch.contiguous_format),
                                generator=streams.stream(f"upstream {i}")) for i, t in enumerate(ends)]
            grads = torch.autograd.grad(ends, [t for _, t in outputs], upstream, allow_unused=True)
    except RuntimeError as error:   # a forward that runs without autograd but not with it
        return f"the gradient could not be measured after the init ({type(error).__name__}: {error})"
    finally:
        for handle in handles:
            handle.remove()
        torch.set_rng_state(rng)
    # a layer whose output reaches no output (Hugging Face's ViT pooler beside last_hidden_state)
    # is not the last hidden layer: it is left out
    layers = [Layer(name, float(_rows(t.detach(), live.get(i)).float().std()),
                    float(_rows(g, live.get(i)).float().std()),
                    t.numel() // max(t.shape[0], 1) if t.dim() > 1 else t.numel())
              for i, ((name, t), g) in enumerate(zip(outputs, grads)) if g is not None]
    if len(layers) < 3 or not all(math.isfinite(layer.grad) and layer.grad > 0 for layer in (layers[0], layers[-2])):
        return None
    return layers


def _not_padding(module: torch.nn.Module, args: tuple[Any, ...]) -> torch.Tensor | None:
    """Where an embedding with a padding_idx reads other ids: its padding row is zero and
    gets no gradient, so the gradient at those positions reaches no parameter (behind a
    zero vector an RMSNorm's is 1 / sqrt(eps): Gemma's read 361 times the last layer's
    where the other positions' is 3.8); None for any other module, or when every id is
    padding."""
    if not (isinstance(module, torch.nn.Embedding) and module.padding_idx is not None and args
            and isinstance(args[0], torch.Tensor)):
        return None
    mask = args[0] != module.padding_idx
    return mask if bool(mask.any()) and not bool(mask.all()) else None


def _rows(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return t if mask is None else t[mask]


def gradient_ratio(layers: list[Layer]) -> float:
    """The gradient std at the first layer's output over the one at the last hidden
    layer's (the last before the output's)."""
    return layers[0].grad / layers[-2].grad


def in_band(ratio: float) -> bool:
    """Whether a gradient std ratio is within sqrt(GRADIENT_BAND) either way."""
    high = math.sqrt(GRADIENT_BAND)
    return 1.0 / high <= ratio <= high


def outside_band(layers: list[Layer], ratio: float) -> str:
    """The first words of a note on a measured ratio outside the band."""
    high = math.sqrt(GRADIENT_BAND)
    return (f"measured in one backward pass on the example inputs, the gradient std at {layers[0].module} is "
            f"{ratio:.3g} times the one at {layers[-2].module} (outside [{1.0 / high:g}, {high:g}])")


# why a ratio stays outside the band, per kind of model (measured_note's cause)
BATCH_STATISTICS = (
    "A norm with batch statistics after each layer divides the weights' scale out, and after an activation with a "
    "mean multiplies the gradient's second moment by nu / (nu - mu^2) (pi / (pi - 1) after ReLU; Yang et al. "
    "2019): the solve caps that inside residual branches, but a chain without a skip keeps it; how many layers "
    "read a feature map and how many positions it has set each element's share too")

SCALE_RESET = (
    "A norm after the layers (layer, group or RMS statistics) divides their weights' scale out, so each layer's "
    "output std sets only its own gradient, and the activations between the norms, at the norms' unit variance, "
    "move the gradient by their chi_1 per layer (each activation's verdict); the tilt undoes that only within the "
    "activations' room")


def pooled_attention(where: str) -> str:
    """The cause for a model whose output averages over positions an attention mixes
    (`where`, `Plan.pooled_positions`)."""
    return (f"The output averages over the positions that attention mixes (in {where}): every position then gets "
            "the same gradient, which attention passes back whole where it averages the forward signal over its "
            "keys, so each attention branch, solved to keep the forward, passes the gradient back amplified; a "
            "smaller branch would leave its layers' outputs outside the forward's 2-fold")


def alpha_dropout(ps: list[float]) -> str:
    """The cause for a model with AlphaDropout in training, at drop probabilities `ps`."""
    p = max(ps)
    kept = alpha_dropout_affine(p)[0] ** 2 * (1.0 - p)
    return (f"AlphaDropout in training ({len(ps)} calls, p up to {p:g}) keeps the forward's mean and "
            f"variance but passes back a^2 (1 - p) = {kept:.3g} of the gradient's second moment at each call "
            "(Klambauer et al. 2017), which no scale of the layers undoes while the forward is held")


# how residual_streams' cause begins: it explains a ratio above the band, not one below it
RESIDUAL_CAUSE = "Each of the "


def residual_streams(branches: int) -> str:
    """The cause for a model with `branches` residual branches (`Plan.residual_branches`)."""
    return (f"{RESIDUAL_CAUSE}{branches} residual branches adds its share to the gradient on the way back, as it adds "
            "its variance to the stream on the way forward, so the gradient at a deep stack's first layers grows "
            "with the stream's variance; smaller branches, which would narrow the ratio, would leave their last "
            "layers' outputs outside the forward's 2-fold of the others")


NOT_SOLVED = ("The solve keeps the forward pass here; the gradient is tilted toward the band only in models without "
              "norms, attention or residual streams and in those whose norms set the scale without attention")


class EndCauses(NamedTuple):
    """What sets a layer's gradient whatever the weights' scale, when it is an end of the
    measured ratio: `broadcast` (module -> how many positions its output is broadcast
    over, `Plan.broadcast_layers`) and `scaled` (module -> the constant its output is
    multiplied by, `Plan.scaled_layers`)."""

    broadcast: dict[str, int]
    scaled: dict[str, float]
    # where the output averages over positions of any kind (`Plan.averaged_positions`): a ratio
    # below the band with more elements at its first layer than at its last is that mean's
    averaged: str | None = None


def measured_note(model: torch.nn.Module, example_inputs: ExampleInputs, cause: str,
                  pooled: str | None = None, ends: EndCauses | None = None) -> str | None:
    """A note when the measured gradient ratio (`measured_profile`, `gradient_ratio`)
    is outside the band, with `cause`, or when autograd fails there; else None. With
    `pooled` (where the output averages over positions), a ratio below the band is
    the mean's division instead (`averaged_down`); where an end of the ratio is a
    layer in `ends`, that is the cause (`end_cause`)."""
    layers = measured_profile(model, example_inputs)
    if layers is None or isinstance(layers, str):
        return layers
    return profile_note(layers, cause, pooled, ends)


def profile_note(layers: list[Layer], cause: str, pooled: str | None = None, ends: EndCauses | None = None,
                 done: str = "") -> str | None:
    """measured_note's note on a measured profile, with `done` (what was tried) after the ratio."""
    ratio = gradient_ratio(layers)
    if in_band(ratio):
        return None
    condition = end_cause(layers, ratio, ends)
    if condition is not None:
        return f"{outside_band(layers, ratio)}{done}. {condition}"
    averaged = pooled or (ends.averaged if ends is not None and layers[0].elements > layers[-2].elements else None)
    because = averaged_down(averaged, layers) if averaged and ratio < 1 else cause
    if ratio < 1 and because.startswith(RESIDUAL_CAUSE) and layers[0].elements > layers[-2].elements:
        because = fewer_elements(layers)   # the branches grow the ratio; below the band, the counts shrink it
    return f"{outside_band(layers, ratio)}{done}. {because}"


def fewer_elements(layers: list[Layer]) -> str:
    """The cause for a ratio below the band in a model whose first layer's output has
    more elements than its last hidden one's (a detector's backbone: its stem against its
    last feature level)."""
    first, last = layers[0], layers[-2]
    return ("An init that keeps the forward's second moment keeps about the gradient's energy from layer to "
            "layer, so its std per element falls where a layer's output has more elements "
            f"({first.elements} per example at {first.module}, {last.elements} at {last.module}); the residual "
            "branches would raise the ratio, not lower it")


def end_cause(layers: list[Layer], ratio: float, ends: EndCauses | None) -> str | None:
    """The sentence of `end_explained`, or None."""
    explained = end_explained(layers, ratio, ends)
    return None if explained is None else explained[0]


def end_explained(layers: list[Layer], ratio: float, ends: EndCauses | None) -> tuple[str, float] | None:
    """(the cause, the ratio without it) for a ratio whose larger end is a layer whose
    output is broadcast over positions (a condition: a timestep embedding, an adaLN
    modulation, FiLM's scale and shift; a squeeze-and-excitation's gate), or whose
    smaller end (or larger) is a layer whose output is multiplied by a constant below 1
    (above 1) on its way (an Euler step's x + dt f(x)); else None."""
    if ends is None:
        return None
    first, last = layers[0], layers[-2]
    end = first if ratio > 1 else last
    if end.module in ends.broadcast:
        positions = ends.broadcast[end.module]
        without = ratio / math.sqrt(positions) if end is first else ratio * math.sqrt(positions)
        return (f"{end.module}'s output holds one value per example and channel, which the model broadcasts over "
                f"{positions} positions: its gradient is the sum of theirs, about {math.sqrt(positions):.3g} times "
                "one position's where they are independent, whatever the weights' scale (a diffusion model's "
                "timestep embedding, DiT's adaLN modulation, FiLM's scale and shift, a squeeze-and-excitation's "
                f"gate): without that factor the ratio would be about {without:.3g}"), without
    for layer, shrinks in ((last, ratio > 1), (first, ratio < 1)):
        c = ends.scaled.get(layer.module)
        if c is not None and (abs(c) < 1) == shrinks:
            without = ratio * abs(c) if layer is last else ratio / abs(c)
            return (f"{layer.module}'s output is multiplied by {c:g} on its way (a fixed scale: an Euler step's "
                    "x + dt f(x), SIREN's sin(30 x), a Transformer's embedding times sqrt(d)), so its gradient is "
                    f"{abs(c):g} times the one that reaches it, whatever the weights' scale: without that factor "
                    f"the ratio would be {without:.3g}"), without
    return None


def averaged_down(where: str, layers: list[Layer]) -> str:
    """The cause for a ratio below the band under a mean over positions (in `where`)."""
    first, last = layers[0], layers[-2]
    return (f"The output averages over positions (in {where}): each position gets the mean's gradient divided by "
            "their count, so the gradient's std per element falls where a layer's output has more elements "
            f"({first.elements} per example at {first.module}, {last.elements} at {last.module})")
