"""Pipeline stage 3: feed sealed batches to each transport and record what it said."""
