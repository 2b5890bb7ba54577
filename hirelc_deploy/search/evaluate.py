"""The real accuracy signal: build a candidate for real and score it on held-out training images.

A candidate is the uncompressed model with channels and blocks physically removed by the same code export
uses (torch-pruning, Fisher channel importance), its BatchNorm statistics re-estimated on training images,
and its INT8 blocks simulated as ONNX Runtime will run them (``apply/fake_quant.py``, the simulation the
quantization-aware fine-tune trains with: BN-folded per-channel INT8 weights, UINT8 activations at the tensors
ONNX Runtime quantizes, ranges calibrated on the FP32 graph like export's). It is scored on a held-out part of
the *train* split, never the test split: top-1 against the labels (the proxy accuracy the search maximises) and,
against the uncompressed model, argmax agreement and mean KL divergence of the softmax outputs. Results are cached
by configuration, so a configuration is built and scored once however many strategies or seeds propose it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..apply import prune_to_widths, recalibrate_batchnorm
from ..apply.fake_quant import attach
from ..compute import device_of, to_device
from ..models import BlockInfo
from ..precision import Precision
from ..sensitivity import Sensitivity
from .executors import LocalExecutor


@dataclass(frozen=True)
class EvalResult:
    """Accuracy proxy of one candidate on the held-out images."""

    top1: float  # fraction correct: the proxy accuracy the search maximises
    agreement: float  # fraction of images where the candidate's argmax equals the uncompressed model's
    kl: float  # mean KL(uncompressed || candidate) of the softmax outputs
    seconds: float  # wall time of building and scoring the candidate

    def key(self) -> tuple[float, float]:
        """Ordering of candidates: higher top-1, then lower KL."""
        return self.top1, -self.kl

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalData:
    """Normalised tensors the evaluator uses: BatchNorm and calibration batches from train, held-out images."""

    bn_batches: list[torch.Tensor]
    calibration: torch.Tensor
    heldout: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_prepared(cls, data, bn_images: int = 512, calibration_images: int = 128, batch_size: int = 128
                      ) -> "EvalData":
        """Take the first images of a ``pipeline.PreparedData``'s train and held-out sets.

        BatchNorm statistics are re-estimated under the training augmentation (padded crops, flips): the
        networks were trained, and their statistics accumulated, under it, and plain images give statistics
        that cost the uncompressed ResNet-56 three points of held-out accuracy where augmented ones gain two.
        INT8 ranges are calibrated on plain images, as export calibrates them.
        """
        train = data.train.subset(range(min(max(bn_images, calibration_images), len(data.train))))
        bn = [x for x, _ in train.subset(range(min(bn_images, len(train))))
              .batches(batch_size, data.normalize, data.size, augment=True, seed=0)]
        calibration = next(train.batches(calibration_images, data.normalize, data.size))[0]
        xs, ys = zip(*data.heldout_batches(batch_size))
        return cls(bn, calibration, torch.cat(xs), torch.cat(ys))


Config = tuple[Sequence[int], Sequence[str]]  # (widths, precisions) of one candidate


class Evaluator:
    """Builds and scores candidates on the device of ``teacher``; ``cache`` may be shared between searches
    (results do not depend on the strategy, the seed or the target). Where the candidates are built and scored
    is the ``executor``'s business (``executors.py``: this process by default, or Ray workers); the cache and
    the order of the results stay here."""

    def __init__(self, teacher: nn.Module, blocks: Sequence[BlockInfo], input_shape: Sequence[int], data: EvalData,
                 sensitivity: Sensitivity, cache: dict | None = None, batch_size: int = 250, executor=None):
        self.teacher = teacher.eval()
        self.blocks = list(blocks)
        self.input_shape = tuple(input_shape)
        self.data = data
        self.sensitivity = sensitivity
        self.cache = {} if cache is None else cache
        self.batch_size = batch_size
        self.executor = executor or LocalExecutor()
        self.reference = self._logits(self.teacher)

    def __getstate__(self) -> dict:
        # What a worker needs to score candidates: never the cache (the caller's) nor the executor (its own), and
        # the model on the CPU (a worker moves it to its own GPU, if it was given one).
        teacher = self.teacher if device_of(self.teacher).type == "cpu" else copy.deepcopy(self.teacher).cpu()
        return {**self.__dict__, "cache": {}, "executor": None, "teacher": teacher}

    @torch.no_grad()
    def _logits(self, model: nn.Module) -> torch.Tensor:
        # Candidates run on the teacher's device (``--device``); the scores are compared on the CPU.
        device = device_of(model)
        return torch.cat([model(to_device(x, device)).cpu() for x in self.data.heldout.split(self.batch_size)])

    def build(self, widths: Sequence[int], precisions: Sequence[str],
              tune: Callable[[nn.Module], None] | None = None) -> nn.Module:
        """The candidate itself: pruned, BatchNorm-recalibrated, tuned by ``tune`` if given (a short
        distillation: ``jobs/rerank.py``), INT8 blocks simulated."""
        model = copy.deepcopy(self.teacher)
        prune_to_widths(model, self.blocks, widths, (1, *self.input_shape), self.sensitivity, "fisher")
        recalibrate_batchnorm(model, iter(self.data.bn_batches), sum(len(b) for b in self.data.bn_batches))
        if tune is not None:
            tune(model)
        int8 = [b for b, w, p in zip(self.blocks, widths, precisions) if p == Precision.INT8 and w > 0]
        if int8:
            simulated = attach(model, int8)
            simulated.calibrate([self.data.calibration])
            simulated.freeze()
        return model.eval()

    def score(self, model: nn.Module, start: float) -> EvalResult:
        """``model``'s proxy scores on the held-out images; ``start`` is when building it began."""
        logits = self._logits(model)
        reference = self.reference
        kl = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(reference, 1), log_target=True, reduction="batchmean")
        return EvalResult(
            top1=float((logits.argmax(1) == self.data.labels).float().mean()),
            agreement=float((logits.argmax(1) == reference.argmax(1)).float().mean()),
            kl=float(kl),
            seconds=time.perf_counter() - start,
        )

    def compute(self, widths: Sequence[int], precisions: Sequence[str]) -> EvalResult:
        """Build and score one configuration here and now, cache or not (what an executor runs)."""
        start = time.perf_counter()
        return self.score(self.build(widths, precisions), start)

    def __call__(self, widths: Sequence[int], precisions: Sequence[str]) -> tuple[EvalResult, bool]:
        """Score a configuration; returns the result and whether it came from the cache."""
        return self.evaluate_many([(widths, precisions)])[0]

    def evaluate_many(self, configs: Sequence[Config]) -> list[tuple[EvalResult, bool]]:
        """Score configurations (the search's ask-k/tell-k batch) in their order, each with whether it came from
        the cache. The uncached ones are computed together by the executor, so they can run in parallel; the
        results are the same however many workers it has (each candidate is built and scored on its own)."""
        keys = [(tuple(int(w) for w in widths), tuple(precisions)) for widths, precisions in configs]
        cached = [key in self.cache for key in keys]
        todo = list(dict.fromkeys(key for key, hit in zip(keys, cached) if not hit))
        if todo:
            results = self.executor.run(self, todo)
            self.cache.update(zip(todo, results))
        return [(self.cache[key], hit) for key, hit in zip(keys, cached)]
