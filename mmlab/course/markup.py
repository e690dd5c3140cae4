"""nbgrader's markup, read and checked the way nbgrader 0.9 reads it.

nbgrader marks an assignment in two places, and generate_assignment needs
both: text delimiters in a cell's source, and an "nbgrader" dict in the
cell's metadata (cell metadata schema version 3, nbgrader/nbgraderformat/
v3.json).  This module reads both with nbgrader's rules so that a solution
notebook written for mmlab drops into nbgrader unchanged, without importing
nbgrader:

  - a line containing "BEGIN SOLUTION" opens a solution region and one
    containing "END SOLUTION" closes it (nbgrader matches the words anywhere
    on the line; "### " is the conventional comment mark).  The region,
    delimiters included, becomes the code stub, indented like the BEGIN line
    (ClearSolutions._replace_solution_region);
  - "BEGIN HIDDEN TESTS" / "END HIDDEN TESTS" regions vanish, delimiters
    included (ClearHiddenTests._remove_hidden_test_region);
  - a solution cell with no region is replaced whole by the stub.

On top of nbgrader's rules, mmlab_rules() enforces the course's convention
(see mmlab/course/__init__.py): exercises must run clean and grade to 0.
"""
import re

import nbformat

SCHEMA_VERSION = 3
BEGIN_SOLUTION = "BEGIN SOLUTION"
END_SOLUTION = "END SOLUTION"
BEGIN_HIDDEN_TESTS = "BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "END HIDDEN TESTS"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"   # ClearSolutions.code_stub["python"]
TEXT_STUB = "YOUR ANSWER HERE"                                # ClearSolutions.text_stub

GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")                  # v3.json "grade_id" pattern
_KEYS = {"schema_version", "grade", "locked", "solution", "task",
         "grade_id", "points", "checksum", "cell_type"}       # v3.json additionalProperties: false
_REQUIRED = ("schema_version", "grade", "locked", "solution")


class MarkupError(ValueError):
    """A notebook's nbgrader markup is malformed, or breaks the course convention."""


# -- reading a cell's role ---------------------------------------------------

def nbgrader_meta(cell):
    """The cell's "nbgrader" metadata dict, or {} for a plain cell."""
    return cell.get("metadata", {}).get("nbgrader", {})


def grade_id(cell):
    """The cell's grade_id, or None."""
    return nbgrader_meta(cell).get("grade_id")


def is_grade(cell):
    """nbgrader utils.is_grade: the cell earns points."""
    return bool(nbgrader_meta(cell).get("grade", False))


def is_solution(cell):
    """nbgrader utils.is_solution: the student writes in this cell."""
    return bool(nbgrader_meta(cell).get("solution", False))


def is_locked(cell):
    """nbgrader utils.is_locked: the student may not edit the cell.

    As in nbgrader, a grade cell that is not a solution (a test cell) counts
    as locked whatever its flag says: the grader restores it.
    """
    m = nbgrader_meta(cell)
    if m.get("solution", False):
        return False
    return bool(m.get("locked", False) or m.get("grade", False))


def is_test(cell):
    """An autograder test cell: graded, not written by the student."""
    return is_grade(cell) and not is_solution(cell)


def points(cell):
    """The points a grade cell is worth (int where nbgrader stored an integer)."""
    p = nbgrader_meta(cell).get("points", 0)
    return int(p) if float(p).is_integer() else float(p)


# -- the delimited regions ---------------------------------------------------

def _regions(source, begin, end):
    """Split source into ("text", line) and ("region", [lines], indent) parts.

    nbgrader's rules: delimiters match anywhere on a line, regions must not
    nest and must be closed.  Returns the parts; raises MarkupError otherwise.
    """
    parts, inside = [], None
    for line in source.split("\n"):
        if begin in line:
            if inside is not None:
                raise MarkupError(f"nested {begin!r} regions")
            inside = ("region", [], re.match(r"\s*", line).group(0))
            parts.append(inside)
        elif end in line:
            if inside is None:
                raise MarkupError(f"{end!r} without {begin!r}")
            inside = None
        elif inside is not None:
            inside[1].append(line)
        else:
            parts.append(("text", line))
    if inside is not None:
        raise MarkupError(f"{begin!r} region is never closed by {end!r}")
    return parts


def solution_regions(source):
    """The texts of the solution regions in a cell's source, in order."""
    return ["\n".join(p[1]) for p in _regions(source, BEGIN_SOLUTION, END_SOLUTION)
            if p[0] == "region"]


def hidden_test_regions(source):
    """The texts of the hidden-test regions in a cell's source, in order."""
    return ["\n".join(p[1]) for p in _regions(source, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS)
            if p[0] == "region"]


def clear_solutions(source, stub=CODE_STUB):
    """ClearSolutions: replace each solution region by `stub`, indented like its BEGIN line.

    Returns (new source, whether any region was replaced).
    """
    out, replaced = [], False
    for part in _regions(source, BEGIN_SOLUTION, END_SOLUTION):
        if part[0] == "text":
            out.append(part[1])
        else:
            replaced = True
            out.extend(part[2] + line for line in stub.split("\n"))
    return "\n".join(out), replaced


def clear_hidden_tests(source):
    """ClearHiddenTests: drop each hidden-test region, delimiters included.

    Returns (new source, whether any region was removed).
    """
    out, removed = [], False
    for part in _regions(source, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS):
        if part[0] == "text":
            out.append(part[1])
        else:
            removed = True
    return "\n".join(out), removed


# -- validation --------------------------------------------------------------

