"""The course machinery: check(), exercise generation, grading.

The fixture tests/fixtures/course/solutions/01-pages.ipynb has three graded
parts: test_pages_needed (3 points: visible and hidden tests),
test_predict_order (1 point: a prediction, checked only by a hidden test)
and test_count_by_order (2 points: a one-line region inside a loop).
Grading runs real kernels (about a second each), so those tests share
module-scoped results where they can.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest

from mmlab.course import GRADING_ENV, NotAttempted, check, grading
from mmlab.course import markup
from mmlab.course.cli import main
from mmlab.course.exercises import exercise_text, make_exercise, read_notebook, sync_exercises
from mmlab.course.grade import execute, grade_notebook, restore_cells

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "course" / "solutions"
SOLUTION = FIXTURES / "01-pages.ipynb"
POINTS = {"test_pages_needed": 3, "test_predict_order": 1, "test_count_by_order": 2}
slow = pytest.mark.slow        # runs a Jupyter kernel: a second or more
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


@pytest.fixture(autouse=True)
def not_grading(monkeypatch):
    """Tests run outside grading mode unless they turn it on (and kernels inherit that)."""
    monkeypatch.delenv(GRADING_ENV, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)


def write(nb, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def submission(tmp_path, answers=(), edit=None):
    """A student's 01-pages.ipynb: the solution as handed out (no hidden tests),
    with the solution region of each (grade_id, body) in `answers` replaced by body;
    `edit(nb)` may then tamper with it."""
    nb = read_notebook(SOLUTION)
    answers = dict(answers)
    for cell in nb.cells:
        cell.source, _ = markup.clear_hidden_tests(cell.source)
        if markup.grade_id(cell) in answers:
            cell.source, _ = markup.clear_solutions(cell.source, answers[markup.grade_id(cell)])
    if edit:
        edit(nb)
    return write(nb, tmp_path / "alice" / SOLUTION.name)


def outcomes(result):
    return {t["id"]: (t["outcome"], t["points"]) for t in result["tests"]}


def cell(nb, gid):
    return next(c for c in nb.cells if markup.grade_id(c) == gid)


# -- check() -----------------------------------------------------------------

def stub():
    raise NotImplementedError()


@pytest.mark.parametrize("args, kwargs, printed", [
    ((lambda: 2, 2), {}, "✓ passed\n"),                                  # equal to expected
    ((lambda: 1, 2), {}, "✗ failed: got 1, expected 2\n"),               # unequal
    ((lambda: True,), {}, "✓ passed\n"),                                 # a true predicate
    ((lambda: None,), {}, "✓ passed\n"),                                 # a def of asserts returns None
    ((lambda: False,), {}, "✗ failed: the test returned False\n"),       # a false predicate
    ((lambda: np.bool_(False),), {}, "✗ failed: the test returned False\n"),   # numpy's False too
    ((stub,), {}, "not attempted\n"),                                    # the stub raised
    ((lambda: stub() + 1, 3), {}, "not attempted\n"),                     # through an expression
    ((lambda: 1 // 0,), {}, "✗ failed: ZeroDivisionError: integer division or modulo by zero\n"),
    ((lambda: np.arange(3), np.arange(3)), {}, "✓ passed\n"),            # arrays compare whole
    ((lambda: np.arange(3), [0, 1, 3]), {}, "✗ failed: got array([0, 1, 2]), expected [0, 1, 3]\n"),
    ((lambda: 1, 1), {"what": "one page"}, "one page: ✓ passed\n"),      # what labels the line
    ((stub,), {"what": "one page"}, "one page: not attempted\n"),
    ((lambda: "x" * 500, ""), {}, "✗ failed: got '" + "x" * 118 + "…, expected ''\n"),   # one line
])
def test_check_verdicts(capsys, args, kwargs, printed):
    assert check(*args, **kwargs) is None
    assert capsys.readouterr().out == printed


def test_check_assertion_message(capsys):
    # a test function's assert message is the reason, on one line
    # (raised by hand: pytest rewrites the asserts in this file)
    def test():
        raise AssertionError("one is\nnot two")
    check(test)
    assert capsys.readouterr().out == "✗ failed: one is not two\n"


def test_check_needs_a_callable():
    # check(f(x) == 3) would run the stub before check could catch it
    with pytest.raises(TypeError, match="test must be a callable"):
        check(3 == 3)


@pytest.mark.parametrize("variable, value", [
    (GRADING_ENV, "1"),                     # mmlab grade
    ("NBGRADER_EXECUTION", "autograde"),    # nbgrader autograde
    ("NBGRADER_EXECUTION", "validate"),     # nbgrader validate
])
def test_check_in_grading_mode_raises(monkeypatch, capsys, variable, value):
    monkeypatch.setenv(variable, value)
    assert grading()
    with pytest.raises(NotAttempted, match="not attempted"):
        check(stub)
    with pytest.raises(AssertionError, match="got 1, expected 2") as failure:
        check(lambda: 1, 2)
    assert not isinstance(failure.value, NotAttempted)
    check(lambda: 2, 2)                     # a pass never raises
    assert capsys.readouterr().out == "not attempted\n✗ failed: got 1, expected 2\n✓ passed\n"


def test_not_grading_by_default(monkeypatch):
    # MMLAB_GRADING=0 is not grading mode
    assert not grading()
    monkeypatch.setenv(GRADING_ENV, "0")
    assert not grading()


# -- markup ------------------------------------------------------------------

REGION = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"


def test_clear_solutions_indents_the_stub():
    assert markup.clear_solutions(REGION) == (
        "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()", True)


def test_clear_solutions_without_a_region():
    assert markup.clear_solutions("x = 1") == ("x = 1", False)


def test_clear_hidden_tests():
    src = "check(a)\n### BEGIN HIDDEN TESTS\ncheck(b)\n### END HIDDEN TESTS\ncheck(c)"
    assert markup.clear_hidden_tests(src) == ("check(a)\ncheck(c)", True)
    assert markup.hidden_test_regions(src) == ["check(b)"]


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),      # nested
    ("    ### BEGIN SOLUTION\n    x = 1", "never closed"),                         # unclosed
    ("x = 1\n### END SOLUTION", "without"),                                         # END alone
])
def test_malformed_regions(source, message):
    with pytest.raises(markup.MarkupError, match=message):
        markup.clear_solutions(source)


def meta_cell(source="def f():\n    pass", cell_type="code", **meta):
    base = {"grade": False, "grade_id": "x", "locked": False, "schema_version": 3,
            "solution": False, "task": False}
    base.update(meta)
    base = {k: v for k, v in base.items() if v is not None}
    make = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": base})


@pytest.mark.parametrize("cell, message", [
    (meta_cell(schema_version=2), "schema_version must be 3"),            # an old schema
    (meta_cell(grade=None), "lacks grade"),                               # a required key missing
    (meta_cell(colour="red"), "unknown keys colour"),                     # v3 allows no extra keys
    (meta_cell(grade="yes", points=1), "grade must be true or false"),    # not a bool
    (meta_cell(grade_id="a b", locked=True), "grade_id must match"),       # bad characters
    (meta_cell(grade_id="", locked=True), "no grade_id"),                  # empty id on a locked cell
    (meta_cell(grade=True), "needs points"),                              # a grade cell without points
    (meta_cell(grade=True, points=-1), "needs points"),                   # negative points
    (meta_cell("x", "markdown", grade=True, points=1), "markdown grade cell"),   # markdown test
    (meta_cell(task=True), "task cells must be markdown"),                 # a code task
])
def test_validate_metadata_rejects(cell, message):
    with pytest.raises(markup.MarkupError, match=message):
        markup.validate_metadata(cell)


def test_validate_metadata_accepts_the_helpers():
    # answer_cell, test_cell and locked_cell write valid v3 metadata
    for c in (markup.answer_cell(REGION, "a"), markup.test_cell("check(f)", "t", 2),
              markup.locked_cell("import x", "s"), nbformat.v4.new_code_cell("plain")):
        markup.validate_metadata(c)


@pytest.mark.parametrize("cells, message", [
    ([markup.answer_cell(REGION, "a"), markup.test_cell("f()", "a", 1)], "duplicate grade_id 'a'"),
    ([nbformat.v4.new_code_cell(REGION)], "solution region in a cell not marked"),
    ([markup.answer_cell("def f():\n    ### BEGIN HIDDEN TESTS\n    ### END HIDDEN TESTS\n"
                         "    ### BEGIN SOLUTION\n    ### END SOLUTION", "a")], "hidden tests"),
    ([markup.test_cell("### BEGIN HIDDEN TESTS\nf()", "t", 1)], "never closed"),
])
def test_validate_notebook_rejects(cells, message):
    with pytest.raises(markup.MarkupError, match=message):
        markup.validate_notebook(nbformat.v4.new_notebook(cells=cells))


@pytest.mark.parametrize("c, message", [
    (markup.answer_cell("def f():\n    pass", "a"), "has no ### BEGIN SOLUTION region"),
    (markup.answer_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "a"), "top level"),
    (meta_cell(REGION, grade=True, solution=True, points=1), "must not be a grade cell"),
    (meta_cell("text", "markdown", grade=True, solution=True, points=1), "must be code"),
])
def test_mmlab_rules_reject(c, message):
    with pytest.raises(markup.MarkupError, match=rf"cell 0 \((x|a)\): .*{message}"):
        markup.mmlab_rules(nbformat.v4.new_notebook(cells=[c]))


# -- exercise generation ------------------------------------------------------

def sources(nb):
    return "\n".join(c.source for c in nb.cells)


def secrets(nb):
    """The non-blank texts of every solution and hidden-test region."""
    return [text.strip() for c in nb.cells
            for text in markup.solution_regions(c.source) + markup.hidden_test_regions(c.source)
            if text.strip()]


def test_exercise_has_no_solution_or_hidden_text():
    sol = read_notebook(SOLUTION)
    text = exercise_text(SOLUTION)
    shown = sources(nbformat.reads(text, as_version=4))
    for marker in MARKERS:
        assert marker not in text
    assert len(secrets(sol)) == 5
    for secret in secrets(sol):
        for line in secret.split("\n"):
            assert line.strip() not in shown, line
    assert shown.count("raise NotImplementedError()") == 3      # one stub per answer


def test_exercise_keeps_cells_and_metadata():
    sol = read_notebook(SOLUTION)
    ex = make_exercise(sol)
    assert [c.id for c in ex.cells] == [c.id for c in sol.cells]
    assert [c.metadata for c in ex.cells] == [c.metadata for c in sol.cells]
    assert ex.metadata == sol.metadata
    assert cell(ex, "setup").source == cell(sol, "setup").source       # locked cells unchanged
    assert cell(ex, "test_pages_needed").source == (
        "check(lambda: pages_needed(1), 1)\ncheck(lambda: pages_needed(4096), 1)")


def test_exercise_clears_outputs(tmp_path):
    sol = read_notebook(SOLUTION)
    for c in sol.cells:
        if c.cell_type == "code":
            c.execution_count = 7
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="✓ passed\n")]
            c.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    ex = make_exercise(sol)
    code = [c for c in ex.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert all("execution" not in c.metadata for c in code)
    assert sol.cells[1].execution_count == 7                   # the solution is untouched


def test_missing_cell_ids_become_stable(tmp_path):
    raw = json.loads(SOLUTION.read_text())
    for c in raw["cells"]:
        del c["id"]
    path = tmp_path / "s.ipynb"
    path.write_text(json.dumps(raw))
    assert [c.id for c in read_notebook(path).cells][:2] == ["cell-0", "cell-1"]
    assert exercise_text(path) == exercise_text(path)


def test_sync_regenerates_byte_identical(tmp_path):
    ex = tmp_path / "exercises"
    assert sync_exercises(FIXTURES, ex) == [(ex / SOLUTION.name, "written")]
    first = (ex / SOLUTION.name).read_bytes()
    assert sync_exercises(FIXTURES, ex) == [(ex / SOLUTION.name, "up to date")]
    assert (ex / SOLUTION.name).read_bytes() == first
    assert first.decode() == exercise_text(SOLUTION)


def test_check_detects_drift(tmp_path, capsys):
    sols, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol = read_notebook(SOLUTION)
    write(sol, sols / SOLUTION.name)
    args = ["exercises", "--solutions", str(sols), "--exercises", str(ex)]
    assert main(args + ["--check"]) == 1                    # missing
    assert main(args) == 0
    assert main(args + ["--check"]) == 0                    # in sync
    cell(sol, "setup").source += "\nPAGE_ORDER = 0"
    write(sol, sols / SOLUTION.name)
    assert main(args + ["--check"]) == 1                    # the solution changed
    assert main(args) == 0
    write(sol, ex / "02-stale.ipynb")
    assert main(args + ["--check"]) == 1                    # an exercise with no solution
    assert main(args) == 0
    assert not (ex / "02-stale.ipynb").exists()
    out = capsys.readouterr()
    assert f"{ex / SOLUTION.name}: out of date" in out.out
    assert f"{ex / '02-stale.ipynb'}: stale" in out.out
    assert "out of date: run `mmlab exercises`" in out.err


def test_bad_markup_is_an_error_and_writes_nothing(tmp_path, capsys):
    sols, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol = read_notebook(SOLUTION)
    cell(sol, "pages_needed").metadata.nbgrader.solution = False
    write(sol, sols / SOLUTION.name)
    assert main(["exercises", "--solutions", str(sols), "--exercises", str(ex)]) == 2
    assert "cell 2 (pages_needed): solution region in a cell not marked" in capsys.readouterr().err
    assert not ex.exists()


# -- grading: restoring cells --------------------------------------------------

def test_restore_puts_back_tests_and_ignores_student_points():
    sol = read_notebook(SOLUTION)
    sub = make_exercise(sol)
    cell(sub, "test_pages_needed").source = "pass"                     # a test edited away
    cell(sub, "test_pages_needed").metadata.nbgrader.points = 100      # points raised
    del sub.cells[sub.cells.index(cell(sub, "test_count_by_order"))]   # a test deleted
    nb, graded = restore_cells(sub, sol)
    assert [(gid, pts) for gid, pts, _ in graded] == list(POINTS.items())
    assert [c.source for c in nb.cells if markup.is_locked(c)] == [
        c.source for c in sol.cells if markup.is_locked(c)]                # hidden tests back
    assert cell(nb, "pages_needed").source == cell(sub, "pages_needed").source   # answers stay
    assert [c.metadata for c in nb.cells] == [c.metadata for c in sol.cells]
    assert all(c is nb.cells[i] for i, c in [(3, graded[0][2]), (8, graded[2][2])])


def test_restore_inserts_a_deleted_test_after_its_answer():
    sol = read_notebook(SOLUTION)
    sub = make_exercise(sol)
    sub.cells.append(nbformat.v4.new_code_cell("print('my own cell')"))
    del sub.cells[3]                                                    # test_pages_needed
    nb, _ = restore_cells(sub, sol)
    ids = [markup.grade_id(c) for c in nb.cells]
    assert ids.index("test_pages_needed") == ids.index("pages_needed") + 1
    assert nb.cells[-1].source == "print('my own cell')"


# -- grading: real kernels -----------------------------------------------------

@slow
def test_kernel_is_this_python(tmp_path):
    # "python3" resolves to the grader's own interpreter, in grading mode
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import os, sys, mmlab\nprint(sys.executable)\nprint(os.environ['{GRADING_ENV}'])\n"
        "print(os.getcwd())\nprint(mmlab.__file__)")])
    replies, stopped = execute(nb, tmp_path)
    assert (replies, stopped) == ({0: replies[0]}, "") and replies[0]["status"] == "ok"
    import mmlab
    assert nb.cells[0].outputs[0].text.split("\n") == [
        sys.executable, "1", str(tmp_path), mmlab.__file__, ""]


@slow
def test_exercise_runs_clean(tmp_path):
    # as a student gets it: nbclient runs it without error, every test "not attempted"
    nb = nbformat.reads(exercise_text(SOLUTION), as_version=4)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    printed = [o.text for c in nb.cells if markup.is_test(c) for o in c.outputs]
    assert printed == ["not attempted\nnot attempted\n", "an order is an int: not attempted\n",
                       "not attempted\n"]


@slow
def test_cli_grades_the_exercise_to_zero_as_json(tmp_path):
    ex = tmp_path / "exercises"
    sync_exercises(FIXTURES, ex)
    out = subprocess.run([sys.executable, "-m", "mmlab", "grade", "--json", "--solutions",
                          str(FIXTURES), str(ex / SOLUTION.name)],
                         capture_output=True, text=True, check=True).stdout
    assert len(out.splitlines()) == 1                              # one JSON line per notebook
    result = json.loads(out)
    assert result == {
        "notebook": str(ex / SOLUTION.name), "score": 0, "max_score": 6,
        "tests": [{"id": gid, "points": 0, "max_points": pts, "outcome": "not attempted",
                   "error": "NotAttempted: not attempted"} for gid, pts in POINTS.items()]}


@slow
def test_cli_table_and_missing_solution(tmp_path):
    other = write(read_notebook(SOLUTION), tmp_path / "99-nothing.ipynb")
    run = subprocess.run([sys.executable, "-m", "mmlab", "grade", "--solutions", str(FIXTURES),
                          str(SOLUTION), str(other)], capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"{SOLUTION}: 6 / 6",
        "  test_pages_needed       3 / 3    passed",
        "  test_predict_order      1 / 1    passed",
        "  test_count_by_order     2 / 2    passed"]
    assert "no solution" in run.stderr and "99-nothing.ipynb" in run.stderr


def test_help_lists_both_commands():
    out = subprocess.run([sys.executable, "-m", "mmlab", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "exercises" in out and "grade" in out
    assert (Path(sys.executable).parent / "mmlab").exists()       # the console script


@pytest.mark.parametrize("kwargs, error", [
    ({"timeout": 0}, ValueError),                   # no time at all
    ({"notebook_timeout": -1}, ValueError),         # negative
    ({"timeout": 1.5}, TypeError),                  # whole seconds only
])
def test_grade_rejects_bad_timeouts(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        grade_notebook(SOLUTION, solutions=FIXTURES, **kwargs)


def test_cli_defaults_are_the_graders():
    # cli keeps its own copy so that `mmlab --help` need not import nbclient
    from mmlab.course import cli, grade
    assert (cli.CELL_TIMEOUT, cli.NOTEBOOK_TIMEOUT) == (grade.CELL_TIMEOUT, grade.NOTEBOOK_TIMEOUT)


@slow
def test_solution_grades_full_marks():
    result = grade_notebook(SOLUTION, solutions=FIXTURES)
    assert (result["score"], result["max_score"]) == (6, 6)
    assert outcomes(result) == {gid: ("passed", pts) for gid, pts in POINTS.items()}
    assert all(t["error"] is None for t in result["tests"])


WRONG = [
    # (answer cell, wrong body, the test that must fail)
    ("pages_needed", "return size // PAGE_SIZE", "test_pages_needed"),            # visible tests fail
    ("pages_needed", "return max(1, (size + PAGE_SIZE - 1) // PAGE_SIZE)",
     "test_pages_needed"),                                                       # only a hidden test fails
    ("predict_order", "return 1", "test_predict_order"),                          # a wrong prediction
    ("count_by_order", "counts[order] = 1", "test_count_by_order"),                # a wrong loop step
]


@slow
@pytest.mark.parametrize("gid, body, failing", WRONG)
def test_wrong_answer_loses_exactly_its_points(tmp_path, gid, body, failing):
    result = grade_notebook(submission(tmp_path, [(gid, body)]), solutions=FIXTURES)
    assert result["max_score"] == 6
    assert result["score"] == 6 - POINTS[failing]
    expected = {t: ("passed", p) for t, p in POINTS.items()}
    expected[failing] = ("failed", 0)
    assert outcomes(result) == expected
    error = next(t["error"] for t in result["tests"] if t["id"] == failing)
    assert error.startswith("AssertionError: ")


@slow
def test_tampering_does_not_help(tmp_path):
    # a wrong answer whose test was edited to pass, worth 100 points, and a deleted test
    def tamper(nb):
        cell(nb, "test_pages_needed").source = "pass"
        cell(nb, "test_pages_needed").metadata.nbgrader.points = 100
        nb.cells.remove(cell(nb, "test_count_by_order"))
    path = submission(tmp_path, [("pages_needed", "return 0")], edit=tamper)
    result = grade_notebook(path, solutions=FIXTURES)
    assert (result["score"], result["max_score"]) == (3, 6)
    assert outcomes(result) == {"test_pages_needed": ("failed", 0),
                                "test_predict_order": ("passed", 1),
                                "test_count_by_order": ("passed", 2)}


@slow
def test_a_hanging_cell_is_interrupted(tmp_path):
    # the hang is in count_by_order: its test times out, the others still score
    path = submission(tmp_path, [("count_by_order", "while True:\n    pass")])
    start = time.monotonic()
    result = grade_notebook(path, solutions=FIXTURES, timeout=2)
    assert time.monotonic() - start < 30
    assert outcomes(result) == {"test_pages_needed": ("passed", 3),
                                "test_predict_order": ("passed", 1),
                                "test_count_by_order": ("failed", 0)}
    assert result["tests"][2]["error"] == "Timeout: the cell ran longer than 2 s"


@slow
def test_a_notebook_that_ignores_interrupts_is_stopped(tmp_path):
    # SIGINT ignored: every later cell would time out in turn; the notebook limit ends it
    # (in the hanging call itself: ipykernel reinstalls its handler for each cell)
    hang = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    path = submission(tmp_path, [("pages_needed", hang)])
    start = time.monotonic()
    result = grade_notebook(path, solutions=FIXTURES, timeout=1, notebook_timeout=3)
    assert time.monotonic() - start < 30
    assert result["score"] == 0
    assert outcomes(result) == {gid: ("failed", 0) for gid in POINTS}
    assert result["tests"][0]["error"] == "Timeout: the cell ran longer than 1 s"
    assert result["tests"][2]["error"] == "not run: the notebook ran longer than 3 s"


# -- the repository's own solutions/ and exercises/ ------------------------------

REPO_SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NONE_YET = [pytest.param(None, marks=pytest.mark.skip(reason="no solutions/*.ipynb yet"))]
each_solution = pytest.mark.parametrize(
    "solution", [pytest.param(p, id=p.name) for p in REPO_SOLUTIONS] or NONE_YET)


def test_repo_exercises_in_sync():
    # exercises/ is exactly what `mmlab exercises` writes: nothing missing, stale or edited
    report = sync_exercises(ROOT / "solutions", ROOT / "exercises", check=True)
    assert [(p.name, s) for p, s in report if s != "up to date"] == []


@each_solution
def test_repo_exercise_hides_solutions(solution):
    text = (ROOT / "exercises" / solution.name).read_text(encoding="utf-8")
    shown = sources(nbformat.reads(text, as_version=4))
    for marker in MARKERS:
        assert marker not in text
    for secret in secrets(read_notebook(solution)):
        assert secret not in shown


@each_solution
@slow
def test_repo_exercise_grades_zero(solution):
    result = grade_notebook(ROOT / "exercises" / solution.name, solutions=ROOT / "solutions")
    assert result["max_score"] > 0
    assert result["score"] == 0
    assert {t["outcome"] for t in result["tests"]} <= {"not attempted", "failed"}


@each_solution
@slow
def test_repo_solution_grades_full(solution):
    result = grade_notebook(solution, solutions=ROOT / "solutions")
    assert result["max_score"] > 0
    assert result["score"] == result["max_score"], result["tests"]
