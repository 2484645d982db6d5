"""Time neural-tangents 0.6.5 on given inputs (runs in the oracle venv).

Usage: python _nt_worker.py IN.npz OUT.json -- called by bench_kernels.py with
the python of the neural-tangents venv (`make nt-reference` builds it).
Reads x1, x2 (x2 may be absent: symmetric block) and the architecture; prints
nothing, writes {"seconds": [...], "nt_version": ...}.
"""
import json
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402


def build(arch, depth, W_std, b_std):
    kw = dict(W_std=W_std, b_std=b_std, parameterization="ntk")
    act = stax.Relu()
    if arch == "fc":
        layers = [stax.Flatten()]
        for _ in range(depth):
            layers += [stax.Dense(512, **kw), act]
        return stax.serial(*layers, stax.Dense(1, **kw))
    layers = []
    for _ in range(depth):
        layers += [stax.Conv(512, (3, 3), padding="SAME", **kw), act]
    pool = stax.Flatten() if arch == "cnn-vec" else stax.GlobalAvgPool()
    return stax.serial(*layers, pool, stax.Dense(1, **kw))


def main(inp, out):
    data = np.load(inp)
    cfg = json.loads(str(data["config"]))
    x1 = data["x1"]
    x2 = data["x2"] if "x2" in data else None
    _, _, kernel_fn = build(cfg["arch"], cfg["depth"], cfg["W_std"], cfg["b_std"])
    fn = nt.batch(kernel_fn, batch_size=cfg["nt_batch_size"], store_on_device=False)
    warm = x1[: cfg["nt_batch_size"]]
    np.asarray(fn(warm, None if x2 is None else x2[: cfg["nt_batch_size"]], ("nngp", "ntk")).ntk)
    seconds = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        k = fn(x1, x2, ("nngp", "ntk"))
        np.asarray(k.nngp), np.asarray(k.ntk)
        seconds.append(time.perf_counter() - t)
    np.save(out.replace(".json", "_ntk.npy"), np.asarray(k.ntk))
    with open(out, "w") as fh:
        json.dump({"seconds": seconds, "nt_version": nt.__version__,
                   "jax_version": jax.__version__}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
