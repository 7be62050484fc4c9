"""The ``interp`` command: dashboard, reports and the zoo.

This is the composition root: the only module of ``interp`` that may import
``zoo``, ``dashboard`` and ``reports``, and it does so lazily, inside each
command. The dashboard and reports take the user's models (``--subject``,
``--model-file``) and the zoo's, all as :class:`interp.Subject` objects. Errors
users can cause print one line and exit with status 2; no
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


def _own_subjects(args) -> list:
    """The user's subjects: from ``--subject FILE.py:function`` (repeatable) and from
    ``--model-file FILE.py:factory --weights W --data D [--names N.json]``."""
    from .loaders import subject_from_files, subjects_from
    from .subject import subjects as checked

    out = []
    for spec in args.subject or []:
        out += subjects_from(spec)
    if args.model_file or args.data or args.weights:
        if not (args.model_file and args.data):
            raise InterpError("--model-file and --data go together (with --weights for trained weights): "
                              "--model-file FILE.py:factory --weights W.safetensors --data D.npz")
        classes = args.classes.split(",") if args.classes else None
        features = args.features.split(",") if args.features else None
        out.append(subject_from_files(args.model_file, args.weights, args.data, args.names, name=args.name,
                                      task=args.task, modality=args.modality, classes=classes, features=features))
    elif args.names or args.classes or args.features or args.task or args.modality or args.name:
        raise InterpError("--names, --classes, --features, --task, --modality and --name describe a --model-file; "
                          "give --model-file FILE.py:factory and --data D.npz too")
    return checked(out) if out else []


def _zoo_lazy(names: list[str], taken: set[str]) -> list:
    import zoo
    from dashboard.catalog import Lazy

    return [Lazy(n, f"{n}  ·  zoo {zoo.spec(n).kind}, {zoo.spec(n).task}", lambda n=n: zoo.subject(n))
            for n in names if n not in taken]


def cmd_dashboard(args) -> int:
    import zoo

    own = _own_subjects(args)
    shown = [s.name for s in own] + ([] if args.no_zoo else zoo.names())
    if args.model is not None and args.model not in shown:
        raise UnknownNameError("model", args.model, shown)
    clash = [] if args.no_zoo else sorted({s.name for s in own} & set(zoo.names()))
    if clash:
        raise InterpError(f"subject names {', '.join(clash)} are also zoo models; rename yours (--name) or pass "
                          "--no-zoo")
    if args.no_zoo and not own:
        raise InterpError("--no-zoo leaves nothing to show: give --subject or --model-file")
    taken = {s.name for s in own}
    items = own + ([] if args.no_zoo else _zoo_lazy(zoo.names(), taken))
    _check_port_free(args.host, args.port)
    from dashboard.app import serve

    serve(items, selected=args.model or (own[0].name if own else None), host=args.host, port=args.port,
          debug=args.debug)
    return 0


def _listed(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given)."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def cmd_report(args) -> int:
    import shlex

    from reports.build import build, check_formats, check_out, check_sections

    sections = check_sections(_listed(args.sections))
    formats = check_formats(_listed(args.format))
    folder = check_out(args.out)  # before any work: a file in the way, an empty name, no permission
    own = _own_subjects(args)
    requested = list(dict.fromkeys(args.model)) if args.model else None  # --model X --model X: once
    names = _zoo_names(requested, args.all) if (requested or args.all or not own) else []
    import zoo

    clash = sorted({s.name for s in own} & set(names))
    if clash:
        raise InterpError(f"subject names {', '.join(clash)} are also zoo models; pass --name to rename yours")
    zoo_subjects = [zoo.subject(n) for n in names]
    command = "interp " + shlex.join(getattr(args, "argv", None) or [])
    paths = build(own + zoo_subjects, folder, progress=not args.quiet, sections=sections, plotly=args.plotly,
                  formats=formats, command=command.strip())
    print(f"wrote {len(paths)} files to {folder}: open {folder / 'index.html'}")
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
    from zoo.train import BelowBar, train

    start = time.perf_counter()
    failed = []
    for name in names:
        try:
            card = train(name, seed=args.seed, epochs=args.epochs, weights_dir=args.weights_dir,
                         progress=not args.quiet, force=args.force, keep_below_bar=args.keep_below_bar)
        except BelowBar as exc:
            print(f"{name:<24}NOT SAVED: " + " ".join(str(exc).split()), flush=True)
            failed.append(name)
            continue
        bars = card.pop("quality_failures")
        print(f"{name:<24}{card['training']['seconds']:>7.1f}s  {card['weights']['bytes'] / 1024:>6.0f} KiB  "
              f"{_headline(card)}" + (f"  BELOW BAR: {'; '.join(bars)}" if bars else "")
              + f"  -> {card['written_to']}", flush=True)
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
        if not args.json:  # with --json, the JSON alone: a program reads it
            print(f"{name:<24}{_headline({'metrics': fresh})}  [{status}]", flush=True)
        report[name] = {"metrics": fresh, "mismatches": mismatches, "below_bar": bars}
    if args.json:
        print(json.dumps(report, indent=2))
    return 1 if problems else 0


def _own_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own model")
    g.add_argument("--subject", action="append", metavar="FILE.py:FUNCTION",
                   help="a function returning an interp.Subject or a list of them (repeatable)")
    g.add_argument("--model-file", metavar="FILE.py:FACTORY", help="a function building your nn.Module")
    g.add_argument("--weights", metavar="W.safetensors", help="its weights (.safetensors, or a .pt state_dict)")
    g.add_argument("--data", metavar="D.npz", help="inputs x and labels y (.npz, .safetensors or .pt)")
    g.add_argument("--names", metavar="N.json", help="JSON with any of name, task, modality, classes, features, "
                   "vocab, objective, pad_id, description")
    g.add_argument("--name", help="the model's name (default: the factory file's name)")
    g.add_argument("--classes", metavar="A,B,...", help="class names, comma-separated")
    g.add_argument("--features", metavar="A,B,...", help="feature names, comma-separated")
    g.add_argument("--task", choices=("classification", "regression", "reconstruction", "generation"))
    g.add_argument("--modality", choices=("image", "tabular", "tokens", "series"))


REPORT_EXAMPLES = """examples:
  interp report --all --out reports-out                     every zoo model, each page self-contained
  interp report --all --out reports-out --plotly shared     plotly.js once for the folder (pages ~1 MB)
  interp report --model cnn-digits --format pdf --out r     HTML and PDF (needs Chromium)
  interp report --model cnn-digits --format png,svg --out r every figure as PNG and SVG too
  interp report --model mlp-cancer --sections lrp,saliency --out r
  interp report --subject my_models.py:subjects --out r     your models (a function returning Subjects)
  interp report --model-file net.py:Net --weights net.safetensors --data test.npz --out r
