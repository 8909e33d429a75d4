"""What every encoder is: a backbone that turns crops into patch features, plus a connector
that turns one image's patch features into the LLM-facing token sequence."""

from __future__ import annotations

import inspect
import time
from abc import ABC
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig

from harness.bounds import bounded_int, optional_int
from harness.connectors import Connector, build_connector, connector_class
from harness.encoders.weights import Format, load_weights, resolve
from harness.reduce import Reducer
from harness.reduce.connect import pooled_mean, reduce_views
from harness.reduce.scores import QKRecipe, compute_scores
from harness.runtime import Runtime
from harness.types import EncoderOutput, Layout, Views

ENCODER_SIZES = ("full", "tiny")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
POOLS = ("mean_patch", "global_cls")
MAX_BATCH_VIEWS = 4096  # crops per backbone call
MAX_OUT_DIM = 65536  # connector output width (LLM hidden sizes are at most a few 10^4)


class EncoderModel(nn.Module):
    """Backbone + connector in one module, so that a state dict has `backbone.*` and
    `connector.*` keys (what the weight key maps target)."""

    def __init__(self, backbone: nn.Module, connector: Connector) -> None:
        super().__init__()
        self.backbone = backbone
        self.connector = connector


class Encoder(ABC):
    """Base class for encoders.

    Subclasses set the class constants, among them the backbone as data (`config_class`,
    `model_class`, `presets` by size), and override `run_backbone(pixels) -> [N, 1+P, C]`
    (CLS first) only when the hidden state of `feature_layer` is not it. Token counts are
    class-level (`count_tokens`, `check_layout`) so that `harness.tokens` needs no model.
    """

    name: ClassVar[str]
    tile_size: ClassVar[int]
    patch_size: ClassVar[int]
    mean: ClassVar[tuple[float, float, float]]
    std: ClassVar[tuple[float, float, float]]
    native_connector: ClassVar[str] = "flat"
    # The strategy `preprocess=native` resolves to, with its parameters where they differ from
    # the strategy's defaults.
    native_strategy: ClassVar[str]
    native_strategy_params: ClassVar[dict[str, Any]] = {}
    hf_id: ClassVar[str]
    # Checkpoint formats this encoder reads (key map, connector its tensors fill), tried in order.
    checkpoint_formats: ClassVar[tuple[Format, ...]] = ()
    lm_dim: ClassVar[dict[str, int]] = {"full": 4096, "tiny": 48}  # connector output width by size
    # The backbone: transformers config and model classes and the config keywords of each size
    # preset (`tiny` keeps tile and patch size, so token counts are those of `full`).
    config_class: ClassVar[type[PretrainedConfig]]
    model_class: ClassVar[type[nn.Module]]
    presets: ClassVar[dict[str, dict[str, Any]]]
    layers_key: ClassVar[str] = "num_hidden_layers"  # the preset key holding the number of layers
    # Token reduction between backbone and connector (docs/token_reduction.md), set by
    # `use_reduction`; None is `reduce=none`, today's path.
    reducer: Reducer | None = None
    # Where a reducer finds this backbone's layers, norms and q/k projections (its hidden states
    # start with a CLS token); None: it cannot be reduced, for the reason `no_reduction`.
    qk_recipe: ClassVar[QKRecipe | None] = None
    no_reduction: ClassVar[str] = "it declares no query/key recipe (Encoder.qk_recipe)"
    # True for encoders that take views of any size (Layout.view_size), e.g. Qwen2.5-VL's ViT.
    variable_views: ClassVar[bool] = False
    # The connectors this encoder can take (None: any connector whose layout needs are met).
    connector_choices: ClassVar[tuple[str, ...] | None] = None
    # The hidden state that feeds the connector when `feature_layer` is left null (-2: the layer
    # before the last, as LLaVA-NeXT; families whose reference takes the last layer set -1).
    default_feature_layer: ClassVar[int] = -2

    def __init__(
        self, *, size: str = "full", weights: str = "random", runtime: Runtime, batch_views: int = 16,
        connector: str | None = None, connector_params: dict[str, Any] | None = None, out_dim: int | None = None,
        attn: str = "sdpa", pool: str = "mean_patch", feature_layer: int | None = None, seed: int = 0,
    ) -> None:
        self.check_options(size=size, weights=weights, batch_views=batch_views, attn=attn, pool=pool,
                           connector=connector, out_dim=out_dim, feature_layer=feature_layer, seed=seed)
        self.size, self.weights, self.runtime = size, weights, runtime
        self.batch_views = int(batch_views)
        self.connector_name = connector or self.native_connector
        self.out_dim = int(out_dim or self.lm_dim[size])  # set before build_backbone, which may need it
        self.attn, self.pool_mode = attn, pool
        self.feature_layer = self.default_feature_layer if feature_layer is None else int(feature_layer)
        folder = None
        if weights != "random":
            # resolved before the model is built, so that a missing cache fails fast
            source = self.hf_id if weights == "pretrained" else weights
            folder = resolve(source, [m for m, _ in self.checkpoint_formats])
        self.weights_source = str(folder) if folder else "random"
        torch.manual_seed(seed)
        backbone, feature_dim = self.build_backbone(size, attn)
        conn = build_connector(
            self.connector_name, in_dim=feature_dim, out_dim=self.out_dim,
            grid_side=self.grid_side(), **(connector_params or {}),
        )
        self.model = EncoderModel(backbone, conn).eval()
        if folder is not None:
            self.after_load(load_weights(self.model, folder, self.checkpoint_formats, self.connector_name))
        self.model.to(runtime.device, runtime.dtype)

    # --- the backbone -------------------------------------------------------------------
    def backbone_config(self, size: str, attn: str) -> PretrainedConfig:
        """The transformers config of the preset `size` with this attention implementation."""
        return self.config_class(**self.presets[size], attn_implementation=attn)

    def build_backbone(self, size: str, attn: str) -> tuple[nn.Module, int]:
        """The backbone module (random init) and its feature width C."""
        config = self.backbone_config(size, attn)
        return self.model_class(config), config.hidden_size

    def run_backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """Features `[N, 1+P, C]` (CLS first) of `self.feature_layer` for `N` crops."""
        return self.hidden_states(pixels)[self.feature_layer]

    def hidden_states(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The embeddings and every layer's output `[N, 1+P, C]` (CLS first), what a reducer reads."""
        return self.model.backbone(pixel_values=pixels, output_hidden_states=True).hidden_states

    @classmethod
    def num_layers(cls, size: str) -> int:
        """Transformer layers of the backbone preset `size` (feature_layer indexes its L+1
        hidden states: the embeddings, then each layer's output)."""
        return int(cls.presets[size][cls.layers_key])

    def after_load(self, absent: list[str]) -> None:
        """Called with the model keys a checkpoint lacked where its format allows it (none by default)."""
        return None

    @classmethod
    def check_options(
        cls, *, size: str = "full", weights: str = "random", batch_views: int = 16, attn: str = "sdpa",
        pool: str = "mean_patch", connector: str | None = None, out_dim: int | None = None,
        feature_layer: int | None = None, seed: int = 0, **_: Any,
    ) -> None:
        """Fail on a bad option before any model is built; messages name the valid choices or range."""
        if size not in ENCODER_SIZES:
            raise ValueError(f"encoder size must be one of {', '.join(ENCODER_SIZES)}; got {size!r}")
        bounded_int("batch_views", batch_views, 1, MAX_BATCH_VIEWS)
        optional_int("encoder.out_dim", out_dim, 1, MAX_OUT_DIM)
        bounded_int("seed", seed, 0, 2**32 - 1)
        if feature_layer is not None:
            layers = cls.num_layers(size)
            bounded_int(f"encoder.feature_layer ({cls.name} {size}: {layers} layers)", feature_layer,
                        -(layers + 1), layers)
        if not isinstance(weights, str):
            raise ValueError(f"encoder.weights must be pretrained, random, a hub id or a folder; got {weights!r}")
        if attn not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn must be one of {', '.join(ATTN_IMPLEMENTATIONS)}; got {attn!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        cls.connector_for(connector)
        if weights != "random" and not cls.checkpoint_formats:
            raise ValueError(f"encoder {cls.name!r} reads no checkpoint format; use weights=random")
        if size == "tiny" and weights == "pretrained":
            raise ValueError(
                "encoder.size=tiny has no pretrained weights; use weights=random or a tiny checkpoint folder"
            )

    @classmethod
    def connector_for(cls, connector: str | None) -> type[Connector]:
        """The connector class (native when None), refused when this encoder cannot take it."""
        conn = connector_class(connector or cls.native_connector)
        if cls.connector_choices is not None and conn.name not in cls.connector_choices:
            raise ValueError(
                f"encoder {cls.name!r} takes connector {', '.join(cls.connector_choices)}; got {conn.name!r}"
            )
        if conn.owner is not None and conn.owner != cls.name:
            raise ValueError(f"connector {conn.name!r} runs inside encoder {conn.owner!r}; {cls.name!r} cannot take it")
        return conn

    # --- token counts without a model ---------------------------------------------------
    @classmethod
    def grid_side(cls) -> int:
        return cls.tile_size // cls.patch_size

    @classmethod
    def check_tile_size(cls, tile_size: int, strategy: str = "the strategy") -> None:
        """Raise ValueError when this encoder cannot take square tiles of `tile_size` px."""
        if tile_size != cls.tile_size:
            raise ValueError(
                f"strategy {strategy!r} makes {tile_size}px tiles but encoder {cls.name!r} takes "
                f"{cls.tile_size}px; leave preprocess.tile_size null"
            )

    @classmethod
    def check_layout(cls, layout: Layout, connector: str | None = None) -> None:
        """Raise ValueError when this encoder (with this connector) cannot take `layout`."""
        if layout.view_size is not None and not cls.variable_views:
            raise ValueError(
                f"encoder {cls.name!r} takes {cls.tile_size}px square crops; strategy {layout.strategy!r} makes "
                f"views of variable size (encoders that take them: qwen2_5_vl_vit)"
            )
        if layout.view_size is None:
            cls.check_tile_size(layout.tile_size, layout.strategy)
        cls.connector_for(connector).check(layout)

    @classmethod
    def check_reduction(cls, reducer: Reducer | None, connector: str | None = None) -> None:
        """Raise ValueError (the reason) when this encoder, or its connector, cannot be reduced
        by `reducer`: both declare it (`qk_recipe`/`no_reduction`, `Connector.no_reduction`)."""
        if reducer is None or reducer.name == "none":
            return
        if cls.qk_recipe is None:
            raise ValueError(f"encoder {cls.name!r} cannot be reduced (reduce={reducer.name}): {cls.no_reduction}; "
                             f"use reduce=none")
        cls.connector_for(connector).check_reduction(reducer, cls.grid_side())

    @classmethod
    def count_tokens(cls, layout: Layout, connector: str | None = None, reducer: Reducer | None = None) -> int | None:
        """Visual tokens the forward pass will produce for `layout`; None when a data-dependent
        reduction (adaptive PruMerge) decides per image (see `token_range`)."""
        conn = cls.connector_for(connector)
        if reducer is None or reducer.name == "none":
            return conn.num_tokens(layout, cls.grid_side())
        cls.check_reduction(reducer, connector)
        return conn.reduced_tokens(reducer, layout, cls.grid_side())

    @classmethod
    def token_range(
        cls, layout: Layout, connector: str | None = None, reducer: Reducer | None = None,
    ) -> tuple[int, int]:
        """Least and most visual tokens for `layout` (equal unless the reduction is adaptive)."""
        if reducer is None or reducer.name == "none" or not reducer.adaptive:
            n = cls.count_tokens(layout, connector, reducer)
            assert n is not None
            return n, n
        cls.check_reduction(reducer, connector)
        return cls.connector_for(connector).reduced_range(reducer, layout, cls.grid_side())

    def num_tokens(self, layout: Layout) -> int | None:
        return self.count_tokens(layout, self.connector_name, self.reducer)

    def use_reduction(self, reducer: Reducer | None) -> None:
        """Reduce tokens per view between backbone and connector (None or `none`: no reduction)."""
        self.check_reduction(reducer, self.connector_name)
        self.reducer = None if reducer is None or reducer.name == "none" else reducer

    # --- shared -------------------------------------------------------------------------
    @property
    def connector(self) -> Connector:
        return self.model.connector  # type: ignore[return-value]

    @classmethod
    def options(cls, **given: Any) -> dict[str, Any]:
        """Every option of this encoder with the class defaults filled in (the keyword parameters
        of `__init__` along the MRO, a subclass's over its bases'), the connector and feature
        layer resolved, so that configs that build the same encoder describe it the same way."""
        skip = {"runtime", "connector_params"}
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass) and issubclass(klass, Encoder):
                out.update({p.name: p.default for p in inspect.signature(klass.__init__).parameters.values()
                            if p.kind is p.KEYWORD_ONLY and p.name not in skip and p.default is not p.empty})
        out.update(given)
        out["connector"] = out.get("connector") or cls.native_connector
        if out.get("feature_layer") is None:
            out["feature_layer"] = cls.default_feature_layer
        return out

    @classmethod
    def describe(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Record columns of this encoder with these options (what a failed job can still say)."""
        return {
            "encoder": cls.name,
            "encoder_size": options.get("size"),
            "weights": options.get("weights"),
            "connector": options.get("connector") or cls.native_connector,
            "tile_size": cls.tile_size,
            "patch_size": cls.patch_size,
            "attn": options.get("attn"),
            "pool": options.get("pool"),
        }

    def identity(self) -> dict[str, Any]:
        """Record columns of this running encoder, including where its weights came from."""
        options = {"size": self.size, "weights": self.weights, "attn": self.attn, "pool": self.pool_mode,
                   "connector": self.connector_name}
        return {**self.describe(options), "weights_source": self.weights_source}

    def connect(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """One image's LLM-facing tokens `[T, D]` from its crops' patch features."""
        return self.connector(features, layout)

    def pool(self, features: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Pooled embedding for quality metrics from `[V, 1+P, C]` (CLS first).

        `mean_patch`: mean of the patch features over the content views (padding crops
        excluded). `global_cls`: the CLS vector of the global view (first or last as the
        layout says); a layout without a global view uses the mean CLS of its content views
        (the single view's CLS when there is one).
        """
        if self.pool_mode == "mean_patch":
            return features[: layout.n_views, 1:].float().mean(dim=(0, 1))
        if layout.has_global:
            index = 0 if layout.global_position == "first" else layout.n_views - 1
            return features[index, 0].float()
        return features[: layout.n_views, 0].float().mean(dim=0)

    @torch.inference_mode()
    def encode(self, batch: list[Views]) -> tuple[list[EncoderOutput], dict[str, float]]:
        """Encode the crops of several images, at most `batch_views` crops per backbone call.

        Returns one EncoderOutput per image and the seconds spent per stage for the whole
        batch: `h2d` (host to device copy), `backbone`, `connector`. Padding crops run
        through the backbone (as in the reference implementations) but carry no tokens.
        """
        rt = self.runtime
        counts = [v.pixel_values.shape[0] for v in batch]
        pixels = torch.cat([v.pixel_values for v in batch])
        t0 = time.perf_counter()
        pixels = pixels.to(rt.device, dtype=rt.dtype, non_blocking=True)
        rt.synchronize()
        t1 = time.perf_counter()
        # ceil(n / batch_views) calls of near-equal size (34 crops at 32 -> 17 + 17, not 32 + 2)
        n_calls = -(-pixels.shape[0] // self.batch_views)
        if self.reducer is not None:
            return self._encode_reduced(batch, pixels.tensor_split(n_calls), counts, t1 - t0)
        feats = torch.cat([self.run_backbone(chunk) for chunk in pixels.tensor_split(n_calls)])
        rt.synchronize()
        t2 = time.perf_counter()
        outputs = []
        for views, feat in zip(batch, feats.split(counts), strict=True):
            tokens = self.connect(feat[:, 1:], views.layout)
            outputs.append(EncoderOutput(tokens=tokens.float().cpu(), pooled=self.pool(feat, views.layout).cpu()))
        rt.synchronize()
        t3 = time.perf_counter()
        return outputs, {"h2d": t1 - t0, "backbone": t2 - t1, "connector": t3 - t2}

    def _encode_reduced(
        self, batch: list[Views], chunks: tuple[torch.Tensor, ...], counts: list[int], h2d_s: float,
    ) -> tuple[list[EncoderOutput], dict[str, float]]:
        """`encode` with a reduction: scores of one layer come with the features (their cost is
        counted as `reduce`, with the reduction itself), then reduce and connect per image.
        `mean_patch` pooling becomes the mean of the reduced tokens before the connector."""
        rt, reducer, recipe = self.runtime, self.reducer, self.qk_recipe
        assert reducer is not None and recipe is not None  # use_reduction checked both
        backbone_s = reduce_s = 0.0
        feats, scores = [], []
        for chunk in chunks:
            t0 = time.perf_counter()
            states = self.hidden_states(chunk)
            rt.synchronize()
            t1 = time.perf_counter()
            feats.append(states[self.feature_layer])
            scores.append(compute_scores(recipe, self.model.backbone, states, self.feature_layer, reducer.needs))
            rt.synchronize()
            backbone_s, reduce_s = backbone_s + t1 - t0, reduce_s + time.perf_counter() - t1
        feat_all = torch.cat(feats)
        score_all = {k: torch.cat([s[k] for s in scores]) for k in scores[0]}
        outputs, connector_s = [], 0.0
        start = 0
        for views, n in zip(batch, counts, strict=True):
            feat = feat_all[start : start + n]
            image_scores = {k: v[start : start + n] for k, v in score_all.items()}
            start += n
            t0 = time.perf_counter()
            reduced = torch.cat(reduce_views(reducer, self.connector, feat, image_scores, views.layout))
            rt.synchronize()
            t1 = time.perf_counter()
            tokens = self.connector.project_reduced(reduced)
            rt.synchronize()
            reduce_s, connector_s = reduce_s + t1 - t0, connector_s + time.perf_counter() - t1
            if self.pool_mode == "mean_patch":
                pooled = pooled_mean(reduced, feat.shape[-1])
            else:
                pooled = self.pool(feat, views.layout)
            outputs.append(EncoderOutput(tokens=tokens.float().cpu(), pooled=pooled.cpu()))
        return outputs, {"h2d": h2d_s, "backbone": backbone_s, "reduce": reduce_s, "connector": connector_s}
