"""Pipeline stage 2: seal stored readings into signed, chained batches."""
