"""The statistics of `clipstyler_opt analyze`: how texts and images correlate in an embedding space.

Pure numpy, no model: each function takes embeddings or scores already computed.

- `fits`: response curves, linear against power law (R², γ, AIC), with intervals over content images;
- `ranks`: Spearman's ρ and Kendall's τ-b;
- `geometry`: the modality gap and the cone of each modality;
- `recognition`: zero-shot style recognition (top-k accuracy, chance, confusion matrix);
- `intervals`: the old name of `clipstyler_opt.stats.bootstrap`, the bootstrap over clusters
  (content images) that every interval here uses (BCa limits).
"""
