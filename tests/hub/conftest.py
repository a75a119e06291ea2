"""The Hub tests' fixture; the server and helpers live in `hub_testing.py` so test modules can import them by a
name no other test folder uses (every folder's conftest is a module called `conftest`)."""

from hub_testing import hub  # noqa: F401  (the session-scoped Hub server fixture)
