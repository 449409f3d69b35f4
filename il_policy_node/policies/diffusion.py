"""Diffusion Policy on state (Chi et al., 2023): a 1D temporal conv U-Net denoises the chunk.

Training (DDPM): a demonstrated chunk (normalized) gets noise of a random step t of a
squared-cosine schedule over ``train_steps``; the U-Net, conditioned on the observation
history (FiLM) and on t, estimates the clean chunk (``prediction: sample``, the default) or
the noise (``epsilon``); the loss is the squared error of that estimate. With epsilon, the
first DDIM step divides by sqrt(alpha_bar) ~ 5e-4 (the schedule's last step), so its chunk is
amplified noise that 10 steps do not repair: a network that memorized 64 chunks samples them
with MSE 1.0 (normalized) with epsilon, 0.0005 with sample.

Inference (DDIM, deterministic: eta 0) runs inside the module with ``inference_steps`` fixed
steps, from a starting noise drawn once from ``noise_seed`` (a buffer of the module, so the
exported file is deterministic: the same observation gives the same chunk, in TorchScript as
in eager mode). A fixed start also keeps the robot on one of the demonstrated ways from tick
to tick instead of redrawing the choice at every query.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from il_policy_node.policies.options import DiffusionOptions


def cosine_alphas_cumprod(steps: int) -> torch.Tensor:
    """The squared-cosine schedule's cumulative alpha per step (Nichol & Dhariwal, 2021)."""
    s = 0.008
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    f = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
    betas = torch.clamp(1 - f[1:] / f[:-1], max=0.999)
    return torch.cumprod(1 - betas, 0).float()


