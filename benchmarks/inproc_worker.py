"""The in-process baseline of the overhead benchmark, in a process of its own.

``python -m benchmarks.inproc_worker SETTINGS_JSON DETS SEED`` builds the models the server would load for
``SETTINGS_JSON`` (``ServerConfig`` fields), warms them up and prints ``ready``; then, for every line
``START COUNT`` on stdin, runs frames ``START .. START+COUNT-1`` of the synthetic scene through
``server.pipeline.Pipeline.process`` on a worker thread (one stream, one tracker for the whole run) and prints one JSON line
``{"laps": [seconds...], "stage_ms": {stage: [ms...]}}``. An empty line or EOF ends it.

Why a process of its own: the gRPC clients of the benchmark live in the parent, and grpc's asyncio poller
thread there competes for the GIL with every torch call; a user embedding the pipeline has no such thread. The
server runs in its own process too, so both paths get the same kind of process.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def main(argv: list[str]) -> int:
    from benchmarks.overhead import in_process_models
    from benchmarks.service import make_items
    from server.pipeline import Pipeline

    settings = json.loads(argv[0])
    dets, seed = int(argv[1]), int(argv[2])
    items = make_items(50, dets, seed=seed)
    runner, factory = in_process_models(settings)
    pipe = Pipeline(runner, factory)
    print("ready", flush=True)

    def block(start: int, count: int) -> dict[str, Any]:
        laps: list[float] = []
        stage: dict[str, list[float]] = {}
        for i in range(start, start + count):
            it = items[i % len(items)]
            cls = np.zeros(len(it.boxes), np.int64)
            t0 = time.perf_counter()
            res = pipe.process(it.jpeg, i / 10.0, detections=(it.boxes, it.scores, cls))
            laps.append(time.perf_counter() - t0)
            for key, v in res.stage_ms.items():
                stage.setdefault(key, []).append(float(v))
        return {"laps": laps, "stage_ms": stage}

    # The pipeline runs on a thread of its own, as the server's model runner does: on an oversubscribed
    # machine torch calls from the main thread were measured 5-10x slower than the same calls from a worker
    # thread (libgomp's barrier behaviour for the initial thread's team), which would bias the baseline.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inproc-pipeline") as pool:
        for line in sys.stdin:
            if not line.strip():
                break
            start, count = (int(v) for v in line.split())
            print(json.dumps(pool.submit(block, start, count).result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
