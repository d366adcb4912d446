import os
import re
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ternlib import Tern  # noqa: E402

DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"


def postgres_database():
    """A new database on the test cluster (TERN_TEST_POSTGRES), its URL."""
    server = os.environ["TERN_TEST_POSTGRES"]
    name = "i_" + uuid.uuid4().hex
    subprocess.run(["psql", server, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return re.sub(r"/[^/?]+(\?|$)", f"/{name}\\1", server, count=1)


@pytest.fixture
def make_tern(tmp_path):
    """Makes Tern servers with extra settings; all are stopped at the end of the test. With TERN_INTEROP_STORE=postgres
    each server keeps its store in a database of its own on the test cluster (TERN_TEST_POSTGRES), so that a suite
    runs against the PostgreSQL backend as it does against the embedded one."""
    servers = []

    def make(settings=None, name="tern", users=(ALICE, BOB), start=True):
        if os.environ.get("TERN_INTEROP_STORE") == "postgres":
            settings = dict(settings or {})
            settings[""] = {**settings.get("", {}), "store": postgres_database()}
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
