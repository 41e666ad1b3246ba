"""Training samples for `rearank augment`: subsets of a run's candidates scored against the qrels
(`sampling`). Pure core: standard library only."""
