"""SASRec-family transformer over a user's item sequence (Kang & McAuley 2018), trained with full
softmax cross-entropy over all items ("SASRec+", Klenitskiy & Vasilev 2023) or a sampled softmax
with many negatives (gSASRec's regime) for catalogs too large for a full softmax.

The attention is written out with plain matmuls so the model exports to ONNX unchanged.
"""

from __future__ import annotations

import math

import torch
from recstack.preprocessing.vocabulary import FIRST_INDEX, OOV
from recstack.training.config import OBJECTIVES, SASRecConfig
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Attention output of every query position, or of the last one only (``allowed`` then has one row):
        keys and values still come from every position."""
        b, length, hidden = x.shape
        if last_only:
            # The query projection is the first third of ``qkv``: only the last position needs it.
            q = F.linear(x[:, -1:], self.qkv.weight[:hidden], self.qkv.bias[:hidden])
            k, v = F.linear(x, self.qkv.weight[hidden:], self.qkv.bias[hidden:]).view(
                b, length, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q = q.view(b, 1, self.heads, self.head_dim).transpose(1, 2)
        else:
            q, k, v = self.qkv(x).view(b, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, q.shape[2], hidden))


class Block(nn.Module):
    """Pre-norm transformer block: attention and a GELU feed-forward, each with a residual.

    Dropout sits on the residual branches only: on a CPU drawing random masks is the costliest op
    of a training step, and the attention-weight and inner feed-forward masks are 4-40x larger.
    """

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attention = CausalSelfAttention(hidden, heads)
        self.ffn = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """The block's output at every position, or at the last one only (batch × 1 × hidden)."""
        attended = self.attention(self.norm1(x), allowed, last_only)
        x = (x[:, -1:] if last_only else x) + self.drop(attended)
        return x + self.drop(self.ffn(self.norm2(x)))


