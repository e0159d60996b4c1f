"""The warehouse's read-only SensorThings API (OGC 18-088 v1.1), catalogues and open data.

Request flow: ``server`` (HTTP) -> ``app.StaService`` (routes) -> ``resource_path`` +
``query_options`` (parse, bounded) -> ``query`` (one SQL statement per page, compiled by
``compile`` over the entity sources of ``entities``) -> ``serialize`` (JSON, ``$expand``).
Reads the store only; imports only ``core`` from the project (as all of ``warehouse``).
"""
