"""Initialize a small NumPy MLP and a PyTorch model with varinit, and show that
the same seed gives the same bits."""
import numpy as np

import varinit

weights = [np.empty((512, 784), np.float32), np.empty((512, 512), np.float32),
           np.empty((10, 512), np.float32)]
g = varinit.Generator(2026)
for w in weights:
    varinit.kaiming_normal_(w, nonlinearity="relu", generator=g)
    print(f"{str(w.shape):>12}  std {w.std():.5f}  (He target {np.sqrt(2 / w.shape[1]):.5f})")

again = varinit.kaiming_normal_(np.empty((512, 784), np.float32), nonlinearity="relu",
                                generator=varinit.Generator(2026))
print("same seed, same bits:", np.array_equal(again, weights[0]))
print("active kernels:", varinit.isa(), " stream version:", varinit.STREAM_VERSION)