class ObjectiveHeads(nn.Module):
    """Logits of P(click), P(add-to-cart), P(purchase) of an item if it is the user's next step.

    Per objective a linear map of the user state is dotted with the item's embedding (what this user does with
    this kind of item), plus a learned bias per item (how well the item converts whoever looks at it).
    """

    def __init__(self, n_items: int, hidden: int):
        super().__init__()
        self.query = nn.Linear(hidden, len(OBJECTIVES) * hidden)
        self.item_bias = nn.Embedding(n_items, len(OBJECTIVES))
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, user: torch.Tensor, item_vectors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``user`` (B, hidden), ``item_vectors`` (B, N, hidden) of ``items`` (B, N) → logits (B, N, objectives)."""
        # unflatten, not view(len(user), ...): len() would freeze the batch axis in the exported graph.
        query = self.query(user).unflatten(-1, (len(OBJECTIVES), -1))
        return item_vectors @ query.transpose(1, 2) + self.item_bias(items)


class SASRec(nn.Module):
    """Causal self-attention over left-padded item sequences (0 = padding, newest item last).

    Examples
    --------
    >>> model = SASRec(n_items=50, config=SASRecConfig(max_length=8, hidden=16, blocks=1, heads=1))
    >>> seq = torch.tensor([[0, 0, 0, 5, 9, 12, 7, 3]])
    >>> model.score_all(seq).shape, model.score_candidates(seq, torch.tensor([[3, 4, 5]])).shape
    (torch.Size([1, 50]), torch.Size([1, 3]))
    """

    def __init__(self, n_items: int, config: SASRecConfig = SASRecConfig()):
        super().__init__()
        self.n_items, self.config = n_items, config
        self.item_embedding = nn.Embedding(n_items, config.hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_length, config.hidden)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config.hidden, config.heads, config.dropout) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(config.hidden)
        self.heads = ObjectiveHeads(n_items, config.hidden) if config.objectives else None
        nn.init.normal_(self.item_embedding.weight, std=config.hidden ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def encode(self, seq: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """Hidden state at every position (batch × length × hidden), or at the last one (batch × 1 × hidden).

        Positions count back from the newest item, so a batch cut to its longest sequence (length-aware
        batching) gives every item the position index it has in a full ``max_length`` window. With
        ``last_only`` (serving: only the newest position is scored) the last block runs its queries and
        feed-forward for the last position alone; earlier blocks still run everywhere, as their outputs are
        its keys and values.
        """
        length = seq.shape[1]
        # OOV items (index 1) carry no learned signal: they are read as padding.
        seq = seq.masked_fill(seq == OOV, 0)
        present = seq != 0
        positions = torch.arange(length, device=seq.device) + (self.config.max_length - length)
        x = self.item_embedding(seq) * math.sqrt(self.config.hidden) + self.position_embedding(positions)
        x = self.drop(x) * present.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        # A query may see earlier real items and itself (so padded rows never attend to nothing).
        allowed = causal & (present.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=seq.device))
        for i, block in enumerate(self.blocks):
            if last_only and i == len(self.blocks) - 1:
                x = block(x, allowed[:, -1:], last_only=True) * present[:, -1:].unsqueeze(-1)
            else:
                x = block(x, allowed) * present.unsqueeze(-1)
        return self.norm(x)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """The user representation: hidden state after the newest item (batch × hidden)."""
        return self.encode(seq, last_only=True)[:, -1]

    def item_vectors(self) -> torch.Tensor:
        return self.item_embedding.weight

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item index (batch × n_items); padding and OOV get -inf."""
        scores = self(seq) @ self.item_vectors().T
        scores[:, :FIRST_INDEX] = float("-inf")
        return scores

    def score_candidates(self, seq: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores of given candidate items (batch × candidates): the funnel's rank stage."""
        user = self(seq)
        scores = (self.item_embedding(candidates) * user.unsqueeze(1)).sum(-1)
        return scores.masked_fill(candidates < FIRST_INDEX, float("-inf"))

    def score_objectives(self, seq: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, N) of the candidates, as :meth:`score_candidates`, and their objective probabilities
        (B, N, objectives: ``OBJECTIVES``); 0 for padding and OOV. Needs ``config.objectives``."""
        if self.heads is None:
            raise ValueError("this ranker has no objective heads (SASRecConfig.objectives is off)")
        user = self(seq)
        vectors = self.item_embedding(candidates)
        scores = (vectors * user.unsqueeze(1)).sum(-1).masked_fill(candidates < FIRST_INDEX, float("-inf"))
        probabilities = torch.sigmoid(self.heads(user, vectors, candidates))
        return scores, probabilities.masked_fill((candidates < FIRST_INDEX).unsqueeze(-1), 0.0)

    @property
    def loss_kind(self) -> str:
        """The next-item loss it trains with: ``full`` softmax, or ``sampled`` (``auto``: full up to
        ``full_softmax_max_items`` items)."""
        if self.config.loss != "auto":
            return self.config.loss
        return "full" if self.n_items <= self.config.full_softmax_max_items else "sampled"

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor, stages: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Next-item loss at every non-padded position (``labels`` 0 = ignore), plus, with objective heads and
        ``stages`` (1 + the furthest funnel stage of the label's step, 0 = unknown), their binary cross-entropy
        on the label item, weighted by ``config.objective_weight``."""
        hidden = self.encode(inputs)
        mask = labels != 0
        hidden, labels = hidden[mask], labels[mask]
        next_item = self._next_item_loss(hidden, labels, generator)
        if self.heads is None or stages is None:
            return next_item
        # Every position runs through the heads and steps of unknown stage weigh 0, so every process of a DDP run
        # uses the heads in every step, whatever its batch holds.
        stages = stages[mask]
        logits = self.heads(hidden, self.item_embedding(labels).unsqueeze(1), labels.unsqueeze(1))[:, 0]
        # Stage s (1 view, 2 click, 3 add-to-cart, 4 purchase) reached every objective up to it.
        reached = stages.unsqueeze(1) >= torch.arange(2, 2 + len(OBJECTIVES), device=labels.device)
        losses = F.binary_cross_entropy_with_logits(logits.float(), reached.float(), reduction="none")
        known = (stages > 0).float()
        heads = (losses.mean(1) * known).sum() / known.sum().clamp(min=1)
        return next_item + self.config.objective_weight * heads

    def _next_item_loss(self, hidden: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None
                        ) -> torch.Tensor:
        weights = self.item_vectors()
        if self.loss_kind == "full":
            logits = hidden @ weights.T
            logits[:, :FIRST_INDEX] = float("-inf")
            return F.cross_entropy(logits.float(), labels)
        negatives = torch.randint(FIRST_INDEX, self.n_items, (self.config.negatives,), device=hidden.device,
                                  generator=generator)
        positive = (hidden * weights[labels]).sum(-1, keepdim=True)
        negative = hidden @ weights[negatives].T
        negative = negative.masked_fill(negatives.unsqueeze(0) == labels.unsqueeze(1), float("-inf"))
        logits = torch.cat([positive, negative], dim=1).float()
        return F.cross_entropy(logits, torch.zeros(len(labels), dtype=torch.long, device=hidden.device))
