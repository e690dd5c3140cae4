"""python -m benchmarks [-k WORD] [--strict] [--json FILE]: run every bench_*.py and print a table."""
import argparse
import importlib
import json
import pkgutil
import sys
import time

import benchmarks
from benchmarks import REGISTRY


def discover():
    """Import every benchmarks/bench_*.py so their @benchmark functions register."""
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if info.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{info.name}")


def table(rows):
    """Rows of (module, Figure) as an aligned text table."""
    head = ("benchmark", "measured", "target", "")
    lines = [(f"{mod}: {f.name}", f.shown(f.value), f.target_text(), "ok" if f.met() else "MISSED")
             for mod, f in rows]
    widths = [max(len(r[i]) for r in [head] + lines) for i in range(4)]
    fmt = "  ".join(["{:<%d}" % widths[0], "{:>%d}" % widths[1], "{:<%d}" % widths[2], "{}"])
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in lines]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("-k", dest="word", default="", help="run benchmarks whose module or name holds WORD")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its target")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    args = parser.parse_args(argv)
    discover()
    rows = []
    for module, fn in REGISTRY:
        if args.word and args.word not in module and args.word not in fn.__name__:
            continue
        start = time.perf_counter()
        print(f"running {module}.{fn.__name__} ...", file=sys.stderr, flush=True)
        figures = fn()
        print(f"  done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        rows += [(module, f) for f in figures]
    if not rows:
        print("no benchmark matched", file=sys.stderr)
        return 1
    print(table(rows))
    notes = [f"  {mod}: {f.name}: {f.note}" for mod, f in rows if f.note]
    if notes:
        print("\nnotes:\n" + "\n".join(notes))
    missed = [f for _, f in rows if not f.met()]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} figures meet their targets")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump([dict(module=mod, **vars(fig)) for mod, fig in rows], f, indent=1)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
