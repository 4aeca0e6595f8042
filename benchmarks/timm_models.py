"""Whole-model init on timm's image models, which no one in this project wrote:
one call with no hints, judged as tests/torch/zoo.py judges its own (one forward
and one backward pass: "act" the max/min std of the weight layers' outputs,
"out" the output std, "grad" the first/last hidden layer gradient std ratio),
against torch's default init and anyinit.

    pip install timm==1.0.31 torchvision==0.28.0 anyinit
    PYTHONPATH=python python benchmarks/timm_models.py [--quick]

timm's own init is not applied (`torch default` is the modules' defaults and
timm's own `init_weights` where its constructors run it). Inputs are 64 x 64
images, or the size a model fixes (224 for ResMLP, gMLP, TNT). The models
were picked for the kinds of block they hold: class attention (CaiT, VOLO),
a pixel stream inside the patch stream (TNT), shared position encodings
(CoaT), talking heads, affine maps in place of norms (ResMLP), weight
standardization with skip-init gains (NF-ResNet), gated MLPs, layer scales
read through a reshape (ConvNeXt), rotary pairs made with torch.stack (EVA).
timm imports torchvision, whose PyPI wheels fail to load their CUDA ops next
to a CPU torch: as in torchvision_models.py, the package's __init__ is not
run. Results go to stdout and benchmarks/results/timm_models.md.
"""
import argparse
import sys

import torch

from model_rows import rows, write
from torchvision_models import _torchvision_models

# name -> input size (timm's ViT-like models take img_size=64; these fix theirs)
MODELS = {
    "resnet18d": 64, "convnext_atto": 64, "efficientnet_b0": 64, "mobilenetv3_small_100": 64,
    "regnetx_002": 64, "repvgg_a0": 64, "nf_resnet26": 64, "poolformer_s12": 64, "edgenext_xx_small": 64,
    "mobilevit_xxs": 64, "vit_tiny_patch16_224": 64, "deit_tiny_patch16_224": 64, "mixer_s16_224": 64,
    "cait_xxs24_224": 64, "volo_d1_224": 64, "convit_tiny": 64, "eva02_tiny_patch14_224": 64, "pit_ti_224": 64,
    "xcit_nano_12_p16_224": 64, "levit_128s": 64, "coat_tiny": 64, "twins_svt_small": 64,
    "resmlp_12_224": 224, "gmlp_ti16_224": 224, "tnt_s_patch16_224": 224,
}
# constructors that take img_size (the others adapt to any size or fix it)
TAKES_SIZE = ("vit_", "deit_", "mixer_", "cait_", "volo_", "convit_", "eva02_", "pit_", "xcit_", "levit_", "coat_",
              "twins_")


def _timm():
    _torchvision_models()   # torchvision's package __init__ left out (see its docstring)
    try:
        import timm
    except ImportError:
        raise SystemExit("timm is not installed: pip install timm==1.0.31")
    return timm


def models(timm):
    def make(name, size):
        def build():
            kwargs = {"img_size": size} if name.startswith(TAKES_SIZE) else {}
            model = timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
            return model, torch.randn(4 if size <= 64 else 2, 3, size, size)
        return build
    return {name: make(name, size) for name, size in MODELS.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave anyinit's analytic mode out")
    args = parser.parse_args(argv)
    timm = _timm()
    write("timm_models", rows(models(timm), args.quick), f", timm {timm.__version__}")


if __name__ == "__main__":
    sys.exit(main())
