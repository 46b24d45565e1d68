import signal
import time
from contextlib import contextmanager

import pytest
import torch

from toto_lens.config import ModelConfig


@pytest.fixture(scope="session")
def _shared_derived(tmp_path_factory, worker_id):
    """Fitted tokenizers and token pools are deterministic: tests share them instead of refitting, across
    pytest-xdist workers too (both write atomically, so a worker reads a whole file or none). `make test`
    runs each test file whole on one worker (`--dist loadfile`), so a module's fixtures are built once;
    the tests of the session's trained demo model all live in tests/test_demo_results.py for that reason."""
    if worker_id == "master":
        root = tmp_path_factory.mktemp("shared-cache")
    else:
        root = tmp_path_factory.getbasetemp().parent / "shared-cache"
    for sub in ("tokenizers", "tokens"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _shared_derived):
    """Every test gets its own empty checkpoint registry (outside its tmp_path), never the user's cache/."""
    cache = tmp_path_factory.mktemp("cache")
    for sub in ("tokenizers", "tokens"):
        (cache / sub).symlink_to(_shared_derived / sub)
    monkeypatch.setenv("TOTO_LENS_CACHE", str(cache))
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(
        vocab_size=40, dim=32, n_layers=2, n_heads=4, ffn_dim=64, context_length=64, name="test"
    )


@pytest.fixture(params=[None, 2], ids=["mha", "gqa"])
def any_config(request, tiny_config) -> ModelConfig:
    return tiny_config.replace(n_kv_heads=request.param)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory, _shared_derived):
    """For fixtures wider than one test: `with cache_root("label") as root:` makes a fresh cache root that
    shares the fitted tokenizers and token pools, with TOTO_LENS_CACHE pointing at it inside the block."""

    @contextmanager
    def make(label: str):
        root = tmp_path_factory.mktemp(label)
        for sub in ("tokenizers", "tokens"):
            (root / sub).symlink_to(_shared_derived / sub)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TOTO_LENS_CACHE", str(root))
            yield root

    return make


# Fixtures that train or extract a real model once per session have a budget of their own, sized for a
# busy machine (load 6 on 2 cores makes the demo's ~5 minutes of training take three times as long).
# The tests that use them get the per-test timeout for their own body only (`func_only`), so the test that
# happens to run first is not charged for the shared fixture, and a hung fixture still fails, by name.
FIXTURE_BUDGET_S = {"demo_run": 2400, "demo_images": 900}


def pytest_collection_modifyitems(items):
    for item in items:
        if set(FIXTURE_BUDGET_S) & set(getattr(item, "fixturenames", ())):
            marker = item.get_closest_marker("timeout")
            seconds = marker.args[0] if marker and marker.args else item.config.getini("timeout")
            item.add_marker(pytest.mark.timeout(float(seconds), func_only=True), append=False)


@contextmanager
def budget(what: str):
    """Fail the fixture `what` with a clear message once it has run past its budget (FIXTURE_BUDGET_S)."""
    seconds = FIXTURE_BUDGET_S[what]
    start = time.monotonic()

    def expired(signum, frame):
        raise TimeoutError(
            f"fixture {what} ran past its budget of {seconds} s: the machine is too busy or it got slower"
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        print(f"\nfixture {what}: {time.monotonic() - start:.0f} s of its {seconds} s budget")


@pytest.fixture(scope="session")
def demo_run(cache_root):
    """The model `make demo` trains (the defaults), trained once per session, and its extracted cache.

    Returns (checkpoint folder, cache store). Slow (about 6 minutes on 2 cores): only `slow` tests use it.
    """
    from toto_lens.run import extract
    from toto_lens.train import TrainConfig, train

    with cache_root("demo-cache") as root, budget("demo_run"):
        torch.manual_seed(0)
        result = train(TrainConfig(), "demo")
        store = root / "demo" / "moving-digits-val.zarr"
        extract(result.path, acts=("pooled", "frame", "token"), out=store)
    return result, store


@pytest.fixture(scope="session")
def demo_images(demo_run):
    """The demo model's cache of the image-digits validation clips, as `make demo` extracts it (per-token
    activations for the first 128 clips). Each frame is one independent digit image: the image
    classification probe (`frame_digit`) reads it."""
    from toto_lens.run import extract

    result, store = demo_run
    images = store.parent / "image-digits-val.zarr"
    with budget("demo_images"):
        extract(
            result.path, data="image-digits", acts=("pooled", "frame", "token"), token_clips=128, out=images
        )
    return images
