"""LoRAs and embeddings: the library, safe file reading, applying them to the pipeline, mixes."""
