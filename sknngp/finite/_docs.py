"""Parameter and attribute documentation shared by the finite-network estimators."""

from ..architecture.params import ARCHITECTURE_DOC, INPUT_SHAPE_DOC

COMMON_DOC = ARCHITECTURE_DOC + """    width : int, default=256
        Number of units (channels for convolutions) of every hidden layer.
        Hidden Dense / Conv layers of an explicit stack need their own
        ``width``; the readout's ``width=None`` is set by the task. In standard
        parameterization the NTK grows with the width, so an SGD ``lr`` must
        shrink like ``1 / width`` (``lr="auto"`` does it).""" + INPUT_SHAPE_DOC.rstrip("\n") + """
    regime : {None, "kernel"}, default=None
        None: train like an ordinary network (the ``"auto"`` settings below:
        Adam, mini-batches of 64, early stopping on a validation split).
        ``"kernel"``: the setting of the infinite-width correspondence, where
        the network tracks ``NTKRegressor(t=max_epochs, learning_rate=lr_)``:
        full-batch gradient descent (SGD, no momentum) on the MSE of a
        centered network (``center="auto"``; an explicit ``center=False`` is
        kept), for exactly ``max_epochs`` steps (no early stopping),
        ``lr="auto"`` being a tenth of the critical rate. Parameters left at
        ``"auto"`` follow the regime; one set to a contradicting value
        raises ``ValueError``.
    optimizer : {"auto", "sgd", "adam"}, default="auto"
        ``torch.optim.Adam`` or ``torch.optim.SGD`` (with ``momentum``).
        ``"auto"``: Adam, SGD in the kernel regime.
    momentum : float in [0, 1) or "auto", default="auto"
        SGD momentum. ``"auto"``: 0.9, 0 in the kernel regime (plain gradient
        descent). Adam takes no momentum (``"auto"`` or 0 only).
    lr : float or "auto", default="auto"
        Learning rate; the one used is ``lr_``. ``"auto"`` with SGD: half the
        critical rate (a tenth in the kernel regime, which needs a small step
        to stay close to the linearized network) ``2 m / lambda_max(Theta)``
        of the network at
        initialization (``m = n_samples * n_outputs`` target entries,
        ``Theta`` its empirical NTK on at most 1,024 training rows, see
        :func:`critical_learning_rate`): the paper's convention, and the
        same meaning for every architecture, width and input scale.
        ``"auto"`` with Adam: 1e-2 in NTK parameterization, 1e-3 in standard
        parameterization (Adam moves each trained entry by about ``lr`` per
        step; NTK-parameterized entries are ``O(1)``, standard ones
        ``O(1/sqrt(fan_in))``). A diverging run raises ``FloatingPointError``
        with advice.
    max_epochs : int, default=200
        Most epochs (passes over the training rows; 0 leaves the network at
        its initialization). Early stopping usually ends training sooner; in
        the kernel regime it is the training time ``t`` in steps.
    batch_size : int, None or "auto", default="auto"
        Mini-batch size, shuffled every epoch; None trains with full-batch
        gradient descent (one step per epoch). ``"auto"``: 64, full batch in
        the kernel regime.
    early_stopping : bool or "auto", default="auto"
        Stop when the monitored score has not improved (by 1e-4, relative)
        for ``patience`` epochs, and restore the parameters of the best
        epoch. The score is the validation accuracy (classifier) or loss
        (regressor) on the ``train_split`` rows; without a validation split
        (``train_split=None``, or fewer than 20 rows in it or left to
        train), the training loss. ``"auto"``: on, off in the kernel regime.
    train_split : float in (0, 1), callable or None, default=0.1
        Rows held out to monitor early stopping: a fraction (stratified by
        class for classifiers, seeded by ``random_state``; not used when it
        would hold fewer than 20 rows or leave fewer than 20 to train), or a
        skorch ``train_split`` callable (e.g. ``skorch.dataset.ValidSplit``),
        or None. Unused without early stopping.
    patience : int, default=20
        Epochs without improvement before early stopping. (Measured on
        Fashion-MNIST, 2,000 images: 20 instead of 10 gained 2-3 points of
        test accuracy for the same initialization; with Adam's default
        ``lr`` the validation accuracy plateaus for a while before it
        improves again.)
    weight_decay : float, default=0.0
        Strength ``lambda`` of the L2 penalty ``lambda / 2 * sum_p s_p *
        ||p||**2`` added through the optimizer (``torch.optim`` weight decay).
    weight_decay_scaling : {"layerwise", "uniform"}, default="layerwise"
        The factors ``s_p``. ``"layerwise"`` (Lee et al. 2020, Sec. 3.11): in
        NTK parameterization ``s = W_std**2 / fan_in`` for each ``omega`` and
        ``s = b_std**2`` for each ``beta``, so the penalty is the plain L2 of
        the effective weights and biases; in standard parameterization the
        trained tensors already are the effective weights, so ``s = 1`` and
        ``"layerwise"`` equals ``"uniform"``. ``"uniform"``: ``s = 1`` for
        every trained tensor.
    center : bool or "auto", default="auto"
        Train and predict with ``f(x) - f0(x)``, the output minus the output of
        the same network at initialization (its initial parameters are kept,
        frozen). Removes the random initial function from the predictions.
        ``"auto"``: False, True in the kernel regime.
    n_ensemble : int, default=1
        Number of independently initialized networks, each trained on its own
        loss (one module holds them all); predictions are their mean output.
    device : str or torch.device, default="cpu"
        Where the network is trained ("cpu", "cuda", "cuda:1"). Predictions
        come back as NumPy arrays on the host.
    n_jobs : int or None, default=None
        CPU threads of torch during ``fit`` and ``predict`` (restored after).
        None means 1: networks of this size train fastest on one thread, and
        torch's default (every core) was measured 4-20x slower on a busy
        2-core machine. -1 uses every core.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split and the mini-batch
        order; an int makes ``fit`` deterministic (on a given device and
        thread count).
    warm_start : bool, default=False
        When True, ``fit`` on a fitted estimator continues training the
        existing network (for ``max_epochs`` more epochs, same ``lr_``)
        instead of starting from a new initialization; the data must have
        the same features and outputs (classes).
    verbose : int, default=0
        skorch's per-epoch progress table when > 0.
    callbacks : list of skorch callbacks or None, default=None
        Extra callbacks passed to ``skorch.NeuralNet`` (copies: the list given
        here is not modified), run after the estimator's own (divergence
        check, ``valid_acc`` scoring, early stopping).
"""

ATTRIBUTES_DOC = """
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the
        :class:`~sknngp.finite._modules.FiniteNetModule`.
    history_ : skorch.History
        The training record, one entry per epoch (``train_loss`` summed over
        ensemble members, ``valid_loss`` / ``valid_acc`` with a validation
        split).
    lr_ : float
        The learning rate used.
    training_ : dict
        The settings the fit resolved: ``optimizer``, ``momentum``, ``lr``,
        ``lr_rule``, ``critical_lr`` (for SGD's ``lr="auto"``, else None),
        ``batch_size``, ``center``, ``early_stopping``, ``monitor`` and
        ``n_valid`` (validation rows; -1 for a callable ``train_split``).
    architecture_ : Serial
        The layer stack that was trained (the same object
        :func:`sknngp.kernel_matrix` takes as ``architecture``).
    input_shape_ : tuple of int
        One sample's shape: ``(height, width, channels)`` for images, else
        ``(n_features,)``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
"""
