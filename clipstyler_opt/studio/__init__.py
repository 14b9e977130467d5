"""`clipopt studio`: a local web studio (a Gradio page mounted in a FastAPI app with a small REST API).

- settings.py: a job's settings (JSON from the page or the API) checked into a `StyleConfig`;
  settings that name a file on the server are refused.
- backbones.py: the backbones the server offers, and one loaded `Stylizer` kept per device.
- uploads.py: uploaded images checked (size, format allow-list, decoding) and kept as inputs.
- jobs.py: the job queue, one worker per device: previews, cancel, partial images.
- api.py: the REST API; page.py: the page; server.py: the app, host, token and signals.

Nothing here is imported by `clipopt --help`; the web packages come with the `studio` extra.
"""
