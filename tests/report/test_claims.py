"""Each section's verdict follows from its numbers: the same rule flips when the numbers cross it."""

import math

import pytest

from toto_lens.report import claims
from toto_lens.report.claims import FAILS, HOLDS, PARTLY


def peak(depth, val=0.8, untrained=0.4, task="digit"):
    return {
        "size": "base",
        "task": task,
        "probe": "linear",
        "depth": depth,
        "val": val,
        "untrained_val": untrained,
    }


def test_probing_verdict_follows_where_the_best_layers_lie():
    middle = {"peaks": [peak(0.5), peak(0.4), peak(0.75)]}
    edges = {"peaks": [peak(0.0), peak(1.0), peak(0.5)]}
    ends = {"peaks": [peak(0.0), peak(1.0), peak(0.1)]}
    assert claims.probing_depth(middle).status == HOLDS, "all best layers at mid depth must hold"
    assert claims.probing_depth(edges).status == PARTLY, "one of three in the middle band is only partly"
    assert claims.probing_depth(ends).status == FAILS, "peaks at the ends contradict the claim"
    assert (
        "3 of 3" in claims.probing_depth(middle).reason
        and "median depth 0.50" in claims.probing_depth(middle).reason
    )


def redundancy_row(size, ratio):
    return {"size": size, "ratio": ratio, "untrained_ratio": 1.0, "images_ratio": 1.0}


def test_first_frame_verdict_needs_a_clear_ratio_on_every_size():
    assert claims.first_frame({"sizes": [redundancy_row("a", 2.0), redundancy_row("b", 1.5)]}).status == HOLDS
    assert (
        claims.first_frame({"sizes": [redundancy_row("a", 2.0), redundancy_row("b", 1.05)]}).status == PARTLY
    )
    verdict = claims.first_frame({"sizes": [redundancy_row("a", 1.0)]})
    assert verdict.status == FAILS and "1.00×" in verdict.reason, "a ratio of 1 is no redundancy"


def track_row(best, copy, untrained):
    return {"size": "s", "best_layer": 1, "best_jf": best, "copy_first": copy, "untrained_jf": untrained,
            "pixels": 0.5}  # fmt: skip


def test_tracking_verdict_compares_with_copy_first_and_the_untrained_copy():
    assert claims.tracking({"sizes": [track_row(0.6, 0.5, 0.4)]}).status == HOLDS
    assert claims.tracking({"sizes": [track_row(0.45, 0.5, 0.4)]}).status == PARTLY, "beats untrained only"
    assert claims.tracking({"sizes": [track_row(0.3, 0.5, 0.4)]}).status == FAILS


def test_lr_transfer_verdict_reads_the_spread_and_its_control():
    flat = {"best_lr": {"32": 0.004, "64": 0.004}, "spread_steps": 0}
    moved = {"best_lr": {"32": 0.016, "64": 0.001}, "spread_steps": 2}
    assert claims.lr_transfer({"mup": flat, "standard": moved}).status == HOLDS
    assert claims.lr_transfer({"mup": moved, "standard": moved}).status == FAILS
    same = claims.lr_transfer({"mup": flat, "standard": flat})
    assert same.status == PARTLY and "does not tell" in same.reason, (
        "a control that also stays flat proves nothing"
    )


def gram(tok, n, distinct, entropy):
    return {"tokenizer": tok, "n": n, "distinct": distinct, "entropy_bits": entropy}


def test_ngram_verdict_reads_2gram_spread_and_3gram_flatness():
    flat3 = [gram("a", 3, 1024, 10.0), gram("b", 3, 1024, 9.5)]  # log2(1024) = 10: 1.0 and 0.95
    assert claims.ngrams({"rows": [gram("a", 2, 100, 5), gram("b", 2, 400, 6), *flat3]}).status == HOLDS
    assert claims.ngrams({"rows": [gram("a", 2, 100, 5), gram("b", 2, 120, 6), *flat3]}).status == PARTLY
    peaked = [gram("a", 3, 1024, 3.0), gram("b", 3, 1024, 9.5)]
    assert claims.ngrams({"rows": [gram("a", 2, 100, 5), gram("b", 2, 120, 6), *peaked]}).status == FAILS


def test_scaling_verdict_needs_a_good_fit_and_losses_falling_with_size():
    final = [{"size": "s", "params": 1, "val_loss": 3.0}, {"size": "l", "params": 2, "val_loss": 2.5}]
    good = {"a": 10.0, "alpha": 0.1, "r2": 0.97, "points": 5}
    assert claims.scaling({"fit": good, "final": final}).status == HOLDS
    assert claims.scaling({"fit": {**good, "r2": 0.5}, "final": final}).status == PARTLY
    rising = [{"size": "s", "params": 1, "val_loss": 2.0}, {"size": "l", "params": 2, "val_loss": 2.5}]
    assert claims.scaling({"fit": good, "final": rising}).status == PARTLY, "a larger size ending higher"
    assert claims.scaling({"fit": {**good, "alpha": -0.1}, "final": final}).status == FAILS


def test_start_token_verdict_compares_frame_change_with_real_clips():
    video_like = {"generated": 0.05, "real": 0.04}
    image_like = {"generated": 0.30, "real": 0.35}
    assert claims.start_token({"video": video_like, "images": image_like}).status == HOLDS
    assert (
        claims.start_token({"video": {"generated": 0.33, "real": 0.04}, "images": image_like}).status
        == PARTLY
    )
    assert claims.start_token({"video": {"generated": 0.33, "real": 0.04},
                               "images": {"generated": 0.05, "real": 0.35}}).status == FAILS  # fmt: skip


def test_induction_verdict_needs_emergence_and_an_ablation_above_random():
    sizes = [{"size": "l", "head": "L1.H0", "excess": 0.5, "untrained_excess": 0.05}]
    strong = {"heads": "1.0", "delta_ablated": 0.5, "delta_random_mean": 0.01, "delta_random_std": 0.02}
    weak = {**strong, "delta_ablated": 0.03}
    assert claims.induction({"sizes": sizes, "ablation": strong}).status == HOLDS
    assert claims.induction({"sizes": sizes, "ablation": weak}).status == PARTLY
    flat = [{**sizes[0], "excess": 0.1}]
    assert claims.induction({"sizes": flat, "ablation": weak}).status == FAILS
    framed = [{**flat[0], "frame_induction": 0.71, "frame_head": "L4.H2", "untrained_frame_induction": 0.0}]
    verdict = claims.induction({"sizes": framed, "ablation": weak})
    assert verdict.status == FAILS and "L4.H2 scores 0.71" in verdict.reason, (
        "a fixed-offset frame head is reported beside the controlled test, and does not pass it"
    )


def test_probe_head_verdict_per_size():
    rows = [{"size": "a", "linear": 0.5, "attention": 0.6}, {"size": "b", "linear": 0.5, "attention": 0.4}]
    assert claims.probe_heads({"task": "digit", "sizes": rows[:1]}).status == HOLDS
    assert claims.probe_heads({"task": "digit", "sizes": rows}).status == PARTLY
    assert claims.probe_heads({"task": "digit", "sizes": rows[1:]}).status == FAILS
    fewer = [{**rows[0], "linear_clips": 177, "attention_clips": 46}]
    verdict = claims.probe_heads({"task": "digit", "sizes": fewer})
    assert verdict.status == claims.REPORTED and "not comparable" in verdict.reason, (
        "probes trained on different clips must not be declared better or worse"
    )


@pytest.mark.parametrize("value", [math.nan, None])
def test_missing_numbers_print_as_a_dash(value):
    assert claims._num(value) == "—"