def validate_metadata(cell):
    """MetadataValidatorV3.validate_cell: the cell's nbgrader metadata is well formed.

    Checks v3.json (required keys, types, no extra keys, grade_id pattern,
    points >= 0) and the validator's rules (grade_id present and non-empty
    on grade/solution/locked cells, points on grade cells, markdown grade
    cells are solutions too, task cells are markdown).  Raises MarkupError.
    """
    if "nbgrader" not in cell.get("metadata", {}):
        return
    m = cell.metadata.nbgrader
    if not isinstance(m, dict):
        raise MarkupError("nbgrader metadata must be a dict")
    missing = [k for k in _REQUIRED if k not in m]
    if missing:
        raise MarkupError(f"nbgrader metadata lacks {', '.join(missing)}")
    extra = sorted(set(m) - _KEYS)
    if extra:
        raise MarkupError(f"nbgrader metadata has unknown keys {', '.join(extra)}")
    if m["schema_version"] != SCHEMA_VERSION:
        raise MarkupError(f"nbgrader schema_version must be {SCHEMA_VERSION}, got {m['schema_version']!r}")
    for key in ("grade", "locked", "solution", "task"):
        if key in m and not isinstance(m[key], bool):
            raise MarkupError(f"nbgrader {key} must be true or false, got {m[key]!r}")
    if "grade_id" in m and not (isinstance(m["grade_id"], str) and GRADE_ID.match(m["grade_id"])):
        raise MarkupError(f"grade_id must match {GRADE_ID.pattern}, got {m['grade_id']!r}")
    if m["grade"] or m["solution"] or m["locked"]:
        if not m.get("grade_id"):
            raise MarkupError("nbgrader cell has no grade_id")
    if m["grade"]:
        p = m.get("points")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0:
            raise MarkupError(f"grade cell {m['grade_id']!r} needs points >= 0, got {p!r}")
    if m.get("task", False):
        if cell.cell_type != "markdown":
            raise MarkupError("task cells must be markdown")
    elif cell.cell_type == "markdown" and m["grade"] != m["solution"]:
        raise MarkupError("a markdown grade cell must also be a solution cell, and the reverse")


def validate_notebook(nb):
    """MetadataValidatorV3.validate_nb, plus the placement rules of generate_assignment.

    Every cell's metadata is valid; grade_ids are unique; solution regions
    only in solution cells; hidden tests only in grade cells; regions well
    formed.  Raises MarkupError naming the cell.
    """
    seen = set()
    for i, cell in enumerate(nb.cells):
        with _at(i, cell):
            validate_metadata(cell)
            gid = grade_id(cell)
            m = nbgrader_meta(cell)
            if gid and (m.get("grade") or m.get("solution") or m.get("locked")):
                if gid in seen:
                    raise MarkupError(f"duplicate grade_id {gid!r}")
                seen.add(gid)
            if solution_regions(cell.source) and not is_solution(cell):
                raise MarkupError("solution region in a cell not marked as a solution cell")
            if hidden_test_regions(cell.source) and not is_grade(cell):
                raise MarkupError("hidden tests in a cell not marked as a grade cell")


def mmlab_rules(nb):
    """The course convention on top of nbgrader's: exercises run clean and grade to 0.

    - only code cells are graded: mmlab grades automatically, so no markdown
      answers or tasks (those need a human in nbgrader);
    - a solution cell is not also a grade cell: its stubbed form would run
      without error and earn its points, so tests go in their own cell;
    - every solution cell holds at least one solution region, and every
      region's BEGIN line is indented, inside a def: the stub then raises
      NotImplementedError only when the function is called (by check, which
      reports "not attempted"), never while the exercise runs top to bottom.

    Raises MarkupError naming the cell.
    """
    for i, cell in enumerate(nb.cells):
        m = nbgrader_meta(cell)
        if not m:
            continue
        with _at(i, cell):
            if cell.cell_type != "code" and (m.get("grade") or m.get("solution") or m.get("task")):
                raise MarkupError("graded and solution cells must be code: mmlab grades automatically")
            if is_solution(cell) and is_grade(cell):
                raise MarkupError("a solution cell must not be a grade cell "
                                  "(its stub would earn the points): put its tests in a test cell")
            if is_solution(cell):
                _check_regions_indented(cell.source)


def _check_regions_indented(source):
    parts = _regions(source, BEGIN_SOLUTION, END_SOLUTION)
    regions = [p for p in parts if p[0] == "region"]
    if not regions:
        raise MarkupError("solution cell has no ### BEGIN SOLUTION region "
                          "(nbgrader would stub the whole cell, which then raises as it runs)")
    for part in regions:
        if not part[2]:
            raise MarkupError("solution region at the top level of the cell: put it inside a "
                              "function body, so its stub raises only when called")


class _at:
    """Context manager that prefixes a MarkupError with the cell it concerns."""

    def __init__(self, index, cell):
        self.where = f"cell {index}" + (f" ({grade_id(cell)})" if grade_id(cell) else "")

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is MarkupError and not str(error).startswith("cell "):
            raise MarkupError(f"{self.where}: {error}") from None
        return False


# -- building cells (for chapter authors writing notebooks from Python) -------

def _meta(gid, *, grade=False, solution=False, locked=False, pts=None):
    m = {"grade": grade, "grade_id": gid, "locked": locked,
         "schema_version": SCHEMA_VERSION, "solution": solution, "task": False}
    if grade:
        m["points"] = pts
    return m


def answer_cell(source, gid):
    """A code cell the student completes: solution=true, not graded, unlocked."""
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": _meta(gid, solution=True)})


def test_cell(source, gid, pts):
    """An autograder test cell worth `pts` points: grade=true, locked."""
    return nbformat.v4.new_code_cell(
        source, metadata={"nbgrader": _meta(gid, grade=True, locked=True, pts=pts)})


def locked_cell(source, gid, cell_type="code"):
    """A read-only cell (set-up code or instructions) the grader restores."""
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": _meta(gid, locked=True)})

