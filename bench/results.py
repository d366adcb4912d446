"""Shared by the benchmark scripts: replace one `## name` section of bench/RESULTS.md, leaving the others alone."""
import re
from pathlib import Path


def write_section(path, name, section):
    p = Path(path)
    text = p.read_text() if p.exists() else "# Benchmark results\n\nEach section is rewritten by its benchmark script.\n\n"
    pattern = re.compile(rf"## {re.escape(name)}\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    p.write_text(text)
    print(f"results written to {p}")
