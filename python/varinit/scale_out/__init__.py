"""Arrays larger than one machine's memory, with the same values as an
in-memory fill: Dask constructors (varinit.scale_out.dask_arrays), block fills
of memory maps (varinit.scale_out.blocks) and crash-safe, streamed
safetensors / Zarr writers (varinit.scale_out.writers, on the file primitives
of varinit.scale_out.durable_files)."""
