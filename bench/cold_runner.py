"""Child process of the cold-path benchmark: import one function, serve one request, report, exit at once.

``python bench/cold_runner.py '<json>'`` with json = {"path", "module", "request", "heavy", "preload"?}. It imports nothing of
its own beyond what the interpreter has at start-up, so every variant pays exactly its own imports. Prints one
JSON line {"import_s", "call_s", "status", "heavy"} ("heavy": those of the given modules now in sys.modules)
and leaves with os._exit, so the parent's timing of process start -> exit excludes interpreter teardown.
"""

import os
import sys
import time


def main() -> None:
    import json  # tiny, and imported by every variant's dependencies anyway: the same cost for all

    job = json.loads(sys.argv[1])
    sys.path[0] = job["path"]  # replace this script's folder with the app root, as the worker does
    started = time.perf_counter()
    for name in job.get("preload", ()):  # a "naive" variant: these imported at the top, used or not
        __import__(name)
    module = __import__(job["module"])
    import_s = time.perf_counter() - started
    import azure.functions as func  # already imported by the module: free

    spec = job["request"]
    req = func.HttpRequest(spec["method"], spec["url"], headers=spec["headers"], body=spec["body"].encode())
    started = time.perf_counter()
    status = module.main(req).status_code
    call_s = time.perf_counter() - started
    heavy = [name for name in job["heavy"] if name in sys.modules]
    sys.stdout.write(json.dumps({"import_s": import_s, "call_s": call_s, "status": status, "heavy": heavy}))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
