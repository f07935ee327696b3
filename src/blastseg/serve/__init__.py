"""``blastseg serve``: a web page and its HTTP API over what ``predict`` and ``segment`` offer.

- :mod:`.uploads`: what an upload may be (image types recognised by their first bytes, limits);
- :mod:`.jobs`: analysis jobs run off the request threads, their files, expiry and corrections;
- :mod:`.app`: the FastAPI app (``create_app``) and the page under ``page/``.
"""
