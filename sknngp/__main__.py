"""Command line: ``sknngp study`` (also ``python -m sknngp study``).

Runs the comparisons of Lee et al. (2020), *Finite Versus Infinite Neural
Networks: an Empirical Study*, on digits (bundled), Fashion-MNIST or CIFAR-10,
and writes tables, plots and a report saying which findings the run supports.
"""

from __future__ import annotations

import argparse
import sys
import time

ARCHITECTURES = ("fc", "cnn-vec", "cnn-gap")


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
    p.add_argument("--n-train", type=int, default=None, help="training images (default: preset)")
    p.add_argument("--n-test", type=int, default=None, help="test images (default: preset)")
    p.add_argument("--depth", type=int, default=None, help="hidden layers (default: preset)")
    p.add_argument("--epochs", type=int, default=None,
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
    p.add_argument("--device", default="auto",
                   help="auto, cpu, gpu or gpu:<i> (cuda is an alias of gpu); kernels run on "
                        "JAX's device, finite networks on torch's (default: auto)")
    p.add_argument("--out", default="study_out", help="output folder (default: study_out)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: preset, 0)")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="CPU threads of torch; small networks train fastest on one; 0 leaves "
                        "torch's default (default: 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def study(args):
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _study_parser(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return study(args)


if __name__ == "__main__":
    sys.exit(main())
