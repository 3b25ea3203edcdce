"""LoRA fine-tuning: low-rank adapters on the backbone's attention projections (peft), merged
into the weights for saving, so that the saved model loads with `transformers` alone."""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model

# The query, key, value and output projections of every Wav2Vec2-BERT self-attention module.
ATTENTION_PROJECTIONS = ["linear_q", "linear_k", "linear_v", "linear_out"]


def is_backbone_parameter(name: str) -> bool:
    """Whether a parameter (its state-dict name, a peft wrapper's too) belongs to the backbone."""
    return "wav2vec2_bert" in name.split(".")


def add_lora_adapters(model, rank: int, alpha: float) -> PeftModel:
    """The model with trainable adapters of `rank` on the attention projections and a trainable
    head; every other backbone weight frozen."""
    adapted = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=ATTENTION_PROJECTIONS)
    )
    for name, parameter in adapted.named_parameters():
        if not is_backbone_parameter(name):  # peft freezes all but the adapters: the new head trains too
            parameter.requires_grad = True
    return adapted


def merged(model):
    """A plain `transformers` model: adapters folded into the weights (W + B A * alpha / rank)."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model
