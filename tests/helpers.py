"""What several test modules share: running the CLI in-process as a user's shell would."""

from toto_lens.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`toto-lens ARGS` in this process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
