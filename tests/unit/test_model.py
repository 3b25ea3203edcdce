"""The model and pretrained modules: tiny model, classifier loading, the fast position bias,
fetching one pinned commit from the hub."""

import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub.utils import filter_repo_objects
from safetensors.torch import load_file
from transformers import Wav2Vec2BertForSequenceClassification

from fma_genre.features import logmel
from fma_genre.models import pretrained as pretrained_module
from fma_genre.models.classifier import (
    FastRelativeKeySelfAttention,
    load_classifier,
    use_fast_relative_key_attention,
)
from fma_genre.models.pretrained import read_source, write_tiny_model

LABELS = ["Rock", "Electronic", "Hip-Hop", "Punk"]


# Tiny tensors: a second OpenMP thread only adds synchronisation (and stalls on a busy machine).
pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("tiny") / "model"
    write_tiny_model(out_dir, seed=0)
    return out_dir


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random stacked features right-padded with 1 (the extractor's padding value), and the mask."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.ones(len(lengths), max(lengths), 160)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        features[row, :length] = torch.randn(length, 160, generator=generator)
        mask[row, :length] = 1
    return features, mask


def test_tiny_model_is_deterministic_and_has_w2v_bert_layout(tmp_path, tiny_model_dir):
    write_tiny_model(tmp_path / "again", seed=0)
    write_tiny_model(tmp_path / "other", seed=1)
    weights = load_file(tiny_model_dir / "model.safetensors")
    again = load_file(tmp_path / "again" / "model.safetensors")
    other = load_file(tmp_path / "other" / "model.safetensors")
    assert weights.keys() == again.keys() == other.keys()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    assert not torch.equal(
        weights["encoder.layers.0.self_attn.linear_q.weight"],
        other["encoder.layers.0.self_attn.linear_q.weight"],
    )

    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["position_embeddings_type"] == "relative_key"
    assert (config["hidden_size"], config["num_hidden_layers"], config["feature_projection_input_dim"]) == (
        64,
        2,
        160,
    )
    extractor = json.loads((tiny_model_dir / "preprocessor_config.json").read_text())
    assert extractor["feature_extractor_type"] == "SeamlessM4TFeatureExtractor"
    assert (extractor["stride"], extractor["padding_value"], extractor["num_mel_bins"]) == (2, 1, 80)
    assert not list(tmp_path.glob(".*"))  # no staging directories left behind
    # Its "commit" is the content of its weights: the same seed, the same commit.
    source = read_source(tiny_model_dir)
    assert source == read_source(tmp_path / "again") != read_source(tmp_path / "other")
    assert source["commit"] == hashlib.sha1((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()


def test_extractor_settings_are_those_the_log_mel_code_reproduces():
    assert (
        dict(
            feature_size=logmel.NUM_MEL_BINS,
            num_mel_bins=logmel.NUM_MEL_BINS,
            sampling_rate=logmel.SAMPLING_RATE,
            padding_value=logmel.PADDING_VALUE,
            stride=logmel.STACK_STRIDE,
        )
        == pretrained_module.FEATURE_EXTRACTOR_SETTINGS
    )


def test_load_classifier_sets_up_a_multi_label_head(tiny_model_dir):
    model = load_classifier(tiny_model_dir, LABELS)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.layerdrop == 0.0 and model.config.use_weighted_layer_sum
    assert model.config._attn_implementation == "eager"  # CPU: see load_classifier
    attention = [m for m in model.modules() if isinstance(m, FastRelativeKeySelfAttention)]
    assert len(attention) == model.config.num_hidden_layers

    probe = load_classifier(tiny_model_dir, LABELS)
    probe.freeze_base_model()  # what training mode probe does
    trainable = {name.split(".")[0] for name, p in probe.named_parameters() if p.requires_grad}
    assert trainable == {"layer_weights", "projector", "classifier"}


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])  # load_classifier's CPU and CUDA choices
def test_fast_position_bias_gives_the_stock_logits_and_gradients(tiny_model_dir, attn_implementation):
    def stock_classifier():
        return Wav2Vec2BertForSequenceClassification.from_pretrained(
            tiny_model_dir,
            num_labels=len(LABELS),
            use_weighted_layer_sum=True,
            layerdrop=0.0,
            attn_implementation=attn_implementation,
        )

    torch.manual_seed(0)
    stock, fast = stock_classifier(), stock_classifier()
    fast.load_state_dict(stock.state_dict())
    assert use_fast_relative_key_attention(fast) == fast.config.num_hidden_layers
    assert not any(isinstance(m, FastRelativeKeySelfAttention) for m in stock.modules())
    # Longer than the clamp window [-64, 8], so clamped distances are exercised too.
    features, mask = padded_batch([150, 97])

    for model in (fast, stock):
        model.eval()
        model.zero_grad()
        model(input_features=features, attention_mask=mask).logits.square().sum().backward()
    with torch.no_grad():
        fast_logits = fast(input_features=features, attention_mask=mask).logits
        stock_logits = stock(input_features=features, attention_mask=mask).logits
    torch.testing.assert_close(fast_logits, stock_logits, atol=1e-5, rtol=0)
    assert fast_logits.abs().max() > 1e-3  # real values, not a trivially zero output
    name = "wav2vec2_bert.encoder.layers.0.self_attn.distance_embedding.weight"
    fast_grad = dict(fast.named_parameters())[name].grad
    stock_grad = dict(stock.named_parameters())[name].grad
    torch.testing.assert_close(fast_grad, stock_grad, atol=1e-6, rtol=1e-4)
    assert fast_grad.abs().max() > 0


def test_pooling_ignores_padding(tiny_model_dir):
    model = load_classifier(tiny_model_dir, LABELS).eval()
    features, mask = padded_batch([60, 143], seed=3)
    with torch.no_grad():
        batched = model(input_features=features, attention_mask=mask).logits
        alone = model(input_features=features[:1, :60]).logits
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=0)


