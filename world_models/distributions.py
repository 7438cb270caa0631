"""Output distributions of the DreamerV3 recipe: symlog, two-hot heads, mixed categoricals, return scale.

Everything here is pure torch and batch-major: leading dimensions are free (``[B]``, ``[B, T]``, ...)
and only the trailing dimensions named in each docstring carry meaning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CategoricalLatent",
    "ReturnNormalizer",
    "TwoHot",
    "kl_categorical",
    "symexp",
    "symlog",
    "twohot_bins",
    "twohot_encode",
]


def symlog(x: Tensor) -> Tensor:
    """Squash ``x`` with ``sign(x) * log(1 + |x|)``: identity-like near 0, logarithmic for large |x|."""
    # log1p keeps full precision for small |x|, where log(1 + |x|) would round 1 + |x| to 1.
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) * (exp(|x|) - 1)``."""
    return torch.sign(x) * torch.expm1(x.abs())


def _float_for_math(x: Tensor) -> Tensor:
    # Softmax over 255 bins and log-probabilities lose too much in half precision (mixed-precision
    # heads), so the maths runs in float32 at least; float64 inputs stay float64.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def categorical_index(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Class indices ``[...]`` drawn from probabilities ``[..., K]`` by inverse CDF, with one uniform number per
    draw (``torch.multinomial`` draws one exponential number per class and is several times slower)."""
    cdf = probs.detach().cumsum(-1)
    last = cdf[..., -1:]
    # rand_like when no generator is given: torch.compile traces it with symbolic shapes, rand(shape) not
    u = torch.rand_like(last) if generator is None else torch.rand(last.shape, generator=generator,
                                                                    device=last.device, dtype=last.dtype)
    return (cdf <= u * last).sum(-1).clamp_(max=probs.shape[-1] - 1)


def twohot_bins(num_bins: int = 255, low: float = -20.0, high: float = 20.0, raw: bool = False) -> Tensor:
    """Bin centres ``[num_bins]`` evenly spaced from ``low`` to ``high`` in symlog space (float32); with ``raw``
    the raw values they stand for (their ``symexp``), the bins of ``TwoHot(..., raw=True)``.

    The defaults cover raw values up to ``symexp(20) ~ 4.9e8`` in magnitude.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be at least 2, got {num_bins}")
    if not low < high:
        raise ValueError(f"twohot bins need low < high, got low={low} and high={high}")
    # Built outward from the centre with integer numerators, so symmetric ranges give bins that are
    # exact negatives of each other and a centre bin of exactly 0: a uniform distribution (a
    # zero-initialised head) then predicts exactly 0 instead of a float-rounding residue.
    steps = torch.arange(num_bins, dtype=torch.float64) * 2 - (num_bins - 1)
    unit = steps / (num_bins - 1)
    bins = (low + high) / 2 + (high - low) / 2 * unit
    bins[0], bins[-1] = low, high
    return (symexp(bins) if raw else bins).to(torch.float32)


def _check_bins(bins: Tensor) -> None:
    if bins.dim() != 1 or bins.shape[0] < 2:
        raise ValueError(f"bins must be a 1-D tensor of at least 2 values, got shape {tuple(bins.shape)}")


