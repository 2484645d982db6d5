"""Command line: ``sknngp study`` (also ``python -m sknngp study``).

Runs the comparisons of Lee et al. (2020), *Finite Versus Infinite Neural
Networks: an Empirical Study*, on digits (bundled), Fashion-MNIST or CIFAR-10,
and writes tables, plots and a report saying which findings the run supports.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from . import __version__
from ._optional import MissingDependencyError, require

ARCHITECTURES = ("fc", "cnn-vec", "cnn-gap")
#: experiments that train finite networks (torch and skorch)
FINITE_EXPERIMENTS = ("finite_vs_infinite", "finite_width", "weight_decay")
CUDA_HINT = (
    'install JAX\'s CUDA plugin (pip install "sknngp[cuda]") and a CUDA build of torch, '
    "check that nvidia-smi lists the GPU, or run with --device cpu"
)


class UsageError(Exception):
    """A command-line value that cannot work: printed as one line, exit status 2."""


def _int_at_least(low, high=None):
    """An argparse ``type`` accepting integers in [low, high], with a clear message."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {value}")
        return value

    return parse


def _device(text):
    if not re.fullmatch(r"auto|cpu|(gpu|cuda)(:\d+)?", text):
        raise argparse.ArgumentTypeError(
            f"expected auto, cpu, gpu, gpu:<index> (or cuda, cuda:<index>), got {text!r}"
        )
    return text


def _out_folder(text):
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "must name a folder, got an empty string (use --out . for the current folder)"
        )
    return text


def _study_parser(sub):
    from .study import DATASETS, EXPERIMENTS, PRESETS

    p = sub.add_parser(
        "study",
        help="reproduce the paper's finite-vs-infinite comparisons",
        description=(
            "Run the paper's comparisons (experiments: " + ", ".join(EXPERIMENTS) + ") and "
            "write results.csv, results.md, one PNG per experiment and report.md to --out. "
            "Rerunning skips experiments whose <name>.csv is already in --out."
        ),
    )
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits is bundled; the others read their published files "
                        "(default: digits)")
    p.add_argument("--data-home", default=None,
                   help="folder of the data files (default: $SKNNGP_DATA or ~/sknngp_data)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                   help="sizes, grids and training budgets (default: demo, <10 min on 2 cores)")
    p.add_argument("--n-train", type=_int_at_least(2), default=None,
                   help="training images (default: preset)")
    p.add_argument("--n-test", type=_int_at_least(1), default=None,
                   help="test images (default: preset)")
    p.add_argument("--depth", type=_int_at_least(1, _max_depth()), default=None,
                   help="hidden layers (default: preset)")
    p.add_argument("--epochs", type=_int_at_least(1), default=None,
                   help="full-batch gradient steps of finite networks (default: preset)")
    p.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=None,
                   help="architectures compared finite vs infinite (default: preset)")
    p.add_argument("--sweep-architectures", nargs="+", choices=ARCHITECTURES, default=None,
                   help="architectures of the kernel sweeps (default: preset)")
    p.add_argument("--finite-architectures", nargs="+", choices=ARCHITECTURES, default=None,
                   help="architectures of the finite-network sweeps (default: preset)")
    p.add_argument("--experiments", nargs="+", choices=list(EXPERIMENTS), default=None,
                   metavar="NAME",
                   help="experiments to run (default: all): " + ", ".join(EXPERIMENTS))
    p.add_argument("--device", type=_device, default="auto",
                   help="auto, cpu, gpu or gpu:<i> (cuda is an alias of gpu); kernels run on "
                        "JAX's device, finite networks on torch's (default: auto)")
    p.add_argument("--out", type=_out_folder, default="study_out",
                   help="output folder, created if missing (default: study_out)")
    p.add_argument("--seed", type=_int_at_least(0, 2**32 - 1), default=None,
                   help="random seed (default: preset, 0)")
    p.add_argument("--torch-threads", type=_int_at_least(0), default=1,
                   help="CPU threads of torch; small networks train fastest on one; 0 leaves "
                        "torch's default (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _max_depth():
    from .architecture import MAX_DEPTH

    return MAX_DEPTH


def _check_device(device, need_torch):
    """Fail at once, with the install hint, when a GPU is asked for and none is visible."""
    if not device.startswith(("gpu", "cuda")):
        return
    index = int(device.split(":")[1]) if ":" in device else 0
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if index >= len(gpus):
        seen = f"JAX sees {len(gpus)} GPU(s)" if gpus else "JAX sees no GPU on this machine"
        raise UsageError(f"--device {device}: {seen}; {CUDA_HINT}.")
    if need_torch:
        import torch

        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s), "
                f"so the finite networks cannot use it; {CUDA_HINT}."
            )