class _Block(nn.Module):
    """Conv1d -> GroupNorm -> Mish, twice, with FiLM from the condition and a residual."""

    def __init__(self, inputs: int, outputs: int, condition: int, kernel: int, groups: int):
        super().__init__()
        self.first = nn.Sequential(nn.Conv1d(inputs, outputs, kernel, padding=kernel // 2),
                                   nn.GroupNorm(groups, outputs), nn.Mish())
        self.second = nn.Sequential(nn.Conv1d(outputs, outputs, kernel, padding=kernel // 2),
                                    nn.GroupNorm(groups, outputs), nn.Mish())
        self.film = nn.Sequential(nn.Mish(), nn.Linear(condition, 2 * outputs))
        self.residual = nn.Conv1d(inputs, outputs, 1) if inputs != outputs else nn.Identity()
        self.outputs = outputs

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(condition).unsqueeze(-1).chunk(2, dim=1)
        out = self.second(self.first(x) * (1 + scale) + bias)
        return out + self.residual(x)


class _UNet(nn.Module):
    """x [B, A, L] (L a multiple of 2^(levels-1)), condition [B, D] -> noise estimate."""

    def __init__(self, action_size: int, condition: int, options: DiffusionOptions) -> None:
        super().__init__()
        widths = (action_size,) + tuple(options.channels)
        k, g = options.kernel_size, options.groups
        self.down = nn.ModuleList(_Block(a, b, condition, k, g)
                                  for a, b in zip(widths[:-1], widths[1:]))
        self.middle = _Block(widths[-1], widths[-1], condition, k, g)
        self.up = nn.ModuleList(_Block(a + b, a, condition, k, g)
                                for a, b in zip(reversed(widths[1:-1]), reversed(widths[2:])))
        self.out = nn.Sequential(nn.Conv1d(widths[1], widths[1], k, padding=k // 2),
                                 nn.GroupNorm(g, widths[1]), nn.Mish(),
                                 nn.Conv1d(widths[1], action_size, 1))
        self.levels = len(options.channels)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.down):
            x = block(x, condition)
            if i < self.levels - 1:
                skips.append(x)
                x = F.avg_pool1d(x, 2)
        x = self.middle(x, condition)
        for block in self.up:
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = block(torch.cat([x, skips.pop()], 1), condition)
        return self.out(x)


class DiffusionNetwork(nn.Module):
    """Normalized observation history [B, C] -> a sampled normalized action chunk [B, H*A]."""

    def __init__(self, *, input_size: int, horizon: int, action_size: int,
                 options: DiffusionOptions) -> None:
        super().__init__()
        d = options.condition_size
        self.horizon, self.action_size = horizon, action_size
        multiple = 2 ** (len(options.channels) - 1)
        self.length = -(-horizon // multiple) * multiple      # the chunk padded for the U-Net
        self.time_size = d
        self.condition = nn.Sequential(nn.Linear(input_size + d, 2 * d), nn.Mish(),
                                       nn.Linear(2 * d, d))
        self.unet = _UNet(action_size, d, options)
        self.train_steps = options.train_steps
        self.clip_sample = options.clip_sample
        self.predicts_sample = options.prediction == 'sample'
        alphas = cosine_alphas_cumprod(options.train_steps)
        self.register_buffer('alphas_cumprod', alphas)
        steps = torch.linspace(options.train_steps - 1, 0, options.inference_steps).round()
        self.register_buffer('sample_steps', steps.long())
        generator = torch.Generator().manual_seed(options.noise_seed)
        self.register_buffer('start_noise',
                             torch.randn(1, action_size, self.length, generator=generator))

    def _time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_size // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(
            half, dtype=torch.float32, device=t.device) / max(half - 1, 1))
        angles = t.float().unsqueeze(1) * frequencies.unsqueeze(0)
        embedding = torch.cat([angles.sin(), angles.cos()], 1)
        if embedding.shape[1] < self.time_size:
            embedding = F.pad(embedding, (0, self.time_size - embedding.shape[1]))
        return embedding

    def _estimate(self, x: torch.Tensor, t: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The U-Net's estimate of the clean chunk (prediction sample) or of its noise."""
        condition = self.condition(torch.cat([inputs, self._time_embedding(t)], 1))
        return self.unet(x, condition)

    def _chunks(self, targets: torch.Tensor) -> torch.Tensor:
        """[B, H*A] -> [B, A, L]: the last action repeated into the padding."""
        chunk = targets.reshape(targets.shape[0], self.horizon, self.action_size)
        if self.length > self.horizon:
            chunk = torch.cat([chunk, chunk[:, -1:].expand(-1, self.length - self.horizon, -1)],
                              1)
        return chunk.transpose(1, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs.shape[0]
        x = self.start_noise.expand(batch, -1, -1)
        steps = self.sample_steps
        for i in range(steps.shape[0]):
            t = steps[i]
            alpha = self.alphas_cumprod[t]
            previous = self.alphas_cumprod[steps[i + 1]] if i + 1 < steps.shape[0] \
                else torch.ones_like(alpha)
            estimate = self._estimate(x, t.expand(batch), inputs)
            clean = estimate if self.predicts_sample else \
                (x - torch.sqrt(1 - alpha) * estimate) / torch.sqrt(alpha)
            if self.clip_sample > 0:
                clean = clean.clamp(-self.clip_sample, self.clip_sample)
            noise = (x - torch.sqrt(alpha) * clean) / torch.sqrt(1 - alpha)
            x = torch.sqrt(previous) * clean + torch.sqrt(1 - previous) * noise
        chunk = x.transpose(1, 2)[:, :self.horizon]
        return chunk.reshape(batch, self.horizon * self.action_size)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed squared error of the predicted clean chunk or noise (DDPM's simple loss)."""
        clean = self._chunks(targets)
        t = torch.randint(0, self.train_steps, (clean.shape[0],), device=clean.device)
        noise = torch.randn_like(clean)
        alpha = self.alphas_cumprod[t].view(-1, 1, 1)
        noisy = torch.sqrt(alpha) * clean + torch.sqrt(1 - alpha) * noise
        error = self._estimate(noisy, t, inputs) - (clean if self.predicts_sample else noise)
        return (error[:, :, :self.horizon] ** 2).sum()


def diffusion_network(spec: Mapping[str, Any], options: DiffusionOptions) -> DiffusionNetwork:
    return DiffusionNetwork(input_size=int(spec['input_size']), horizon=int(spec['horizon']),
                            action_size=int(spec['action_size']), options=options)
