"""Golden SHA-256 hashes of fills: any change of the value stream is caught.

These hashes pin stream version 2 (varinit.STREAM_VERSION). They were computed
once with the scalar kernels and must hold on every machine, compiler and SIMD
path. If a deliberate change of the values makes them fail, bump STREAM_VERSION
(csrc/include/varinit.h), record it in the changelog, and regenerate them;
never regenerate them to make an unintended change pass.

orthogonal_ has no golden hash (its QR is LAPACK's, whose rounding depends on
the BLAS build); its Gaussian input is pinned instead.
"""
import hashlib
import math

import ml_dtypes
import numpy as np
import pytest

import varinit

SEED = 0x5EED_2026_1122
STREAM = 5  # a stream other than 0, so the stream words are exercised
DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32,
          "float64": np.float64}
CALLS = {
    "uniform_": lambda t, g: varinit.uniform_(t, -0.5, 1.5, generator=g),
    "normal_": lambda t, g: varinit.normal_(t, 0.25, 2.0, generator=g),
    "trunc_normal_central": lambda t, g: varinit.trunc_normal_(t, 0.0, 0.02, -0.04, 0.04, generator=g),
    "trunc_normal_tail_4_5": lambda t, g: varinit.trunc_normal_(t, 0.0, 1.0, 4.0, 5.0, generator=g),
    "trunc_normal_below_minus6": lambda t, g: varinit.trunc_normal_(t, 0.0, 1.0, -math.inf, -6.0,
                                                                    generator=g),
    "kaiming_normal_": lambda t, g: varinit.kaiming_normal_(t, mode="fan_out", nonlinearity="relu",
                                                            generator=g),
    "kaiming_uniform_": lambda t, g: varinit.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
    "xavier_uniform_": lambda t, g: varinit.xavier_uniform_(t, generator=g),
    "xavier_normal_": lambda t, g: varinit.xavier_normal_(t, gain=2.0, generator=g),
    "variance_scaling_truncated_normal": lambda t, g: varinit.variance_scaling_(
        t, 2.0, "fan_avg", "truncated_normal", generator=g),
    "variance_scaling_normal": lambda t, g: varinit.variance_scaling_(t, 1.0, "fan_in", "normal", generator=g),
    "variance_scaling_uniform": lambda t, g: varinit.variance_scaling_(t, 3.0, "fan_geo_avg", "uniform",
                                                                       generator=g),
    "sparse_": lambda t, g: varinit.sparse_(t, 0.3, 0.01, generator=g),
}

