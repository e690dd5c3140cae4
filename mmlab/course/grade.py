"""Grading: run a submitted notebook with the solution's tests and score each test cell.

The autograde step of nbgrader, kept small: no database, no checksums.

  1. restore: every locked cell of the solution (test cells included, with
     their hidden tests) replaces the submission's cell of the same grade_id,
     or is put back where it belongs if the student deleted it;
  2. run the notebook top to bottom in a fresh kernel of this Python, with
     MMLAB_GRADING=1 so that check() raises instead of printing, errors
     allowed, each cell limited in time and the whole notebook too;
  3. score: a grade cell earns its points if it ran without error.  A cell
     that raised NotImplementedError or NotAttempted is "not attempted",
     any other error "failed"; both earn 0.

Points come from the solution, never from the submission's metadata.
"""
import copy
import os
from pathlib import Path
from time import monotonic

import nbclient
from nbclient.exceptions import DeadKernelError

from ..errors import require_int
from . import markup
from .checks import GRADING_ENV, _one_line
from .exercises import read_notebook

CELL_TIMEOUT = 60           # seconds one cell may run before it is interrupted
NOTEBOOK_TIMEOUT = 600      # seconds a whole notebook may run before grading stops it
NOT_ATTEMPTED = ("NotImplementedError", "NotAttempted")
KERNEL_ARGS = ["--HistoryManager.enabled=False",    # no history database per run
               "--IPKernelApp.log_level=ERROR"]     # keep the grader's output readable


class NotebookTimeout(Exception):
    """The notebook as a whole ran longer than its time limit."""


def solution_for(submission, solutions="solutions"):
    """The solution matching a submission: the file of the same name in `solutions`.

    Raises FileNotFoundError when there is none.
    """
    path = Path(solutions) / Path(submission).name
    if not path.is_file():
        raise FileNotFoundError(f"no solution {str(path)!r} for {str(submission)!r}")
    return path


def restore_cells(submission, solution):
    """OverwriteCells: the submission with the solution's locked cells put back.

    Returns (notebook, graded) where graded lists (grade_id, points, cell) for
    every grade cell of the solution, in order; cell is the notebook's cell
    to score, or None when the student deleted an answer cell.  Of cells
    sharing a grade_id in the submission, the first is the one restored.
    """
    nb = copy.deepcopy(submission)
    cells = nb.cells
    by_id = {}
    for cell in cells:
        gid = markup.grade_id(cell)
        if gid is not None:
            by_id.setdefault(gid, cell)
    graded, anchor = [], None        # anchor: the cell of the last solution grade_id placed
    for sol in solution.cells:
        gid = markup.grade_id(sol)
        if gid is None:
            continue
        cell = by_id.get(gid)
        if markup.is_locked(sol):
            cell = _restore(cells, cell, _pristine(sol), anchor)
        if cell is not None:
            anchor = cell
        if markup.is_grade(sol):
            graded.append((gid, markup.points(sol), cell))
    return nb, graded


def _pristine(cell):
    """A copy of a solution cell with its outputs cleared."""
    cell = copy.deepcopy(cell)
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _restore(cells, old, new, anchor):
    """Put `new` in place of `old`, or after `anchor` if old is gone (first if no anchor)."""
    if old is not None:
        cells[_index(cells, old)] = new
    else:
        cells.insert(_index(cells, anchor) + 1 if anchor is not None else 0, new)
    return new


def _index(cells, cell):
    """Position of this very cell object (cells that are equal are not the same cell)."""
    return next(i for i, c in enumerate(cells) if c is cell)


