#!/usr/bin/env bash
# The GPU runs of the papers' settings, as one script (run from the repository root on a CUDA machine):
#
#   1. Liu et al. (2019) Table 1, the Mask R-CNN row on shapes (6 per class, NMS 0.7; AP 0.733): an amodal
#      Mask R-CNN (`arcnn`, ResNet-50 FPN, COCO-pretrained when torchvision's weights can be had) trained with
#      the `shapes` recipe (Adam 1e-4, batch 2, 50,000 iterations = 100 epochs of 1,000 images, 256 px), scored
#      on 1,000 held-out scenes.
#   2. Liu et al. (2019) Table 1, "Ours" (AP 0.767, AR100 0.793 at 6 per class): the layered embedding net
#      (DeepLabv3 ResNet-50) with the same recipe, on scenes generated while training (1,000 new ones per
#      epoch, as the paper), scored on the same 1,000 held-out scenes.
#   3. Yin (2021) on KINS: a smoke run of the `kins` recipe (batch 4 per GPU, lr 0.0025 at batch 4, shorter
#      side 800, longer at most 1333) for the `jigsaw` model, on $KINS (shards from `amodaldata convert kins
#      ... --to parquet`) when given, else on the shapes scenes.
#   4. Zhang et al. (2019) Table 1, SLN on COCOA (AR100 36.5), when $COCOA is a shards folder of the COCOA
#      training release and $COCOA_VAL of its validation release: the staged schedule of Sec. 4.6 (GLM, RPN,
#      ILM, then joint fine-tuning, SLN_ITERS iterations each) with the `cocoa` recipe.
#
# Each run prints images/s and the peak GPU memory (from its log.jsonl). AMP (float16 + GradScaler) is on by
# default on CUDA; channels-last is used for the convolutions; with NPROC > 1 training and prediction run
# under torchrun (DistributedDataParallel, NCCL). Environment knobs (defaults in brackets):
#   NPROC [number of GPUs]  ITERS [50000]  KINS_ITERS [300]  SLN_ITERS [20000]  PRETRAINED [torchvision]
#   OUT [gpu-out]  KINS, COCOA, COCOA_VAL [unset: shards folders]  PYTHON [.venv/bin/python, made by `make setup`]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
ITERS=${ITERS:-50000}
KINS_ITERS=${KINS_ITERS:-300}
SLN_ITERS=${SLN_ITERS:-20000}
PRETRAINED=${PRETRAINED:-torchvision}
if [ -z "${PYTHON:-}" ]; then
    # on a GPU machine keep its own CUDA torch: `make setup TORCH_PAIR=` installs none
    [ -x .venv/bin/python ] || make setup TORCH_PAIR="${TORCH_PAIR-}"
    PYTHON=.venv/bin/python
fi
NPROC=${NPROC:-$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
"$PYTHON" -c 'import torch, torchvision; assert torch.cuda.is_available(), "no CUDA device"; \
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")'
if [ "$NPROC" -gt 1 ]; then
    TRAIN=("$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" -m models.train)
else
    TRAIN=("$PYTHON" -m models.train)
fi
mkdir -p "$OUT"

# pretrained weights: torchvision's COCO Mask R-CNN, or from scratch where they cannot be downloaded
PRE=(--pretrained "$PRETRAINED")
if [ "$PRETRAINED" = torchvision ] && ! "$PYTHON" -c 'from models.weights import torchvision_state; torchvision_state("resnet50")' 2>/dev/null; then
    echo "torchvision's COCO weights cannot be had here: training from scratch (the paper's row is COCO-pretrained)"
    PRE=()
fi

summary() {   # images/s (median of the logged steps after the first) and the peak GPU memory of a run
    "$PYTHON" - "$1" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(f"{sys.argv[1]}/log.jsonl") if '"loss"' in l]
speed = statistics.median(r["images_per_s"] for r in rows[1:] or rows)
print(f"{sys.argv[1]}: {rows[-1]['iteration']} iterations, {speed:.1f} images/s, "
      f"peak GPU memory {max(r.get('gpu_peak_gb', 0) for r in rows):.2f} GiB per rank")
PY
}