# Stream version 2. Shapes: (16, 8, 3, 3) for kaiming_*, (37, 53) otherwise (ragged group ends).
# Version 2 clamps uniform values into the dtype's [a, b): of these fills only the bfloat16
# uniform_ changed (element 142 was 1.5 = b and is now 1.4921875, the largest bfloat16 below it);
# every other hash is version 1's.
GOLDEN = {
    ("uniform_", "float16"): "351601b14623259505521940aa0c2c0ed28d8785130de465a69a6f7eaee0ed68",
    ("uniform_", "bfloat16"): "c3282459f8c956e5c711f7efc893fad06176a78c9cff628f09cd14fb890df232",
    ("uniform_", "float32"): "6dda0ec5f54588a8231ea3c5a5d44b85a65479f6511d181f7a33782c9bb1dcd5",
    ("uniform_", "float64"): "63dec2c271bb8cb16fb1725b611ac707bad785acb6e7f0fa692d0aac8a89abcb",
    ("normal_", "float16"): "4a1fca6406c832c52f95b4bce8a6cc30b0eb9d748cc279c6f85a650b8e174649",
    ("normal_", "bfloat16"): "8b2631bf923543d4085cbeb37a8c9962812ba456b07caf385a2b500359959320",
    ("normal_", "float32"): "cf5c864268b1b57d30a5abc27f01ea82361152a0870f5072ca9dab3384f8efbe",
    ("normal_", "float64"): "91cda91a7b1898a27b57226359f5e7a46a1da7104d722635fd5aa6323547ed71",
    ("trunc_normal_central", "float16"): "f1bed340a3f2d0fa0a4cba780001f02193d339aa6a72a0bb2f2c3357c50a21f5",
    ("trunc_normal_central", "bfloat16"): "017b198271f1c4fb72a160f34b06d71e240dc3d7f5aa6eddb18a1e3af293bc85",
    ("trunc_normal_central", "float32"): "4dc5e0771e28d34070d81790d9d78e135bd6b983e081b1061ab4533307b8fd2c",
    ("trunc_normal_central", "float64"): "7f46e2b117acd9e3ad3dab0261c7ee011fd6a5f6cda81c945384154e10a7771c",
    ("trunc_normal_tail_4_5", "float16"): "8f8f262441ff4f27f2a5a76ea481b319ee8f604023d4795fc69bfabf45402f22",
    ("trunc_normal_tail_4_5", "bfloat16"): "39623c4471971686ea1eb9312c18850b0fd8ed1a9cdcccb56bdc2b7fc2ab3ee8",
    ("trunc_normal_tail_4_5", "float32"): "52911335cbead98c7a0f3fe6d180c99318272d7e2379a02983cc33b8a1845a4b",
    ("trunc_normal_tail_4_5", "float64"): "5904c7264b05ad118d4c6d0e3a236b0813a1f5635fa3109e5395de402fe7a7fa",
    ("trunc_normal_below_minus6", "float16"): "de1193c29245e2c63d9ef2e9cf550acb3797435575481d87bbe2a196caf23a3e",
    ("trunc_normal_below_minus6", "bfloat16"): "52926db65c2c411c9e4a34d149465bafd511ef9fb09843c98840ad26386d6a34",
    ("trunc_normal_below_minus6", "float32"): "1842c4560bf00cef5d207ef632824f73477f7a6dbab94be2fce959b9b861a9d1",
    ("trunc_normal_below_minus6", "float64"): "f2c09aa35db2a2cea8dc302d10a99054802816e4238dbd4af124b025f1437f60",
    ("kaiming_normal_", "float16"): "d4f94006587072b3ea4323d7071d6dac1618ffb9d85e83c3f3e1d1fbe4911f33",
    ("kaiming_normal_", "bfloat16"): "b950faa8dd91a82305e6eae5012d5e438353061eccc009f8b279cd77a2b189a8",
    ("kaiming_normal_", "float32"): "cae3fa38cf58137dcc68bd85bf2a753cfa4ae077a8b7338337f6d7d452dc8ffa",
    ("kaiming_normal_", "float64"): "e4b66a5bae42772350dfb381f157f97342e8bf5f89fbdcc7d6f5111d47bc3c36",
    ("kaiming_uniform_", "float16"): "1318323d184aabcbbc6dfea6d73055d9bc6af259bae387f94921fbd98b20f7f1",
    ("kaiming_uniform_", "bfloat16"): "f9e71225016faf1250f6fbba4c8217c89db046d3bfce7ee1d6bc98f4e05aae4f",
    ("kaiming_uniform_", "float32"): "1c6a3ed55de9dac75f59c74e9d6f2ad559d8a51dce6a092bacc446b4e4f6f8dc",
    ("kaiming_uniform_", "float64"): "e9efb8f981c5dc15138d22ceba86bbc242a1ed9d546a8d8ad72f807319255f42",
    ("xavier_uniform_", "float16"): "65c4cfcde297703a0d7b855b95a0cac5c83ce8270538361d6998bcffaf2f0b3f",
    ("xavier_uniform_", "bfloat16"): "8475f52fad8324f6296ab0ef64133acf1bf8367220d170c22850c76682b444ae",
    ("xavier_uniform_", "float32"): "eebd53aa132072dcbb534d4f02409b9c857cfdc5c5153446b8e103cd63a4372f",
    ("xavier_uniform_", "float64"): "34e2b9a022f3f39ed1c78d65c544eda343a3f5cb49796b427742bff1a659e0c7",
    ("xavier_normal_", "float16"): "89a1a09a5b829cc38b0a5efcc55812f609683fe2dcf628c868a8e5b897a8f891",
    ("xavier_normal_", "bfloat16"): "9d7943363733c4bafe51a8ca988a01040944714e1327c969824e36ef3e1a222b",
    ("xavier_normal_", "float32"): "56f09879d5d9dfb605148e38ad159c73e41377da727abddabc7fcd118927aef2",
    ("xavier_normal_", "float64"): "d2b6746d8fd29b408552c388046ddc250e20db26844d9f823651ead74307fe90",
    ("variance_scaling_truncated_normal", "float16"): "2dfa06ff0b60ed59f6c3d7c0afe5782f2f79b7324209af8cf298c4c6422c113e",
    ("variance_scaling_truncated_normal", "bfloat16"): "99da200c89e0804892d618be6e444868ba5c9ddd5792ee7d3f69bb8c78d74933",
    ("variance_scaling_truncated_normal", "float32"): "e1aad2ce1b3438a8117b10afa4fa32d61faf4bafd05019bcdc8b36c1cd7855f6",
    ("variance_scaling_truncated_normal", "float64"): "fd489019dd7c56b707a90a3ee726e796cbeda6e2c32f7460d2b5eaaec34fbd2f",
    ("variance_scaling_normal", "float16"): "fd7a42031e664974b8eaa9077032baebd79de49a4319fc189c345f9e9be79aba",
    ("variance_scaling_normal", "bfloat16"): "40450479bb4fc6d9570bae38539a79e0adff64ca8c75a110d235b24f8b93bc0b",
    ("variance_scaling_normal", "float32"): "382f387998c644763d39a01c0fc4bc510c6e8db6330cf4e824914d94167cf4ca",
    ("variance_scaling_normal", "float64"): "a6423ebaa23cd9f9f5fe599a15d6b95e1567edf8430065370bcb14503f33d992",
    ("variance_scaling_uniform", "float16"): "5ad92b2fa32f5cc904cf6ca4fb88c2ae581ab538362ba59e0c0afd1b3c148f30",
    ("variance_scaling_uniform", "bfloat16"): "d2499260b4cf3f1787c5317083a941351470a2516897ae7c3bc5319bb736c9ed",
    ("variance_scaling_uniform", "float32"): "5c7206cebf36117cd2f9c03521bf3227cccb750ab8afcf8b730783df5d1fa484",
    ("variance_scaling_uniform", "float64"): "b8a60b4528148ca618874e83bf7e854a3f42ad3b4a0e085fadd760d0bed6d19a",
    ("sparse_", "float16"): "a21700f6484224a272f4931767315b9f8eb02b12c829a712093e2c0b6b4c5756",
    ("sparse_", "bfloat16"): "0884c31361a69df0a6ea004b0a1029fa842de816473d2b187bb640715f9ef2ce",
    ("sparse_", "float32"): "e15157d2c449be1583ab7dd14f4b529f67dc8c5af23a70c1a5b1fbf8c33303a7",
    ("sparse_", "float64"): "b20ac430faa9c3ee65d9c8cb811a2ad0e238fb80084b922f37df711e0bb9b2d5",
}
# normal_(float64, (6, 6), generator=SEED): the Gaussian orthogonal_ factors for a 6 x 6 weight
GOLDEN_ORTHOGONAL_GAUSSIAN = "b78fcc92db5aad4daec47fc4a4bc5c22d02c56a05b2c661bcc51c2588d305160"


def sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_stream_version_is_2():
    assert varinit.STREAM_VERSION == 2


def test_every_function_and_dtype_has_a_hash():
    assert set(GOLDEN) == {(name, dtype) for name in CALLS for dtype in DTYPES}


@pytest.mark.parametrize("name,dtype", sorted(GOLDEN))
def test_golden_hash(name, dtype):
    shape = (16, 8, 3, 3) if name.startswith("kaiming") else (37, 53)
    g = varinit.Generator(SEED).set_state((SEED, STREAM))
    assert sha256(CALLS[name](np.empty(shape, DTYPES[dtype]), g)) == GOLDEN[(name, dtype)]


def haar_orthogonal(gaussian):
    """QR with the sign correction of Mezzadri (2007), the construction orthogonal_ documents."""
    tall = gaussian if gaussian.shape[0] >= gaussian.shape[1] else gaussian.T
    q, r = np.linalg.qr(tall)
    q = q * np.sign(np.diag(r))
    return q if tall is gaussian else q.T


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9), (5, 3, 2)])
def test_orthogonal_factors_the_pinned_gaussian(shape):
    # orthogonal_ QR-factors the float64 standard normal fill of the same (key, stream),
    # whose values are pinned by the golden normal_ hashes' stream.
    rows, cols = shape[0], math.prod(shape[1:])
    gaussian = varinit.normal_(np.empty((rows, cols), np.float64), generator=SEED)
    got = varinit.orthogonal_(np.empty(shape, np.float64), gain=1.5, generator=SEED)
    np.testing.assert_allclose(got.reshape(rows, cols), 1.5 * haar_orthogonal(gaussian), rtol=0, atol=1e-13)


def test_orthogonal_reproduces_on_this_machine():
    a = varinit.orthogonal_(np.empty((50, 30), np.float32), generator=varinit.Generator(3))
    b = varinit.orthogonal_(np.empty((50, 30), np.float32), generator=varinit.Generator(3))
    assert a.tobytes() == b.tobytes()


def test_gaussian_behind_orthogonal_is_pinned():
    g = varinit.normal_(np.empty((6, 6), np.float64), generator=SEED)
    assert sha256(g) == GOLDEN_ORTHOGONAL_GAUSSIAN
