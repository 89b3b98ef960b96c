"""Training loop, optimizers and schedules, evaluation, checkpoints and metrics."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from makemore import models
from makemore.data import IGNORE, SPLITS, Corpus, build_sequences, build_windows
from makemore.errors import UserError
from makemore.files import write_atomic
from makemore.scratch import BatchNorm1d

CHECKPOINT_FORMAT = 1
CHECKPOINT = "model.pt"


@dataclass
class TrainConfig:
    """The lecture's recipe by default: 200k steps of batch 32, SGD at 0.1 then 0.01 for the last quarter."""

    steps: int = 200_000
    batch_size: int = 32
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    schedule: str = "step"  # step: lr * decay_factor from decay_at; cosine: to lr * decay_factor; constant
    decay_at: float = 0.75  # fraction of the steps
    decay_factor: float = 0.1
    weight_decay: float = 0.0
    seed: int = 42
    device: str = "auto"
    eval_every: int = 20_000
    log_every: int = 1_000
    backend: str = "torch"  # torch | jax (hierarchical and conv only; pip install makemore[jax])


OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device: expected auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def lr_at(cfg: TrainConfig, step: int) -> float:
    if cfg.schedule == "step":
        return cfg.lr if step < cfg.decay_at * cfg.steps else cfg.lr * cfg.decay_factor
    if cfg.schedule == "cosine":
        progress = step / max(cfg.steps - 1, 1)
        final = cfg.lr * cfg.decay_factor
        return final + 0.5 * (cfg.lr - final) * (1 + math.cos(math.pi * progress))
    return cfg.lr


class LectureSGD(torch.optim.Optimizer):
    """Plain SGD written as the lecture writes it, p += -lr * grad: the product is rounded before the sum,
    which torch.optim.SGD's fused p.add_(grad, alpha=-lr) does not do, so only this reproduces its digits."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_add_(params, torch._foreach_mul(grads, -group["lr"]))


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer | None:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None  # estimated in closed form (bigram)
    if cfg.optimizer == "sgd":
        return LectureSGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)  # one kernel: 5x on CPU
    raise UserError(f"--optimizer: expected one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")


@torch.no_grad()
def evaluate(model, data, batch_size: int = 1024) -> float:
    """Mean cross-entropy per target over a whole split, with the model in eval mode (BatchNorm uses running
    stats). data is (X, Y) windows (N, T), (N,), or padded sequences (N, T), (N, T) with IGNORE where there is
    no target, and then perhaps the class of each row (N,)."""
    X, Y, *rest = data
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for i in range(0, len(X), batch_size):
        logits, _ = model(X[i : i + batch_size], None, *(t[i : i + batch_size] for t in rest))
        targets = Y[i : i + batch_size]
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
                                 reduction="sum").double()
    model.train(was_training)
    return total.item() / (Y != IGNORE).sum().item()


def examples(model, corpus: Corpus, split: str):
    """The tensors of one split as the model sees them: windows for window models, whole padded sequences for
    sequence models (every split padded to the corpus's longest item), and the class of each item if any."""
    part = corpus.split()[SPLITS.index(split)]
    words, labels = part if corpus.labels is not None else (part, None)
    if model.windowed:
        return build_windows(words, corpus.vocab, model.config.block_size)
    X, Y = build_sequences(words, corpus.vocab, corpus.longest + 1)
    return (X, Y) if labels is None else (X, Y, torch.tensor(labels, dtype=torch.long))


# ----------------------------------------------------------------------------- files


def save_checkpoint(path: Path, state: dict):
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


@dataclass
class Run:
    """A trained model as its run folder holds it: enough for eval and sample with nothing else."""

    folder: Path
    model_name: str
    model: torch.nn.Module
    corpus: Corpus
    train_config: TrainConfig
    state: dict = field(repr=False)

    def examples(self, split: str):
        return examples(self.model, self.corpus, split)


def checkpoint_state(model_name, model, corpus: Corpus, train_cfg, optimizer=None, step=0, generator=None,
                     elapsed=0.0, rank_rng_states=None) -> dict:
    """Everything a run folder needs: to sample and evaluate (model, config, corpus), and to resume exactly
    (optimizer state, step, the batch generator's and torch's random states, training time so far)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "model_config": dataclasses.asdict(model.config),
        "corpus": corpus.state(),
        "train_config": dataclasses.asdict(train_cfg),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "generator": generator.get_state() if generator is not None else None,
        "torch_rng": torch.get_rng_state(),
        "rank_rng_states": rank_rng_states,  # under torchrun: every rank's, at this step
        "elapsed": elapsed,
    }


def load_run(folder, device: str = "cpu") -> Run:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    path = folder / CHECKPOINT
    if not path.is_file():
        raise UserError(f"{folder}: not a run folder (it has no {CHECKPOINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file: truncated, not a zip, foreign pickle
        raise UserError(f"{path}: corrupt checkpoint ({type(e).__name__}); train again") from None
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path}: not a makemore checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise UserError(
            f"{path}: checkpoint format {state['format']} is not the one this makemore reads ({CHECKPOINT_FORMAT}); train again"
        )
    try:
        name = state["model_name"]
        config = models.make_config(name, **state["model_config"])
        model = models.build(name, config)
        model.load_state_dict(state["model"])
        train_cfg = TrainConfig(**state["train_config"])
        corpus = Corpus.from_state(state["corpus"])
    except (KeyError, TypeError, ValueError, RuntimeError, UserError) as e:
        raise UserError(f"{path}: checkpoint does not match this makemore ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    model.to(resolve_device(device)).eval()
    return Run(folder, name, model, corpus, train_cfg, state)


# ----------------------------------------------------------------------------- several processes (torchrun)


@dataclass(frozen=True)
class Ranks:
    """This process among torchrun's: rank 0 of 1 when it runs alone."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        return self.rank == 0  # the one that prints and writes the run folder


def join_ranks(device: torch.device) -> Ranks:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) -> this process's place in the process group, which
    it joins: gloo on the CPU, nccl on GPUs (one per process, by local rank)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def leave_ranks():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # all ranks leave together: a rank that tore its group down while rank 0 still wrote aborted
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- training