def _check_out(out):
    """Create the output folder now, so a bad --out fails before any work."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out!r} is an existing file, not a folder; choose a folder.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out!r}: cannot create the folder ({err.strerror}).") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out!r}: the folder is not writable; choose another.")


def study(args):
    need_torch = args.experiments is None or any(
        name in FINITE_EXPERIMENTS for name in args.experiments)
    require(*(("torch", "skorch") if need_torch else ()),
            feature="sknngp study", extra="study")
    _check_device(args.device, need_torch)
    _check_out(args.out)
    from .study import PRESETS, load_study_data, run_study

    def listed(values):
        return tuple(values) if values else None

    config = PRESETS[args.preset].replace(
        n_train=args.n_train, n_test=args.n_test, depth=args.depth, epochs=args.epochs,
        random_state=args.seed, architectures=listed(args.architectures),
        sweep_architectures=listed(args.sweep_architectures),
        finite_architectures=listed(args.finite_architectures),
    )
    if args.torch_threads:
        try:
            import torch
        except ImportError:
            pass
        else:
            torch.set_num_threads(args.torch_threads)
    start = time.perf_counter()
    n_pool = max(config.precision_sizes) if (
        args.experiments is None or "precision" in args.experiments) else None
    data = load_study_data(args.dataset, n_train=config.n_train, n_test=config.n_test,
                           n_pool=n_pool, data_home=args.data_home,
                           random_state=config.random_state)
    print(f"sknngp study: {args.dataset}, {data.n_train} training / {len(data.X_test)} test "
          f"images {data.input_shape}, preset {args.preset}, output in {args.out}", flush=True)
    paths = run_study(data, config, args.out, experiments=args.experiments, device=args.device,
                      preset=args.preset, progress=not args.no_progress)
    print(f"\ndone in {time.perf_counter() - start:.0f} s")
    print(f"table:  {paths['table']}")
    print(f"plots:  {', '.join(str(p) for p in paths['plots'])}")
    print(f"report: {paths['report']}")
    if paths["failed"]:
        print(f"failed experiments: {', '.join(paths['failed'])} (see *.error.txt in {args.out})")
        return 1
    return 0


def main(argv=None):
    """Entry point of the ``sknngp`` console script."""
    parser = argparse.ArgumentParser(
        prog="sknngp",
        description="Finite neural networks vs their infinite-width limits (NNGP, NTK).",
    )
    parser.add_argument("--version", action="version", version=f"sknngp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    try:
        _study_parser(sub)
    except MissingDependencyError as first:
        # --version and --help still work; the study says all it misses
        err = first
        try:
            require("pandas", "matplotlib", "torch", "skorch", feature="sknngp study",
                    extra="study")
        except MissingDependencyError as everything:
            err = everything
        sub.add_parser("study", help="reproduce the paper's comparisons (needs the study extra)",
                       add_help=False)
        args, _ = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
        else:
            print(f"sknngp {args.command}: error: {err}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return study(args)
    except (UsageError, MissingDependencyError, FileNotFoundError) as err:
        # expected failures (bad values, missing extras, missing data files) are
        # explained by their message: no traceback
        print(f"sknngp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
