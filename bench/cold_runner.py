"""Child process of the cold-path benchmark: import one function module, serve one request, report, exit.

Run as ``python bench/cold_runner.py '<json>'`` with json = {"path", "module", "request"}. It imports nothing of
its own beyond what the interpreter has at start-up, so every variant pays exactly its own imports. Prints one
JSON line: {"import_s", "call_s", "status"}; the parent times process start -> that line.
"""

import sys
import time

T0 = time.perf_counter()


def main() -> None:
    import json  # tiny, already imported by every variant's dependencies; same cost for all

    job = json.loads(sys.argv[1])
    sys.path[0] = job["path"]  # replace this script's folder with the app root, as the worker does
    t = time.perf_counter()
    module = __import__(job["module"])
    t_import = time.perf_counter() - t
    import azure.functions as func  # already imported by the module: free

    spec = job["request"]
    req = func.HttpRequest(spec["method"], spec["url"], headers=spec["headers"], body=spec["body"].encode())
    t = time.perf_counter()
    response = module.main(req)
    t_call = time.perf_counter() - t
    sys.stdout.write(json.dumps({"import_s": t_import, "call_s": t_call, "status": response.status_code,
                                 "runner_s": time.perf_counter() - T0}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
