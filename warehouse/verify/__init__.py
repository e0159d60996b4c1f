"""The warehouse's own verification of signed batches (docs/protocol.md), apart from the agent's:
the JWS and payload checks (``verifier``), payload versions 2 and 3, the key history
(``keys``, ``key_book``) and bounded inflating of compressed bodies (``inflate``)."""
