"""The local station page and the Prometheus metrics, on the opt-in ``[web]`` listener.

``section`` holds the ``[web]`` configuration model (imported by ``agent.config``); ``server``
serves the page, its assets, its JSON and ``/metrics``; ``live`` gathers what the page shows.
Everything is read-only: nothing served here changes the agent or the buffer.
"""
