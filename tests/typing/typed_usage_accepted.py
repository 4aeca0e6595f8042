"""A user's script that mypy --strict must accept (tests/typing/test_mypy.py): the
initializers return the object they filled with its own type, the layout keywords
and the string choices are spelled as the signatures declare them."""
import numpy as np
import numpy.typing as npt
import torch

import varinit
import varinit.recipes
import varinit.torch

weight: torch.Tensor = varinit.kaiming_normal_(torch.empty(64, 32, 3, 3), mode="fan_out", nonlinearity="relu",
                                               layer="conv", groups=2, stride=(2, 2), generator=0)
kernel: npt.NDArray[np.float32] = varinit.variance_scaling_(
    np.empty((3, 3, 16, 32), np.float32), 2.0, "fan_avg", "uniform", in_axis=-2, out_axis=-1,
    generator=varinit.Generator(0).stream("kernel"))
stacked = varinit.xavier_uniform_(np.empty((12, 128, 64), np.float32), in_axis=1, out_axis=2, batch_axis=0,
                                  keep_prob=0.9, density=0.5, input_var=2.0, generator=1)
up = varinit.kaiming_uniform_(torch.empty(32, 16, 4, 4), layer="conv_transpose", stride=2,
                              phase_balanced=True, dilation=1, generator=2)
gelu_gain: float = varinit.gain("gelu")
fan_in, fan_out = varinit.fans((768, 256), blocks=3)
std: float = varinit.recipes.depth_scale("gpt2", 12)
alpha, beta = varinit.recipes.depth_scale("deepnorm", 200)
head = varinit.recipes.mup_init_(np.empty((10, 1024), np.float32), "output", 256, 1024, blocks=1, generator=3)
model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
report = varinit.torch.init_module(model, scheme="xavier", mode="fan_in", generator=0)
names: list[str] = [record.name for record in report]
print(weight.shape, kernel.dtype, stacked.shape, up.shape, gelu_gain, fan_in, fan_out, std, alpha, beta,
      head.shape, names)
