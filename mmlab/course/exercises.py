"""Exercise generation: solutions/NAME.ipynb -> exercises/NAME.ipynb.

What nbgrader's generate_assignment does to a notebook, minus its database
and checksums: solution regions become the code stub, hidden tests vanish,
outputs are cleared, metadata stays.  The result is a pure function of the
solution's bytes, so regenerating an unchanged solution rewrites nothing and
a test can tell when exercises/ has fallen behind solutions/.
"""
import copy
import json
import warnings
from pathlib import Path

import nbformat
from nbformat.warnings import MissingIDFieldWarning

from . import markup


def read_notebook(path):
    """Read a notebook as nbformat 4, with a stable id on every cell.

    nbformat invents random ids for 4.5 cells that lack one; those would make
    the exercise differ at each generation, so such a cell gets "cell-<index>".
    """
    text = Path(path).read_text(encoding="utf-8")
    raw = json.loads(text)
    with warnings.catch_warnings():             # the missing ids are mended below
        warnings.simplefilter("ignore", MissingIDFieldWarning)
        nb = nbformat.reads(text, as_version=4)
    if (raw.get("nbformat"), raw.get("nbformat_minor", 0)) >= (4, 5):
        for i, (raw_cell, cell) in enumerate(zip(raw.get("cells", []), nb.cells)):
            if "id" not in raw_cell:
                cell["id"] = f"cell-{i}"
    return nb


def notebook_text(nb):
    """The notebook as nbformat.write puts it on disk: sorted keys, indent 1, final newline."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def make_exercise(solution):
    """generate_assignment, the parts mmlab needs: the student's copy of a solution notebook.

    Steps, in nbgrader's order:
      1. check the markup (nbgrader's rules and the course convention);
      2. replace each solution region by the stub (a solution cell with no
         region, were one allowed, is stubbed whole, as nbgrader does);
      3. clear outputs and execution counts;
      4. drop hidden-test regions.
    Returns a new notebook; `solution` is left unchanged.
    Raises markup.MarkupError when the markup is wrong.
    """
    markup.validate_notebook(solution)
    markup.mmlab_rules(solution)
    nb = copy.deepcopy(solution)
    for cell in nb.cells:
        _stub_solutions(cell)
        _clear_output(cell)
        cell.source, _ = markup.clear_hidden_tests(cell.source)
    nb.metadata.pop("celltoolbar", None)        # nbgrader drops the editor's toolbar choice too
    return nb


def _stub_solutions(cell):
    """ClearSolutions.preprocess_cell on one cell."""
    stub = markup.CODE_STUB if cell.cell_type == "code" else markup.TEXT_STUB
    cell.source, replaced = markup.clear_solutions(cell.source, stub)
    if markup.is_solution(cell) and not replaced:
        cell.source = stub


def _clear_output(cell):
    """ClearOutput: no outputs, no execution count, no execution timing."""
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    cell.metadata.pop("execution", None)


def exercise_text(solution_path):
    """The text exercises/NAME.ipynb must hold for solutions/NAME.ipynb."""
    return notebook_text(make_exercise(read_notebook(solution_path)))


def sync_exercises(solutions="solutions", exercises="exercises", check=False):
    """mmlab exercises: bring exercises/ in line with solutions/, or (check=True) only compare.

    Every solutions/*.ipynb has an exercise of the same name; an exercise
    with no solution is stale.  Returns a list of (exercise path, status),
    status being "up to date", "written", "removed" or, with check=True,
    "out of date", "missing", "stale".  Raises FileNotFoundError when the
    solutions directory does not exist and MarkupError for bad markup
    (before writing anything).
    """
    solutions, exercises = Path(solutions), Path(exercises)
    if not solutions.is_dir():
        raise FileNotFoundError(f"no solutions directory {str(solutions)!r}")
    wanted = {exercises / p.name: exercise_text(p) for p in sorted(solutions.glob("*.ipynb"))}
    present = set(exercises.glob("*.ipynb")) if exercises.is_dir() else set()
    report = []
    for path, text in wanted.items():
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            report.append((path, "up to date"))
        elif check:
            report.append((path, "missing" if old is None else "out of date"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
            report.append((path, "written"))
    for path in sorted(present - set(wanted)):
        if check:
            report.append((path, "stale"))
        else:
            path.unlink()
            report.append((path, "removed"))
    return report
