"""Test-wide settings: every run of the suite draws the same random numbers.

Property-based tests (hypothesis) draw the same examples on every run, derived
from each test, so a failure in CI can always be reproduced; to search new
examples locally: `python -m pytest --hypothesis-profile=explore`. The default
generators (varinit's, seeded from OS entropy at import, and torch's) are
seeded once per test, so a test that leaves `generator=None` is as repeatable
as one that names a seed.
"""
import sys

import pytest
from hypothesis import settings

import varinit

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("repeatable")

DEFAULT_SEED = 20261122


@pytest.fixture(autouse=True)
def seeded_default_generators():
    varinit.manual_seed(DEFAULT_SEED)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(DEFAULT_SEED)
