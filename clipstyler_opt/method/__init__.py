"""The method: views and crops, text embeddings, style targets, the objective and its terms,
rendering, colours, precision and early stopping."""
