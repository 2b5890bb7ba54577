"""Typed records: every JSON file a run writes is one of these dataclasses, saved with a schema version.

``Record`` gives a dataclass its JSON round trip. Reading checks the schema version and every field against
the dataclass's own annotations (a number is not a bool, a list of numbers holds only numbers, nested records are
records), so a reader such as the report never re-declares a record's fields, and a damaged file is a one-line
``InputError`` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .errors import InputError
from .runs import atomic_write_json, read_json_object

R = TypeVar("R", bound="Record")


class Record:
    """Mixin for dataclasses saved as JSON: ``to_dict``, ``from_dict``, ``save`` and ``load``.

    Subclasses name what they are (``what``, used in errors) and end with a ``schema_version`` field whose
    default is the version they write; a file with another version is refused.
    """

    what: ClassVar[str] = "record"

    def to_dict(self) -> dict:
        """JSON-ready form (nested records and tuples become objects and lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: Any, source: str = "") -> R:
        """The record in ``data``, checked field by field; InputError naming ``source`` when it does not fit."""
        source = source or cls.what
        if not isinstance(data, dict):
            raise InputError(f"{source}: not a {cls.what} (expected a JSON object)")
        expected = _schema_version(cls)
        if data.get("schema_version") != expected:
            raise InputError(f"{source}: schema_version {data.get('schema_version')!r} of this {cls.what} is "
                             f"unsupported (expected {expected})")
        return _build(cls, data, source)

    def save(self, path: Path) -> Path:
        """Write the record atomically."""
        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    @classmethod
    def load(cls: type[R], path: Path) -> R:
        """Read a record written by ``save``."""
        return cls.from_dict(read_json_object(Path(path), cls.what, InputError), str(path))


def _schema_version(cls: type) -> int:
    field = next((f for f in dataclasses.fields(cls) if f.name == "schema_version"), None)
    if field is None or not isinstance(field.default, int):
        raise TypeError(f"{cls.__name__}: a Record needs a schema_version field with an integer default")
    return field.default


