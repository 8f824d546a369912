/* CLIP vision tower (Hugging Face CLIPVisionModel) as LLaVA / Flash-VStream
 * use it: the hidden state of one selected layer, patch tokens only (or CLS
 * and patches). Pre-LN ViT: patch embedding (conv with kernel = stride =
 * patch, no bias), class token, learned positions, pre_layrnorm, then
 * layers x += attn(ln1(x)), x += fc2(act(fc1(ln2(x)))). Only the layers up
 * to the selected one are loaded and run; post_layernorm is never used.
 *
 * Config (CLIPVisionConfig keys, flat or nested under "vision_config"):
 * image_size, patch_size, hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_channels, hidden_act (quick_gelu, gelu,
 * gelu_new / gelu_pytorch_tanh), layer_norm_eps. Tensor names: plain CLIP
 * "vision_model.*" or Flash-VStream / LLaVA
 * "model.vision_tower.vision_tower.vision_model.*" (detected, or given).
 * Weights: F32, F16 or BF16 as stored; linear weights are used in place in
 * the mapping, norms, biases and embeddings converted to f32 once at open.
 *
 * Ownership and threads: frt_clip_open borrows st (it must outlive the
 * frt_clip) and reads cfg only during the call. The frt_clip owns its
 * working memory (sized at open for one image, reused by every encode), so
 * one frt_clip must not encode from two threads at once; several frt_clip
 * may share one frt_st. The model does its small glue steps (patchify,
 * embedding sums) on host memory: the backend must be the CPU backend
 * (another is FRT_ERR_UNSUPPORTED at open). */
#ifndef FRT_VSTREAM_CLIP_H
#define FRT_VSTREAM_CLIP_H

#include <limits.h>
#include <stdbool.h>

#include "backend.h"
#include "config.h"
#include "safetensors.h"

/* select_layer: take mm_vision_select_layer from the config, else -2. */
#define FRT_CLIP_SELECT_DEFAULT INT_MIN

typedef struct frt_clip_options {
    const char *prefix; /* tensor name prefix ("vision_model."); NULL: detect */
    int select_layer;   /* hidden_states index: 0 = after pre_layrnorm, i = after
                           layer i, negative counts from the end (-1 = last) */
    int keep_cls;       /* 1: CLS + patches, 0: patches only, -1: from
                           mm_vision_select_feature ("patch" / "cls_patch"), else 0 */
} frt_clip_options;

frt_clip_options frt_clip_options_default(void);

typedef struct frt_clip_info {
    int64_t image_size, patch_size, grid; /* grid = image_size / patch_size */
    int64_t channels, width, heads, intermediate, layers;
    int64_t select_index; /* select_layer resolved to [0, layers] */
    int64_t n_out;        /* tokens per image: grid^2 (+1 with CLS) */
    bool keep_cls;
    frt_act act;
    float eps;
} frt_clip_info;

typedef struct frt_clip frt_clip;

/* cfg: a CLIP vision config, or a model config with a nested vision_config
 * (mm_vision_select_layer / mm_vision_select_feature are read from its top
 * level). opt may be NULL (defaults); be NULL is the CPU backend.
 * Failures: FRT_ERR_FORMAT for bad config values (naming the key) or a
 * tensor of the wrong shape, FRT_ERR_NOT_FOUND for a missing tensor (named),
 * FRT_ERR_UNSUPPORTED for an unknown activation or dtype, FRT_ERR_NOMEM. */
frt_status frt_clip_open(const frt_st *st, const frt_config *cfg, const frt_clip_options *opt,
                         frt_backend *be, frt_clip **out);

/* A model directory: config.json (+ *.safetensors). The vision config is the
 * directory's own (CLIP), its nested vision_config, or for a LLaVA-style
 * config without one, the config.json of the directory mm_vision_tower names
 * (beside this one or absolute; its weights are used when this checkpoint
 * lacks the tower) or, for "openai/clip-vit-large-patch14", that model's
 * published configuration. The frt_clip owns what it opens. */
frt_status frt_clip_open_dir(const char *dir, const frt_clip_options *opt, frt_clip **out);

void frt_clip_close(frt_clip *clip);

const frt_clip_info *frt_clip_get_info(const frt_clip *clip);

/* pixels [channels, image_size, image_size] f32 (caller's, e.g. from
 * frt_image_proc_run) -> out [n_out, width] f32 (caller's). */
frt_status frt_clip_encode(frt_clip *clip, const float *pixels, float *out);

#endif
