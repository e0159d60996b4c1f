"""The configuration: the file's model and loader, the sample, the parameter catalogue, the [web]
section.
"""
