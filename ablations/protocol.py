"""The protocol's open choices, as the report and README print them: where the paper is silent,
what this suite does. The paper's own statements are `TrainConfig`'s defaults; the numbers
here come from the profiles, so the prose cannot drift from what runs."""

from __future__ import annotations

from ablations.profiles import IMAGENET_MILESTONES, PAPER_WARMUP, WARMUP_LR

# Topic -> what this suite does, shown by the README's protocol section and the report's
# paper-profile heading.
_PAPER = {
    "padding value": "zeros (black pixels), added to the uint8 image before the per-pixel mean "
    "is subtracted, as torchvision's RandomCrop(32, padding=4) does",
    "crop and flip": "crop offset uniform over the 9x9 positions, flip with probability 1/2, "
    "drawn per image",
    "per-pixel mean": "the mean image of the training images the run trains on (all 50k, or "
    "the 45k of the 45k/5k split), on [0, 1]-scaled pixels; no division by a std",
    "BatchNorm batch": "the whole batch of 128 on one device (the paper used 2 GPUs and does "
    "not say whether statistics were per GPU)",
    "weight decay": "1e-4 on every parameter, BatchNorm and the linear layer included",
    "momentum": "plain (not Nesterov) SGD momentum",
    "linear layer init": "PyTorch's default (the paper's He init is stated for convs)",
    "sampling": "each epoch a fresh random permutation of the training images; batch i is a "
    "pure function of (seed, i)",
    "warm-up": f"lr {WARMUP_LR} for {', '.join(PAPER_WARMUP)} (1202: 'trained as described "
    "above' for 110), until the running training error over a 20-iteration window is below "
    "80%, then 0.1",
    "test curves": "the 10k test images evaluated every 500 iterations (Fig. 6 plots test "
    "error during training; the interval is not stated)",
    "final number": "the test error at the last iteration (64k), never the best during "
    "training; several seeds give best-of-N and mean ± std",
    "precision": "bf16 autocast and channels_last on a GPU (the paper: fp32), fp32 on a CPU",
}
PAPER_CHOICES: tuple[tuple[str, str], ...] = tuple(_PAPER.items())

# The ImageNet protocol's open choices (He et al. 2016, section 3.4 states the rest), shown like
# PAPER_CHOICES by the README and the report's ImageNet section.
_IMAGENET = {
    "plateaus": "the paper divides the lr by 10 'when the error plateaus'; fixed here at "
    f"{', '.join(f'{m:,}' for m in IMAGENET_MILESTONES)} iterations (every 30 epochs of "
    "1.28M images at batch 256, fb.resnet.torch's step), of the paper's 600,000",
    "per-pixel mean": "the mean 224x224 image of 10,000 training images drawn with the split "
    "seed, each resized to 256 and centre-cropped as for evaluation, on [0, 1]-scaled pixels",
    "colour augmentation": "AlexNet's PCA lighting noise (std 0.1, fb.resnet.torch's "
    "eigenvectors); no brightness, contrast or saturation jitter",
    "10-crop": "shorter side resized to 256, four corners and centre of 224, and their flips",
    "multi-scale (Table 4)": "the whole image at shorter sides 224, 256, 384, 480 and 640, each "
    "with its horizontal flip (as the dense evaluation of the paper's [41], which the paper "
    "follows); the logits averaged over the flips, then uniformly over the scales; each scale "
    "normalised by the per-pixel mean's per-channel average (a 224x224 mean fits no other size)",
    "curves": "validation error of the centre crop (Fig. 4's bold curves) every 5,000 "
    "iterations; the 10-crop and multi-scale errors once, at the end",
    "BatchNorm batch": "the whole batch of 256 (synchronised BN across GPUs with --sync-bn)",
    "precision": "bf16 autocast and channels_last on a GPU (the paper: fp32)",
}
IMAGENET_CHOICES: tuple[tuple[str, str], ...] = tuple(_IMAGENET.items())
