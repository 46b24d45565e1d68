"""`toto-lens verify …`: check every chunk of a cache store (present, checksum intact); --repair marks
the clips of bad chunks so that the command that wrote the store extracts them again."""

from __future__ import annotations

from typing import Annotated

import typer

from toto_lens.cli.app import CacheOpt, DatasetOpt, JsonOpt, app, console

SOUND, DAMAGED = 0, 1  # exit codes; 2 (any `error:` line) when the store cannot be verified at all


@app.command("verify")
def verify_cmd(
    ckpt: Annotated[str | None, typer.Option("--ckpt", help="Checkpoint whose cache to check.")] = None,
    dataset: DatasetOpt = None,
    cache: CacheOpt = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Remove corrupt chunk files and mark their clips for extraction again."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every chunk of a cache store: present, and its bytes matching their crc32c checksum.

    Prints a line per array (chunks ok, missing, corrupt, clips affected). Exit code 0 when the store is
    sound, 1 when chunks are missing or corrupt (also after --repair: the store is sound again only once
    the printed extract command has run), 2 when it cannot be checked (no store, an old schema).
    """
    import json

    from toto_lens.store.verify import check_store

    outcome = check_store(ckpt=ckpt, dataset=dataset, path=cache, repair=repair)
    if as_json:
        print(json.dumps(outcome))
    else:
        _print(outcome)
    raise typer.Exit(SOUND if outcome["sound"] else DAMAGED)


def _print(outcome: dict) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=f"chunks of {outcome['path']}", box=box.SIMPLE_HEAD)
    for col in ("array", "chunks", "ok", "missing", "corrupt", "clips affected"):
        table.add_column(col, justify="left" if col in ("array", "clips affected") else "right")
    for name, a in outcome["arrays"].items():
        table.add_row(name, str(a["chunks"]), str(a["ok"]), str(len(a["missing"])), str(len(a["corrupt"])),
                      a["clips"] or "—")  # fmt: skip
    console.print(table)
    for line in outcome["lines"]:
        console.print(line, soft_wrap=True, highlight=False)
