"""Generation: the engine that owns the pipeline, its parameters, prompts, masks, tiles, previews, result checks and batches."""
