"""The notebook tests' fixture: a small checkpoint and its cache, made once per session."""

import pytest


@pytest.fixture(scope="session")
def notebook_cache(tmp_path_factory, _shared_derived):
    """A cache root holding two untrained toto-debug checkpoints of one "run" (`nb-early`, `nb`) and the
    cache of `nb` (32 validation clips of moving digits; every layer; pooled, per-frame and per-token
    activations; attention per frame pair and full patterns of 2 clips), as `make demo` writes it for
    `demo`. Returns the root: a notebook's kernel reads it through TOTO_LENS_CACHE."""
    from extract_helpers import make_checkpoint

    from toto_lens.run import extract

    root = tmp_path_factory.mktemp("notebook-cache")
    for sub in ("tokenizers", "tokens"):
        (root / sub).symlink_to(_shared_derived / sub)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOTO_LENS_CACHE", str(root))
        make_checkpoint("nb-early", seed=1)
        make_checkpoint("nb")
        extract(
            "nb",
            clips=32,
            batch_size=16,
            acts=("pooled", "frame", "token"),
            attn=("frame", "pattern"),
            pattern_clips=2,
        )
    return root
