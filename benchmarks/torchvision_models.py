"""Whole-model init on models no one in this project wrote: torchvision's
classification models, one call with no hints, judged as tests/torch/zoo.py
judges its own (one forward and one backward pass: "act" the max/min std of
the weight layers' outputs, "out" the output std, "grad" the first/last hidden
layer gradient std ratio), against torch's default init and anyinit.

    pip install torchvision==0.28.0 anyinit
    PYTHONPATH=python python benchmarks/torchvision_models.py [--quick]

Inputs are 64x64 images (batch 4; 2 for the largest), so the last stages of
the ImageNet models run on 2x2 maps and Swin's 7x7 windows are mostly zero
padding: small maps are where the effective fans and the padding matter.
--quick leaves anyinit's analytic mode out (its call takes up to 10 s).

torchvision's wheels on PyPI carry compiled ops built for CUDA torch; with a
CPU torch their registration fails at `import torchvision`. The models are
plain Python, so this script imports `torchvision.models` without running
the package's __init__ (a namespace stub pointing at its folder).
Results go to stdout and benchmarks/results/torchvision_models.md.
"""
import argparse
import importlib.util
import os
import platform
import sys
import time
import types
import warnings

import torch

import varinit

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "torch"))
from zoo import profile, verdict  # noqa: E402

try:
    import anyinit
except ImportError:
    anyinit = None


def _torchvision_models():
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise SystemExit("torchvision is not installed: pip install torchvision==0.28.0")
    if "torchvision" not in sys.modules:
        stub = types.ModuleType("torchvision")
        stub.__path__ = [os.path.dirname(spec.origin)]
        sys.modules["torchvision"] = stub
    import torchvision.models as tvm
    return tvm


def _images(batch):
    return torch.randn(batch, 3, 64, 64)


def models(tvm):
    return {
        "resnet18": lambda: (tvm.resnet18(), _images(8)),
        "resnet50": lambda: (tvm.resnet50(), _images(4)),
        "vgg11_bn": lambda: (tvm.vgg11_bn(), _images(4)),
        "alexnet": lambda: (tvm.alexnet(), _images(4)),
        "squeezenet1_1": lambda: (tvm.squeezenet1_1(), _images(4)),
        "densenet121": lambda: (tvm.densenet121(), _images(4)),
        "googlenet": lambda: (tvm.googlenet(aux_logits=False, init_weights=False), _images(4)),
        "mobilenet_v2": lambda: (tvm.mobilenet_v2(), _images(4)),
        "mobilenet_v3_small": lambda: (tvm.mobilenet_v3_small(), _images(4)),
        "efficientnet_b0": lambda: (tvm.efficientnet_b0(), _images(4)),
        "shufflenet_v2_x1_0": lambda: (tvm.shufflenet_v2_x1_0(), _images(4)),
        "regnet_y_400mf": lambda: (tvm.regnet_y_400mf(), _images(4)),
        "convnext_tiny": lambda: (tvm.convnext_tiny(), _images(2)),
        "vit (6 layers, d 384)": lambda: (tvm.VisionTransformer(image_size=64, patch_size=16, num_layers=6,
                                                                num_heads=12, hidden_dim=384, mlp_dim=1536),
                                          _images(4)),
        "swin_t": lambda: (tvm.swin_t(), _images(2)),
    }


def _anyinit(mode):
    def run(model, x):
        anyinit.initialize(model, mode, x if mode == "empirical" else tuple(x.shape), seed=0)
    return run


def methods(quick):
    found = {
        "torch default": lambda model, x: None,
        "varinit": lambda model, x: varinit.torch.init_module(model, x, generator=0),
        "varinit, shapes only": lambda model, x: varinit.torch.init_module(model, x.to("meta"), generator=0),
    }
    if anyinit is not None:
        found["anyinit empirical"] = _anyinit("empirical")
        if not quick:
            found["anyinit analytic"] = _anyinit("analytic")
    return found


def passes(v):
    return v["act_ratio"] <= 2 and 0.5 <= v["output_std"] <= 2 and 0.25 <= v["grad_ratio"] <= 4


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave anyinit's analytic mode out")
    args = parser.parse_args(argv)
    tvm = _torchvision_models()
    rows = []
    for name, make in models(tvm).items():
        for method, run in methods(args.quick).items():
            torch.manual_seed(0)
            model, x = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                try:
                    run(model, x)
                except Exception as error:  # a peer that cannot handle a model: say so in the table
                    rows.append((name, method, f"error: {type(error).__name__}", "", "", "", ""))
                    continue
                seconds = time.perf_counter() - start
            torch.manual_seed(1)
            v = verdict(*profile(model, x))
            rows.append((name, method, f"{v['act_ratio']:.3g}", f"{v['output_std']:.3g}", f"{v['grad_ratio']:.3g}",
                         "yes" if passes(v) else "no", f"{seconds * 1000:.0f} ms"))
            print(" | ".join(rows[-1]), flush=True)
    header = ("model", "init", "act max/min", "out std", "grad first/last", "all three in bounds", "time")
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
             f"varinit {varinit.__version__}, anyinit {getattr(anyinit, '__version__', 'absent')}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    out = os.path.join(os.path.dirname(__file__), "results", "torchvision_models.md")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
