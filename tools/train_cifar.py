"""Training and data for ``bench_your_model.py``: the CIFAR-10 splits decoded once (cached), and a short seeded
SGD training run of a model of ``tools/your_models.py``, as a user would train theirs before compressing it."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hirelc_deploy.data import ImageSet, Normalize, load_images, open_dataset
from hirelc_deploy.models.registry import resolve_model
from hirelc_deploy.records import ModelRef
from hirelc_deploy.runs import sha256
from hirelc_deploy.settings import REPO_ROOT

MODELS_FILE = "tools/your_models.py"


def rel(path: Path) -> str:
    """A path as the commands (run from the repository root) spell it."""
    return os.path.relpath(Path(path).resolve(), REPO_ROOT)


def _decode(args: tuple[str, str, list[int]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    root, split, indices = args
    torch.set_num_threads(1)
    images = load_images(open_dataset(root, split), indices)
    return images.images, images.labels, images.classes


def decoded(root: Path, split: str, cache: Path, workers: int = 2) -> ImageSet:
    """The whole split decoded to uint8 (JPEG decoding is ~4 ms an image here: cached in OUT_DIR, two workers)."""
    dataset = open_dataset(root, split)
    key = hashlib.sha256(f"{Path(root).resolve()}|{split}|{len(dataset)}".encode()).hexdigest()[:12]
    path = cache / f"cifar10-{split}-{key}.pt"
    if path.exists():
        blob = torch.load(path, weights_only=True)
        return ImageSet(blob["images"], blob["labels"], list(blob["classes"]))
    chunks = np.array_split(np.arange(len(dataset)), workers * 4)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_decode, [(str(root), split, c.tolist()) for c in chunks])
    images = ImageSet(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), parts[0][2])
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({"images": images.images, "labels": images.labels, "classes": images.classes}, path)
    return images


def spec_of(name: str):
    """The package's own spec of the model (same factory, input shape and normalisation the CLI will use)."""
    return resolve_model(ModelRef(f"{MODELS_FILE}:{name}", input_shape=[3, 32, 32]))


@torch.no_grad()
def top1(model: torch.nn.Module, images: ImageSet, normalize: Normalize, size) -> float:
    model.eval()
    correct = 0
    for x, y in images.batches(500, normalize, size):
        correct += int((model(x.contiguous(memory_format=torch.channels_last)).argmax(1) == y).sum())
    return correct / len(images)


def train(name: str, train_set: ImageSet, test_set: ImageSet, epochs: float, args, ckpt: Path) -> dict:
    spec = spec_of(name)
    torch.manual_seed(args.seed)
    model = spec.build().to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    normalize = Normalize(spec.mean, spec.std)
    size = spec.input_shape[1:]
    steps_per_epoch = len(train_set) // args.batch_size
    total = max(1, round(epochs * steps_per_epoch))
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=args.lr, momentum=0.9, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=total, pct_start=0.15,
                                                   anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
    start = time.perf_counter()
    step, epoch, history = 0, 0, []
    model.train()
    while step < total:
        seen = loss_sum = correct = 0
        for x, y in train_set.batches(args.batch_size, normalize, size, shuffle=True, augment=True,
                                      seed=args.seed * 1000 + epoch, drop_last=True):
            x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            if step % 50 == 0 or step == total:
                print(f"  {name} epoch {epoch} step {step}/{total} loss {loss_sum / seen:.3f} "
                      f"train acc {correct / seen:.3f} lr {schedule.get_last_lr()[0]:.4f} "
                      f"{time.perf_counter() - start:.0f} s", flush=True)
            if step >= total:
                break
        history.append({"epoch": epoch, "steps": seen // args.batch_size, "loss": loss_sum / max(seen, 1),
                        "train_top1_augmented": correct / max(seen, 1)})
        epoch += 1
    train_s = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format)
    test_top1 = top1(model, test_set, normalize, size)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, ckpt)
    return {"model": name, "params": params, "epochs": epochs, "steps": total, "batch_size": args.batch_size,
            "train_images": len(train_set), "recipe": f"SGD nesterov momentum 0.9, one-cycle cosine max lr {args.lr} "
            f"(15% warm-up from lr/10, to lr/1000), weight decay {args.weight_decay} (not on BN/bias), "
            f"4-px padded random crop + horizontal flip, seed {args.seed}, channels_last, "
            f"normalisation mean {list(spec.mean)} std {list(spec.std)}",
            "train_s": train_s, "test_top1_torch": test_top1, "test_images": len(test_set),
            "history": history, "checkpoint": rel(ckpt), "checkpoint_sha256": sha256(ckpt)}


# ---------------------------------------------------------------------------------------------- hirelc phases
