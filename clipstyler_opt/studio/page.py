"""The studio's page: Gradio Blocks mounted at / in the FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from clipstyler_opt.studio.service import Studio

__all__ = ["mount_page"]


def mount_page(app: FastAPI, studio: Studio) -> FastAPI:
    """Mount the page at / (Gradio)."""
    import gradio as gr

    with gr.Blocks(title="clipopt studio", analytics_enabled=False) as blocks:
        gr.Markdown("# clipopt studio")
    return gr.mount_gradio_app(app, blocks, path="/", max_file_size=studio.max_upload_bytes, ssr_mode=False,
                               footer_links=[])
