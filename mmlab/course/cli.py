"""The mmlab command line: `mmlab exercises` and `mmlab grade` (also `python -m mmlab`)."""
import argparse
import json
import sys

# exercises and grade import nbformat and nbclient, which take a second or
# two to load: they are imported by the subcommand that needs them, so
# `mmlab --help` answers at once.
CELL_TIMEOUT = 60           # grade.CELL_TIMEOUT
NOTEBOOK_TIMEOUT = 600      # grade.NOTEBOOK_TIMEOUT


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 1 a check failed, 2 an error)."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as e:      # markup.MarkupError is a ValueError
        print(f"mmlab {args.command}: error: {e}", file=sys.stderr)
        return 2


def _parser():
    p = argparse.ArgumentParser(
        prog="mmlab", description="Course machinery for mmlab: exercise generation and grading.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser(
        "exercises", help="regenerate exercises/ from solutions/",
        description="Write exercises/NAME.ipynb for every solutions/NAME.ipynb: solution regions "
                    "become nbgrader's stub, hidden tests are removed, outputs cleared. "
                    "Exercises with no solution are removed.")
    e.add_argument("--solutions", default="solutions", metavar="DIR",
                   help="directory of solution notebooks (default: %(default)s)")
    e.add_argument("--exercises", default="exercises", metavar="DIR",
                   help="directory of generated exercises (default: %(default)s)")
    e.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if exercises/ is not what generation would write")
    e.set_defaults(run=_exercises)

    g = sub.add_parser(
        "grade", help="grade submitted notebooks against their solutions",
        description="Run each notebook in a fresh kernel with its test cells restored from the "
                    "solution of the same file name, and score every graded cell.")
    g.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="submitted notebook(s)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--solutions", default="solutions", metavar="DIR",
                       help="directory holding solutions/NAME.ipynb (default: %(default)s)")
    where.add_argument("--solution", metavar="FILE",
                       help="grade every notebook against this one solution")
    g.add_argument("--json", action="store_true",
                   help="print one JSON object per notebook, one per line")
    g.add_argument("--timeout", type=int, default=CELL_TIMEOUT, metavar="SECONDS",
                   help="interrupt a cell after this long (default: %(default)g)")
    g.add_argument("--notebook-timeout", type=int, default=NOTEBOOK_TIMEOUT,
                   metavar="SECONDS",
                   help="stop running a notebook after this long (default: %(default)g)")
    g.set_defaults(run=_grade)
    return p


def _exercises(args):
    from . import exercises
    report = exercises.sync_exercises(args.solutions, args.exercises, check=args.check)
    for path, status in report:
        if status != "up to date":
            print(f"{path}: {status}")
    drift = [path for path, status in report if status in ("out of date", "missing", "stale")]
    if args.check and drift:
        print(f"{len(drift)} exercise(s) out of date: run `mmlab exercises`", file=sys.stderr)
        return 1
    if not args.check:
        print(f"{len(report)} exercise(s), {sum(s != 'up to date' for _, s in report)} changed")
    return 0


def _grade(args):
    from . import grade
    status = 0
    for path in args.notebooks:
        try:
            result = grade.grade_notebook(path, solution=args.solution, solutions=args.solutions,
                                          timeout=args.timeout,
                                          notebook_timeout=args.notebook_timeout)
        except (FileNotFoundError, ValueError) as e:   # a missing solution, an unreadable notebook
            print(f"mmlab grade: {path}: {e}", file=sys.stderr)
            status = 1
            continue
        print(json.dumps(result) if args.json else grade.format_result(result), flush=True)
    return status
