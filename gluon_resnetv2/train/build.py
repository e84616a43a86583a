"""Building a training run: devices, kvstore, data loaders, the network and its trainer.

BatchNorm (He et al. 2016, Sec. 3.1: 2 x 64 images on two GPUs): each device normalises its own slice and
keeps its own running statistics, averaged over the devices and workers before every evaluation and
checkpoint (:class:`~.kvstore.RunningStatsSync`).
"""

import os
import sys

import mxnet as mx
from mxnet import gluon

from ..data import load_dataset, make_loader
from ..memory import configure_from_env
from ..nets.zoo import get_model, get_spec
from . import checkpoint as ckpt
from . import runlog, syncbn, tweaks
from .bf16 import bf16_forward, check_bf16
from .devices import check_batch_split, make_contexts, preflight_gpus
from .ema import EMA_CHECKPOINT_MEMBER, EMA_COLUMNS, EMA_MODEL_NAME, WeightEMA
from .kvstore import (
    RunningStatsSync,
    WorkerSum,
    create_kvstore,
    group_allreduce,
    init_trainer_store,
    is_distributed,
)
from .precise_bn import loader_batches, recompute_bn_stats
from .recipe import TrainConfig
from .regularize import make_batch_transform
from .resume_check import check_resume, config_record
from .schedule import make_schedule, total_iterations
from .steps import derived_seed, evaluate, forward_backward, make_trainer, materialize, seed_everything, subset

MODEL_NAME = "model.params"
SYNTHETIC_NOTE = "synthetic data (random images, not a real data set: the error says nothing about real images)"


