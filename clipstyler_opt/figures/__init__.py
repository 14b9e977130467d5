"""Publication figures: every chart the toolkit draws, made with matplotlib in one place.

- `palette`: one colour per cell, the same in every chart of a folder (Okabe–Ito's colour-blind-safe
  colours first);
- `charts`: curves with interval bands, scatter plots, heat maps and bar charts with interval bars;
- `export`: each figure written as SVG, PDF and PNG (300 dpi), atomically and reproducibly.

Example:
    >>> from clipstyler_opt.figures.charts import Series, curve_chart
    >>> figure = curve_chart([Series("CLIP", [1, 2, 3], [0.2, 0.3, 0.35])], xlabel="step", ylabel="loss",
    ...                      integer_x=True)
    >>> figure.axes[0].get_xlabel()
    'step'
"""
