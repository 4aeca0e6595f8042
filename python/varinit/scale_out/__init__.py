"""Arrays larger than one machine's memory, with the same values as an
in-memory fill: Dask constructors (varinit.scale_out.dask_arrays), block fills
of memory maps and streamed safetensors / Zarr writers
(varinit.scale_out.out_of_core)."""
