"""Wav2Vec2-BERT as a multi-label genre classifier.

`load_classifier` loads pretrained weights (see `pretrained.py`) or a fine-tuned model as
`Wav2Vec2BertForSequenceClassification`, with the faster relative position bias of
`FastRelativeKeySelfAttention`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import Wav2Vec2BertForSequenceClassification
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.wav2vec2_bert.modeling_wav2vec2_bert import (
    Wav2Vec2BertSelfAttention,
    eager_attention_forward,
)


class FastRelativeKeySelfAttention(Wav2Vec2BertSelfAttention):
    """Wav2Vec2-BERT self-attention with the stock `relative_key` maths, computed without its
    (L, L, head_size) tensor of distance embeddings.

    The position bias of query i and key j is q_i · E[clamp(j - i)] * scaling, and only
    left + right + 1 = 73 distinct distances exist. So each query meets each distance embedding
    once, (B, H, L, 73), and the (B, H, L, L) bias is gathered from that: the same values at
    ~0.55x the peak memory and ~1.5x the speed of a forward+backward pass on CPU (L = 500, head
    size 64; perf/bench_training.py).
    """

    def forward(self, hidden_states, attention_mask=None, relative_position_embeddings=None, **kwargs):
        batch_and_length = hidden_states.shape[:-1]
        heads_shape = (*batch_and_length, self.num_heads, self.head_size)
        query = self.linear_q(hidden_states).view(heads_shape).transpose(1, 2)
        key = self.linear_k(hidden_states).view(heads_shape).transpose(1, 2)
        value = self.linear_v(hidden_states).view(heads_shape).transpose(1, 2)

        attention = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout.p if self.training else 0.0,
            scaling=self.scaling,
            position_bias=self.relative_key_position_bias(query),
            **kwargs,
        )
        return self.linear_out(attn_output.reshape(*batch_and_length, -1)), attn_weights

    def relative_key_position_bias(self, query: torch.Tensor) -> torch.Tensor:
        """(B, H, L, L) bias of query position i for key position j, as the stock module adds it."""
        length = query.shape[2]
        positions = torch.arange(length, device=query.device)
        distance = (positions[None, :] - positions[:, None]).clamp(
            -self.left_max_position_embeddings, self.right_max_position_embeddings
        )
        per_distance = torch.matmul(query, self.distance_embedding.weight.to(query.dtype).T) * self.scaling
        index = (distance + self.left_max_position_embeddings).expand(*query.shape[:2], length, length)
        return per_distance.gather(-1, index)


def use_fast_relative_key_attention(model: torch.nn.Module) -> int:
    """Switch the model's relative_key self-attention modules to the fast one; return how many.

    Only the class changes: parameters, state-dict keys and saved checkpoints stay the stock ones.
    """
    switched = 0
    for module in model.modules():
        if type(module) is Wav2Vec2BertSelfAttention and module.position_embeddings_type == "relative_key":
            module.__class__ = FastRelativeKeySelfAttention
            switched += 1
    return switched


def load_classifier(
    model_dir: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    *,
    device: str | torch.device = "cpu",
) -> Wav2Vec2BertForSequenceClassification:
    """A multi-label Wav2Vec2-BERT classifier from a pretrained backbone or a fine-tuned model.

    `label_names` (genre titles, in label order) gives a pretrained backbone its new head, set up
    for this task; a fine-tuned model (None) is loaded as it was saved.
    """
    device = torch.device(device)
    new_head = {}
    if label_names is not None:
        if len(set(label_names)) != len(label_names):
            raise ValueError("label names must be unique")
        new_head = dict(
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            problem_type="multi_label_classification",
            use_weighted_layer_sum=True,
            layerdrop=0.0,  # the weighted layer sum needs every layer's output
            add_adapter=False,  # w2v-bert-2.0's config has one; sequence classification cannot use it
        )
    model = Wav2Vec2BertForSequenceClassification.from_pretrained(
        model_dir,
        **new_head,
        # SDPA takes the position bias as an additive float mask. On CPU, PyTorch's SDPA with a
        # float mask that needs a gradient is ~8x slower than the eager softmax(QK^T + bias)V.
        attn_implementation="sdpa" if device.type == "cuda" else "eager",
    )
    use_fast_relative_key_attention(model)
    return model.to(device)
