"""Test-wide settings.

Property-based tests (hypothesis) draw the same examples on every run, derived
from each test, so a failure in CI can always be reproduced. To search new
examples locally: `python -m pytest --hypothesis-profile=explore`.
"""
from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("repeatable")
