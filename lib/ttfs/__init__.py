"""Time-to-first-spike (TTFS) networks: ReLU networks and the single-spike SNNs they map to.

Implements Stanojevic, Woźniak, Bellec, Cherubini, Pantazi & Gerstner (2023), "An exact mapping from
ReLU networks to spiking neural networks", *Neural Networks* (arXiv:2212.12522), explained in the
chapter ``chapters/ttfs-exact-mapping``. The companion chapter ``ttfs-deep-training`` (Stanojevic
et al. 2024, "High-performance deep spiking neural networks with 0.3 spikes per neuron", *Nature
Communications*) adds the B1 neuron as :mod:`lib.ttfs.b1`, a sibling of :mod:`lib.ttfs.alpha1`.

Modules (science only: models, no presets or figures; the chapter's protocol is
:mod:`lib.protocols.ttfs_exact_mapping`):

- :mod:`lib.ttfs.common`: time units, the input coding (:func:`encode`), spike windows
  (:func:`windows`), the layer-shape mixin and input checks, shared by every neuron model;
- :mod:`lib.ttfs.relu`: ReLU networks in torch (:class:`Architecture`, :class:`ReLUNet`,
  :func:`train`), folded into plain arrays (:func:`fold`, :class:`Network`, :class:`Layer`),
  scaled (:func:`scale_weights`) and their layer maxima (:func:`layer_maxima`); He
  initialisation (:func:`he_init`) and the inverse of ``fold`` (:func:`relu_from_network`);
- :mod:`lib.ttfs.b1`: the B1 neuron of ``ttfs-deep-training`` (Stanojevic et al. 2024): the
  identity mapping (:func:`map_identity`), its closed form and clock-driven simulation
  (``b1.closed_form``, ``b1.simulate``), time-domain training in torch (:class:`B1Net`), the α1
  foil trained the same way (:class:`Alpha1Net`, drawn in its own parameters by
  :func:`naive_alpha1`), :func:`backward_gain` and :func:`signed_gain`, and for a trained
  :class:`B1Net` :func:`evaluate` and :func:`fit_windows`;
- :mod:`lib.ttfs.alpha1`: the α1 neuron: the mapping (:func:`map_to_snn`), the event-driven
  simulator (:func:`simulate`), the closed form (:func:`closed_form`) and the comparison with the
  ReLU network (:func:`exactness`).

Every public name of the submodules is re-exported here (the B1 closed form and simulation stay
``b1.closed_form`` and ``b1.simulate``, beside the α1 ones), so ``from lib import ttfs`` then
``ttfs.map_to_snn(...)`` works, as does ``from lib.ttfs import Network``.
"""

from . import alpha1, b1, common, relu
from .alpha1 import (
    ALPHA,
    SNN,
    EarlySpikeError,
    EarlySpikeWarning,
    Exactness,
    Readout,
    SNNResult,
    SpikingLayer,
    alpha1_spike_times,
    closed_form,
    decode,
    exactness,
    layer_input_times,
    map_to_snn,
    potential,
    rounding_bound,
    simulate,
    threshold,
)
from .b1 import (
    ADAPT_FACTOR,
    B1SNN,
    SCRATCH_X,
    Activity,
    Alpha1Net,
    B1Net,
    B1Result,
    b1_potential,
    backward_error,
    backward_gain,
    evaluate,
    fake_quantise,
    fit_windows,
    hidden_weights,
    layer_gradient_norms,
    map_identity,
    naive_alpha1,
    signed_gain,
)
from .common import INPUT_T_MAX, INPUT_T_MIN, PADDINGS, TAU_C, ZETA, encode, windows
from .relu import (
    SUM_W_MAX,
    SUM_W_MIN,
    VGG,
    Architecture,
    Layer,
    Network,
    ReLUNet,
    Training,
    flat_params,
    fold,
    he_init,
    layer_maxima,
    logits,
    max_param_diff,
    noisy_relu_predictions,
    relu_from_network,
    relu_params,
    scale_weights,
    train,
    without_biases,
)

__all__ = [
    "ADAPT_FACTOR", "SCRATCH_X", "Activity", "Alpha1Net", "B1Net", "B1Result", "B1SNN", "b1", "b1_potential",
    "backward_error", "backward_gain", "evaluate", "fake_quantise", "fit_windows", "hidden_weights",
    "layer_gradient_norms", "map_identity", "naive_alpha1", "signed_gain",
    "ALPHA", "INPUT_T_MAX", "INPUT_T_MIN", "PADDINGS", "SNN", "SUM_W_MAX", "SUM_W_MIN", "TAU_C", "VGG", "ZETA",
    "Architecture", "EarlySpikeError", "EarlySpikeWarning", "Exactness", "Layer", "Network", "ReLUNet",
    "Readout", "SNNResult", "SpikingLayer",
    "Training", "alpha1", "alpha1_spike_times", "closed_form", "common", "decode", "encode", "exactness",
    "flat_params", "fold", "he_init", "max_param_diff", "relu_from_network", "relu_params",
    "without_biases", "layer_input_times", "layer_maxima", "logits", "map_to_snn", "noisy_relu_predictions",
    "potential", "relu", "rounding_bound", "scale_weights", "simulate", "threshold", "train", "windows",
]