def crop_to_longest(batch: list):
    """A batch of whole sequences [X, Y, ...] cut, in place, after its longest word's last target."""
    length = int((batch[1] != IGNORE).sum(1).max())
    batch[:2] = batch[0][:, :length], batch[1][:, :length]


class TrainerEvents:
    """What the trainers of both backends share. Callbacks see every event: fn(trainer, event) with event in
    'step' (after each optimizer step), 'log' (every log_every steps: self.last_log), 'eval' (every eval_every
    steps and at the end: self.last_eval). A subclass has train_data, val_data, step and split_loss(data)."""

    def __init__(self):
        self.callbacks = []
        self.last_log: dict = {}
        self.last_eval: dict = {}
        self.stop = False  # a callback sets it to end the run after the current step (on every rank, under torchrun)
        self.rank_rng_states = None  # under torchrun: every rank's torch RNG state at the last evaluation
        self.ranks = Ranks()  # alone, unless the trainer joins torchrun's processes

    def add_callback(self, fn):
        self.callbacks.append(fn)

    def emit(self, event: str):
        for fn in self.callbacks:
            fn(self, event)

    def evaluate(self) -> dict:
        self.last_eval = {
            "step": self.step,
            "train_loss": self.split_loss(self.train_data),
            "val_loss": self.split_loss(self.val_data),
        }
        self.before_eval_event()
        self.emit("eval")
        return self.last_eval

    def before_eval_event(self):
        """What must be current before the 'eval' callbacks (a checkpoint among them) run."""

    def final_evaluation(self) -> dict:
        if self.last_eval.get("step") == self.step:  # stopped by a callback just after an evaluation
            return self.last_eval
        return self.evaluate()