"""

DASHBOARD_EXAMPLES = """examples:
  interp dashboard                                          the zoo on http://127.0.0.1:8050/
  interp dashboard --subject my_models.py:subjects          your models beside the zoo's
  interp dashboard --model-file net.py:Net --weights net.safetensors --data test.npz --no-zoo
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="interp", description="See inside PyTorch models: dashboard, reports, zoo.")
    p.add_argument("--version", action="version", version=f"interp {__import__('interp').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    d = sub.add_parser("dashboard", help="serve the Dash dashboard on your models and the zoo",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DASHBOARD_EXAMPLES)
    d.add_argument("--model", help="model selected at start, yours or the zoo's (default: your first, else the zoo's "
                   "first)")
    _own_model_options(d)
    d.add_argument("--no-zoo", action="store_true", help="show only your models, not the zoo's beside them")
    d.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    d.add_argument("--port", type=_port, default=8050)
    d.add_argument("--debug", action="store_true", help="Dash's development server in debug mode, instead of "
                   "waitress (never on a shared host)")
    d.add_argument("--cache", metavar="DIR", help="store for dataset-wide results "
                   "(default $INTERP_CACHE or ~/.cache/interp)")
    d.set_defaults(func=cmd_dashboard)

    r = sub.add_parser("report", help="write self-contained HTML reports (and PDF)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=REPORT_EXAMPLES,
                       description="One page per model: a summary, a section per analysis, a reproducibility "
                                   "record; an index of every report in the folder.")
    r.add_argument("--model", action="append", metavar="NAME", help="zoo model (repeatable; named twice, made once)")
    r.add_argument("--all", action="store_true", help="every zoo model")
    _own_model_options(r)
    r.add_argument("--out", required=True, help="output folder (made if missing; reports already there stay in "
                   "its index)")
    r.add_argument("--sections", metavar="A,B,...", help="the sections to compute, comma-separated, from: "
                   "overview, samples, activations, saliency, lrp, sensitivity, evaluation, latent (default all; "
                   "the summary, the card and the record always)")
    r.add_argument("--plotly", choices=("inline", "shared"), default="inline", help="inline: each page opens by "
                   "itself (4.8 MB of plotly.js each); shared: plotly.min.js written once beside the pages")
    r.add_argument("--format", metavar="html,pdf,png,svg", default="html", help="pdf too: printed by the "
                   "system's Chromium (A4); png, svg: each figure as a file in NAME-figures/, drawn by Kaleido "
                   "(pip install 'interp[images]') through that Chromium; the HTML is always written")
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
    zt.add_argument("--weights-dir", default=None, help="write here (default: <cache>/zoo-weights, e.g. "
                    "~/.cache/interp/zoo-weights; never the shipped zoo/weights without --force)")
    zt.add_argument("--force", action="store_true", help="allow replacing the shipped weights in zoo/weights")
    zt.add_argument("--keep-below-bar", action="store_true", help="save a model even below its quality bar")
    zt.add_argument("--quiet", action="store_true", help="no progress bars")
    zt.set_defaults(func=cmd_zoo_train)
    ze = zsub.add_parser("evaluate", help="recompute card metrics from the weights")
    ze.add_argument("names", nargs="*", metavar="NAME")
    ze.add_argument("--all", action="store_true", help="every model (the default)")
    ze.add_argument("--weights-dir", default=None)
    ze.add_argument("--json", action="store_true", help="print the metrics as JSON only (for programs)")
    ze.set_defaults(func=cmd_zoo_evaluate)
    z.set_defaults(func=lambda a: (z.print_help(), EXIT_USAGE)[1])
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command, for the reports' record
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
