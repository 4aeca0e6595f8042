"""A user's script that mypy must reject, line by line: each line marked
`# rejected: <error code>` must be reported with that code, and nothing else
(tests/typing/test_mypy.py). At run time every one of these calls raises too."""
import numpy as np

import varinit

w = np.zeros((3, 3))
varinit.kaiming_normal_(w, mode=3)  # rejected: arg-type
varinit.kaiming_normal_(w, mode="fan_avg")  # rejected: arg-type
varinit.kaiming_uniform_(w, nonlinearity="rleu")  # rejected: arg-type
varinit.variance_scaling_(w, 2.0, "fan_in", "gaussian")  # rejected: arg-type
varinit.xavier_normal_(w, layer="dense")  # rejected: arg-type
varinit.xavier_normal_(w, batch_axes=0)  # rejected: call-arg
varinit.lecun_normal_(w, groups="2")  # rejected: arg-type
varinit.fans((3, 3), layer="conv2d")  # rejected: arg-type
varinit.normal_([0.0, 1.0])  # rejected: type-var
