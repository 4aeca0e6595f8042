"""Whole-model init on Hugging Face transformers' models, built from small
configs with random weights: one call with no hints, judged as
tests/torch/zoo.py judges its own zoo, against torch's default init (each
model's own `_init_weights` is not run: the models are built, not loaded)
and anyinit.

    pip install transformers anyinit
    PYTHONPATH=python python benchmarks/transformers_models.py [--quick]

Each model maps 4 sequences of 32 token ids (vocabulary 1000) to its logits
(GPT-2, Llama, Qwen2, T5 with its decoder reading the same ids, Mistral,
Falcon, Gemma, Mixtral) or its last hidden state (BERT, the T5 encoder); 6
layers, width 128 (GPT-2 and Llama also at 12 and 16 layers, width 256;
Mixtral 4 layers of 4 experts, top 2).
--quick leaves anyinit's analytic mode out.
Results go to stdout and benchmarks/results/transformers_models.md.
"""
import argparse
import warnings

import torch

from model_rows import WEIGHT_LAYERS, rows, write

warnings.filterwarnings("ignore", message=".*token_id.*")


class Output(torch.nn.Module):
    """The model's logits, or its last hidden state, for token ids (an encoder-decoder's
    decoder reads the same ids)."""

    def __init__(self, model, attribute, decoder=False):
        super().__init__()
        self.model, self.attribute, self.decoder = model, attribute, decoder

    def forward(self, ids):
        kwargs = {"decoder_input_ids": ids} if self.decoder else {}
        return getattr(self.model(input_ids=ids, **kwargs), self.attribute)


def _ids():
    return torch.randint(0, 1000, (4, 32))


def models():
    import transformers as t
    return {
        "GPT-2 (6 x 128)": lambda: (Output(t.GPT2LMHeadModel(t.GPT2Config(
            n_layer=6, n_embd=128, n_head=4, vocab_size=1000, n_positions=64)), "logits"), _ids()),
        "GPT-2 (12 x 256)": lambda: (Output(t.GPT2LMHeadModel(t.GPT2Config(
            n_layer=12, n_embd=256, n_head=4, vocab_size=1000, n_positions=64)), "logits"), _ids()),
        "BERT (6 x 128)": lambda: (Output(t.BertModel(t.BertConfig(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, intermediate_size=512,
            vocab_size=1000, max_position_embeddings=64)), "last_hidden_state"), _ids()),
        "Llama (6 x 128)": lambda: (Output(t.LlamaForCausalLM(t.LlamaConfig(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=344, vocab_size=1000, max_position_embeddings=64)), "logits"), _ids()),
        "Llama (16 x 256)": lambda: (Output(t.LlamaForCausalLM(t.LlamaConfig(
            num_hidden_layers=16, hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=688, vocab_size=1000, max_position_embeddings=64)), "logits"), _ids()),
        "Qwen2 (6 x 128)": lambda: (Output(t.Qwen2ForCausalLM(t.Qwen2Config(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=344, vocab_size=1000, max_position_embeddings=64)), "logits"), _ids()),
        "T5 encoder (6 x 128)": lambda: (Output(t.T5EncoderModel(t.T5Config(
            num_layers=6, d_model=128, num_heads=4, d_ff=512, d_kv=32, vocab_size=1000)),
            "last_hidden_state"), _ids()),
        "T5 (6 + 6 x 128)": lambda: (Output(t.T5ForConditionalGeneration(t.T5Config(
            num_layers=6, d_model=128, num_heads=4, d_ff=512, d_kv=32, vocab_size=1000)), "logits", decoder=True),
            _ids()),
        "Mistral (6 x 128)": lambda: (Output(t.MistralForCausalLM(t.MistralConfig(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=344, vocab_size=1000, max_position_embeddings=64)), "logits"), _ids()),
        "Falcon (6 x 128)": lambda: (Output(t.FalconForCausalLM(t.FalconConfig(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, vocab_size=1000)), "logits"), _ids()),
        "Gemma (6 x 128)": lambda: (Output(t.GemmaForCausalLM(t.GemmaConfig(
            num_hidden_layers=6, hidden_size=128, num_attention_heads=4, num_key_value_heads=1, head_dim=32,
            intermediate_size=344, vocab_size=1000, max_position_embeddings=64)), "logits"), _ids()),
        # its experts are 3-D parameters, not Linear modules: act and grad are over the others
        "Mixtral (4 x 128, 4 experts)": lambda: (Output(t.MixtralForCausalLM(t.MixtralConfig(
            num_hidden_layers=4, hidden_size=128, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=256, vocab_size=1000, max_position_embeddings=64, num_local_experts=4,
            num_experts_per_tok=2)), "logits"), _ids()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave anyinit's analytic mode out")
    args = parser.parse_args(argv)
    import transformers
    from transformers.pytorch_utils import Conv1D   # GPT-2's layers: measured like Linear
    found = rows(models(), args.quick, WEIGHT_LAYERS + (Conv1D,))
    write("transformers_models", found, f", transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
