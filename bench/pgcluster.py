"""A throwaway PostgreSQL cluster for the benchmarks that run Tern on PostgreSQL (scripts/pg-test-cluster: fsync and
synchronous_commit on, loopback), installed from Debian's packages when missing."""
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class PostgresCluster:
    """A throwaway PostgreSQL cluster (scripts/pg-test-cluster) with one database per use."""

    def __init__(self):
        # Its own folder: the server runs as the postgres user, who may not enter the bench's private work folder.
        self.dir = Path(tempfile.mkdtemp(prefix="tern-bench-pg-", dir="/var/tmp"))
        if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
            subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, capture_output=True)
        self.url = subprocess.run([str(ROOT / "scripts" / "pg-test-cluster"), "start", str(self.dir)], check=True,
                                  capture_output=True, text=True).stdout.strip()

    def database(self, name):
        subprocess.run(["psql", self.url, "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        return re.sub(r"/[^/]+$", f"/{name}", self.url)

    def stop(self):
        subprocess.run([str(ROOT / "scripts" / "pg-test-cluster"), "stop", str(self.dir)], capture_output=True)
