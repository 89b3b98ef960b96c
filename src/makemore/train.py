"""Training in PyTorch: batches, whole-split evaluation, and the Trainer (optimizers in optim.py), alone or as one of
torchrun's processes (DistributedDataParallel)."""

from __future__ import annotations

import gc

import torch
import torch.nn.functional as F

from makemore.config import TrainConfig, resolve_device
from makemore.data import IGNORE
from makemore.errors import ConfigError
from makemore.loop import Loop, clone_state
from makemore.models.base import eval_batches, evaluating
from makemore.optim import AdamW, LectureSGD, Optimizer
from makemore.ranks import Ranks, join_ranks, leave_ranks
from makemore.scratch import BatchNorm1d


def build_optimizer(model, cfg: TrainConfig) -> Optimizer | None:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None  # estimated in closed form (bigram)
    if cfg.optimizer == "sgd":
        return LectureSGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def evaluate(model, data, batch_size: int = 1024) -> float:
    """Mean cross-entropy per target over a whole split, with the model in eval mode (BatchNorm uses running
    stats). data is (X, Y) windows (N, T), (N,), or padded sequences (N, T), (N, T) with IGNORE where there is
    no target, and then perhaps the class of each row (N,)."""
    X, Y = data[:2]
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    with evaluating(model):
        for _, (x, targets, *rest) in eval_batches(data, batch_size):
            if hasattr(model, "target_logprobs"):  # an n-gram or a mixture: the targets' probabilities only
                total -= model.target_logprobs(x, targets).sum()
                continue
            logits, _ = model(x, None, *rest)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
                                     reduction="sum").double()
    return total.item() / (Y != IGNORE).sum().item()


def distilled_loss(logits, targets, teacher, share: float):
    """Cross-entropy against a mixed target, share x the teacher's distribution + (1 - share) x the true
    character, averaged over the targets. logits (B, V) or (B, T, V); targets (B,) or (B, T), IGNORE at
    padding; teacher shaped as logits."""
    mask = targets != IGNORE
    logp = F.log_softmax(logits.float(), dim=-1)[mask]  # (N, V): the targets' rows
    mixed = share * teacher[mask] + (1 - share) * F.one_hot(targets[mask], logp.shape[-1])
    return -(mixed * logp).sum(-1).mean()


def crop_to_longest(batch: list):
    """A batch of whole sequences [X, Y, ...] cut, in place, after its longest word's last target."""
    length = int((batch[1] != IGNORE).sum(1).max())
    batch[:2] = batch[0][:, :length], batch[1][:, :length]


class Batches:
    """Random batches of a split's examples, as the lecture draws them: torch.randint from the run's generator
    (on the CPU: the same stream on every device). On the CPU, whole-sequence batches are cut after their
    longest word (on a GPU the padding costs less than the host sync that finding it needs)."""

    def __init__(self, data, batch_size: int, generator: torch.Generator, device):
        self.data, self.batch_size, self.generator, self.device = data, batch_size, generator, device
        self.crop = data[1].ndim == 2 and device.type == "cpu"

    def indices(self) -> torch.Tensor:
        ix = torch.randint(0, len(self.data[0]), (self.batch_size,), generator=self.generator)
        if self.device.type == "cuda":  # from pinned memory, without waiting: a pageable copy waits for the GPU
            ix = ix.pin_memory().to(self.device, non_blocking=True)
        return ix

    def take(self, ix) -> list:
        batch = [t[ix] for t in self.data]  # X (B, T); Y (B,) or (B, T); classes (B,)
        if self.crop:
            crop_to_longest(batch)
        return batch


# ----------------------------------------------------------------------------- the trainer


