"""Wire formats: one module per format, each translating to and from the canonical events.

``<format>.py`` is the client side (build the upstream request, decode its
answer); ``<format>_server.py`` is the server side (read a client's request,
encode events back to it). Nothing here does I/O.
"""
