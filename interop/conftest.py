import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import Tern  # noqa: E402

DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def make_tern(tmp_path):
    """Makes Tern servers with extra settings; all are stopped at the end of the test."""
    servers = []

    def make(settings=None, name="tern", users=(ALICE, BOB), start=True):
        t = Tern(tmp_path / name, settings)
        t.add_domain(DOMAIN)
        for u in users:
            t.add_user(u)
        if start:
            t.start()
        servers.append(t)
        return t

    yield make
    for t in servers:
        if t.proc is not None:
            t.stop()


@pytest.fixture
def tern(make_tern):
    return make_tern()
