"""Every bad input gets a one-line error (exit code 2, no traceback), before any run."""

from __future__ import annotations

import re

import pytest

from bench import cli


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(["run", "--no-progress", *args])
    except SystemExit as exc:  # argparse's own errors (one line: see cli._Parser)
        code = exc.code
    return code, capsys.readouterr().err


def _assert_one_line_error(code: int, err: str, message: str, out) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(message, lines[0]), lines[0]
    assert not (out / "runs").exists()  # nothing ran


CLI_CASES = [
    (["--param", "deconv1d.a2=nan"], r"deconv1d\.a2 must be a finite number, got 'nan'"),
    (["--param", "deconv1d.a2=inf"], r"deconv1d\.a2 must be a finite number, got 'inf'"),
    (["--param", "deconv1d.a2=1e400"], r"deconv1d\.a2 must be a finite number, got inf"),
    (["--param", "deconv1d.a2=abc"], r"deconv1d\.a2 must be a finite number, got 'abc'"),
    (["--param", "deconv1d.n=2.5"], r"deconv1d\.n must be an integer, got 2\.5"),
    (["--param", "deconv1d.a2=-1"], r"deconv1d needs .*a2 > 0"),  # a range check, before any run
    (["--max-time", "nan"], r"argument --max-time: must be a finite number > 0, got 'nan'"),
    (["--max-time", "inf"], r"argument --max-time: must be a finite number > 0, got 'inf'"),
    (["--max-time", "0"], r"argument --max-time: must be a finite number > 0, got '0'"),
    (["--max-iters", "0"], r"argument --max-iters: must be an integer ≥ 1, got '0'"),
    (["--max-ll-iters", "0"], r"argument --max-ll-iters: must be an integer ≥ 1, got '0'"),
    (["--eval-every", "0"], r"argument --eval-every: must be an integer ≥ 1, got '0'"),
    (["--threads", "0"], r"argument --threads: must be an integer ≥ 1, got '0'"),
    (["--param", "deconv1d.dtype=float32"], r"deconv1d\.dtype is set by --dtype"),
    (["--param", "deconv1d.device=cpu"], r"deconv1d\.device is set by --device"),
    (["--seed", "abc"], r"--seed expects integers .* got 'abc'"),
    (["--dtype", "float16"], r"argument --dtype: invalid choice: 'float16'"),
    (["--param", "deconv1d.n=1000000"], r"problem 'deconv1d' with n=1000000 needs at least .* GB but .* GB"),
    (
        ["-p", "deblur2d", "--param", "deblur2d.size=(100000, 100000)"],
        r"problem 'deblur2d' with size=\(100000, 100000\) needs at least .* GB",
    ),
    (["-p", "deblur2d", "--param", "deblur2d.size=(16, 'a')"], r"deblur2d\.size must be a tuple of 2"),
]


@pytest.mark.parametrize(("args", "message"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_bad_cli_input(tmp_path, capsys, args, message):
    out = tmp_path / "r"
    code, err = _run_cli([*args, "-o", str(out)], capsys)
    _assert_one_line_error(code, err, message, out)


TOML_CASES = [
    ("seeds = [0\n", r"bad\.toml: invalid TOML: "),
    ('seeds = "abc"\n', r"bad\.toml: seeds must be a non-empty list of integers"),
    ("seeds = [0, 1.5]\n", r"bad\.toml: seeds must be a non-empty list of integers"),
    ("budget = 5\n", r"bad\.toml: \[budget\] must be a table"),
    ("[budget]\nmax_time = nan\n", r"bad\.toml: \[budget\] max_time must be a finite number of seconds > 0"),
    ("[budget]\nmax_time = 0\n", r"bad\.toml: \[budget\] max_time must be a finite number of seconds > 0"),
    ('[budget]\nmax_iters = "10"\n', r"bad\.toml: \[budget\] max_iters must be an integer ≥ 1"),
    (
        "[budget]\nmax_lliters = 10\n",
        r"bad\.toml: \[budget\]: unknown key\(s\) max_lliters; valid: max_iters",
    ),
    ('threads = "two"\n', r"bad\.toml: threads must be an integer ≥ 1"),
    ("eval_every = 0\n", r"bad\.toml: eval_every must be an integer ≥ 1"),
    ("device = 1\n", r"bad\.toml: device must be a string"),
    ('problems = "deconv1d"\n', r"bad\.toml: problems must be an array of tables"),
    ('[[problems]]\nname = "deconv1d"\nparams = 3\n', r"each \[\[problems\]\] needs a string 'name'"),
    ('[[problems]]\nname = "deconv1d"\nparams = { a2 = nan }\n', r"deconv1d\.a2 must be a finite number"),
    ('[[problems]]\nname = "deconv1d"\nparams = { dtype = "float32" }\n', r"deconv1d\.dtype is set by"),
]


@pytest.mark.parametrize(("text", "message"), TOML_CASES, ids=[t for t, _ in TOML_CASES])
def test_bad_toml(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = tmp_path / "r"
    code, err = _run_cli(["-c", str(cfg), "-o", str(out)], capsys)
    _assert_one_line_error(code, err, message, out)


def test_config_path_is_a_directory(tmp_path, capsys):
    out = tmp_path / "r"
    code, err = _run_cli(["-c", str(tmp_path), "-o", str(out)], capsys)
    _assert_one_line_error(code, err, r"config path .* is not a file", out)


def test_missing_config_file(tmp_path, capsys):
    out = tmp_path / "r"
    code, err = _run_cli(["-c", str(tmp_path / "nope.toml"), "-o", str(out)], capsys)
    _assert_one_line_error(code, err, r"config file .*nope\.toml does not exist", out)


def test_report_of_a_missing_folder(tmp_path, capsys):
    code = cli.main(["report", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "results folder" in err and "does not exist" in err


def test_bad_input_after_a_good_problem_stops_before_the_first_run(tmp_path, capsys):
    """All problems of a sweep are checked before any runs: the good first one does not run either."""
    out = tmp_path / "r"
    code, err = _run_cli(
        ["-p", "quadratic,deconv1d", "--param", "deconv1d.a2=nan", "--max-iters", "1", "-o", str(out)], capsys
    )
    _assert_one_line_error(code, err, r"deconv1d\.a2 must be a finite number", out)