def twohot_encode(y: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encode ``y [...]`` (already in bin space, i.e. symlog) over sorted ``bins [K]`` -> ``[..., K]``.

    The weight is split between the two neighbouring bins by linear interpolation, so the expected
    bin value equals ``y`` exactly; values outside ``[bins[0], bins[-1]]`` put all weight on the end bin.
    """
    below, weight_above = _twohot_neighbours(y, bins)
    num_bins = bins.shape[0]
    lower = F.one_hot(below, num_bins).to(y.dtype) * (1 - weight_above).unsqueeze(-1)
    upper = F.one_hot(below + 1, num_bins).to(y.dtype) * weight_above.unsqueeze(-1)
    return lower + upper


def _twohot_neighbours(y: Tensor, bins: Tensor) -> tuple[Tensor, Tensor]:
    """The index of the bin below each ``y [...]`` and the weight of the one above it: the two-hot code's
    only two non-zero entries."""
    _check_bins(bins)
    bins = bins.to(device=y.device, dtype=y.dtype).contiguous()
    y = y.clamp(bins[0], bins[-1])
    # Index of the last bin <= y, capped at K - 2 so the top bin is reached as the "above" neighbour
    # with weight 1; y exactly on bin k therefore gets weight 1 on k and no division by zero occurs.
    below = (torch.searchsorted(bins, y.detach().contiguous(), right=True) - 1).clamp(0, bins.shape[0] - 2)
    low, high = bins[below], bins[below + 1]
    return below, (y - low) / (high - low)


def _symmetric_sum(values: Tensor) -> Tensor:
    # Adds the bins in mirrored pairs (outermost first pairs with its mirror) so that a symmetric
    # distribution over symmetric bins cancels exactly instead of accumulating rounding error.
    num = values.shape[-1]
    half = num // 2
    total = (values[..., :half].flip(-1) + values[..., num - half :]).sum(-1)
    if num % 2:
        total = total + values[..., half]
    return total


class TwoHot:
    """Categorical distribution over symlog-spaced bins, read out as a real value in raw space.

    ``logits [..., K]`` score the bins ``[K]`` of :func:`twohot_bins`; targets and predictions are in
    raw (un-squashed) space, the symlog transform is applied inside.

    With ``raw`` the bins are raw values themselves (``symexp`` of :func:`twohot_bins`: dense near 0, reaching
    ``+-symexp(20)``), targets are split between their two neighbouring raw bins and the prediction is the
    probability-weighted sum of the bins (DreamerV3's later heads). That mean is the expectation of what was seen:
    a reward of 10 on one step in 20 reads 0.5, where ``symexp`` of the expected symlog bin reads about 0.12. The
    far bins cannot blow it up while their mirrored pairs keep equal probabilities, which a zero-initialised output
    layer keeps exactly for every pair that no target reaches.
    """

    def __init__(self, logits: Tensor, bins: Tensor, raw: bool = False) -> None:
        _check_bins(bins)
        if logits.dim() < 1 or logits.shape[-1] != bins.shape[0]:
            raise ValueError(
                f"TwoHot logits must end in the number of bins ({bins.shape[0]}), got shape {tuple(logits.shape)}"
            )
        self.logits = _float_for_math(logits)
        self.bins = bins.to(device=self.logits.device, dtype=self.logits.dtype)
        self.raw = raw
        self._log_probs: Tensor | None = None  # once per instance: a critic scores two targets

    @property
    def probs(self) -> Tensor:
        """Bin probabilities ``[..., K]``."""
        return torch.softmax(self.logits, -1)

    def mean(self) -> Tensor:
        """Prediction ``[...]`` in raw space: ``symexp`` of the expected bin value, or with ``raw`` the expected bin."""
        expected = _symmetric_sum(self.probs * self.bins)
        return expected if self.raw else symexp(expected)

    def mode(self) -> Tensor:
        """Same as :meth:`mean`.

        The argmax bin would quantise predictions to the bin grid, so, as in DreamerV3, the point
        prediction of a two-hot head is its mean for every use.
        """
        return self.mean()

    def log_prob(self, target: Tensor) -> Tensor:
        """Log-likelihood ``[...]`` of a raw-space ``target [...]``: ``sum(twohot(symlog(target)) * log_softmax)``
        (``twohot(target)`` with ``raw``)."""
        if target.shape != self.logits.shape[:-1]:
            raise ValueError(
                f"TwoHot target shape {tuple(target.shape)} must equal the logits' leading shape "
                f"{tuple(self.logits.shape[:-1])}"
            )
        # The target is a label: gradients go to the logits only. log_softmax (not log of softmax)
        # keeps bins with vanishing probability finite, and symlog + clamping in the encoder keeps
        # huge or infinite targets on the end bin.
        # the two-hot code has two non-zero entries: gather them instead of a dense [..., K] product
        target = target.detach().to(self.logits.dtype)
        below, weight_above = _twohot_neighbours(target if self.raw else symlog(target), self.bins)
        if self._log_probs is None:  # a plain attribute, not functools.cached_property: its lock stops torch.compile
            self._log_probs = torch.log_softmax(self.logits, -1)
        pair = self._log_probs.gather(-1, torch.stack([below, below + 1], -1))
        return (1 - weight_above) * pair[..., 0] + weight_above * pair[..., 1]


class CategoricalLatent:
    """Groups of one-hot categoricals from ``logits [..., groups, classes]``, mixed with a uniform floor.

    ``probs = (1 - unimix) * softmax(logits) + unimix / classes``; the stored logits are the log of
    those mixed probabilities, so every method (sample, entropy, KL) sees the mixed distribution.
    The floor keeps KL terms bounded and the latents from collapsing onto one class.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.01) -> None:
        if logits.dim() < 2:
            raise ValueError(
                f"CategoricalLatent logits must be [..., groups, classes], got shape {tuple(logits.shape)}"
            )
        if not 0.0 <= unimix < 1.0:
            raise ValueError(f"unimix must be in [0, 1), got {unimix}")
        logits = _float_for_math(logits)
        self.unimix = unimix
        if unimix > 0:
            classes = logits.shape[-1]
            probs = (1 - unimix) * torch.softmax(logits, -1) + unimix / classes
            self.probs = probs
            self.logits = torch.log(probs)
        else:
            # log_softmax rather than log(softmax): a confident logit must not give log(0) = -inf.
            self.logits = torch.log_softmax(logits, -1)
            self.probs = self.logits.exp()

    def _straight_through(self, onehot: Tensor) -> Tensor:
        # The bracket matters: probs - probs.detach() is exactly 0, so the forward value stays an
        # exact one-hot, while the backward pass sees the gradient of the probabilities.
        return onehot + (self.probs - self.probs.detach())

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One-hot sample ``[..., groups, classes]`` with straight-through gradients to the logits."""
        index = categorical_index(self.probs, generator)
        return self._straight_through(F.one_hot(index, self.probs.shape[-1]).to(self.probs.dtype))

    def mode(self) -> Tensor:
        """One-hot of the most likely class per group ``[..., groups, classes]``, straight-through like sample."""
        index = self.probs.argmax(-1)
        return self._straight_through(F.one_hot(index, self.probs.shape[-1]).to(self.probs.dtype))

    def entropy(self) -> Tensor:
        """Entropy ``[...]`` of the mixed distribution, summed over groups."""
        return -(self.probs * self.logits).sum((-2, -1))

    def log_prob(self, onehot: Tensor) -> Tensor:
        """Log-probability ``[...]`` of a one-hot ``[..., groups, classes]`` value, summed over groups."""
        if onehot.shape != self.logits.shape:
            raise ValueError(
                f"CategoricalLatent.log_prob value shape {tuple(onehot.shape)} must equal the logits shape "
                f"{tuple(self.logits.shape)}"
            )
        return (onehot * self.logits).sum((-2, -1))


def kl_categorical(post_logits: Tensor, prior_logits: Tensor, unimix: float = 0.01) -> Tensor:
    """KL(post || prior) ``[...]`` of two ``[..., groups, classes]`` latents after unimix, summed over groups.

    Gradients flow into both arguments; KL balancing detaches one side in the caller
    (``kl_categorical(post.detach(), prior)`` for the dynamics term and the reverse for representation).
    """
    if post_logits.shape != prior_logits.shape:
        raise ValueError(
            f"kl_categorical needs post_logits and prior_logits of one shape, got "
            f"{tuple(post_logits.shape)} and {tuple(prior_logits.shape)}"
        )
    post = CategoricalLatent(post_logits, unimix)
    prior = CategoricalLatent(prior_logits, unimix)
    return (post.probs * (post.logits - prior.logits)).sum((-2, -1))


class ReturnNormalizer(nn.Module):
    """Scale for advantages from the spread of returns, as in DreamerV3: ``max(1, EMA(p95) - EMA(p5))``.

    Dividing by a scale floored at 1 shrinks large returns but never amplifies small, noisy ones.
    The EMAs start at 0 and are *not* debiased (the published default), so the scale grows in over
    the first few hundred updates. Percentiles use ``torch.quantile`` with linear interpolation.
    The state is held in buffers and so saved by ``state_dict``.
    """

    low: Tensor
    high: Tensor

    def __init__(self, decay: float = 0.99, low_quantile: float = 0.05, high_quantile: float = 0.95) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ReturnNormalizer decay must be in [0, 1), got {decay}")
        if not 0.0 <= low_quantile < high_quantile <= 1.0:
            raise ValueError(
                f"ReturnNormalizer quantiles need 0 <= low < high <= 1, got low={low_quantile}, high={high_quantile}"
            )
        self.decay = decay
        self.low_quantile = low_quantile
        self.high_quantile = high_quantile
        self.register_buffer("low", torch.zeros((), dtype=torch.float32))
        self.register_buffer("high", torch.zeros((), dtype=torch.float32))

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Move the EMAs of the low and high percentiles towards those of ``returns`` (any shape)."""
        if returns.numel() == 0:
            raise ValueError("ReturnNormalizer.update got an empty returns tensor")
        flat = returns.detach().reshape(-1).to(device=self.low.device, dtype=torch.float32)
        quantiles = torch.tensor([self.low_quantile, self.high_quantile], device=flat.device)
        low, high = torch.quantile(flat, quantiles)
        # lerp_ computes decay * old + (1 - decay) * new in place, so the buffers stay the same objects.
        self.low.lerp_(low, 1 - self.decay)
        self.high.lerp_(high, 1 - self.decay)

    def scale(self) -> Tensor:
        """Current scale as a 0-dim tensor, at least 1 (exactly 1 before any update)."""
        # A tensor rather than a float so dividing advantages by it needs no device-to-host sync.
        return (self.high - self.low).clamp(min=1.0)