class Trainer(Loop):
    """Runs the optimisation in PyTorch, alone or as one of torchrun's processes (DistributedDataParallel).

    With W processes every rank draws the same global batch of batch_size rows from the same generator and takes
    its own share of them (rows rank, rank + W, ...); each rank's loss is weighted by its share of the batch's
    targets, so the averaged gradient is the gradient of the global batch's mean loss, as in one process."""

    def __init__(self, model, cfg: TrainConfig, train_data, val_data, generator: torch.Generator, device,
                 ranks: Ranks = Ranks(), teacher: torch.Tensor | None = None):
        super().__init__(cfg)
        self.model, self.device, self.ranks = model, device, ranks
        self.train_data = tuple(t.to(device) for t in train_data)  # (X, Y) or (X, Y, classes)
        self.teacher = None if teacher is None else teacher.to(device)  # like Y, with a distribution per target
        self.val_data = tuple(t.to(device) for t in val_data)
        Y = self.train_data[1]
        self.targets_per_row = (Y != IGNORE).sum().item() / len(Y)  # 1 for windows, the mean length + 1 for words
        self.generator = generator
        self.batches = Batches(self.train_data, cfg.batch_size, generator, device)
        self.optimizer = build_optimizer(model, cfg)
        self.average_pairs = None  # with cfg.ema: (averaged, weights) float tensors and (averaged, live) others
        self.net = model  # what the training step calls: the model, or its DistributedDataParallel wrapper
        if ranks.world > 1 and self.optimizer is not None:
            if cfg.batch_size % ranks.world:
                raise ConfigError("batch_size", f"{cfg.batch_size} is not a multiple of the {ranks.world} processes")
            from torch.nn.parallel import DistributedDataParallel

            # static_graph: the same parameters take part at every step (the WaveNet's last residual never does)
            self.net = DistributedDataParallel(model, static_graph=True)  # on the device join_ranks set
            for module in model.modules():
                if isinstance(module, BatchNorm1d):
                    module.synced = True
        self.settle()

    @classmethod
    def start(cls, model, cfg: TrainConfig, train_data, val_data, generator: torch.Generator,
              teacher: torch.Tensor | None = None) -> Trainer:
        """A trainer on cfg.device, in torchrun's process group when started by torchrun; with the teacher's
        distribution at every training target (see distilled_loss), when cfg.teacher names one."""
        device = resolve_device(cfg.device)
        ranks = join_ranks(device)
        model.to(device)
        if ranks.world > 1:
            torch.manual_seed(cfg.seed + ranks.rank)  # the same weights on every rank, its own dropout masks
        return cls(model, cfg, train_data, val_data, generator, device, ranks, teacher)

    @property
    def total_steps(self) -> int:
        return self.cfg.steps if self.optimizer is not None else 0  # a count table needs no steps

    def batch(self):
        """This rank's rows of the next global batch, the weight of its mean loss (1 when alone), and the rows'
        teacher distributions (None without a teacher)."""
        ix = self.batches.indices()
        weight = 1.0
        if self.ranks.world > 1:
            Y = self.train_data[1]
            ours = ix[self.ranks.rank :: self.ranks.world]
            weight = self.ranks.world * (Y[ours] != IGNORE).sum() / (Y[ix] != IGNORE).sum()  # on device: no sync
            ix = ours
        batch = self.batches.take(ix)
        if self.teacher is None:
            return batch, weight, None
        return batch, weight, self.teacher[ix][:, : batch[1].shape[1]] if batch[1].ndim == 2 else self.teacher[ix]

    def begin(self) -> int:
        self.model.train()
        if hasattr(self.model, "fit"):  # counted, or with a counted part: from the training split, in one pass
            self.model.fit(*self.train_data[:2])
        return self.total_steps

    def train_step(self, lr: float):
        batch, weight, teacher = self.batch()
        if teacher is None:
            _, loss = self.net(*batch)
        else:
            logits, _ = self.net(batch[0], None, *batch[2:])
            loss = distilled_loss(logits, batch[1], teacher, self.cfg.distill)
        self.optimizer.zero_grad()
        (loss * weight if self.ranks.world > 1 else loss).backward()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        if self.cfg.ema:
            self.update_average()
        return loss.detach()  # with several ranks: this rank's share of the batch

    @torch.no_grad()
    def update_average(self):
        """averaged <- ema * averaged + (1 - ema) * weights, for what trains (averaged_keys); the rest of the state
        is copied (counts, and what a model chooses on val or keeps aside: a mixture's share, the kept copies of
        its networks and their losses, which averaged would be snapshots and losses blended). One fused update per
        step: the pairs of tensors are found once (the model's tensors stay the same objects: loading weights
        copies into them)."""
        if self.averaged is None:
            self.averaged = clone_state(self.model)
        if self.average_pairs is None:
            state, trained = self.model.state_dict(), averaged_keys(self.model)
            others = [k for k in state if k not in trained]
            self.average_pairs = tuple(([self.averaged[k] for k in keys], [state[k] for k in keys])
                                       for keys in (trained, others))
        (averaged, weights), (kept, live) = self.average_pairs
        torch._foreach_lerp_(averaged, weights, 1 - self.cfg.ema)
        if kept:
            torch._foreach_copy_(kept, live)

    @torch.no_grad()
    def swap_weights(self, state: dict) -> dict:
        current = clone_state(self.model)
        self.model.load_state_dict(state)
        return current

    def mean_losses(self, losses) -> tuple[float, float]:
        recent = torch.stack(losses)
        return recent.mean().item(), recent.log10().mean().item()

    def leave_ranks(self):
        """Out of torchrun's process group, the DistributedDataParallel wrapper first. Its reducer is freed with the
        GIL held: holding the group's last reference, it made the group's destructor wait for a gloo thread that
        waited for the GIL (to free a tensor of the last collective), and rank 1 hung at exit in CI. The group's
        own object, its last holder now, frees it with the GIL released."""
        if self.net is not self.model:
            self.net = self.model
            gc.collect()  # the wrapper's hooks hold it in reference cycles
        leave_ranks()

    def split_loss(self, data) -> float:
        return evaluate(self.model, data)

    def val_loss(self) -> float:
        if hasattr(self.model, "choose_share"):  # a network and an n-gram: their mixture's share is chosen on val
            return self.model.choose_share(self.val_data)
        return super().val_loss()

    def chosen_on_val(self) -> dict:
        return getattr(self.model, "chosen_on_val", dict)()  # a mixture's share and discount; else nothing

    def out_of_time(self, elapsed: float) -> bool:
        if self.ranks.world == 1:
            return super().out_of_time(elapsed)
        if self.step % 100:  # under torchrun every rank must stop at the same step: they agree every 100 steps
            return False
        import torch.distributed as dist

        late = torch.tensor(float(super().out_of_time(elapsed)), device=self.device)
        dist.all_reduce(late, op=dist.ReduceOp.MAX)
        return bool(late.item())

    def before_eval_event(self):
        if self.ranks.world > 1:  # a collective: every rank evaluates at the same steps
            import torch.distributed as dist

            self.rank_rng_states = [None] * self.ranks.world
            dist.all_gather_object(self.rank_rng_states, torch.get_rng_state())


def averaged_keys(model) -> list[str]:
    """The state's entries a moving average of the weights averages: the parameters that train and the float
    buffers of the modules they belong to (BatchNorm's running statistics)."""
    keys = []
    for prefix, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not any(p.requires_grad for p in own.values()):
            continue
        dot = f"{prefix}." if prefix else ""
        keys += [dot + name for name, p in own.items() if p.requires_grad]
        keys += [dot + name for name, b in module.named_buffers(recurse=False)
                 if b is not None and b.is_floating_point() and name not in module._non_persistent_buffers_set]
    return keys