@functools.cache
def annotated_fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """A dataclass's init fields with their resolved annotations (resolved once per class: every line of
    candidates.jsonl is a record)."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)


def _build(cls: type, data: dict, source: str):
    values = {}
    for field, hint in annotated_fields(cls):
        if field.name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise InputError(f"{source}: malformed {getattr(cls, 'what', cls.__name__)} ('{field.name}' missing)")
            continue
        values[field.name] = conform(data[field.name], hint, f"{source}: '{field.name}'")
    return cls(**values)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def conform(value: Any, kind: Any, where: str) -> Any:
    """``value`` checked against the annotation ``kind`` (InputError naming ``where`` when it does not fit):
    nested dataclasses built from objects, tuples made from lists, integers accepted where a number is."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return conform(value, option, where)
            except InputError as exc:
                errors.append(exc)
        raise errors[0]
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise InputError(f"{where} is not an object")
        return _build(kind, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where} is not a list")
        element = args[0] if args else Any
        items = [conform(v, element, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where} is not an object")
        return value
    if kind is float:
        if not _is_number(value):
            raise InputError(f"{where} is not a number")
        return float(value)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{where} is not an integer")
        return value
    if kind in (str, bool):
        if not isinstance(value, kind):
            raise InputError(f"{where} is not {'text' if kind is str else 'true or false'}")
        return value
    raise TypeError(f"{where}: annotation {kind!r} is not supported in records")


@dataclass(frozen=True)
class ModelRef:
    """Which model a run uses: a zoo name, or a factory (``file.py:factory`` or ``package.module:factory``) with
    its keyword arguments, input shape (C, H, W) and input normalisation; None means the model's defaults."""

    model: str
    args: dict = dataclasses.field(default_factory=dict)
    input_shape: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None


@dataclass(frozen=True)
class DataOptions:
    """How a run reads its images and where it trains: ``--device`` (auto, cpu, cuda[:N]; latency is always
    measured on the target), ``--data-loading`` (auto, memory, stream), ``--preprocess`` (auto, cifar, imagenet),
    ``--resize`` (imagenet: shorter side before the centre crop), ``--workers`` (DataLoader processes; None = one
    per core up to 8) and ``--skip-bad-images``."""

    device: str = "auto"
    loading: str = "auto"
    preprocess: str = "auto"
    resize: int | None = None
    workers: int | None = None
    skip_bad_images: bool = False


@dataclass(frozen=True)
class CompressConfig:
    """Everything a compress run depends on, with the CLI's defaults."""

    model: str
    weights: str
    data: str
    target: str
    latency_budget: str
    strategy: str = "hirelc"
    evals: int = 100
    finetune_epochs: float | str = 1.0  # a number, or "auto" (``pipeline.plan_finetune``)
    finetune_images: int = 10_000
    finetune_minutes: float | None = None  # wall-time cap of the fine-tune (None: no cap)
    qat: bool = True  # quantization-aware fine-tuning of the INT8 blocks
    heldout_images: int = 1_000
    test_per_class: int | None = None  # test images per class for top-1 before/after (None = the whole split)
    finalists: int = 3
    finalist_images: int = 5_000  # each finalist that met the budget is distilled on these before choosing; 0: not
    seed: int = 0
    table: str | None = None
    model_args: dict = dataclasses.field(default_factory=dict)
    input_shape: list[int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    data_options: DataOptions = DataOptions()
    check_targets: list[str] = dataclasses.field(default_factory=list)  # the policy also timed on these (each)

    @property
    def model_ref(self) -> ModelRef:
        """The model this run compresses, with its factory arguments, input shape and normalisation."""
        return ModelRef(self.model, dict(self.model_args), self.input_shape, self.mean, self.std)


@dataclass(frozen=True)
class CompressRunConfig(Record):
    """``config.json`` of a compress run: the configuration and where and with what it ran."""

    what: ClassVar[str] = "run configuration"
    config: CompressConfig
    weights_file: str
    weights_sha256: str
    run_dir: str
    version: str
    created: str
    fingerprint: dict
    versions: dict
    command: str = "compress"
    data: dict = dataclasses.field(default_factory=dict)  # pipeline.DataPlan: splits, loading, recipe, device
    measured_on: str = ""  # where every latency of the run was measured (Backend.measured_on)
    schema_version: int = 3  # 3: finetune_epochs may be "auto", finetune_minutes, qat, finalist_images


@dataclass(frozen=True)
class ProfileRunConfig(Record):
    """``config.json`` of a profile run."""

    what: ClassVar[str] = "run configuration"
    model: str
    target: str
    target_file: str
    fingerprint: dict
    fractions: list[float] | None = None
    validate: int = 0
    seed: int = 0
    table: str | None = None
    predict: bool = False
    model_ref: ModelRef | None = None
    measured_on: str = ""  # where the table was measured (Backend.measured_on)
    command: str = "profile"
    schema_version: int = 2


@dataclass(frozen=True)
class Status(Record):
    """``status.json``: where a run is (running a stage, failed in one with an error, or complete)."""

    what: ClassVar[str] = "run status"
    state: str  # running, failed or complete
    stage: str
    updated: str
    error: str | None = None
    schema_version: int = 1


@dataclass(frozen=True)
class Baseline(Record):
    """``baseline.json``: the uncompressed model on the device and the budget resolved against it."""

    what: ClassVar[str] = "baseline record"
    uncompressed_ms: float  # measured (predicted on a TensorRT target without a GPU)
    table_predicted_ms: float
    table_drift: float  # device ms per table unit
    budget_ms: float
    budget_table_ms: float
    table_source: str
    schema_version: int = 1


@dataclass(frozen=True)
class Candidate(Record):
    """One line of ``candidates.jsonl``: one evaluated configuration (the search's checkpoint)."""

    what: ClassVar[str] = "candidate"
    strategy: str
    index: int
    widths: list[int]
    precisions: list[str]
    predicted_ms: float  # table units
    top1: float
    agreement: float
    kl: float
    seconds: float
    cached: bool
    schema_version: int = 1


@dataclass(frozen=True)
class SearchRecord(Record):
    """``search.json``: what the search did and the best configuration it found."""

    what: ClassVar[str] = "search record"
    strategy: str
    seed: int
    evals_allowed: int
    evals_used: int
    budget_table_ms: float
    seconds: float
    best_index: int
    best: dict
    # Where the search's time went: candidate evaluations (a cached one at what it cost when first run) and
    # the strategy's own computation (the search's wall time less the evaluations it ran).
    evaluation_seconds: float
    strategy_seconds: float
    executor: str = "local (this process)"  # what ran the evaluations (``search.executors``)
    schema_version: int = 2


@dataclass(frozen=True)
class Finalist:
    """One of the best configurations, timed for real against the uncompressed model."""

    index: int
    widths: list[int]
    precisions: list[str]
    top1: float
    predicted_ms: float  # table units
    measured_ms: float
    spread_ms: float
    uncompressed_ms: float
    budget_ms: float  # against the uncompressed model timed with the finalists
    meets_budget: bool
    chosen: bool = False
    round: int = 0  # the closed-loop round that timed it
    distilled_top1: float | None = None  # held-out top-1 after the finalists' short distillation (``jobs/rerank.py``)


@dataclass(frozen=True)
class LoopRound:
    """One round of the closed loop on the budget (``jobs/finalists.py``): the table the round's finalists were
    chosen from and whether one of them met the budget on the device."""

    round: int
    budget_table_ms: float  # the budget in that table's units
    factors: dict[str, float]  # its per-part correction of the calibrated table (1.0: as calibrated)
    new_evaluations: int  # evaluations a search made for this round (0: finalists from recorded candidates)
    met: bool


@dataclass(frozen=True)
class Finalists(Record):
    """``finalists.json``: the finalists timed for real, round by round; the chosen one is exported."""

    what: ClassVar[str] = "finalists record"
    rows: list[Finalist]
    rounds: list[LoopRound] = dataclasses.field(default_factory=list)
    # Rank correlation of the proxy and the distilled scores over the finalists that met the budget (None when
    # fewer than two did, or they were not distilled).
    spearman: float | None = None
    schema_version: int = 4

    @property
    def chosen(self) -> Finalist:
        """The finalist that was exported."""
        return next(row for row in self.rows if row.chosen)


@dataclass(frozen=True)
class FinalLatency(Record):
    """``final_latency.json``: the exported engine and the uncompressed model over several fresh processes."""

    what: ClassVar[str] = "final latency record"
    engine_ms: float
    uncompressed_ms: float
    engine_rounds_ms: list[float]  # every process's figure, in order
    uncompressed_rounds_ms: list[float]
    speedup: float
    fast: list[bool] = dataclasses.field(default_factory=list)  # which processes ran in the fast state (``verdict.py``)
    rule: str = ""  # which processes the figures above are the median of, and why
    all_speedup: float | None = None  # the median over every process, whatever its state
    schema_version: int = 2


@dataclass(frozen=True)
class TargetCheck:
    """The chosen policy exported for one more target and timed on its device against the same budget."""

    target: str
    measured_on: str
    batch_size: int
    budget_ms: float
    budget_ratio: float  # measured / budget
    verdict: str
    latency: FinalLatency  # the engine against that target's uncompressed model, process by process


@dataclass(frozen=True)
class TargetChecks(Record):
    """``checks.json``: the policy checked against every ``--check-targets`` target's budget."""

    what: ClassVar[str] = "target checks record"
    budget: str
    checks: list[TargetCheck]
    schema_version: int = 1


@dataclass(frozen=True)
class BenchResult(Record):
    """What was measured of one artifact on one target (``hirelc bench``, a run's ``bench.json``).

    Every latency here was measured, never predicted: where the target could not run the artifact (a TensorRT
    engine without a GPU), ``latency_ms`` is None and ``not_measured`` says why.
    """

    what: ClassVar[str] = "benchmark result"
    artifact: str
    target: str
    fingerprint: dict
    input_shape: list[int] | None  # None where the runtime's file does not say it without the runtime (engines)
    file_bytes: int
    latency_ms: dict | None = None  # Timing.to_dict() of the artifact
    baseline: str | None = None
    baseline_latency_ms: dict | None = None
    baseline_file_bytes: int | None = None
    speedup: float | None = None
    measured_with: str = ""
    not_measured: str | None = None
    top1: float | None = None
    top1_images: int | None = None
    baseline_top1: float | None = None
    top1_through: str = ""
    engine: dict = dataclasses.field(default_factory=dict)
    created: str = ""
    schema_version: int = 2

    @property
    def measured(self) -> bool:
        return self.latency_ms is not None


@dataclass(frozen=True)
class CompressSummary(Record):
    """``summary.json``: the result of a compress run, measured or (no device to run on) labelled predicted."""

    what: ClassVar[str] = "run summary"
    model: str
    target: str
    strategy: str
    backend: str
    latency_kind: str  # "measured" on the device, or "predicted" where it could not be measured
    table_kind: str
    table: str  # how the table was obtained
    budget: str
    budget_ms: float
    budget_ratio: float
    meets_budget: bool
    verdict: str
    table_drift: float
    uncompressed_ms_at_start: float
    predicted_ms: float  # device ms (table units x drift)
    predicted_with: str  # how: the calibrated table x drift, or the table as it is
    predicted_table_ms: float
    predicted_uncompressed_ms: float
    measured_ms: float | None
    measured_rounds_ms: list[float]
    uncompressed_ms: float | None
    uncompressed_rounds_ms: list[float]
    speedup: float
    top1_before: float
    top1_after: float
    test_images: int
    top1_through: str
    bytes_before: int
    bytes_after: int
    proxy_top1: float | None = None
    engine: dict = dataclasses.field(default_factory=dict)
    bad_images: list[str] = dataclasses.field(default_factory=list)  # skipped under --skip-bad-images
    schema_version: int = 2

    @property
    def measured(self) -> bool:
        return self.latency_kind == "measured"
