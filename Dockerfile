# sitrep: two stages, a slim non-root runtime, migrations applied by `sitrep run` on start.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY core ./core
COPY handlers ./handlers
COPY standin ./standin
COPY templates ./templates
COPY migrations ./migrations
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 sitrep && mkdir -p /data && chown sitrep /data
COPY --from=build /install /usr/local
USER sitrep
WORKDIR /home/sitrep
ENV PYTHONUNBUFFERED=1 \
    PORT=3000 \
    DATABASE_URL=sqlite:////data/sitrep.db
VOLUME ["/data"]
EXPOSE 3000
# /healthz answers 200 once the database is reachable and migrated (also in Socket Mode).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["sitrep"]
CMD ["run"]
