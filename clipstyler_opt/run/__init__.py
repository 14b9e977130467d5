"""One run: the stylizer, its result and record, images in and out, animations, re-runs and resources."""
