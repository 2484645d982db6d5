"""Run the fuzz corpus (``tests/fuzz_corpus.py``) and count clean outcomes.

Run from the root of the tree whose ``sknngp`` is to be fuzzed::

    python tools/fuzz_api.py [--json out.json] [--timeout 60] [--cheap]

Each case runs in this process with a time limit (SIGALRM); the kernel bank
is cleared before each case. Prints one line per unclean case and the counts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import time
import warnings

sys.path.insert(0, os.getcwd())
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every outcome to this file")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per case")
    parser.add_argument("--cheap", action="store_true", help="only the cheap cases")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_num_cpu_devices", 2)
    import fuzz_corpus
    import sknngp
    from sknngp import _bank

    cases = [c for c in fuzz_corpus.all_cases() if c.cheap or not args.cheap]
    signal.signal(signal.SIGALRM, _alarm)
    rows, counts = [], collections.Counter()
    for case in cases:
        _bank.clear()
        start = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = case.fn()
            signal.alarm(0)
            outcome, detail = fuzz_corpus.classify(case, result=result)
        except _Timeout:
            outcome, detail = "hang", f"over {args.timeout} s"
        except Exception as exc:  # noqa: BLE001 - classifying every error is the point
            signal.alarm(0)
            outcome, detail = fuzz_corpus.classify(case, error=exc)
        seconds = time.perf_counter() - start
        counts[outcome] += 1
        rows.append(dict(case=case.name, outcome=outcome, detail=detail,
                         seconds=round(seconds, 3)))
        if outcome != "clean":
            print(f"[{outcome}] {case.name}: {detail}", flush=True)
    clean = counts["clean"]
    print(f"\n{len(cases)} cases, {clean} clean, {len(cases) - clean} unclean: "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k != "clean"))
    if args.json:
        import platform

        import numpy

        machine = dict(platform=platform.platform(), python=platform.python_version(),
                       cpus=os.cpu_count(), numpy=numpy.__version__, jax=jax.__version__)
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(dict(sknngp=sknngp.__file__, machine=machine, counts=dict(counts),
                           cases=rows), fh, indent=1)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
