# The cs3collab hub image.
FROM python:3.11-slim AS hub
WORKDIR /app
COPY pyproject.toml README.md ./
COPY collab_server ./collab_server
COPY crdt ./crdt
COPY storage_bridge ./storage_bridge
# The hub needs no JupyterLab extension: skip its node build (hatch-jupyter-builder).
RUN SKIP_JUPYTER_BUILDER=1 pip install --no-cache-dir . && useradd --create-home cs3collab \
    && mkdir -p /data/state /data/notebooks && chown cs3collab /data/state /data/notebooks
USER cs3collab
ENV CS3COLLAB_HOST=0.0.0.0 \
    CS3COLLAB_PORT=8900 \
    CS3COLLAB_ROOT=/data/notebooks \
    CS3COLLAB_DATA_DIR=/data/state
EXPOSE 8900
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8900/readyz', timeout=2)" || exit 1
ENTRYPOINT ["cs3collab", "serve"]
