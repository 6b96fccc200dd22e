"""One module per stage of a study (docs/method.md §1–§8); each exposes plain functions that
take explicit paths and options and write one unit's files into its directory ``out``.

===================  ==========================================================
module               stage
===================  ==========================================================
:mod:`.data`         pairs for training, validation, capture and OOD; targets; LETOR features
:mod:`.finetune`     the model: LoRA fine-tuning or an existing adapter
:mod:`.capture`      layer records over the capture and OOD pairs
:mod:`.valuate`      φ per layer and valuation (:data:`hedonic_neurons.vocab.VALUATIONS`)
:mod:`.partition`    hedonic partitions (:data:`hedonic_neurons.vocab.PARTITION_METHODS`)
:mod:`.diagnostics`  closure diagnostics: each algorithm on a null φ, the k-sweep (docs/method.md §5.5)
:mod:`.stability`    measured blocking rate ε̂ and the PAC (ε, δ) check
:mod:`.baselines`    matched baselines (:data:`hedonic_neurons.vocab.BASELINES`)
:mod:`.evaluate`     metrics through :mod:`hedonic_neurons.evaluation` (intrinsic and OOD drop)
:mod:`.track`        coalition transitions across layers, Sankey
===================  ==========================================================

The order, caching and parallelism are :mod:`hedonic_neurons.pipeline.study`'s business.
"""
