# sitrep: two stages, a slim non-root runtime, migrations applied by `sitrep run` on start.
# Reproducible: the base image is pinned by digest and every package by requirements.lock (with hashes);
# refresh: `make refresh` (the lock from PyPI, and the digest python:3.11-slim points at now).
FROM python:3.11-slim@sha256:be1575ed968de893bd54f4c56315ff7c4736ce522c1bca08fd521731aafc0d76 AS build
WORKDIR /src
# The dependencies (and the build tools) exactly as locked, each checked against its hash.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY handlers ./handlers
COPY standin ./standin
COPY templates ./templates
COPY migrations ./migrations
# sitrep itself, built with the locked setuptools: nothing is fetched that the lock does not name.
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

FROM python:3.11-slim@sha256:be1575ed968de893bd54f4c56315ff7c4736ce522c1bca08fd521731aafc0d76
RUN useradd --create-home --uid 10001 sitrep && mkdir -p /data && chown sitrep /data
COPY --from=build /usr/local /usr/local
USER 10001
WORKDIR /home/sitrep
ENV PYTHONUNBUFFERED=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/sitrep.db
VOLUME ["/data"]
EXPOSE 3000
# /healthz answers 200 once the database is migrated and Slack has answered (also in Socket Mode).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["sitrep"]
CMD ["run"]
