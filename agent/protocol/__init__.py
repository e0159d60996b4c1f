"""The warehouse contract, pure bytes in / bytes out: JWS, keys, payloads v1/v2/v3, schema,
verification, rotation proof.
"""
