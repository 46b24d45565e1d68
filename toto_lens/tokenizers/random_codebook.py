"""RandomCodebook: nearest neighbour in a random codebook over a low-dimensional patch latent.

Follows the Toto appendix A.4 ("SD-VAE discrete tokenizer"): SD-VAE gives a 4-d vector per patch, and
each vector becomes the index of its nearest neighbour in a *randomly initialised* codebook, so the
vocabulary size can change without any training (Table 13 trains on 32k random codes). Here the
SD-VAE encoder is stood in for by a linear one fitted once: PCA of the training patches (weighted by
how often each distinct patch occurs, i.e. PCA of all patches), latent_dim = 4 by default; decoding
maps a code's latent back through the transposed projection.

The codebook is Gaussian, matched to the training latents' per-dimension mean and std, drawn from
`numpy.random.default_rng(seed)`. Draws fill the codebook row by row, so for one seed a codebook of n
codes is the first n rows of any larger one: `with_vocab` gives nested codebooks, and a patch's nearest
code can only get closer as the vocabulary grows. The projection rows are orthonormal, so a patch's
reconstruction error is its PCA residual plus its latent distance to the code (Pythagoras): more codes
never raise it before the final clip to [0, 1].

Colour: patch vectors hold patch·patch·C values (`base.patchify`), so RGB frames get a PCA over
patch²·3 values; latent_dim may not exceed that.

Search is a k-d tree (scipy's cKDTree) in the latent space: O(log V) per patch instead of a dense
[patches × V] distance matrix, which at V = 32,768 would be 128 KB per patch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toto_lens.tokenizers.base import (
    PatchTokenizer,
    TokenizerError,
    check_positive,
    describe_channels,
    fit_channels,
    training_patches,
)
from toto_lens.tokenizers.registry import require_state, spec_channels, spec_field


def random_codebook(
    vocab_size: int, latent_mean: np.ndarray, latent_std: np.ndarray, seed: int
) -> np.ndarray:
    """[vocab_size, L] float32 Gaussian codes with the given per-dimension mean and std."""
    vocab = check_positive("vocab_size", vocab_size)
    noise = np.random.default_rng(seed).standard_normal((vocab, len(latent_mean)))  # (V, L), row by row
    return (noise * latent_std + latent_mean).astype(np.float32)


class RandomCodebook(PatchTokenizer):
    """Linear patch latent + random codebook. Build with `RandomCodebook.fit(frames, …)`."""

    kind = "random_codebook"

    def __init__(
        self,
        projection: np.ndarray,
        mean: np.ndarray,
        codebook: np.ndarray,
        latent_mean: np.ndarray,
        latent_std: np.ndarray,
        *,
        patch: int,
        image_size: tuple[int, int],
        seed: int = 0,
        name: str | None = None,
        channels: int = 1,
    ):
        self.projection = np.ascontiguousarray(projection, dtype=np.float32)  # (L, p²·C), orthonormal rows
        self.codebook = np.ascontiguousarray(codebook, dtype=np.float32)  # (V, L)
        if self.codebook.ndim != 2 or len(self.codebook) == 0:
            raise TokenizerError(
                f"random codebook must be [vocab_size > 0, latent_dim], got {self.codebook.shape}"
            )
        super().__init__(patch=patch, image_size=image_size, seed=seed, name=name, channels=channels)
        latent, d = self.projection.shape
        if d != self.patch_dim or self.codebook.shape[1] != latent:
            raise TokenizerError(
                f"projection {list(self.projection.shape)} and codebook {list(self.codebook.shape)} do not "
                f"fit {self.patch}×{self.patch} patches of {describe_channels(self.channels)} "
                f"({self.patch_dim} values)"
            )
        self.mean = np.ascontiguousarray(mean, dtype=np.float32).reshape(d)  # (p²·C,)
        self.latent_mean = np.ascontiguousarray(latent_mean, dtype=np.float32).reshape(latent)  # (L,)
        self.latent_std = np.ascontiguousarray(latent_std, dtype=np.float32).reshape(latent)  # (L,)
        self._tree = None  # built on first encode: with_vocab copies need none until they encode

    @classmethod
    def fit(
        cls,
        frames: np.ndarray,
        vocab_size: int = 512,
        patch: int = 4,
        latent_dim: int = 4,
        seed: int = 0,
        max_patches: int | None = 1_000_000,
        name: str | None = None,
        channels: int | None = None,
    ) -> RandomCodebook:
        """Fit the projection on training frames [N, H, W] grey or [N, H, W, C], or clips [B, F, H, W] /
        [B, F, H, W, C]; draw the codebook from seed. channels: of the frames, None to read it from their
        shape (`base.fit_channels`: pass channels=1 for grey clips of frames at most 4 pixels wide)."""
        patch = check_positive("patch", patch)
        latent = check_positive("latent_dim", latent_dim)
        check_positive("vocab_size", vocab_size)
        channels = fit_channels(frames, channels)
        if latent > patch * patch * channels:
            values = "pixels" if channels == 1 else f"values ({channels} channels)"
            raise TokenizerError(
                f"latent_dim {latent} exceeds the {patch * patch * channels} {values} of a {patch}×{patch} "
                "patch; ask for a smaller latent_dim or a larger patch"
            )
        uniq, counts, image_size, channels = training_patches(frames, patch, max_patches, seed, channels)
        w = (counts / counts.sum())[:, None]  # (U, 1)
        mean = (w * uniq).sum(0)  # (p²·C,)
        centred = uniq - mean
        cov = centred.T @ (w * centred)  # (p²·C, p²·C) covariance of all patches, duplicates included
        _, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
        projection = vectors[:, ::-1][:, :latent].T  # (L, p²·C) leading components
        # eigh's signs are arbitrary: make each component's largest entry positive so fits are comparable.
        flip = np.sign(projection[np.arange(latent), np.abs(projection).argmax(1)])
        projection = (projection * flip[:, None]).astype(np.float32)
        z = centred @ projection.T  # (U, L)
        # float32 as stored, so that with_vocab (and a reloaded tokenizer) draws exactly the same codes.
        latent_mean = (w * z).sum(0).astype(np.float32)
        latent_std = np.sqrt((w * (z - latent_mean) ** 2).sum(0)).astype(np.float32)
        codebook = random_codebook(vocab_size, latent_mean, latent_std, seed)
        return cls(projection, mean, codebook, latent_mean, latent_std, patch=patch, image_size=image_size,
                   seed=seed, name=name, channels=channels)  # fmt: skip

    def with_vocab(self, vocab_size: int, seed: int | None = None, name: str | None = None) -> RandomCodebook:
        """The same projection with a fresh codebook of vocab_size codes: no data, no refit.

        seed=None keeps this tokenizer's seed, so the codebooks are nested (see the module docstring).
        """
        seed = self.seed if seed is None else int(seed)
        codebook = random_codebook(vocab_size, self.latent_mean, self.latent_std, seed)
        return type(self)(self.projection, self.mean, codebook, self.latent_mean, self.latent_std,
                          patch=self.patch, image_size=self.image_size, seed=seed, name=name,
                          channels=self.channels)  # fmt: skip

    @property
    def vocab_size(self) -> int:
        return len(self.codebook)

    @property
    def latent_dim(self) -> int:
        return len(self.projection)

    def default_name(self) -> str:
        colour = f"-c{self.channels}" if self.channels > 1 else ""
        return f"random-{self.vocab_size}-p{self.patch}-z{len(self.projection)}{colour}"

    def hyperparameters(self) -> dict[str, Any]:
        return {"latent_dim": self.latent_dim, "latent": "pca", "codebook": "gaussian, latent mean/std"}

    def latents(self, patches: np.ndarray) -> np.ndarray:
        """[M, p²·C] pixel patches → [M, L] latents (the stand-in for the SD-VAE encoder)."""
        return (patches - self.mean) @ self.projection.T

    def _encode_patches(self, patches: np.ndarray) -> np.ndarray:
        if len(patches) == 0:
            return np.zeros(0, dtype=np.int64)
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(self.codebook)
        _, idx = self._tree.query(self.latents(patches), k=1, workers=-1)
        return idx.astype(np.int64)

    def _decode_patches(self, codes: np.ndarray) -> np.ndarray:
        return self.codebook[codes] @ self.projection + self.mean  # (M, p²·C)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "projection": self.projection.copy(),
            "mean": self.mean.copy(),
            "codebook": self.codebook.copy(),
            "latent_mean": self.latent_mean.copy(),
            "latent_std": self.latent_std.copy(),
        }

    @classmethod
    def from_state(cls, spec: dict[str, Any], state: dict[str, np.ndarray]) -> RandomCodebook:
        vocab = check_positive("vocab_size", spec_field(spec, "vocab_size"))
        patch = check_positive("patch", spec_field(spec, "patch"))
        latent = check_positive("latent_dim", spec_field(spec, "latent_dim"))
        channels = spec_channels(spec)
        d = patch * patch * channels
        shapes = {
            "projection": (latent, d),
            "mean": (d,),
            "codebook": (vocab, latent),
            "latent_mean": (latent,),
            "latent_std": (latent,),
        }
        a = require_state(spec, state, shapes)
        return cls(a["projection"], a["mean"], a["codebook"], a["latent_mean"], a["latent_std"], patch=patch,
                   image_size=tuple(spec_field(spec, "image_size")), seed=spec.get("seed", 0),
                   name=spec.get("name"), channels=channels)  # fmt: skip
