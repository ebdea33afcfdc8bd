"""rnncore train's argument handling: budgets, --distributed without MPI, the
evaluation options' argparse errors."""
import subprocess
import sys

import pytest

from support import FOX, assert_clean_error, corpus, run

pytestmark = pytest.mark.slow   # every test here starts a process


TEXT = FOX


def test_budget_flags_are_exclusive_on_the_cli(tmp_path):
    assert_clean_error(run("train", "c.txt", "--out", "m.npz", "--steps", "3", "--epochs", "1",
                           cwd=tmp_path), "not allowed with argument", status=2)


def test_distributed_without_mpi4py_names_the_install_command(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from rnncore import cli; "
            f"sys.exit(cli.main(['train', {str(corpus(tmp_path, TEXT))!r}, '--out', "
            f"{str(tmp_path / 'm.npz')!r}, '--distributed']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert_clean_error(proc, "--distributed needs mpi4py and an MPI library: pip install "
                             "'rnncore[mpi]'", status=1)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("args,match", [
    (["--val-fraction", "1"], "must be in [0, 1)"),
    (["--val-fraction", "-0.1"], "must be in [0, 1)"),
    (["--eval-every", "0"], "must be a positive integer"),
    (["--patience", "0"], "must be a positive integer"),
    (["--lr-schedule", "exp"], "invalid choice"),
    (["--warmup-steps", "-1"], "must be >= 0"),
])
def test_argparse_errors_for_evaluation_options(tmp_path, args, match):
    proc = run("train", "c.txt", "--out", "m.npz", *args, cwd=tmp_path)
    assert_clean_error(proc, match, status=2)
