"""ACT: an action-chunking transformer on normalized state (Zhao et al., 2023, without images).

The observation history becomes one token per frame (a linear projection plus a learned
position embedding); a transformer encoder mixes them; a decoder of ``horizon`` learned
queries attends to that memory and outputs the whole action chunk at once.

With ``cvae: true`` (training only, as in the paper) a second encoder sees the demonstrated
chunk and the observation and proposes a style latent z; the decoder's memory gets a token
made from z, and the loss adds ``kl_weight`` x KL(q(z) || N(0, I)). At inference z = 0 (the
prior's mean), so the exported module is deterministic and never calls that encoder.
The loss is L1, as the paper found better than squared error for chunks.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from il_policy_node.errors import ConfigError
from il_policy_node.policies.options import ActOptions


def _encoder(options: ActOptions, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(options.d_model, options.heads, options.feedforward,
                                       options.dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class ActNetwork(nn.Module):
    """Normalized observation history [B, k*C] -> normalized action chunk [B, H*A]."""

    def __init__(self, *, input_size: int, history: int, horizon: int, action_size: int,
                 options: ActOptions) -> None:
        super().__init__()
        if input_size % history:
            raise ConfigError(f'act: input size {input_size} is not {history} frames')
        d = options.d_model
        self.history, self.horizon, self.action_size = history, horizon, action_size
        self.frame_size = input_size // history
        self.kl_weight = options.kl_weight
        self.cvae = options.cvae
        self.frame_in = nn.Linear(self.frame_size, d)
        self.frame_position = nn.Parameter(torch.zeros(1, history, d))
        self.latent_in = nn.Linear(options.latent_size, d)
        self.encoder = _encoder(options, options.encoder_layers)
        layer = nn.TransformerDecoderLayer(d, options.heads, options.feedforward,
                                           options.dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, options.decoder_layers)
        self.queries = nn.Parameter(torch.zeros(1, horizon, d))
        self.action_out = nn.Linear(d, action_size)
        nn.init.normal_(self.frame_position, std=0.02)
        nn.init.normal_(self.queries, std=0.02)
        self.latent_size = options.latent_size
        if options.cvae:
            self.style_action_in = nn.Linear(action_size, d)
            self.style_token = nn.Parameter(torch.zeros(1, 1, d))
            self.style_position = nn.Parameter(torch.zeros(1, history + horizon + 1, d))
            self.style_encoder = _encoder(options, options.encoder_layers)
            self.style_out = nn.Linear(d, 2 * options.latent_size)
            nn.init.normal_(self.style_position, std=0.02)

    def _frames(self, inputs: torch.Tensor) -> torch.Tensor:
        frames = inputs.reshape(inputs.shape[0], self.history, self.frame_size)
        return self.frame_in(frames) + self.frame_position

    def _decode(self, frames: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        memory = self.encoder(torch.cat([self.latent_in(latent).unsqueeze(1), frames], 1))
        queries = self.queries.expand(frames.shape[0], -1, -1)
        chunk = self.action_out(self.decoder(queries, memory))
        return chunk.reshape(frames.shape[0], self.horizon * self.action_size)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        latent = torch.zeros(inputs.shape[0], self.latent_size, dtype=inputs.dtype,
                             device=inputs.device)
        return self._decode(self._frames(inputs), latent)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed L1 over the chunk elements (+ the weighted KL per element, with cvae)."""
        frames = self._frames(inputs)
        batch = inputs.shape[0]
        if not self.cvae:
            latent = torch.zeros(batch, self.latent_size, dtype=inputs.dtype,
                                 device=inputs.device)
            return (self._decode(frames, latent) - targets).abs().sum()
        actions = self.style_action_in(targets.reshape(batch, self.horizon, self.action_size))
        tokens = torch.cat([self.style_token.expand(batch, -1, -1), frames, actions], 1)
        style = self.style_out(self.style_encoder(tokens + self.style_position)[:, 0])
        mean, log_var = style.chunk(2, dim=1)
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
        l1 = (self._decode(frames, latent) - targets).abs().sum()
        kl = -0.5 * torch.sum(1 + log_var - mean ** 2 - log_var.exp())
        return l1 + self.kl_weight * kl * targets.shape[1]


def act_network(spec: Mapping[str, Any], options: ActOptions) -> ActNetwork:
    return ActNetwork(input_size=int(spec['input_size']), history=int(spec['history']),
                      horizon=int(spec['horizon']), action_size=int(spec['action_size']),
                      options=options)
