"""The ``interp`` command: dashboard, reports and the zoo.

This is the composition root: the only module of ``interp`` that may import
``zoo``, ``dashboard`` and ``reports``, and it does so lazily, inside each
command. Errors users can cause print one line and exit with status 2; no
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .errors import InterpError, UnknownNameError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be an integer in 1..65535; got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _zoo_names(requested: list[str] | None, all_: bool) -> list[str]:
    import zoo

    valid = zoo.names()
    if all_ and requested:
        raise InterpError(f"give model names or --all, not both (got {', '.join(requested)} and --all)")
    if all_:
        return valid
    if not requested:
        raise InterpError(f"name a zoo model or pass --all; valid: {', '.join(valid)}")
    for name in requested:
        if name not in valid:
            raise UnknownNameError("zoo model", name, valid)
    return requested


def _check_port_free(host: str, port: int) -> None:
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise InterpError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
                          "free the port or pick another --port / --host") from None


def cmd_dashboard(args) -> int:
    import zoo

    if args.model is not None and args.model not in zoo.names():
        raise UnknownNameError("zoo model", args.model, zoo.names())
    _check_port_free(args.host, args.port)
    from dashboard.app import create_app

    app = create_app(model=args.model)
    print(f"interp dashboard on http://{args.host}:{args.port}/  (Ctrl+C to stop)", flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


def cmd_report(args) -> int:
    names = _zoo_names(args.model, args.all)
    from reports.build import build

    paths = build(names, args.out, progress=not args.quiet)
    print(f"wrote {len(paths)} files to {args.out}: open {paths[-1]}")
    return 0


def cmd_zoo_list(args) -> int:
    import zoo

    for name in zoo.names():
        s = zoo.spec(name)
        have = zoo.weights_path(name).is_file()
        print(f"{name:<24}{s.kind:<13}{s.task:<16}{'trained' if have else 'no weights'}  {s.description}")
    return 0


def _headline(card: dict) -> str:
    m = card["metrics"]
    keys = ("accuracy", "mse_ratio", "kl", "gen_confidence", "gen_classes_covered",
            "disc_auc_real_vs_generated", "disc_auc_real_vs_shuffled")
    return ", ".join(f"{k}={m[k]:.4g}" if isinstance(m[k], float) else f"{k}={m[k]}"
                     for k in keys if k in m)


def cmd_zoo_train(args) -> int:
    names = _zoo_names(args.names, args.all)
    from zoo.train import train

    start = time.perf_counter()
    failed = []
    for name in names:
        card = train(name, seed=args.seed, epochs=args.epochs, weights_dir=args.weights_dir,
                     progress=not args.quiet)
        bars = card.pop("quality_failures")
        print(f"{name:<24}{card['training']['seconds']:>7.1f}s  {card['weights']['bytes'] / 1024:>6.0f} KiB  "
              f"{_headline(card)}" + (f"  BELOW BAR: {'; '.join(bars)}" if bars else ""), flush=True)
        failed += bars
    print(f"trained {len(names)} model(s) in {time.perf_counter() - start:.1f}s")
    return 1 if failed else 0


def cmd_zoo_evaluate(args) -> int:
    import zoo
    from zoo.evaluate import check_bars, compare, metrics

    names = _zoo_names(args.names, args.all or not args.names)
    problems = 0
    report = {}
    for name in names:
        entry = zoo.load(name, args.weights_dir)
        fresh = metrics(entry.kind, entry.full, entry.model, entry.dataset, args.weights_dir)
        mismatches = compare(entry.card["metrics"], fresh)
        bars = check_bars(entry.kind, fresh)
        problems += len(mismatches) + len(bars)
        status = "matches card" if not mismatches else "DIFFERS FROM CARD: " + "; ".join(mismatches)
        if bars:
            status += "  BELOW BAR: " + "; ".join(bars)
        print(f"{name:<24}{_headline({'metrics': fresh})}  [{status}]", flush=True)
        report[name] = {"metrics": fresh, "mismatches": mismatches, "below_bar": bars}
    if args.json:
        print(json.dumps(report, indent=2))
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="interp", description="See inside PyTorch models: dashboard, reports, zoo.")
    p.add_argument("--version", action="version", version=f"interp {__import__('interp').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("dashboard", help="serve the Dash dashboard on the zoo")
    d.add_argument("--model", help="zoo model selected at start (default: the first)")
    d.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    d.add_argument("--port", type=_port, default=8050)
    d.add_argument("--debug", action="store_true", help="Dash debug mode (never on a shared host)")
    d.add_argument("--cache", metavar="DIR", help="store for dataset-wide results "
                   "(default $INTERP_CACHE or ~/.cache/interp)")
    d.set_defaults(func=cmd_dashboard)

    r = sub.add_parser("report", help="write self-contained HTML reports")
    r.add_argument("--model", action="append", metavar="NAME", help="zoo model (repeatable)")
    r.add_argument("--all", action="store_true", help="every zoo model")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--cache", metavar="DIR", help="store for dataset-wide results "
                   "(default $INTERP_CACHE or ~/.cache/interp)")
    r.set_defaults(func=cmd_report)

    z = sub.add_parser("zoo", help="list, train or evaluate the zoo")
    zsub = z.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", parser_class=_Parser)
    zl = zsub.add_parser("list", help="the zoo's models")
    zl.set_defaults(func=cmd_zoo_list)
    zt = zsub.add_parser("train", help="train models and write weights + cards")
    zt.add_argument("names", nargs="*", metavar="NAME")
    zt.add_argument("--all", action="store_true")
    zt.add_argument("--seed", type=int, default=None, help="override the spec's seed")
    zt.add_argument("--epochs", type=_positive, default=None, help="override the spec's epochs")
    zt.add_argument("--weights-dir", default=None, help="write here instead of zoo/weights")
    zt.add_argument("--quiet", action="store_true", help="no progress bars")
    zt.set_defaults(func=cmd_zoo_train)
    ze = zsub.add_parser("evaluate", help="recompute card metrics from the weights")
    ze.add_argument("names", nargs="*", metavar="NAME")
    ze.add_argument("--all", action="store_true", help="every model (the default)")
    ze.add_argument("--weights-dir", default=None)
    ze.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    ze.set_defaults(func=cmd_zoo_evaluate)
    z.set_defaults(func=lambda a: (z.print_help(), EXIT_USAGE)[1])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .memory import retain_freed_memory

    retain_freed_memory()  # this process is ours to tune; see interp/memory.py
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "cache", None):
        os.environ["INTERP_CACHE"] = args.cache  # read by interp.store.default_root
    try:
        return int(args.func(args) or 0)
    except InterpError as exc:
        print("interp: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
