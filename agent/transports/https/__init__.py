"""HTTPS transport: POST each batch to the warehouse."""