def execute(nb, cwd, timeout=CELL_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT):
    """Run nb in a fresh kernel in grading mode; the notebook's outputs are filled in.

    Returns (replies, stopped): replies maps a cell index to the content of
    its execute_reply ({"status": "ok"} or "error" with ename and evalue);
    stopped says why execution ended early ("" if it did not).  A cell that
    runs past `timeout` seconds is interrupted and replies ename "Timeout";
    past `notebook_timeout` the remaining cells are not run.
    """
    replies = {}
    deadline = monotonic() + notebook_timeout

    def on_cell_start(cell, cell_index):
        if monotonic() > deadline:
            raise NotebookTimeout(f"the notebook ran longer than {notebook_timeout} s")

    def on_cell_executed(cell, cell_index, execute_reply):
        replies[cell_index] = execute_reply["content"] if execute_reply else {"status": "unknown"}

    client = nbclient.NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran longer than {timeout} s",
                          "traceback": []},
        extra_arguments=KERNEL_ARGS, resources={"metadata": {"path": str(cwd)}},
        on_cell_start=on_cell_start, on_cell_executed=on_cell_executed)
    # "python3" resolves to sys.executable (jupyter_client swaps a bare
    # python for it), so the kernel imports the same mmlab as the grader.
    try:
        client.execute(env={**os.environ, GRADING_ENV: "1"})
    except NotebookTimeout as e:
        return replies, str(e)
    except DeadKernelError:
        return replies, "the kernel died"
    return replies, ""


def outcome(cell, reply, stopped):
    """(outcome, error) for one grade cell from its execute_reply content."""
    if cell is None:
        return "not attempted", "the cell was deleted from the submission"
    if reply is None:
        if not cell.source.strip():
            return "not attempted", "the cell is empty"
        return "failed", f"not run: {stopped or 'the cell never ran'}"
    if reply.get("status") == "ok":
        return "passed", None
    error = f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}".rstrip(": ")
    if reply.get("ename") in NOT_ATTEMPTED:
        return "not attempted", error
    return "failed", error


def grade_notebook(submission, solution=None, solutions="solutions",
                   timeout=CELL_TIMEOUT, notebook_timeout=NOTEBOOK_TIMEOUT):
    """mmlab grade, one notebook: score a submission against its solution.

    `solution` is the solution notebook's path; by default the file of the
    same name in the `solutions` directory.  The submission file is only
    read; the kernel runs in its directory.  Returns

        {"notebook": path, "score": s, "max_score": m,
         "tests": [{"id": grade_id, "points": p, "max_points": p,
                    "outcome": "passed" | "failed" | "not attempted",
                    "error": "ename: evalue" or None}, ...]}

    with tests in the solution's order.  Raises FileNotFoundError for a
    missing solution and MarkupError for a solution with bad markup.
    """
    timeout = require_int("timeout", timeout, 1)
    notebook_timeout = require_int("notebook_timeout", notebook_timeout, 1)
    submission = Path(submission)
    sol = read_notebook(solution if solution is not None else solution_for(submission, solutions))
    markup.validate_notebook(sol)
    nb, graded = restore_cells(read_notebook(submission), sol)
    replies, stopped = execute(nb, submission.resolve().parent, timeout, notebook_timeout)
    tests = []
    for gid, pts, cell in graded:
        reply = replies.get(_index(nb.cells, cell)) if cell is not None else None
        result, error = outcome(cell, reply, stopped)
        tests.append({"id": gid, "points": pts if result == "passed" else 0,
                      "max_points": pts, "outcome": result, "error": error})
    return {"notebook": str(submission),
            "score": _total(t["points"] for t in tests),
            "max_score": _total(t["max_points"] for t in tests),
            "tests": tests}


def _total(values):
    total = sum(values)
    return round(total, 6) if isinstance(total, float) else total


def format_result(result):
    """A grading result as a small table for a terminal."""
    lines = [f"{result['notebook']}: {_num(result['score'])} / {_num(result['max_score'])}"]
    width = max([len(t["id"]) for t in result["tests"]] + [2])
    for t in result["tests"]:
        line = f"  {t['id']:<{width}}  {_num(t['points']):>4} / {_num(t['max_points']):<4} {t['outcome']}"
        if t["error"] and t["outcome"] == "failed":
            line += f"  ({_one_line(t['error'])})"
        lines.append(line)
    return "\n".join(lines)


def _num(x):
    return f"{x:g}" if isinstance(x, float) else str(x)
