"""Whether each appendix claim holds on our models: a verdict computed from a section's numbers alone.

Each function takes the JSON numbers a section recorded and returns a `Verdict`: `holds`, `partly`,
`does not hold`, or `reported` (a table that tests no claim of ours), with the sentence that says why,
numbers in it. The thresholds are stated here and in the sentences, so that a reader can disagree with
them; nothing is decided anywhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any

HOLDS, PARTLY, FAILS, REPORTED = "holds", "partly", "does not hold", "reported"
MIDDLE = (0.25, 0.75)  # "peak around 50% of the model depth": a best layer inside this band of depth
CLEAR_RATIO = 1.1  # the first frame "costs more" when its loss is at least 10 % above the later frames'
FLAT_ENTROPY = 0.9  # "almost flat": entropy at least 90 % of log2(number of distinct n-grams)
DIFFERENT = 1.5  # tokenizers "differ" in 2-grams when the most and fewest distinct 2-grams are 1.5× apart
GOOD_FIT = 0.9  # r² of the power law in log-log space
INDUCTION_MARGIN = 0.1  # trained prefix-matching excess above the untrained copy's


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


def _both(first: bool, second: bool, because: str) -> Verdict:
    """Holds when both parts of a claim do, partly when one does."""
    return Verdict(HOLDS if first and second else PARTLY if first or second else FAILS, because)


def _share(flags: list[bool], all_of: str, some_of: str, none_of: str, because: str) -> Verdict:
    if flags and all(flags):
        return Verdict(HOLDS, f"{all_of}: {because}")
    if any(flags):
        return Verdict(PARTLY, f"{some_of}: {because}")
    return Verdict(FAILS, f"{none_of}: {because}")


def probing_depth(n: dict[str, Any]) -> Verdict:
    """Fig. 9: the best layer of each (size, task) probe of the trained models lies near half depth."""
    rows = n["peaks"]
    inside = [MIDDLE[0] <= r["depth"] <= MIDDLE[1] for r in rows]
    above = sum(r["val"] > r["untrained_val"] for r in rows)
    share = sum(inside) / len(rows)
    because = (
        f"{sum(inside)} of {len(rows)} best layers lie between {MIDDLE[0]:.0%} and {MIDDLE[1]:.0%} of depth "
        f"(median depth {median(r['depth'] for r in rows):.2f}); the trained model beats its untrained copy "
        f"at its best layer in {above} of {len(rows)}"
    )
    status = HOLDS if share >= 2 / 3 else PARTLY if share >= 1 / 3 else FAILS
    return Verdict(status, because)


def first_frame(n: dict[str, Any]) -> Verdict:
    """Fig. 10: the first frame costs clearly more loss than the later ones, on every size."""
    rows = n["sizes"]
    parts = ", ".join(
        f"{r['size']} {r['ratio']:.2f}× (untrained {r['untrained_ratio']:.2f}×, image sequences "
        f"{r['images_ratio']:.2f}×)"
        for r in rows
    )
    return _share(
        [r["ratio"] >= CLEAR_RATIO for r in rows],
        "every size", "some sizes", "no size",
        f"first-frame loss over later-frames loss ≥ {CLEAR_RATIO}: {parts}",
    )  # fmt: skip


def tracking(n: dict[str, Any]) -> Verdict:
    """Fig. 7 / Table 14: the model's features propagate labels better than not moving them at all, and
    better than the same features untrained."""
    rows = n["sizes"]
    parts = ", ".join(
        f"{r['size']} layer {r['best_layer']} J&F {r['best_jf']:.3f} (copy-first {r['copy_first']:.3f}, "
        f"untrained {r['untrained_jf']:.3f}, pixels {_num(r.get('pixels'))})"
        for r in rows
    )
    beats_copy = [r["best_jf"] > r["copy_first"] for r in rows]
    beats_untrained = [r["best_jf"] > r["untrained_jf"] for r in rows]
    if all(beats_copy) and all(beats_untrained):
        return Verdict(HOLDS, f"every size's best layer beats copy-first and its untrained copy: {parts}")
    if any(beats_copy) or any(beats_untrained):
        return Verdict(
            PARTLY,
            f"best layers beat copy-first in {sum(beats_copy)} and the untrained copy in "
            f"{sum(beats_untrained)} of {len(rows)} sizes: {parts}",
        )
    return Verdict(FAILS, f"no best layer beats copy-first or its untrained copy: {parts}")


def lr_transfer(n: dict[str, Any]) -> Verdict:
    """Fig. 11: under μP the best learning rate is the same for every width (within one grid step)."""
    mup = n["mup"]
    best = ", ".join(f"width {w}: {_num(lr, '.3g')}" for w, lr in mup["best_lr"].items())
    because = f"μP best lr {best}, {mup['spread_steps']} grid steps apart"
    control = n.get("standard")
    if control is not None:
        because += f"; standard parametrisation {control['spread_steps']} grid steps apart (the control)"
    if not (mup["spread_steps"] <= 1):
        return Verdict(FAILS, because)
    if control is not None and control["spread_steps"] <= 1:
        return Verdict(PARTLY, because + ", so this sweep does not tell μP from the standard parametrisation")
    return Verdict(HOLDS, because)


def ngrams(n: dict[str, Any]) -> Verdict:
    """Figs. 12-13: tokenizers differ in their 2-gram combinations, while 3-grams are almost flat for all."""
    two = {r["tokenizer"]: r["distinct"] for r in n["rows"] if r["n"] == 2}
    flat = {r["tokenizer"]: r["entropy_bits"] / math.log2(r["distinct"]) for r in n["rows"]
            if r["n"] == 3 and r["distinct"] > 1}  # fmt: skip
    spread = max(two.values()) / max(1, min(two.values()))
    differ, all_flat = spread >= DIFFERENT, bool(flat) and min(flat.values()) >= FLAT_ENTROPY
    because = (
        f"distinct 2-grams {', '.join(f'{t} {d:,}' for t, d in two.items())} ({spread:.1f}× apart, "
        f"'differ' at ≥ {DIFFERENT}×); 3-gram entropy / log2(distinct) "
        f"{', '.join(f'{t} {v:.2f}' for t, v in flat.items())} ('flat' at ≥ {FLAT_ENTROPY})"
    )
    return _both(differ, all_flat, because)


def scaling(n: dict[str, Any]) -> Verdict:
    """Fig. 14: loss falls as a power law of training compute, and each larger size ends lower."""
    fit, final = n["fit"], n["final"]
    losses = [r["val_loss"] for r in sorted(final, key=lambda r: r["params"])]
    ordered = all(b < a for a, b in zip(losses, losses[1:], strict=False))
    by_size = ", ".join(f"{r['size']} {r['val_loss']:.3f}" for r in final)
    because = (
        f"fit L = {fit['a']:.3g}·C^−{fit['alpha']:.3g} on {fit['points']} frontier points, r² {fit['r2']:.2f} "
        f"(good at ≥ {GOOD_FIT}); final validation loss by size {by_size}"
        f"{'' if ordered else ' (not falling with size)'}"
    )
    if fit["alpha"] > 0 and fit["r2"] >= GOOD_FIT and ordered:
        return Verdict(HOLDS, because)
    return Verdict(PARTLY if fit["alpha"] > 0 else FAILS, because)


def start_token(n: dict[str, Any]) -> Verdict:
    """Fig. 15: from [1] the model makes videos (frames change little), from [3] image sequences."""
    v, i = n["video"], n["images"]
    like_video = abs(v["generated"] - v["real"]) < abs(v["generated"] - i["real"])
    like_images = abs(i["generated"] - i["real"]) < abs(i["generated"] - v["real"])
    because = (
        f"mean change between consecutive frames: from [1] {v['generated']:.3f}, from [3] {i['generated']:.3f}; "
        f"real videos {v['real']:.3f}, real image sequences {i['real']:.3f}"
    )
    return _both(like_video, like_images, because)


def induction(n: dict[str, Any]) -> Verdict:
    """A.3: induction heads emerge with training, and silencing them costs the later frames more than
    silencing as many random heads."""
    top = n["sizes"][-1]
    emerged = top["excess"] >= top["untrained_excess"] + INDUCTION_MARGIN
    a = n["ablation"]
    matters = a["delta_ablated"] > a["delta_random_mean"] + 2 * a["delta_random_std"]
    frame = ""
    if "frame_induction" in top:  # the video form: attention to where the next token was a frame ago
        frame = (
            f"; its best frame-induction head {top['frame_head']} scores {top['frame_induction']:.2f} "
            f"(untrained {top['untrained_frame_induction']:.2f}), a fixed offset back that the random-token "
            "test does not count as induction"
        )
    because = (
        f"largest size's best prefix-matching head {top['head']}: excess over the no-repeat control "
        f"{top['excess']:.3f} against {top['untrained_excess']:.3f} untrained (needs +{INDUCTION_MARGIN}){frame}; "
        f"ablating {a['heads']} changes the later frames' loss by {a['delta_ablated']:+.3f} nats against "
        f"{a['delta_random_mean']:+.3f} ± {a['delta_random_std']:.3f} for random heads (needs > mean + 2 std)"
    )
    return _both(emerged, matters, because)


def probe_heads(n: dict[str, Any]) -> Verdict:
    """Table 18: a higher-capacity probe head (attention over tokens) beats the linear probe on every size."""
    rows = n["sizes"]
    parts = ", ".join(f"{r['size']} {r['linear']:.3f} → {r['attention']:.3f}" for r in rows)
    unequal = [r for r in rows if r.get("linear_clips") != r.get("attention_clips")]
    if unequal:  # a probe trained on fewer clips loses for that reason alone: no comparison to make
        r = unequal[0]
        return Verdict(
            REPORTED,
            f"not comparable: the attention probe trained on {r.get('attention_clips')} clips (those with "
            f"per-token activations), the linear probe on {r.get('linear_clips')}; extract per-token activations "
            f"of every clip (extract.token_clips = extract.clips) to compare them: {parts}",
        )
    return _share(
        [r["attention"] > r["linear"] for r in rows], "every size", "some sizes", "no size",
        f"best-layer {n['task']} score, linear → attention probe: {parts}",
    )  # fmt: skip


def reported(n: dict[str, Any]) -> Verdict:
    """A table that tests no claim of ours (the paper's rows compare with models we do not have)."""
    return Verdict(REPORTED, n.get("why", "the numbers, without a claim to test"))


def _num(x: Any, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)
