// The architectures besides llama that the golden tests cover, each as the `ggswarm synth`
// flags (after --preset tiny) of its random model. tests/data/make_arch_goldens.sh reads this
// table to make llama.cpp's goldens; inference_test and stage_test make the same models.
//   qwen3*: heads of 128, wider than n_embd / n_head, as Qwen3-0.6B's
//   qwen3moe: 8 experts of 256, 2 used per token
//   llama3: Llama 3's BPE vocabulary, a head tied to the embedding, Llama 3.1's rope_freqs
//   mixtral: llama with Mixtral's experts, 8 of feed_forward_length, 2 used per token
//   mistral3: YaRN ×16 from an original context of 32 and query temperature 0.1, so that the
//     48 generated positions cross into its scaling
//   phi3: fused q/k/v and gate/up, rope on 48 of 64 dimensions, an original context of 256,
//     below llamacpp-ref's 512, so that its long rope factors apply
//   gemma2, gemma3: Gemma's vocabulary and a sliding window of 4 on every other layer, so
//     that the prompt's 13 positions already leave it; gemma3's global layers with rope base 1e6
//     stretched 8× linearly, its local ones at 10000
#pragma once

namespace ggswarm::testing {

struct ArchCase {
  const char* name;
  const char* flags;
};

// One case per line, as the script reads them.
// clang-format off
inline constexpr ArchCase kArchCases[] = {
    {"qwen2", "--arch qwen2 --vocab qwen2"},
    {"qwen3", "--arch qwen3 --vocab qwen2 --head-dim 128"},
    {"qwen3moe", "--arch qwen3moe --vocab qwen2 --head-dim 128 --n-expert 8 --n-expert-used 2 --n-ff-exp 256"},
    {"llama3", "--arch llama --vocab llama3 --tied-output --llama3-rope"},
    {"mixtral", "--arch llama --n-expert 8 --n-expert-used 2"},
    {"mistral3", "--arch mistral3 --vocab tekken --yarn-factor 16 --yarn-orig-ctx 32 --attn-temp-scale 0.1"},
    {"phi3", "--arch phi3 --vocab gpt-4o --rope-dim 48 --yarn-orig-ctx 256 --tied-output"},
    {"gemma2", "--arch gemma2 --vocab gemma --swa 4"},
    {"gemma3", "--arch gemma3 --vocab gemma --swa 4 --swa-pattern 2 --rope-base 1000000 --rope-scale-linear 8 --tied-output"},
};
// clang-format on

}  // namespace ggswarm::testing