class RunSetup:
    """What a run is made of: contexts, kvstore, data, network, trainer (:class:`~.loop.Run` trains it)."""

    def __init__(self, config, resume_state=None):
        if not isinstance(config, TrainConfig):
            raise TypeError("train() takes a TrainConfig (gluon_resnetv2.train.TrainConfig)")
        self.config = cfg = config.resolved()
        self.out = cfg.out

        get_spec(cfg.model)  # an unknown name fails now, before any data is read
        self.contexts = make_contexts(cfg.cpus, cfg.gpus)
        if cfg.dtype == "float16" and any(ctx.device_type == "cpu" for ctx in self.contexts):
            raise ValueError(
                "--dtype float16 needs GPUs (--gpus): MXNet's CPU kernels have no float16 "
                "convolution/GEMM; train in float32 on the CPU"
            )
        if cfg.dtype == "bfloat16":
            check_bf16(self.contexts)
        # bfloat16 (AMP) casts inside the graph: the network's input and parameters stay float32
        self.input_dtype = "float16" if cfg.dtype == "float16" else "float32"
        if cfg.gpus is not None:
            preflight_gpus(cfg.gpus)
        self.kv, self.rank, self.num_workers = create_kvstore(cfg.kvstore, self.contexts)
        self.distributed = is_distributed(cfg.kvstore)
        self.is_chief = self.rank == 0
        self.per_worker_batch = check_batch_split(cfg.batch_size, len(self.contexts), self.num_workers)
        self._build_data()
        self._build_net()
        self.schedule = make_schedule(cfg, self.iterations_per_epoch)
        self.total = total_iterations(cfg, self.iterations_per_epoch)
        self.batch_transform = make_batch_transform(cfg, self.num_classes, self.total, self.iterations_per_epoch)
        # dense targets when smoothing or mixing; the paper's sparse labels otherwise (bit-identical)
        self.train_loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=not self.batch_transform.active)
        if resume_state is not None:
            check_resume(cfg, resume_state, self.total, self.out)
        self.resume_state = resume_state

    # -- construction -------------------------------------------------------------------------------

    def _build_data(self):
        cfg = self.config
        options = dict(cfg.dataset_options or {})
        train_set = subset(load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train", **options), cfg.train_subset)
        test_set = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="test", **options)
        self.num_classes = train_set.num_classes
        self.log_columns = runlog.log_columns(self.num_classes) + (EMA_COLUMNS if cfg.ema else ())
        self.image_shape = tuple(train_set.image_shape)
        shard = (self.rank, self.num_workers) if self.num_workers > 1 else None
        if len(train_set) // self.num_workers < self.per_worker_batch:
            raise ValueError(
                f"--batch-size {cfg.batch_size} is larger than the {len(train_set)} training images "
                f"of {cfg.dataset}" + (f" per {self.num_workers} workers" if self.num_workers > 1 else "")
            )
        self.train_loader = make_loader(
            train_set,
            self.per_worker_batch,
            train=True,
            augment=cfg.augment,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            shard=shard,
            last_batch="discard",
            **self._hand_over(),
        )
        eval_batch = max(self.per_worker_batch, len(self.contexts))
        self.test_loader = make_loader(
            test_set,
            eval_batch,
            train=False,
            seed=cfg.seed,
            num_workers=cfg.num_workers,
            shard=shard,
            last_batch="keep",
            **self._hand_over(),
        )
        self.subset_loader = None
        if cfg.eval_subset is not None and cfg.eval_subset > len(test_set):
            raise ValueError(
                f"--eval-subset {cfg.eval_subset} is larger than the {len(test_set)} test images of "
                f"{cfg.dataset}: give 1..{len(test_set)}"
            )
        if cfg.eval_subset is not None and cfg.eval_subset < len(test_set):
            small = subset(test_set, cfg.eval_subset, spread=True)
            if self.num_workers > len(small):
                raise ValueError(f"--eval-subset {cfg.eval_subset} is smaller than the number of workers")
            self.subset_loader = make_loader(
                small,
                eval_batch,
                train=False,
                seed=cfg.seed,
                num_workers=cfg.num_workers,
                shard=shard,
                last_batch="keep",
                **self._hand_over(),
            )
        self.iterations_per_epoch = len(self.train_loader)

    def _hand_over(self):
        """ImageNet batches come as uint8 and are normalised on the devices (:mod:`gluon_resnetv2.data.device`),
        from page-locked memory when those are GPUs."""
        return {"hand_over": "uint8", "pin_memory": any(ctx.device_type == "gpu" for ctx in self.contexts)}

    def _build_net(self):
        cfg = self.config
        seed_everything(cfg.seed)
        kwargs = dict(cfg.model_kwargs or {})
        kwargs.setdefault("classes", self.num_classes)
        if cfg.sync_bn:
            kwargs = syncbn.sync_bn_kwargs(self.contexts, kwargs)
        self.net = net = get_model(cfg.model, **kwargs)
        net.initialize(ctx=self.contexts)
        if cfg.dtype == "float16":
            net.cast(cfg.dtype)
        net.hybridize(static_alloc=True)
        materialize(net, self.image_shape, self.contexts[0], self.input_dtype)
        if cfg.sync_bn:
            syncbn.warm_up(net, self.image_shape, self.contexts, self.input_dtype)
        if cfg.zero_init_last:
            tweaks.zero_init_last(net)
        if cfg.no_wd_norm_bias:
            tweaks.exclude_norm_bias_from_wd(net)
        # GLUON_RESNETV2_MIRROR=1: recompute segments of units in the backward pass (memory at depth).
        self.train_forward = configure_from_env(net)
        self.eval_forward = net
        if cfg.dtype == "bfloat16":
            if self.train_forward is not net:
                raise ValueError("--dtype bfloat16 and GLUON_RESNETV2_MIRROR=1 (recomputation) cannot be combined")
            self.train_forward = self.eval_forward = bf16_forward(net)  # shares net's parameters
        self.trainer = make_trainer(net.collect_params(), cfg, self.kv)
        self.ema = WeightEMA(net, cfg.ema) if cfg.ema else None  # from the initial weights
        group_allreduce(self.trainer)  # nccl: 16 gradient arrays per call instead of one
        self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        # SyncBatchNorm blocks across devices: one thread per device (.syncbn)
        self.forward_backward = syncbn.threaded_forward_backward if cfg.sync_bn else forward_backward
        # loss, errors, images (and the top-5 errors of an evaluation)
        self.worker_sum = WorkerSum(self.kv, 4) if self.distributed else None
        self.sync_stats = RunningStatsSync(net, self.contexts, self.kv if self.distributed else None, self.num_workers)
        init_trainer_store(self.trainer, self.kv if self.distributed else None)  # after every kv.init

    # -- helpers ------------------------------------------------------------------------------------

    def _evaluate(self, loader):
        """``{test_loss, test_error}`` on ``loader``, and ``test_top5_error`` for 100 classes or more (and
        ``ema_test_loss``, ``ema_test_error`` of the weight average under ``--ema``)."""
        if self.config.precise_bn:
            self._precise_bn()
        self.sync_stats()
        top5 = runlog.TOP5_COLUMN in self.log_columns
        values = evaluate(
            self.eval_forward, loader, self.contexts, self.loss_fn, self.input_dtype, self.worker_sum, top5=top5
        )
        result = dict(zip(("test_loss", "test_error", runlog.TOP5_COLUMN), values))
        if self.ema is not None:
            with self.ema.applied():
                averaged = evaluate(
                    self.eval_forward, loader, self.contexts, self.loss_fn, self.input_dtype, self.worker_sum
                )
            result.update(zip(EMA_COLUMNS, averaged))
        return result

    def _precise_bn(self):
        """``--precise-bn N``: the BN statistics of the current weights, from N batches of this epoch."""
        batches = loader_batches(self.train_loader, self.config.precise_bn, self.train_loader.epoch)
        parallel = syncbn.in_threads if self.config.sync_bn else None
        recompute_bn_stats(
            self.eval_forward, batches, self.contexts, self.train_loader.prepare, self.input_dtype, parallel
        )

    def _checkpoint(self, iteration, epoch, batch, interval, elapsed, log):
        self.sync_stats()
        if self.is_chief:
            log.sync()
            ckpt.save_checkpoint(
                self.out,
                self.net,
                self.trainer,
                {
                    "iteration": iteration,
                    "epoch": epoch,
                    "batch": batch,
                    "log_rows": log.rows,
                    "interval": interval.state(),
                    "elapsed": elapsed,
                    "total": self.total,
                    "config": config_record(self.config),  # what a resume checks config.json against
                },
                extra={EMA_CHECKPOINT_MEMBER: self.ema.state_bytes()} if self.ema is not None else None,
            )
            runlog.write_status(
                self.out,
                "running",
                iteration=iteration,
                epoch=iteration / self.iterations_per_epoch,
                total_iterations=self.total,
                pid=os.getpid(),
            )
        mx.random.seed(derived_seed(self.config.seed, self.rank, 1, iteration))

    def _save_model(self):
        data = ckpt.params_bytes(self.net, self.trainer)  # float32, also from a float16 run
        if self.is_chief:
            ckpt.atomic_write_bytes(os.path.join(self.out, MODEL_NAME), data)
            if self.ema is not None:
                with self.ema.applied():
                    ckpt.atomic_write_bytes(os.path.join(self.out, EMA_MODEL_NAME), ckpt.params_bytes(self.net))
        if self.distributed:
            workers = os.path.join(self.out, "workers")
            os.makedirs(workers, exist_ok=True)
            ckpt.atomic_write_bytes(os.path.join(workers, f"rank{self.rank}.params"), data)

    def _data_fields(self):
        """What status.json says of the data: its name, and for the synthetic set that it is not real."""
        if self.config.dataset == "synthetic":
            return {"dataset": "synthetic", "synthetic": True, "note": SYNTHETIC_NOTE}
        return {"dataset": self.config.dataset, "synthetic": False}

    def _say(self, text):
        if self.is_chief and self.config.progress:
            print(text, file=sys.stderr, flush=True)