class Trainer(TrainerEvents):
    """Runs the optimisation in PyTorch, alone or as one of torchrun's processes (DistributedDataParallel).

    With W processes every rank draws the same global batch of batch_size rows from the same generator and takes
    its own share of them (rows rank, rank + W, ...); each rank's loss is weighted by its share of the batch's
    targets, so the averaged gradient is the gradient of the global batch's mean loss, as in one process."""

    def __init__(self, model, cfg: TrainConfig, train_data, val_data, generator: torch.Generator, device,
                 ranks: Ranks = Ranks()):
        super().__init__()
        self.model, self.cfg, self.device, self.ranks = model, cfg, device, ranks
        self.train_data = tuple(t.to(device) for t in train_data)  # (X, Y) or (X, Y, classes)
        self.val_data = tuple(t.to(device) for t in val_data)
        Y = self.train_data[1]
        self.targets_per_row = (Y != IGNORE).sum().item() / len(Y)  # 1 for windows, the mean length + 1 for words
        # On a GPU the padding costs less than the host sync that finding the batch's longest word needs.
        self.crop = Y.ndim == 2 and device.type == "cpu"
        self.generator = generator  # on the CPU: the lecture's torch.randint stream, the same on every device
        self.optimizer = build_optimizer(model, cfg)
        self.net = model  # what the training step calls: the model, or its DistributedDataParallel wrapper
        if ranks.world > 1 and self.optimizer is not None:
            if cfg.batch_size % ranks.world:
                raise UserError(f"--batch-size {cfg.batch_size}: not a multiple of the {ranks.world} processes")
            from torch.nn.parallel import DistributedDataParallel

            # static_graph: the same parameters take part at every step (the WaveNet's last residual never does)
            self.net = DistributedDataParallel(model, static_graph=True)  # on the device join_ranks set
            for module in model.modules():
                if isinstance(module, BatchNorm1d):
                    module.synced = True
        self.step = 0
        self.started = None
        self.elapsed = 0.0  # seconds of training, summed over resumed sessions

    def split_loss(self, data) -> float:
        return evaluate(self.model, data)

    def before_eval_event(self):
        if self.ranks.world > 1:  # a collective: every rank evaluates at the same steps
            import torch.distributed as dist

            self.rank_rng_states = [None] * self.ranks.world
            dist.all_gather_object(self.rank_rng_states, torch.get_rng_state())

    def batch(self):
        """This rank's rows of the next global batch, and the weight of its mean loss (1 when alone)."""
        ix = torch.randint(0, len(self.train_data[0]), (self.cfg.batch_size,), generator=self.generator)
        if self.device.type == "cuda":  # from pinned memory, without waiting: a pageable copy waits for the GPU
            ix = ix.pin_memory().to(self.device, non_blocking=True)
        weight = 1.0
        if self.ranks.world > 1:
            Y = self.train_data[1]
            ours = ix[self.ranks.rank :: self.ranks.world]
            weight = self.ranks.world * (Y[ours] != IGNORE).sum() / (Y[ix] != IGNORE).sum()  # on device: no sync
            ix = ours
        batch = [t[ix] for t in self.train_data]  # X (B, T); Y (B,) or (B, T); classes (B,)
        if self.crop:  # whole sequences on the CPU: no compute for the padding after the batch's longest word
            crop_to_longest(batch)
        return batch, weight

    def run(self) -> dict:
        model, cfg = self.model, self.cfg
        model.train()
        self.started = time.perf_counter()
        elapsed_before = self.elapsed
        steps = cfg.steps
        if self.optimizer is None:  # no parameters to optimise: estimated in closed form
            model.fit(*self.train_data[:2])
            steps = 0
        log_every = max(1, min(cfg.log_every, steps))
        losses = torch.zeros(log_every, device=self.device)  # batch losses since the last log, kept on device
        while self.step < steps:
            batch, weight = self.batch()
            _, loss = self.net(*batch)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * weight if self.ranks.world > 1 else loss).backward()
            lr = lr_at(cfg, self.step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
            losses[self.step % log_every] = loss.detach()  # with several ranks: this rank's share of the batch
            self.step += 1
            self.emit("step")
            if self.step % log_every == 0 or self.step == steps:
                recent = losses[: (self.step - 1) % log_every + 1]
                self.elapsed = elapsed_before + time.perf_counter() - self.started
                self.last_log = {
                    "step": self.step,
                    "loss": recent.mean().item(),
                    "log10_loss": recent.log10().mean().item(),
                    "lr": lr,
                    "time": self.elapsed,
                }
                self.emit("log")
            if self.step % cfg.eval_every == 0 and self.step < steps:
                self.evaluate()
            if self.stop:
                break
        self.elapsed = elapsed_before + time.perf_counter() - self.started
        return self.final_evaluation()


def make_trainer(corpus: Corpus, model_name: str, model_options: dict, cfg: TrainConfig) -> Trainer:
    """The model built as the lecture builds it (seeded generator first, then layers in order), on the lecture's
    split of the corpus, ready to run."""
    device = resolve_device(cfg.device)
    options = dict(model_options)
    fields = models.config_fields(model_name)
    if corpus.classes:
        if "n_classes" not in fields:
            conditioned = [name for name in models.MODELS if "n_classes" in models.config_fields(name)]
            raise UserError(f"--condition: model {model_name!r} takes no class; conditioned models: {', '.join(conditioned)}")
        options["n_classes"] = len(corpus.classes)
    model_cfg = models.make_config(model_name, vocab_size=corpus.vocab.size, **options)
    if model_cfg.block_size == 0:  # "see the whole item": the longest item and its end token
        model_cfg.block_size = corpus.longest + 1
    ranks = join_ranks(device)
    torch.manual_seed(cfg.seed)  # for torch.nn layers' own init and for dropout
    generator = torch.Generator().manual_seed(cfg.seed)  # torch.manual_seed(42) before the model, as in the lecture
    if cfg.backend == "jax" and ranks.world > 1:
        raise UserError("--backend jax: trains in one process; run it without torchrun")
    if cfg.backend == "jax":
        from makemore.jax import MODELS as JAX_MODELS, require

        require()
        if model_name not in JAX_MODELS:
            raise UserError(f"--backend jax: model {model_name!r} has no JAX port; JAX models: {', '.join(JAX_MODELS)}")
        from makemore.jax.train import JaxTrainer

        model = models.build(model_name, model_cfg, generator=generator)  # the same initial weights, then to JAX
        return JaxTrainer(model_name, model, cfg, examples(model, corpus, "train"), examples(model, corpus, "val"),
                          generator)
    if cfg.backend != "torch":
        raise UserError(f"--backend: expected torch or jax, got {cfg.backend!r}")
    model = models.build(model_name, model_cfg, generator=generator).to(device)
    if ranks.world > 1:
        torch.manual_seed(cfg.seed + ranks.rank)  # the same weights on every rank, its own dropout masks
    return Trainer(model, cfg, examples(model, corpus, "train"), examples(model, corpus, "val"), generator, device,
                   ranks)


def resume_trainer(run: Run) -> Trainer:
    """A Trainer that goes on from the run's checkpoint as if it had never stopped: the same weights, optimizer
    state, step, batch stream and random state."""
    state, model = run.state, run.model
    if run.train_config.backend != "torch":
        raise UserError(f"{run.folder}: a run trained with --backend {run.train_config.backend} cannot be resumed "
                        "(its optimizer state is not saved); train again")
    if state["optimizer"] is None:
        raise UserError(f"{run.folder}: a {run.model_name} is counted in one pass; there is nothing to resume")
    if state["step"] >= run.train_config.steps:
        raise UserError(f"{run.folder}: the run is complete ({state['step']:,} of {run.train_config.steps:,} steps)")
    device = resolve_device(run.train_config.device)
    ranks = join_ranks(device)
    model.to(device)
    generator = torch.Generator()
    generator.set_state(state["generator"])
    trainer = Trainer(model, run.train_config, examples(model, run.corpus, "train"), examples(model, run.corpus, "val"),
                      generator, device, ranks)
    trainer.optimizer.load_state_dict(state["optimizer"])
    rank_states = state.get("rank_rng_states")
    if ranks.world > 1 and rank_states is not None and len(rank_states) == ranks.world:
        torch.set_rng_state(rank_states[ranks.rank])  # each rank's dropout goes on where it stopped
    else:
        torch.set_rng_state(state["torch_rng"])
        if ranks.world > 1:
            torch.manual_seed(run.train_config.seed + ranks.rank + state["step"])  # another number of ranks than before
    trainer.step, trainer.elapsed = state["step"], state["elapsed"]
    return trainer


# ----------------------------------------------------------------------------- the run folder


class RunWriter:
    """A Trainer callback that keeps the run folder: config.json at the start, a metrics.jsonl line per log and
    eval, and at every eval the checkpoint, summary.json and loss.png (with plot; else none), each written
    atomically."""

    def __init__(self, folder: Path, data: str, model_name: str, corpus: Corpus, plot: bool = True):
        self.folder, self.data, self.model_name, self.corpus = Path(folder), data, model_name, corpus
        self.plot = plot
        self.metrics: list[dict] = []
        self.saved_step = None

    def start(self, trainer: Trainer):
        """A new run: config.json and an empty metrics.jsonl. A resumed run keeps the metrics up to its
        checkpoint and drops those written after it, which the resumed run writes again."""
        if trainer.step:
            self.metrics = truncate_jsonl(self.folder / "metrics.jsonl", trainer.step)
            self.saved_step = trainer.step
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "data": self.data,
            "model": self.model_name,
            "model_config": dataclasses.asdict(trainer.model.config),
            "train": dataclasses.asdict(trainer.cfg),
        }
        write_atomic(self.folder / "config.json", json.dumps(config, indent=2) + "\n")
        (self.folder / "metrics.jsonl").write_text("")

    def __call__(self, trainer: Trainer, event: str):
        if event not in ("log", "eval"):
            return
        record = trainer.last_log if event == "log" else trainer.last_eval
        self.metrics.append(record)
        with open(self.folder / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if event == "eval":
            self.save(trainer)

    def save(self, trainer: Trainer):
        from makemore.plots import loss_curve

        state = checkpoint_state(self.model_name, trainer.model, self.corpus, trainer.cfg, trainer.optimizer,
                                 trainer.step, trainer.generator, trainer.elapsed,
                                 trainer.rank_rng_states)
        save_checkpoint(self.folder / CHECKPOINT, state)
        self.saved_step = trainer.step
        tokens = trainer.step * trainer.cfg.batch_size * trainer.targets_per_row
        summary = {
            "model": self.model_name,
            "params": models.num_params(trainer.model),
            **trainer.last_eval,
            "time_s": round(trainer.elapsed, 3),
            "tokens_per_s": round(tokens / trainer.elapsed, 1) if trainer.elapsed > 0 else None,
        }
        write_atomic(self.folder / "summary.json", json.dumps(summary, indent=2) + "\n")
        if self.plot:
            loss_curve(self.metrics, self.folder / "loss.png", title=f"{self.model_name} on {self.data}")


def truncate_jsonl(path: Path, step: int) -> list[dict]:
    """A resumed run's records: those up to its checkpoint's step; the ones after it are written again."""
    lines = path.read_text().splitlines() if path.exists() else []
    records = [r for r in map(json.loads, lines) if r["step"] <= step]
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    return records


class UpdateRatios:
    """A Trainer callback (--track-stats) for the lecture's update:data ratio: log10(std(update) / std(weight))
    of every weight matrix, at every step of the first 1,000 and every log_every steps after, into
    update_ratio.jsonl. The update is the parameter's actual change, so it is right for any optimizer."""

    FILE = "update_ratio.jsonl"

    def __init__(self, folder: Path, trainer: Trainer):
        self.path = Path(folder) / self.FILE
        if trainer.step:
            truncate_jsonl(self.path, trainer.step)
        else:
            self.path.write_text("")
        self.weights = {n: p for n, p in trainer.model.named_parameters() if p.ndim >= 2}
        self.before = None  # the weights after the previous step, when the next step is one to record
        if self.wanted(trainer, trainer.step + 1):
            self.snapshot()

    def snapshot(self):
        self.before = {n: p.detach().clone() for n, p in self.weights.items()}

    def wanted(self, trainer: Trainer, step: int) -> bool:
        return step <= 1000 or step % trainer.cfg.log_every == 0

    @torch.no_grad()
    def __call__(self, trainer: Trainer, event: str):
        if event != "step":
            return
        if self.before is not None:
            ratios = {n: ((p - self.before[n]).std() / p.std()).log10().item() for n, p in self.weights.items()}
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": trainer.step, "update_ratio": ratios}) + "\n")
            self.before = None
        if self.wanted(trainer, trainer.step + 1):
            self.snapshot()


class TensorBoard:
    """A Trainer callback (--tensorboard) writing the logged and evaluated scalars for TensorBoard."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard: tensorboard is not installed; pip install tensorboard "
                            "(or makemore[tensorboard])") from None
        self.writer = SummaryWriter(log_dir=str(Path(folder) / "tensorboard"))

    def __call__(self, trainer: Trainer, event: str):
        if event == "log":
            self.writer.add_scalar("train/batch_loss", trainer.last_log["loss"], trainer.step)
            self.writer.add_scalar("train/lr", trainer.last_log["lr"], trainer.step)
        elif event == "eval":
            self.writer.add_scalar("loss/train", trainer.last_eval["train_loss"], trainer.step)
            self.writer.add_scalar("loss/val", trainer.last_eval["val_loss"], trainer.step)
            self.writer.flush()

    def close(self):
        self.writer.close()


class progress_bar:
    """A Trainer callback showing a tqdm bar with the batch loss and steps/s, and a line per evaluation."""

    def __init__(self, trainer: Trainer):
        from tqdm.auto import tqdm

        steps = trainer.cfg.steps if trainer.optimizer is not None else 0  # a count table needs no steps
        self.bar = tqdm(total=steps, initial=trainer.step, unit="step", dynamic_ncols=True, smoothing=0.1, mininterval=0.5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.bar.close()

    def __call__(self, trainer: Trainer, event: str):
        if event == "log":
            self.bar.update(trainer.step - self.bar.n)
            self.bar.set_postfix(loss=f"{trainer.last_log['loss']:.4f}", lr=f"{trainer.last_log['lr']:.3g}")
        elif event == "eval" and trainer.step < trainer.cfg.steps:
            e = trainer.last_eval
            self.bar.write(f"step {e['step']:>7,}: train {e['train_loss']:.4f}, val {e['val_loss']:.4f}")
