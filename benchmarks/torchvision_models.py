"""Whole-model init on models no one in this project wrote: torchvision's
classification models, one call with no hints, judged as tests/torch/zoo.py
judges its own (one forward and one backward pass: "act" the max/min std of
the weight layers' outputs, "out" the output std, "grad" the first/last hidden
layer gradient std ratio), against torch's default init and anyinit.

    pip install torchvision==0.28.0 anyinit
    PYTHONPATH=python python benchmarks/torchvision_models.py [--quick]

Inputs are 64x64 images (batch 4; 8 for ResNet-18, 2 for the largest), so the
last stages of the ImageNet models run on 2x2 maps and Swin's 7x7 windows are
mostly zero padding: small maps are where the effective fans and the padding
matter. --quick leaves anyinit's analytic mode out (its call takes up to 10 s).

torchvision's wheels on PyPI carry compiled ops built for CUDA torch; with a
CPU torch their registration fails at `import torchvision`. The models are
plain Python, so this script imports `torchvision.models` without running
the package's __init__ (a namespace stub pointing at its folder).
Results go to stdout and benchmarks/results/torchvision_models.md.
"""
import argparse
import importlib.util
import os
import sys
import types

import torch

from model_rows import rows, write


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave anyinit's analytic mode out")
    args = parser.parse_args(argv)
    tvm = _torchvision_models()
    version = getattr(sys.modules.get("torchvision.version"), "__version__", "")
    write("torchvision_models", rows(models(tvm), args.quick), f", torchvision {version}")


if __name__ == "__main__":
    main()