def fake_hub_repo(root: Path, with_safetensors: bool) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in [
        "config.json",
        "preprocessor_config.json",
        "README.md",
        "conformer_shaw.pt",
        "pytorch_model.bin",
    ]:
        (repo / name).write_text(name)
    if with_safetensors:
        (repo / "model.safetensors").write_text("weights")
    return repo


def local_hub(repo: Path, calls: list, commit: str = "c0ffee" * 6 + "beef"):
    """model_info and snapshot_download over a local folder, with the hub's own file selection."""

    def model_info(repo_id, *, revision=None, **kwargs):
        calls.append(("model_info", repo_id, revision))
        return SimpleNamespace(sha=commit)

    def snapshot_download(repo_id, *, revision=None, local_dir, allow_patterns=None, **kwargs):
        calls.append(("snapshot_download", repo_id, revision, allow_patterns))
        files = [p.name for p in repo.iterdir()]
        for name in filter_repo_objects(files, allow_patterns=allow_patterns):
            shutil.copy(repo / name, Path(local_dir) / name)
        (Path(local_dir) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return str(local_dir)

    return model_info, snapshot_download


def test_fetch_pretrained_downloads_the_resolved_commit_and_records_it(tmp_path, monkeypatch):
    calls = []
    repo = fake_hub_repo(tmp_path, with_safetensors=True)
    model_info, snapshot_download = local_hub(repo, calls)
    monkeypatch.setattr(pretrained_module, "model_info", model_info)
    monkeypatch.setattr(pretrained_module, "snapshot_download", snapshot_download)
    out_dir = tmp_path / "pretrained"
    commit = pretrained_module.fetch_pretrained("facebook/w2v-bert-2.0", out_dir, revision="v2")
    assert commit == "c0ffee" * 6 + "beef"
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "source.json",
    ]
    # The branch or tag is resolved once; every file then comes from that one commit.
    assert calls == [
        ("model_info", "facebook/w2v-bert-2.0", "v2"),
        ("snapshot_download", "facebook/w2v-bert-2.0", commit, pretrained_module.PRETRAINED_FILES),
    ]
    assert read_source(out_dir) == {"model_id": "facebook/w2v-bert-2.0", "revision": "v2", "commit": commit}

    # A repository with PyTorch weights only: those are fetched instead.
    calls.clear()
    (repo / "model.safetensors").unlink()
    pretrained_module.fetch_pretrained("old/model", out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "README.md",
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
        "source.json",
    ]
    assert [call[-1] for call in calls[1:]] == [
        pretrained_module.PRETRAINED_FILES,
        pretrained_module.PYTORCH_WEIGHTS,
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fetch_pretrained_failure_leaves_no_output(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("hub unreachable")

    monkeypatch.setattr(pretrained_module, "model_info", lambda *a, **k: SimpleNamespace(sha="abc"))
    monkeypatch.setattr(pretrained_module, "snapshot_download", unreachable)
    with pytest.raises(OSError, match="unreachable"):
        pretrained_module.fetch_pretrained("facebook/w2v-bert-2.0", tmp_path / "pretrained")
    assert list(tmp_path.iterdir()) == []


def test_weights_without_a_source_record_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_weights rule"):
        read_source(tmp_path)
