"""`prepare` throughput and peak memory at 10k and 100k rows.

The corpus is the bundled sample repeated with a numbered suffix (so nothing de-duplicates away), which keeps
the benchmark offline and the text lengths realistic. Each size runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from components.config import parse_params
    from components.stages.prepare import prepare
    root = Path(sys.argv[1])
    params = parse_params({"seed": 1, "prepare": {"sources": [{"name": "bench", "kind": "emosafe",
                           "path": "corpus.jsonl"}], "output_dir": "out"}})
    start = time.perf_counter()
    result = prepare(params, root)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": result.summary["rows"], "seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1)}))
    """
)


def run(sizes: tuple[int, ...] = (10_000, 100_000)) -> dict[str, Any]:
    sample = [json.loads(line) for line in (REPO / "data/sample/messages.jsonl").read_text().splitlines()]
    figures: dict[str, Any] = {}
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            with open(Path(tmp) / "corpus.jsonl", "w") as handle:
                for i in range(size):
                    row = sample[i % len(sample)]
                    handle.write(json.dumps({**row, "id": f"b{i}", "text": f"{row['text']} ({i})"}) + "\n")
            done = subprocess.run([sys.executable, "-c", CHILD, tmp], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["rows_per_second"] = round(result["rows"] / result["seconds"])
            figures[f"{size}_rows"] = result
    return figures
