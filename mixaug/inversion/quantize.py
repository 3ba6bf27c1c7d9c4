"""int8 decoding: weights and activations in int8, multiplied by `torch._int_mm`, with SmoothQuant scales.

What int8 rests on: `torch._int_mm` (int8 x int8 -> int32, exact; the kernel torchao's int8 dynamic
quantisation and torch.compile's int8 paths call) and plain tensor arithmetic: no quantized tensor types,
no `torch.quantize_per_channel`, nothing torch has deprecated.

Each row of activations is quantised on its own scale (max |x_row| / 127), so a row's product depends on
that row alone: int8 output is as independent of the batch as fp32's. The LM's activations have channels
100-3000x larger than the rest (SmolLM2's down projections); on its own such a channel sets the row's scale
and rounds the others to zero. So in each projection the OUTLIER_CHANNELS largest input channels are
multiplied in fp32, and the rest are divided, channel by channel, by SmoothQuant's s = max|x|^0.5 /
max|w|^0.5 (Xiao et al. 2023) with the weight multiplied by it: the same product in exact arithmetic,
both sides now easy to quantise. max|x| is measured once per loaded LM by an fp32 pass over
`CALIBRATION_TEXTS` (fixed here, so the scales, and with them every int8 row, depend on nothing a user
gives), each as the decoder reads it: the soft vectors of the text's own embedding, then the text. The LM
head ranks the vocabulary in int8 and its top tokens are re-scored in fp32 (decode.py).

Scheme 3 (2026-12-03) against scheme 2: calibration on the soft vectors, not on the text's tokens in their
place, and 64 fp32 channels per projection, not 16. Greedy int8 then leaves fp32's words at 0.0495 per
word, where int8 weights with fp32 activations and arithmetic leave them at 0.0488 (scheme 2: 0.061): what
is left is the rounding of the weights themselves (scripts/int8_probe.py, README *Speed*).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# int8 outputs differ from scheme to scheme (1: fbgemm, 7-bit activations; 2: calibrated on token embeddings,
# 16 fp32 channels): decode caches are per scheme
SCHEME = 3
OUTLIER_CHANNELS = 64  # per projection (at most 1/8 of its inputs): the calibration's largest channels, in fp32
SMOOTH_ALPHA = 0.5  # SmoothQuant's migration strength: how much of an activation's range moves into the weight
PROJECTIONS = ("qkv", "o", "gate_up", "down")  # each decoder layer's fused Linear layers, as calibration names them

# What the smoothing scales are measured on: varied styles and lengths (questions, reviews, messages,
# news, speeches, instructions), written for mixaug. Changing a word changes int8's output: bump SCHEME.
CALIBRATION_TEXTS = (
    "What is the tallest mountain in South America?",
    "How many people live in Tokyo, and how fast is the city growing?",
    "Who wrote the first dictionary of the English language?",
    "Why do leaves change colour in the autumn?",
    "The film drags in its second hour, but the final scene is worth the wait.",
    "A warm, funny and beautifully acted story about two brothers who have not spoken in years.",
    "I wanted to like this book, yet the plot never goes anywhere and the ending is flat.",
    "Terrible service, cold food and a bill twice what the menu said.",
    "hey are we still meeting at 6? running a bit late, save me a seat",
    "Congratulations! You have won a free cruise. Reply YES now to claim your prize.",
    "ok thx, call me when u get home",
    "Your package could not be delivered. Confirm your address at the link below within 24 hours.",
    "The central bank raised interest rates by a quarter of a point on Wednesday, citing stubborn inflation "
    "in services and a labour market that has yet to cool.",
    "Flooding across the northern provinces has forced more than 20,000 people from their homes, officials "
    "said, as rescue teams struggled to reach villages cut off by landslides.",
    "Shares in the carmaker fell 8 percent after it warned that supply shortages would delay its new "
    "electric model until next year.",
    "The city council voted 7 to 2 to approve the new stadium, despite protests from residents worried "
    "about traffic and noise.",
    "We will build an economy that works for every family, not just for those at the very top.",
    "My opponent has voted against every measure that would lower the cost of health care for working people.",
    "Tonight I ask this chamber to put aside our differences and pass a budget that keeps our promises.",
    "Preheat the oven to 200 degrees, then roast the vegetables for 25 minutes, turning them once.",
    "To reset the router, hold the button on the back for ten seconds until the light turns orange.",
    "The committee, which met for the first time in March, has since heard evidence from more than forty "
    "witnesses, including scientists, farmers and the heads of three water companies, and its report, due "
    "in the spring, is expected to recommend sweeping changes to how rivers are monitored.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The match ended 2-1 after a late goal from the visiting side's captain.",
)


class Int8Linear:
    """y = x W^T in integers: W as int8 with one scale per output channel, each row of x quantised to int8
    on its own scale (max |x_row| / 127), multiplied by `torch._int_mm` (int8 x int8 -> int32, exact), then
    rescaled. A row's result depends on that row alone (its scale is its own, the integer product exact),
    so int8 decoding is as batch-independent as fp32.

    With `act_max` [in] (each input channel's largest |x| in calibration), two remedies for the channels
    that are 100-3000x larger than the rest (these LMs have them; on its own such a channel sets the row's
    scale and rounds every other channel of that row to zero):
    - the OUTLIER_CHANNELS largest channels bypass int8: their product is an fp32 matmul of those columns
      (LLM.int8()'s split, Dettmers et al. 2022, with the channels fixed by calibration, not by the batch);
    - the other channels are smoothed (SmoothQuant, Xiao et al. 2023): x / s and W * s, the same product
      in exact arithmetic, the activation's range moved partly into the weight."""

    def __init__(self, weight: torch.Tensor, act_max: torch.Tensor | None = None):
        w = weight.detach().float()
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        self.inv_smooth = self.outliers = self.outlier_weight = None
        if act_max is not None:
            k = min(OUTLIER_CHANNELS, self.in_features // 8)  # at most an eighth of them: int8 stays int8
            self.outliers = act_max.float().topk(k).indices.sort().values
            self.outlier_weight = w[:, self.outliers].contiguous()
            smooth = smoothing(w, act_max)
            self.inv_smooth = 1.0 / smooth
            self.inv_smooth[self.outliers] = 0.0  # those channels reach y through the fp32 side only
            w = w * smooth[None, :]
            w[:, self.outliers] = 0.0
        self.scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)
        qweight = torch.round(w / self.scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.qweight_t = qweight.t()  # [in, out], a view of the [out, in] rows _int_mm reads fastest

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features).float()
        scaled = flat if self.inv_smooth is None else flat * self.inv_smooth
        size = scaled.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) / 127
        q = torch.round(scaled / size).to(torch.int8)
        y = torch._int_mm(q, self.qweight_t).float() * (size * self.scale)
        if self.outliers is not None:
            y = y + F.linear(flat[:, self.outliers], self.outlier_weight)
        return y.reshape(*x.shape[:-1], self.out_features)


def smoothing(weight: torch.Tensor, act_max: torch.Tensor, alpha: float = SMOOTH_ALPHA) -> torch.Tensor:
    """SmoothQuant's per-input-channel scale s = max|x|^a / max|w|^(1-a) (1 where a channel was never seen)."""
    w_max = weight.detach().float().abs().amax(dim=0).clamp_min(1e-8)
    s = act_max.float().clamp_min(1e-8).pow(alpha) / w_max.pow(1 - alpha)
    return torch.where(act_max > 0, s, torch.ones_like(s)).clamp(1e-4, 1e4)
