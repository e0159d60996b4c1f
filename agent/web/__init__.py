"""The local station page and the Prometheus metrics, on the opt-in ``[web]`` listener.

``section`` holds the ``[web]`` configuration model (imported by ``agent.config.model``); ``server``
serves the page, its assets, its JSON and ``/metrics``; ``live`` gathers what the page shows;
``actions`` holds the few changes the page can make, only for whoever holds the ``[web]`` token
(without one nothing served here changes the agent or the buffer).
"""