score() {   # predict the held-out shapes scenes with a run's checkpoint (every GPU) and score them
    "$PYTHON" -m models.predict --checkpoint "$1/checkpoint.pt" --data "$OUT/shapes-test" \
        --out "$1/predictions.json" --nproc "$NPROC" --batch-size 16 --workers 4
    "$PYTHON" -m cli eval "$OUT/shapes-test" "$1/predictions.json" --classes aware --part all --json "$1/eval.json"
}

# 1. shapes, Liu et al. (2019) Table 1
"$PYTHON" -m cli gen shapes --n 20000 --size 256 --per-class 6 --seed 1 --out "$OUT/shapes-train" --no-progress
"$PYTHON" -m cli gen shapes --n 1000 --size 256 --per-class 6 --seed 2 --split validation --out "$OUT/shapes-test" --no-progress
"${TRAIN[@]}" --model arcnn --recipe shapes --backbone resnet50 "${PRE[@]}" --data "$OUT/shapes-train" \
    --out "$OUT/arcnn-shapes" --max-iter "$ITERS" --workers 6 --channels-last --val "$OUT/shapes-test" \
    --eval-every $(( ITERS / 5 )) --log-every 50
summary "$OUT/arcnn-shapes"
score "$OUT/arcnn-shapes"
echo "compare: Liu et al. (2019) Table 1, Mask R-CNN t=0.7 on 6 per class: AP 0.733 (scored there at 64x64)"

# 2. the layered embedding net, Liu et al. (2019) Table 1 "Ours", on scenes generated while training
"${TRAIN[@]}" --model embedding --recipe shapes --backbone resnet50 "${PRE[@]}" \
    --generate "shapes --per-class 6 --size 256" --scenes-per-epoch 1000 --out "$OUT/embedding-shapes" \
    --max-iter "$ITERS" --workers 6 --channels-last --val "$OUT/shapes-test" --eval-every $(( ITERS / 5 )) --log-every 50
summary "$OUT/embedding-shapes"
score "$OUT/embedding-shapes"
echo "compare: Liu et al. (2019) Table 1, ours on 6 per class: AP 0.767, AR100 0.793 (scored at 64x64)"

# 3. the kins recipe, smoke run
DATA=${KINS:-$OUT/shapes-train}
"${TRAIN[@]}" --model jigsaw --recipe kins --backbone resnet50 "${PRE[@]}" --data "$DATA" \
    --out "$OUT/jigsaw-kins-smoke" --max-iter "$KINS_ITERS" --workers 6 --channels-last --log-every 20 \
    $([ -z "${KINS:-}" ] && echo --num-classes 3)
summary "$OUT/jigsaw-kins-smoke"

# 4. SLN on COCOA, the staged schedule (each stage its own run, started from the previous one)
if [ -n "${COCOA:-}" ] && [ -n "${COCOA_VAL:-}" ]; then
    previous=("${PRE[@]}")
    for stage in glm rpn ilm joint; do
        "${TRAIN[@]}" --model sln --recipe cocoa --stage "$stage" "${previous[@]}" --data "$COCOA" \
            --out "$OUT/sln-cocoa-$stage" --max-iter "$SLN_ITERS" --workers 6 --channels-last --log-every 50
        summary "$OUT/sln-cocoa-$stage"
        previous=(--pretrained "$OUT/sln-cocoa-$stage/checkpoint.pt")
    done
    "$PYTHON" -m models.predict --checkpoint "$OUT/sln-cocoa-joint/checkpoint.pt" --data "$COCOA_VAL" \
        --out "$OUT/sln-cocoa-joint/predictions.json" --nproc "$NPROC" --batch-size 8 --workers 4
    "$PYTHON" -m cli eval "$COCOA_VAL" "$OUT/sln-cocoa-joint/predictions.json" --json "$OUT/sln-cocoa-joint/eval.json"
    "$PYTHON" -m cli eval order "$COCOA_VAL" "$OUT/sln-cocoa-joint/predictions.json" --source semdist
    echo "compare: Zhang et al. (2019) Table 1, SLN on COCOA: AR100 36.5"
else
    echo "SLN on COCOA skipped: set COCOA and COCOA_VAL to shards of the COCOA release (amodaldata convert ... --to parquet)"
fi
