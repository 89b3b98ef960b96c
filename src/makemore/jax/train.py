"""Training in JAX: optax optimizers and schedules, a jax.jit-compiled step, whole-split evaluation.

JaxTrainer is a loop.Loop like the PyTorch Trainer, so the run folder (RunWriter) and the progress bar serve
both backends. Its `model` is the PyTorch twin, loaded with the JAX weights at every evaluation: the run
folder holds a PyTorch checkpoint, and `makemore sample` / `eval` read it as any other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
import torch
from flax import nnx

from makemore.config import TrainConfig
from makemore.data import IGNORE
from makemore.jax.models import cross_entropy_sum, set_training, to_jax, to_torch
from makemore.loop import Loop

EVAL_CHUNK = 4096


def schedule(cfg: TrainConfig):
    """TrainConfig.lr_at, as a function of optax's update count: its values, one per step, looked up."""
    lrs = jnp.asarray([cfg.lr_at(step) for step in range(max(cfg.steps, 1))], dtype=jnp.float32)
    return lambda count: lrs[jnp.minimum(count, len(lrs) - 1)]


def optimizer_for(cfg: TrainConfig):
    lr = schedule(cfg)
    if cfg.optimizer == "sgd":  # p += -lr * (grad + weight_decay * p), as LectureSGD
        return optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.sgd(lr)) if cfg.weight_decay else optax.sgd(lr)
    return optax.adamw(lr, weight_decay=cfg.weight_decay)  # torch's AdamW defaults: betas (0.9, 0.999), eps 1e-8


class JaxTrainer(Loop):
    def __init__(self, name: str, torch_model, cfg: TrainConfig, train_data, val_data, generator: torch.Generator):
        super().__init__(cfg)
        self.model, self.generator = torch_model.cpu(), generator
        self.device = torch.device("cpu")  # of the PyTorch twin; JAX places its arrays on its default device
        self.train_data, self.val_data = train_data[:2], val_data[:2]
        Y = self.train_data[1]
        self.targets_per_row = (Y != IGNORE).sum().item() / len(Y)
        self.jax_model = to_jax(name, torch_model.train())
        self.optimizer = None  # no torch optimizer: the optax state lives in self.state

        model = self.jax_model
        optimizer = nnx.Optimizer(model, optimizer_for(cfg), wrt=nnx.Param)
        set_training(model, False)
        eval_graph, _ = nnx.split(model)
        set_training(model, True)
        self.graph, self.state = nnx.split((model, optimizer))
        self.X, self.Y = (jnp.asarray(t.numpy()) for t in self.train_data)

        @jax.jit
        def train_step(state, X, Y, ix):  # one optimizer step on the batch X[ix], Y[ix]
            model, optimizer = nnx.merge(self.graph, state)
            loss, grads = nnx.value_and_grad(lambda m: m(X[ix], Y[ix])[1])(model)
            optimizer.update(model, grads)
            return loss, nnx.state((model, optimizer))

        @jax.jit
        def chunk_loss(model_state, X, Y):  # summed cross-entropy and count of targets, in eval mode
            logits, _ = nnx.merge(eval_graph, model_state)(X)
            return cross_entropy_sum(logits, Y)

        self.jit_step, self.chunk_loss = train_step, chunk_loss
        self.settle()

    def begin(self) -> int:
        return self.cfg.steps

    def train_step(self, lr: float):  # lr: the schedule inside optax gives the same
        # the torch Trainer's batches
        ix = torch.randint(0, len(self.train_data[0]), (self.cfg.batch_size,), generator=self.generator)
        loss, self.state = self.jit_step(self.state, self.X, self.Y, jnp.asarray(ix.numpy()))
        return loss

    def mean_losses(self, losses) -> tuple[float, float]:
        recent = jnp.stack(losses)
        return float(recent.mean()), float(jnp.log10(recent).mean())

    def split_loss(self, data) -> float:
        model_state = self.state[0]
        total, count = 0.0, 0
        X, Y = data
        for i in range(0, len(X), EVAL_CHUNK):
            x, y = X[i : i + EVAL_CHUNK], Y[i : i + EVAL_CHUNK]
            if len(x) < EVAL_CHUNK:  # one compiled shape: pad the last chunk with rows that have no targets
                pad = EVAL_CHUNK - len(x)
                x = torch.cat([x, x[:1].expand(pad, *x.shape[1:])])
                y = torch.cat([y, torch.full((pad, *y.shape[1:]), IGNORE, dtype=y.dtype)])
            s, n = self.chunk_loss(model_state, jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
            total, count = total + float(s), count + int(n)
        return total / count

    def before_eval_event(self):
        model, _ = nnx.merge(self.graph, self.state)
        to_torch(model, self.model)  # the run folder's checkpoint holds these weights
